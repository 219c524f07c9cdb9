"""GPU tests run on the demo models (the suite's store, carried to the device machine by
benchmarks/gpu/run_on_device.sh); INDUCTIVE_GPU_TEST_STORE points elsewhere."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.service.helpers import REPO_ROOT

MODELS = ("cnn", "resnet", "gru", "transformer")


@pytest.fixture(scope="session")
def demo_store() -> Path:
    store = Path(os.environ.get("INDUCTIVE_GPU_TEST_STORE", REPO_ROOT / "benchmarks" / ".store"))
    missing = [m for m in MODELS if not (store / m).is_dir()]
    if missing:
        pytest.skip(
            f"demo models {missing} not in {store}: python -m training demo --store {store}"
        )
    return store
