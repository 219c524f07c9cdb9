"""A server with an admin token, two API keys, explicit model control and debug logs, over a
store with `add` (x, y FP32 [-1, 4]) — hostile versions are forged into it by the tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.service import models
from tests.service.helpers import ServerProcess, publish, running_server

ADMIN_TOKEN = "adm1n-7c0a5e1f-never-log-me"
API_KEYS = ("key-one-3b9d0c44-never-log-me", "key-two-91e2aa07-never-log-me")
WRONG_TOKEN = "wr0ng-5d1c88e2-never-log-me"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    store = tmp_path_factory.mktemp("store")
    publish(store, "add", models.add_model(tmp_path_factory.mktemp("models")))
    return store


@pytest.fixture(scope="module")
def server(store: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    env = {
        "INDUCTIVE_ADMIN_TOKEN": ADMIN_TOKEN,
        "INDUCTIVE_API_KEYS": ",".join(API_KEYS),
        "INDUCTIVE_MODEL_CONTROL_MODE": "explicit",
        "INDUCTIVE_MODELS": "add",  # explicit mode loads only what is listed
        "INDUCTIVE_LOG_LEVEL": "debug",
        "INDUCTIVE_LOG_FORMAT": "json",
    }
    with running_server(store, tmp_path_factory.mktemp("server"), env) as process:
        yield process


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
