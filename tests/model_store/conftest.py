"""Fixtures for model_store tests: an empty local store and model files to publish."""

from __future__ import annotations

from pathlib import Path

import pytest

from model_store import ModelStore, open_store
from tests.model_store.helpers import write_model


@pytest.fixture
def store(tmp_path: Path) -> ModelStore:
    return open_store(tmp_path / "store")


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    return write_model(tmp_path / "src")


@pytest.fixture
def external_model(tmp_path: Path) -> Path:
    return write_model(tmp_path / "src-ext", external=True)
