"""A tiny store for the benchmark harness tests: `add` (two inputs) and `ragged` (variable-length
sequences with a lengths input, so the request files cycle through several bodies)."""

from __future__ import annotations

from pathlib import Path

import pytest

from model_store import ModelConfig, RaggedInput
from tests.service.helpers import publish
from tests.service.models import add_model, ragged_model


@pytest.fixture(scope="package")
def tiny_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bench-store")
    store, models = root / "store", root / "models"
    models.mkdir()
    publish(store, "add", add_model(models, offset=1.5))
    ragged = ModelConfig(ragged_inputs=(RaggedInput(input="x", axis=1, lengths_input="lengths"),))
    publish(store, "ragged", ragged_model(models), config=ragged)
    return store
