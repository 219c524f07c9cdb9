"""Where the manager reads models from: the store, or one plain directory (--model-dir)."""

from __future__ import annotations

from pathlib import Path

from model_store import ModelStore, open_store
from model_store.backends.plain import PlainDirectoryBackend
from service.settings import Settings


def open_model_source(settings: Settings) -> ModelStore:
    """A plain directory is a read-only store of one model with one version: the manager loads,
    serves and describes it exactly as a store's version (model_store/backends/plain.py)."""
    if settings.model_dir is not None:
        assert settings.model_name is not None  # the settings require both
        return ModelStore(PlainDirectoryBackend(Path(settings.model_dir), settings.model_name))
    return open_store(settings.store)


def follows_a_store(settings: Settings) -> bool:
    """Whether there is a store to poll: a model directory does not change under a running
    server (KServe rolls a new revision for a new storageUri)."""
    return settings.model_dir is None
