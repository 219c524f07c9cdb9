"""The model-level frozen evaluation set: written once, the first writer's bytes kept, on the
local and the S3 backend alike."""

from __future__ import annotations

import pytest

from model_store import InvalidModelNameError, ModelStore


def _frozen_once(store: ModelStore) -> None:
    assert store.evaluation_set("m") is None
    assert store.freeze_evaluation_set("m", b"first") == b"first"
    # A later freeze (another retrain, another replica) gets the stored set, not its own.
    assert store.freeze_evaluation_set("m", b"second") == b"first"
    assert store.evaluation_set("m") == b"first"
    assert store.list_models() == []  # a document alone is not a version
    with pytest.raises(InvalidModelNameError):
        store.evaluation_set("../escape")


def test_frozen_once_locally(store: ModelStore) -> None:
    _frozen_once(store)


@pytest.mark.s3
def test_frozen_once_on_s3(s3_store: ModelStore) -> None:
    _frozen_once(s3_store)
