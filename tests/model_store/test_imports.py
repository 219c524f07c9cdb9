"""model_store stands alone: no training, service or torch, and no boto3 unless S3 is used."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

_PROBE = """
import sys
sys.modules["boto3"] = None  # as if the s3 extra were not installed
import model_store, model_store.cli
store = model_store.open_store(sys.argv[1])
assert store.list_models() == []
loaded = sorted(m.split(".")[0] for m in sys.modules)
for banned in ("training", "service", "torch", "botocore"):
    assert banned not in loaded, banned
"""


def test_model_store_imports_alone(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, str(tmp_path / "store")],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
