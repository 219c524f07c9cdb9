"""Fixtures for the end-to-end tests: a store of either kind, and the shared SeaweedFS server."""

from __future__ import annotations

from pathlib import Path

import pytest

from model_store import ModelStore
from tests.model_store.conftest import s3_store, seaweed  # noqa: F401  (shared fixtures)
from tests.model_store.seaweed import SeaweedS3


@pytest.fixture(params=["local", pytest.param("s3", marks=[pytest.mark.s3])])
def store_uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh store: a directory, or a fresh prefix of the SeaweedFS bucket (its AWS_*
    environment set for this test, so that subprocesses inherit it)."""
    if request.param == "local":
        return str(tmp_path / "store")
    store: ModelStore = request.getfixturevalue("s3_store")
    return store.uri


@pytest.fixture
def seaweed_server(store_uri: str, request: pytest.FixtureRequest) -> SeaweedS3 | None:
    return request.getfixturevalue("seaweed") if store_uri.startswith("s3://") else None
