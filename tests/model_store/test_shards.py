"""Data shards (the format `retrain --data` reads and capture writes) and the places they live."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from model_store import StoreError
from model_store.prefix import open_prefix
from model_store.shards import ShardError, fingerprint, read_shard, write_shard
from tests.model_store.seaweed import SeaweedS3

IMAGE = (1, 4, 4)


def _images(n: int = 5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.random((n, *IMAGE), dtype=np.float32), rng.integers(0, 3, n)


def test_a_shard_round_trips_with_its_outputs_and_provenance() -> None:
    x, y = _images()
    data = write_shard(
        x,
        y,
        outputs={"logits": np.ones((5, 3))},
        meta={"request_id": np.array(["a"] * 5), "model": "m"},
    )
    shard = read_shard(data, "s.npz")
    np.testing.assert_array_equal(shard.x, x)
    np.testing.assert_array_equal(shard.y, y)
    assert shard.outputs["logits"].shape == (5, 3)
    assert shard.meta["model"] == "m"
    shard.check(IMAGE, 3, sequence=False)


def test_sequences_carry_their_lengths() -> None:
    x = np.zeros((2, 6, 3), np.float32)
    shard = read_shard(write_shard(x, np.array([0, 1]), lengths=np.array([6, 2])), "seq.npz")
    shard.check((-1, 3), 2, sequence=True)
    with pytest.raises(ShardError, match=r"lengths range over \[1, 7\]"):
        write_shard(x, np.array([0, 1]), lengths=np.array([1, 7]))


@pytest.mark.parametrize(
    ("shard", "message"),
    [
        (
            write_shard(np.zeros((2, 1, 5, 4)), np.array([0, 1])),
            r"samples of shape \[1, 5, 4\].*\[1, 4, 4\]",
        ),
        (
            write_shard(np.full((2, *IMAGE), np.nan), np.array([0, 1])),
            "NaN or infinite values in 2",
        ),
        (write_shard(np.zeros((2, *IMAGE)), np.array([0, 3])), r"labels range over \[0, 3\]"),
        (write_shard(np.zeros((2, *IMAGE)), np.array([0, -2])), r"labels range over \[-2, 0\]"),
        (write_shard(np.zeros((2, *IMAGE))), "2 of 2 samples are not labelled"),
    ],
)
def test_a_shard_that_does_not_fit_the_model_is_refused_in_one_line(
    shard: bytes, message: str
) -> None:
    with pytest.raises(ShardError, match=message) as caught:
        read_shard(shard, "bad.npz").check(IMAGE, 3, sequence=False)
    assert "\n" not in str(caught.value)
    assert "bad.npz" in str(caught.value)


def _npz(**arrays: object) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # type: ignore[arg-type]
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"not a zip", "not a readable .npz"),
        (_npz(x=np.zeros((2, 3))), "missing array 'y'"),
        (_npz(x=np.zeros((2, 3)), y=np.zeros(2), z=np.zeros(2)), r"unknown arrays \['z'\]"),
        (_npz(x=np.zeros((2, 3), np.int64), y=np.zeros(2, np.int64)), "x must be a float"),
        (_npz(x=np.zeros((2, 3)), y=np.zeros(3, np.int64)), r"y must be integers of shape \[2\]"),
        (_npz(x=np.zeros((2, 3)), y=np.zeros(2, np.float32)), "y must be integers"),
        (_npz(x=np.zeros((2, 3)), y=np.zeros(2, np.int64), time=np.zeros(3)), "time has shape"),
        (_npz(x=np.zeros((2, 3)), y=np.zeros(2, np.int64), model=np.zeros(1)), "model has dtype"),
    ],
)
def test_what_is_not_a_shard_is_refused(data: bytes, message: str) -> None:
    with pytest.raises(ShardError, match=message):
        read_shard(data, "x.npz")


def test_a_pickled_array_is_never_loaded() -> None:
    data = _npz(x=np.zeros((1, 2)), y=np.array([object()], dtype=object))
    with pytest.raises(ShardError, match=r"not a readable \.npz"):
        read_shard(data, "evil.npz")


def test_the_fingerprint_ignores_order() -> None:
    assert fingerprint(["b", "a"]) == fingerprint(["a", "b"]) != fingerprint(["a"])


def test_a_local_prefix_lists_reads_and_writes_whole_files(tmp_path: Path) -> None:
    prefix = open_prefix(tmp_path / "shards")
    prefix.write("b.npz", b"2")
    prefix.write("a.npz", b"1")
    prefix.write("notes.txt", b"-")
    (tmp_path / "shards" / "link.npz").symlink_to(tmp_path / "shards" / "a.npz")
    assert prefix.names(".npz") == ["a.npz", "b.npz"]
    assert prefix.read("b.npz") == b"2"
    with pytest.raises(StoreError, match="plain file name"):
        prefix.read("../escape.npz")
    with pytest.raises(StoreError, match="symlink"):
        prefix.read("link.npz")
    assert not [p for p in (tmp_path / "shards").iterdir() if p.name.startswith(".")]


@pytest.mark.s3
def test_an_s3_prefix_lists_reads_and_writes_whole_files(
    seaweed: SeaweedS3, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in seaweed.env().items():
        monkeypatch.setenv(key, value)
    seaweed.start()
    prefix = open_prefix(seaweed.uri("data/shards"))
    prefix.write("b.npz", b"2")
    prefix.write("a.npz", b"1")
    open_prefix(seaweed.uri("data/shards/nested")).write("c.npz", b"3")
    assert prefix.names(".npz") == ["a.npz", "b.npz"]
    assert prefix.read("a.npz") == b"1"
