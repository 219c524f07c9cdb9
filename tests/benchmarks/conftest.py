"""A tiny store for the benchmark harness tests: `add` (two inputs) and `ragged` (variable-length
sequences with a lengths input, so the request files cycle through several bodies)."""

from __future__ import annotations

from collections.abc import Iterator
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


@pytest.fixture(scope="package", autouse=True)
def _grpc_on_any_free_port() -> Iterator[None]:
    """The servers the harness starts would take gRPC's default port 8001 otherwise, which
    another server of the suite (or of the machine) may hold."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("INDUCTIVE_GRPC_PORT", "0")
        yield
