"""A shadow under load on a real server: `python -m model_store shadow` mirrors the champion's
requests to the candidate, whose outputs are compared (agreement, absolute difference) and never
sent; a candidate that falls behind gets its mirrored requests dropped and counted, and the
champion keeps answering every request."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from benchmarks.harness.load_pool import LoadPool, Record
from model_store import add_onnx, open_store
from model_store.schema import VersionPolicy
from tests.e2e.test_canary import cli, eventually, next_records
from tests.e2e.test_lifecycle import server_env
from tests.e2e.tiny import CONFIG
from tests.service import models
from tests.service.helpers import ServerProcess, running_server

pytestmark = pytest.mark.slow

MODEL = "clf"
STABLE = CONFIG.model_copy(update={"version_policy": VersionPolicy(kind="alias")})
X = np.random.default_rng(7).random((64, 4)).astype(np.float32)
BODIES = [
    orjson.dumps({"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32",
                              "data": row.tolist()}]})
    for row in X
]  # fmt: skip


def from_champion(doc: dict[str, Any]) -> str | None:
    return None if doc["model_version"] == "1" else "answered by the candidate"


def shadow_counts(server: ServerProcess) -> dict[str, float]:
    """The shadow's counters for champion v1 and candidate v2, by short name."""
    pair = f'candidate="2",champion="1",model="{MODEL}"'
    m = server.metrics()
    counts = {
        o: m.get(f'inductive_shadow_requests_total{{{pair},outcome="{o}"}}', 0.0)
        for o in ("compared", "dropped", "failed")
    }
    counts["samples"] = m.get(f"inductive_shadow_samples_total{{{pair}}}", 0.0)
    counts["agreeing"] = m.get(f"inductive_shadow_agreement_samples_total{{{pair}}}", 0.0)
    counts["diffs"] = m.get(f"inductive_shadow_mean_abs_diff_count{{{pair}}}", 0.0)
    counts["diff_sum"] = m.get(f"inductive_shadow_mean_abs_diff_sum{{{pair}}}", 0.0)
    return counts


def publish(store_uri: str, tmp_path: Path, candidate: Path) -> None:
    store = open_store(store_uri)
    champion = models.classifier_model(tmp_path, seed=0, name="champion")
    assert add_onnx(store, MODEL, champion, config=STABLE) == 1
    store.promote(MODEL, 1)
    assert add_onnx(store, MODEL, candidate) == 2


def latency_ms(records: list[Record]) -> tuple[float, float]:
    ms = np.array([r.end - r.start for r in records]) * 1000
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


def test_a_shadow_that_disagrees_shows_it_while_the_champion_answers_everything(
    tmp_path: Path,
) -> None:
    store_uri = str(tmp_path / "store")
    publish(store_uri, tmp_path, models.classifier_model(tmp_path, seed=1, name="other"))
    env = server_env(store_uri, None)
    with (
        running_server(tmp_path / "unused", tmp_path, env) as server,
        LoadPool(server.url, MODEL, BODIES, rps=150, workers=8, check=from_champion) as load,
    ):
        out = cli(store_uri, "shadow", MODEL, "2", "--mirror", "1")
        assert "never sent" in out
        eventually(lambda: shadow_counts(server)["compared"] >= 300, "300 compared requests")
        counts = shadow_counts(server)
        records = load.stop()
        assert sorted(server.metrics().get(k, 0) for k in (
            f'inductive_canary_mirror_ratio{{candidate="2",champion="1",model="{MODEL}"}}',
            f'inductive_canary_weight_ratio{{candidate="2",champion="1",model="{MODEL}"}}',
        )) == [0.0, 1.0]  # fmt: skip

    assert [r.error for r in records if r.error] == []
    assert {r.version for r in records} == {1}
    assert counts["failed"] == 0
    assert counts["samples"] >= counts["compared"]  # one sample a request
    agreement = counts["agreeing"] / counts["samples"]
    # The two classifiers pick the same class for ~85 % of these inputs.
    assert 0.7 < agreement < 0.97, agreement
    assert counts["diffs"] == counts["compared"]
    assert counts["diff_sum"] / counts["diffs"] > 0.1


def test_a_candidate_that_is_behind_gets_its_mirrored_requests_dropped(tmp_path: Path) -> None:
    """The candidate computes the champion's answers thousands of times slower: mirroring
    every request to it, one at a time, drops most of them, compares the rest (all agreeing),
    and the champion answers every request."""
    store_uri = str(tmp_path / "store")
    slow = models.classifier_model(tmp_path, seed=0, name="slow", slow_depth=256)
    publish(store_uri, tmp_path, slow)
    env = {
        **server_env(store_uri, None),
        "INDUCTIVE_SHADOW_MAX_INFLIGHT": "1",
        "INDUCTIVE_SHADOW_MAX_QUEUE": "1",
    }
    with (
        running_server(tmp_path / "unused", tmp_path, env) as server,
        LoadPool(server.url, MODEL, BODIES, rps=150, workers=8, check=from_champion) as load,
    ):
        before = next_records(load, time.monotonic(), 450)
        cli(store_uri, "shadow", MODEL, "2", "--mirror", "1")
        started = eventually(lambda: shadow_counts(server)["dropped"] > 0, "a dropped mirror")
        during = next_records(load, started, 450)
        counts = shadow_counts(server)
        records = load.stop()

    assert [r.error for r in records if r.error] == []
    assert {r.version for r in records} == {1}
    assert counts["dropped"] > counts["compared"] > 0
    assert counts["failed"] == 0
    assert counts["agreeing"] == counts["samples"] > 0  # the same function, computed slowly
    # Loose, on a shared 2-core machine where the candidate's thread competes for the CPU:
    # no answer waits for the candidate, so the champion's median stays within a few ms.
    p50_before, _ = latency_ms(before)
    p50_during, _ = latency_ms(during)
    print(f"champion p50 {p50_before:.2f} ms before the shadow, {p50_during:.2f} ms during")
    assert p50_during < 3 * p50_before + 10, (p50_before, p50_during)
