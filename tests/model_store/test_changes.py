"""The store-wide change marker: every change made through a store writes a new one, reads
leave it alone, and it is never taken for a model."""

from __future__ import annotations

from pathlib import Path

import pytest

from model_store import ModelStore, add_onnx, open_store
from model_store.schema import ModelConfig, VersionPolicy
from service.lifecycle.store_changes import ChangeWatch


@pytest.fixture(params=["local", pytest.param("s3", marks=[pytest.mark.s3])])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> ModelStore:
    if request.param == "local":
        return open_store(tmp_path / "store")
    store: ModelStore = request.getfixturevalue("s3_store")
    return store


def test_every_mutation_writes_a_new_marker(any_store: ModelStore, model_file: Path) -> None:
    store = any_store
    assert store.changes() is None  # an empty store: nothing changed through a store yet
    seen = []

    def changed() -> None:
        marker = store.changes()
        assert marker is not None
        assert marker not in seen
        seen.append(marker)

    add_onnx(store, "m", model_file)
    changed()
    add_onnx(store, "m", model_file)
    changed()
    store.set_config("m", ModelConfig(version_policy=VersionPolicy(kind="alias")))
    changed()
    store.promote("m", 2)
    changed()
    store.promote("m", 1)
    changed()
    store.rollback("m")
    changed()
    store.update_config("m", lambda c: c.model_copy(update={"pinned": True}))
    changed()
    store.gc("m", keep=1)  # v1 goes (stable names v2)
    changed()
    # Reads leave it alone, and the marker is no model.
    store.list_models()
    store.manifest("m", 2)
    assert store.changes() == seen[-1]
    assert store.list_models() == ["m"]


def test_a_poll_reads_the_store_only_when_the_marker_moved() -> None:
    class Store:
        marker: bytes | None = None

        def changes(self) -> bytes | None:
            return self.marker

    store = Store()
    watch = ChangeWatch(full_every_s=3600)
    assert watch.read(store) == (True, None)  # no marker: every poll reads everything
    watch.polled(None)
    assert watch.read(store)[0]
    store.marker = b"one"
    due, marker = watch.read(store)
    assert due
    watch.polled(marker)
    assert watch.read(store) == (False, b"one")
    store.marker = b"two"
    assert watch.read(store) == (True, b"two")
    # A poll that failed is not remembered: the next one reads everything again.
    assert watch.read(store)[0]


def test_a_full_poll_runs_at_least_every_full_interval() -> None:
    class Store:
        def changes(self) -> bytes:
            return b"same"

    watch = ChangeWatch(full_every_s=0.0)
    watch.polled(b"same")
    assert watch.read(Store()) == (True, b"same")


def test_a_config_that_pins_nothing_is_written_as_before_pinning() -> None:
    """Servers from before pinning refuse unknown fields: only a pinned config carries it."""
    assert "pinned" not in ModelConfig().model_dump_json()
    assert ModelConfig.model_validate_json(ModelConfig(pinned=True).model_dump_json()).pinned
    assert ModelConfig.model_validate_json(ModelConfig().model_dump_json()) == ModelConfig()
