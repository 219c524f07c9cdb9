"""Tiny versions of the `add` model for the end-to-end tests: version N adds 100·N, so that every
answer tells which version computed it, and the load pool checks the sum itself."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import orjson

from model_store import add_onnx, open_store
from model_store.schema import BatchingConfig, ModelConfig, VersionPolicy
from tests.service import models

MODEL = "add"
X = np.arange(4, dtype=np.float32).reshape(1, 4)
BODY = orjson.dumps(
    {"inputs": [{"name": n, "shape": [1, 4], "datatype": "FP32", "data": X.ravel().tolist()}
                for n in ("x", "y")]}
)  # fmt: skip
CONFIG = ModelConfig(batching=BatchingConfig(max_batch_size=16, max_queue_delay_ms=2))
STABLE = CONFIG.model_copy(update={"version_policy": VersionPolicy(kind="alias")})


def offset(version: int) -> float:
    return 100.0 * version


def artifact(directory: Path, version: int) -> Path:
    """The ONNX file that should become `version` (its offset names it)."""
    target = directory / f"add-v{version}"
    target.mkdir(parents=True, exist_ok=True)
    return models.add_model(target, offset=offset(version))


def check_sum(doc: dict[str, Any]) -> str | None:
    """The answer must be x + x + 100·model_version: computed by the version it names."""
    version = int(doc["model_version"])
    got = np.asarray(doc["outputs"][0]["data"], np.float32)
    expected = models.add_reference(X, X, offset(version)).ravel()
    return None if np.array_equal(got, expected) else f"sum {got.tolist()} is not v{version}'s"


def publish_v1_stable(store_uri: str, directory: Path) -> None:
    """v1 of `add` under a stable-alias policy, stable → v1."""
    store = open_store(store_uri)
    assert add_onnx(store, MODEL, artifact(directory, 1), config=STABLE) == 1
    store.promote(MODEL, 1)
