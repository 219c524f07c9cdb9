"""Fixtures for model_store tests: empty stores (local, S3) and model files to publish."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from model_store import ModelStore, open_store
from tests.model_store.helpers import write_model
from tests.model_store.seaweed import SeaweedS3


@pytest.fixture
def store(tmp_path: Path) -> ModelStore:
    return open_store(tmp_path / "store")


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    return write_model(tmp_path / "src")


@pytest.fixture
def external_model(tmp_path: Path) -> Path:
    return write_model(tmp_path / "src-ext", external=True)


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3]:
    """One SeaweedFS S3 server for the whole session (it takes a few seconds to start)."""
    pytest.importorskip("boto3", reason="the S3 backend needs the s3 extra")
    with SeaweedS3(tmp_path_factory.mktemp("seaweed")) as server:
        yield server


@pytest.fixture
def s3_store(seaweed: SeaweedS3, monkeypatch: pytest.MonkeyPatch) -> ModelStore:
    """An empty store under a fresh prefix, configured through the AWS environment."""
    for key, value in seaweed.env().items():
        monkeypatch.setenv(key, value)
    seaweed.start()  # in case an outage test left it stopped
    return open_store(seaweed.uri(f"t{uuid.uuid4().hex[:12]}/models"))
