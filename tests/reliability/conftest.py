"""One store with the service tests' tiny models and one real server for the bad-input tests;
the fault tests start their own servers, because they break them on purpose."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.service.conftest import build_store
from tests.service.helpers import ServerProcess, running_server

MAX_BODY_BYTES = 1024 * 1024
MAX_TENSOR_ELEMENTS = 1024 * 1024


@pytest.fixture(scope="session")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """add (FP32 x, y [-1, 4], batch ≤ 32, NaN refused), all_types, ragged, faulty."""
    return build_store(tmp_path_factory.mktemp("store"), tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="session")
def server(store: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    env = {
        "INDUCTIVE_MAX_BODY_BYTES": str(MAX_BODY_BYTES),
        "INDUCTIVE_MAX_TENSOR_ELEMENTS": str(MAX_TENSOR_ELEMENTS),
        "INDUCTIVE_MODEL_CONTROL_MODE": "none",
    }
    with running_server(store, tmp_path_factory.mktemp("server"), env) as process:
        yield process
