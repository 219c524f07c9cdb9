from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from training.data import load_dataset, load_npz, pad_sequences


def test_mnist_5k_subset_images_in_unit_range() -> None:
    data = load_dataset("mnist")
    assert data.kind == "image"
    assert data.train.x.shape == (4000, 1, 28, 28)
    assert data.test.x.shape == (1000, 1, 28, 28)
    assert data.train.x.dtype == np.float32
    assert data.train.y.dtype == np.int64
    assert data.train.x.min() >= 0.0
    assert data.train.x.max() <= 1.0
    assert set(np.unique(data.test.y)) == set(range(10))
    assert data.labels == tuple("0123456789")


def test_mnist1d_sequences_of_length_40() -> None:
    data = load_dataset("mnist1d")
    assert data.train.x.shape == (4000, 40, 1)
    assert data.test.x.shape == (1000, 40, 1)
    assert data.train.x.dtype == np.float32
    assert data.train.lengths is not None
    assert data.train.lengths.dtype == np.int64
    assert (data.train.lengths == 40).all()
    assert data.num_classes == 10


def test_japanese_vowels_variable_lengths_zero_padded() -> None:
    data = load_dataset("japanese_vowels")
    assert data.kind == "sequence"
    assert data.in_channels == 12
    assert data.num_classes == 9
    assert len(data.train) == 270
    assert len(data.test) == 370
    lengths = np.concatenate([data.train.lengths, data.test.lengths])
    assert lengths.min() == 7
    assert lengths.max() == 29
    i = int(np.argmin(data.test.lengths))  # type: ignore[arg-type]
    assert (data.test.x[i, data.test.lengths[i] :] == 0.0).all()  # type: ignore[index]
    assert data.test.x.dtype == np.float32


def test_pad_sequences() -> None:
    x, lengths = pad_sequences([np.ones((2, 3)), np.ones((4, 3))])
    assert x.shape == (2, 4, 3)
    assert lengths.tolist() == [2, 4]
    assert x[0, 2:].sum() == 0
    assert x[1].sum() == 12


def test_npz_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "mine.npz"
    rng = np.random.default_rng(0)
    np.savez(
        path,
        x_train=rng.random((10, 7)), y_train=np.arange(10) % 3,
        x_test=rng.random((4, 7)), y_test=np.array([0, 1, 2, 0]),
        labels=np.array(["a", "b", "c"]),
    )  # fmt: skip
    data = load_npz(path)
    assert data.kind == "sequence"
    assert data.train.x.shape == (10, 7, 1)
    assert data.labels == ("a", "b", "c")
    assert data.test.lengths is not None
    assert (data.test.lengths == 7).all()


def test_npz_without_required_arrays_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bad.npz"
    np.savez(path, x_train=np.zeros((2, 3)))
    with pytest.raises(ValueError, match="missing arrays"):
        load_npz(path)
