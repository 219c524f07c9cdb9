"""Labelled shards appended to a dataset's training split, and the dataset fingerprint."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from model_store.prefix import open_prefix
from model_store.shards import ShardError, write_shard
from tests.training.helpers import tiny_images, tiny_sequences
from training.data import pad_sequences
from training.shards_data import data_fingerprint, load_shards, sample_shape, with_shards


def test_longer_sequences_are_padded_in_and_the_test_split_never_changes(tmp_path: Path) -> None:
    data = tiny_sequences()
    rng = np.random.default_rng(1)
    x, lengths = pad_sequences([rng.standard_normal((n, 2)).astype(np.float32) for n in (12, 4)])
    open_prefix(tmp_path).write("long.npz", write_shard(x, np.array([1, 0]), lengths=lengths))
    shards = load_shards(str(tmp_path), data)
    grown = with_shards(data, shards)
    assert sample_shape(data) == (-1, 2)
    assert grown.train.x.shape == (len(data.train) + 2, 12, 2)
    assert grown.train.lengths is not None
    assert grown.train.lengths[-2:].tolist() == [12, 4]
    assert np.array_equal(grown.train.x[: len(data.train), : data.train.x.shape[1]], data.train.x)
    assert not grown.train.x[: len(data.train), data.train.x.shape[1] :].any()  # zero padding
    assert grown.test is data.test
    assert shards[0].sha256 == hashlib.sha256(open_prefix(tmp_path).read("long.npz")).hexdigest()


def test_the_fingerprint_is_the_base_plus_sorted_shard_hashes(tmp_path: Path) -> None:
    data = tiny_images()
    for name, seed in (("b.npz", 1), ("a.npz", 2)):
        x = np.random.default_rng(seed).random((3, 1, 28, 28), dtype=np.float32)
        open_prefix(tmp_path).write(name, write_shard(x, np.array([0, 1, 0])))
    shards = load_shards(str(tmp_path), data)
    fingerprint = data_fingerprint(data, shards)
    assert list(fingerprint.shard_sha256) == sorted(s.sha256 for s in shards)
    assert data_fingerprint(data, shards[::-1]) == fingerprint  # listing order does not matter
    assert data_fingerprint(data, shards[:1]).fingerprint != fingerprint.fingerprint
    assert data_fingerprint(tiny_images(seed=3), shards).base_sha256 != fingerprint.base_sha256
    assert data_fingerprint(data, []).base_sha256 == fingerprint.base_sha256


def test_an_empty_shard_is_refused(tmp_path: Path) -> None:
    empty = write_shard(np.zeros((0, 1, 28, 28), np.float32), np.zeros(0, np.int64))
    open_prefix(tmp_path).write("empty.npz", empty)
    with pytest.raises(ShardError, match=r"shard empty\.npz: holds no samples"):
        load_shards(str(tmp_path), tiny_images())
