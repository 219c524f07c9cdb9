"""The GPU benchmark kit (benchmarks/gpu/), run for real on CPU with its dry-run settings.

The kit only runs in full on a lent GPU machine, which a session may never get; this keeps it
from rotting in between: every raw I/O mode and every served configuration must produce a point
with answers and no errors, and the report must be written."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from benchmarks.gpu.__main__ import main as gpu_main
from benchmarks.gpu.served import CONFIGS

pytestmark = pytest.mark.skipif(
    shutil.which("wrk") is None, reason="wrk is not installed (apt-get install -y wrk)"
)


def test_dry_run_on_cpu_measures_every_mode_and_configuration(
    tiny_store: Path, tmp_path: Path
) -> None:
    gpu_main(
        [
            *("--provider", "cpu", "--dry-run", "--models", "add"),
            *("--store", str(tiny_store), "--out", str(tmp_path)),
        ]
    )
    results = json.loads((tmp_path / "gpu-report.json").read_text())
    assert results["meta"]["provider"] == "cpu"
    model = results["models"]["add"]
    raw = model["raw"]["fp32"]
    assert {row["mode"] for row in raw} == {"numpy", "bound-host", "bound-device"}
    assert all(row["throughput"] > 0 for row in raw)
    served = {point["label"]: point for point in model["served"]}
    assert set(served) == {config.label for config in CONFIGS}
    for label, point in served.items():
        assert point["requests"] > 0, label
        assert point["errors"] == 0, label
    assert served["fp32, batching off"]["mean_batch"] == pytest.approx(1.0)
    assert served["fp32, batching on, I/O binding on"]["mean_batch"] > 1
    bulk = served["fp32, 32 samples/request, max batch 1024"]
    assert bulk["samples_per_s"] == pytest.approx(32 * bulk["throughput"])
    assert bulk["mean_batch"] > 32  # requests of 32 samples were batched together
    assert "| fp32, batching on, I/O binding on |" in (tmp_path / "gpu-report.md").read_text()
