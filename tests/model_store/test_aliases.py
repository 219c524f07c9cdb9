"""Aliases (promote, rollback, resolve), and gc which never deletes an aliased version."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from model_store import (
    InvalidReferenceError,
    ModelNotFoundError,
    ModelStore,
    StoreError,
    VersionNotFoundError,
)
from tests.model_store.helpers import manifest_for


@pytest.fixture
def three(store: ModelStore, model_file: Path) -> ModelStore:
    for _ in range(3):
        store.publish("m", {"model.onnx": model_file}, manifest_for("m"))
    return store


def test_promote_and_rollback_walk_the_history(three: ModelStore) -> None:
    assert three.aliases("m") == {}
    three.promote("m", 1)
    three.promote("m", 3)
    three.promote("m", 2, alias="canary")
    assert three.aliases("m") == {"stable": 3, "canary": 2}
    assert three.resolve("m", "stable") == 3
    assert three.rollback("m") == 1
    assert three.resolve("m", "stable") == 1
    with pytest.raises(StoreError, match="no earlier version"):
        three.rollback("m")
    assert three.resolve("m", "canary") == 2


def test_rollback_skips_versions_deleted_since(three: ModelStore) -> None:
    three.promote("m", 1)
    three.promote("m", 2)
    three.promote("m", 3)
    three.backend.delete_version("m", 2)
    assert three.rollback("m") == 1


def test_bad_references_are_refused(three: ModelStore) -> None:
    with pytest.raises(VersionNotFoundError):
        three.resolve("m", 9)
    with pytest.raises(VersionNotFoundError, match="no alias"):
        three.resolve("m", "stable")
    with pytest.raises(InvalidReferenceError):
        three.resolve("m", "../1")
    with pytest.raises(InvalidReferenceError):
        three.resolve("m", 0)
    with pytest.raises(InvalidReferenceError):
        three.promote("m", 1, alias="../../x")
    with pytest.raises(VersionNotFoundError):
        three.promote("m", 4)
    with pytest.raises(ModelNotFoundError):
        three.resolve("nope")


def test_concurrent_promotes_lose_no_update(three: ModelStore) -> None:
    aliases = [f"a{i}" for i in range(8)]
    threads = [threading.Thread(target=three.promote, args=("m", 2, a)) for a in aliases]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert three.aliases("m") == dict.fromkeys(aliases, 2)


def test_gc_keeps_the_newest_and_every_aliased_version(three: ModelStore, model_file: Path) -> None:
    three.publish("m", {"model.onnx": model_file}, manifest_for("m"))
    three.promote("m", 1)
    assert three.gc("m", keep=2) == [2]
    assert three.list_versions("m") == [1, 3, 4]
    assert three.gc("m", keep=1) == [3]
    assert three.list_versions("m") == [1, 4]
    assert not any((Path(three.uri) / "m" / ".trash").iterdir())
    with pytest.raises(InvalidReferenceError):
        three.gc("m", keep=0)
    # Numbers are never reused after a deletion.
    assert three.publish("m", {"model.onnx": model_file}, manifest_for("m")) == 5
