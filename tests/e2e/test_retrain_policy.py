"""A scheduled retrain (`python -m training train --publish`, the CronJob's command) must not undo
the release gate an operator set: with a `stable`-alias version policy, a retrained version waits
for `model_store promote` like any other."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from model_store import add_onnx, open_store
from tests.e2e.tiny import STABLE, artifact
from tests.service.helpers import REPO_ROOT


def _tiny_images(path: Path) -> Path:
    """64 random 8×8 images in two classes: enough for one epoch of the cnn in seconds."""
    rng = np.random.default_rng(0)
    np.savez(
        path,
        x_train=rng.random((64, 1, 8, 8), dtype=np.float32),
        y_train=rng.integers(0, 2, 64),
        x_test=rng.random((16, 1, 8, 8), dtype=np.float32),
        y_test=rng.integers(0, 2, 16),
    )
    return path


@pytest.mark.slow
def test_a_retrain_publish_keeps_the_stable_policy(tmp_path: Path) -> None:
    store = open_store(tmp_path / "store")
    # v1 under the operator's release gate: stable → v1.
    assert add_onnx(store, "digits", artifact(tmp_path, 1), config=STABLE) == 1
    store.promote("digits", 1)
    subprocess.run(
        [sys.executable, "-m", "training", "train", "--arch", "cnn", "--name", "digits",
         "--dataset", str(_tiny_images(tmp_path / "tiny.npz")), "--epochs", "1",
         "--no-variants", "--out", str(tmp_path / "run"), "--publish", store.uri],
        cwd=REPO_ROOT, check=True, capture_output=True,
    )  # fmt: skip
    assert store.list_versions("digits") == [1, 2]
    assert store.aliases("digits") == {"stable": 1}
    assert store.config("digits").version_policy.kind == "alias"
