"""A tiny task for the retrain gate's tests: 8×8 images, class 1 when the left half is brighter.

The base set (60 training images) leaves the tiny cnn near chance; a shard of 400 more correctly
labelled images lifts it well above; the evaluation set (300 images) is large enough for the
paired test to tell those apart. Training one model takes a few seconds on a loaded CPU.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from model_store.prefix import open_prefix
from model_store.shards import write_shard

SIDE = 8
TRAIN_ARGS = [
    "--arch", "cnn", "--epochs", "8", "--batch-size", "16", "--lr", "5e-3",
    "--model-option", "channels=(4, 8)", "--model-option", "hidden=16", "--no-variants",
]  # fmt: skip


def images(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.random((n, 1, SIDE, SIDE), dtype=np.float32)
    return x, rule(x)


def rule(x: np.ndarray) -> np.ndarray:
    """The true label of each image."""
    half = SIDE // 2
    left, right = x[:, 0, :, :half].mean(axis=(1, 2)), x[:, 0, :, half:].mean(axis=(1, 2))
    return (left > right).astype(np.int64)


def write_base(path: Path) -> Path:
    x_train, y_train = images(60, seed=0)
    x_test, y_test = images(300, seed=1)
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test,
             labels=np.array(["right", "left"]))  # fmt: skip
    return path


def helpful_shard(n: int = 400, seed: int = 2) -> bytes:
    x, y = images(n, seed)
    return write_shard(x, y)


def put(uri: str, name: str, data: bytes) -> None:
    """Writes a shard into a data directory or S3 prefix."""
    open_prefix(uri).write(name, data)
