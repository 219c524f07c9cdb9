"""Fixtures: one store with the tiny test models, and one real server process shared by the
tests of a session (starting a server costs ~1 s; each lifecycle test starts its own)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from model_store.schema import BatchingConfig, ModelConfig, RaggedInput
from tests.service import models
from tests.service.helpers import ServerProcess, publish, running_server

ADD_LABELS = ("north", "east", "south", "west")
# Padding with 7.0 instead of 0.0 makes a missing mask visible in the ragged model's mean.
RAGGED_CONFIG = ModelConfig(
    batching=BatchingConfig(max_batch_size=16, max_queue_delay_ms=20),
    ragged_inputs=(
        RaggedInput(input="x", axis=1, pad_value=7.0, lengths_input="lengths", max_length=64),
    ),
)
ADD_CONFIG = ModelConfig(
    batching=BatchingConfig(max_batch_size=32, max_queue_delay_ms=10),
    reject_non_finite_inputs=True,
)


def build_store(store: Path, work: Path) -> Path:
    """add (labels, batch ≤ 32), all_types, ragged (pad 7, lengths filled by the server), faulty."""
    publish(store, "add", models.add_model(work), config=ADD_CONFIG, labels=ADD_LABELS)
    publish(store, "all_types", models.all_types_model(work))
    publish(store, "ragged", models.ragged_model(work), config=RAGGED_CONFIG)
    publish(
        store,
        "faulty",
        models.faulty_model(work),
        config=ModelConfig(batching=BatchingConfig(max_batch_size=8, max_queue_delay_ms=20)),
    )
    return store


@pytest.fixture(scope="session")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("models")
    return build_store(tmp_path_factory.mktemp("store"), work)


@pytest.fixture(scope="session")
def server(store: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    env = {
        "INDUCTIVE_MAX_BODY_BYTES": str(1024 * 1024),
        "INDUCTIVE_BODY_TIMEOUT_S": "1",
        "INDUCTIVE_MODEL_CONTROL_MODE": "none",
    }
    with running_server(store, tmp_path_factory.mktemp("server"), env) as process:
        yield process
