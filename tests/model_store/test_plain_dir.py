"""A plain directory as a read-only store of one model (the store-less mode KServe uses)."""

from __future__ import annotations

from pathlib import Path

import pytest

from model_store import ModelConfig, ModelStore, StoreError, add_onnx, open_store
from model_store.backends.plain import PlainDirectoryBackend
from tests.model_store.helpers import write_model


def test_a_store_version_directory_is_a_model_directory_as_it_is(tmp_path: Path) -> None:
    """What the KServe example's storageUri points at: a version of the store, served without
    the store. Its files and checksums are the published ones; the manifest is not a file."""
    store = open_store(tmp_path / "store")
    config = ModelConfig(labels={"logits": ("a", "b", "c")})
    add_onnx(store, "linear", write_model(tmp_path / "src", external=True), config=config)
    published = store.manifest("linear", 1)
    plain = ModelStore(PlainDirectoryBackend(tmp_path / "store" / "linear" / "1", "served"))
    assert plain.list_models() == ["served"]
    manifest = plain.manifest("served", 1)
    assert {(f.path, f.sha256, f.size) for f in manifest.files} == {
        (f.path, f.sha256, f.size) for f in published.files
    }
    assert (manifest.inputs, manifest.outputs) == (published.inputs, published.outputs)
    assert manifest.labels == ("a", "b", "c")
    assert plain.config("served").labels == {"logits": ("a", "b", "c")}
    assert plain.aliases("served") == {}
    directory = plain.materialize("served", 1, tmp_path / "unused-cache")
    assert directory == tmp_path / "store" / "linear" / "1"
    assert not (tmp_path / "unused-cache").exists()
    plain.verify("served", 1)


def test_nothing_is_ever_written(tmp_path: Path) -> None:
    write_model(tmp_path / "m")
    plain = ModelStore(PlainDirectoryBackend(tmp_path / "m", "m"))
    with pytest.raises(StoreError, match="is a model directory"):
        plain.set_config("m", ModelConfig())
    with pytest.raises(StoreError, match="is a model directory"):
        plain.backend.delete_version("m", 1)
