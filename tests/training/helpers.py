"""Tiny, learnable datasets for fast tests (the real loaders have their own test)."""

from __future__ import annotations

import numpy as np

from training.data import Dataset, Split, pad_sequences


def tiny_sequences(n_train: int = 96, n_test: int = 48, seed: int = 0) -> Dataset:
    """2-channel sequences of length 3–9; the class is the sign of channel 0's mean (2 classes)."""
    rng = np.random.default_rng(seed)
    splits = []
    for n in (n_train, n_test):
        seqs = [
            rng.standard_normal((int(rng.integers(3, 10)), 2)).astype(np.float32) for _ in range(n)
        ]
        x, lengths = pad_sequences(seqs)
        y = np.array([int(s[:, 0].mean() > 0) for s in seqs], dtype=np.int64)
        splits.append(Split(x, y, lengths))
    return Dataset("tiny-seq", "sequence", splits[0], splits[1], ("neg", "pos"), "tiny sequences")


def tiny_images(n_train: int = 96, n_test: int = 48, seed: int = 0) -> Dataset:
    """28×28 images in [0, 1]; class 1 when the left half is brighter than the right half."""
    rng = np.random.default_rng(seed)
    splits = []
    for n in (n_train, n_test):
        x = rng.random((n, 1, 28, 28), dtype=np.float32)
        y = (x[:, 0, :, :14].mean(axis=(1, 2)) > x[:, 0, :, 14:].mean(axis=(1, 2))).astype(np.int64)
        splits.append(Split(x, y))
    return Dataset("tiny-img", "image", splits[0], splits[1], ("right", "left"), "tiny images")
