"""Data that grows: labelled shards (model_store/shards.py) appended to a dataset's training split.

`retrain --data DIR|s3://…` reads every `.npz` directly under the prefix, checks each against
the dataset (sample shape, label range, finite values; one line naming the shard when one does
not fit) and appends them to the training split only: the test split, and the model's frozen
evaluation set, never change. The dataset fingerprint names exactly what was trained on: the
base arrays plus the sorted sha256 of every shard, so a listing order never changes it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace

import numpy as np

from model_store.prefix import open_prefix
from model_store.shards import SUFFIX, Shard, ShardError, read_shard
from training.data import SEQUENCE_PAD_VALUE, Dataset, Split


@dataclass(frozen=True)
class LoadedShard:
    name: str
    sha256: str
    shard: Shard


@dataclass(frozen=True)
class DataFingerprint:
    base_sha256: str
    shard_sha256: tuple[str, ...]  # sorted

    @property
    def fingerprint(self) -> str:
        text = json.dumps({"base": self.base_sha256, "shards": list(self.shard_sha256)})
        return hashlib.sha256(text.encode()).hexdigest()

    def as_dict(self) -> dict[str, object]:
        return {
            "fingerprint": self.fingerprint,
            "base_sha256": self.base_sha256,
            "shards": list(self.shard_sha256),
        }


def base_sha256(dataset: Dataset) -> str:
    """sha256 over the dataset's own arrays (both splits, with their dtypes and shapes)."""
    digest = hashlib.sha256()
    for split in (dataset.train, dataset.test):
        for array in (split.x, split.y, split.lengths):
            if array is None:
                digest.update(b"none")
                continue
            contiguous = np.ascontiguousarray(array)
            digest.update(f"{contiguous.dtype.str}{list(contiguous.shape)}".encode())
            digest.update(contiguous.tobytes())
    return digest.hexdigest()


def data_fingerprint(dataset: Dataset, shards: list[LoadedShard]) -> DataFingerprint:
    return DataFingerprint(base_sha256(dataset), tuple(sorted(s.sha256 for s in shards)))


def sample_shape(dataset: Dataset) -> tuple[int, ...]:
    """What one training sample looks like; -1 for the sequence axis, which varies."""
    if dataset.kind == "sequence":
        return (-1, dataset.in_channels)
    return tuple(int(d) for d in dataset.train.x.shape[1:])


def load_shards(uri: str, dataset: Dataset) -> list[LoadedShard]:
    """Every shard under `uri`, checked against `dataset`; ShardError (one line) on the first
    that does not fit, or when there is none."""
    prefix = open_prefix(uri)
    names = prefix.names(SUFFIX)
    if not names:
        raise ShardError(f"{prefix.uri}: no {SUFFIX} shards to train on")
    loaded = []
    for name in names:
        data = prefix.read(name)
        shard = read_shard(data, name)
        if len(shard) == 0:
            raise ShardError(f"shard {name}: holds no samples")
        shard.check(sample_shape(dataset), dataset.num_classes, sequence=dataset.kind == "sequence")
        loaded.append(LoadedShard(name, hashlib.sha256(data).hexdigest(), shard))
    return loaded


def _pad_to(x: np.ndarray, steps: int) -> np.ndarray:
    if x.shape[1] == steps:
        return x
    padded = np.full((len(x), steps, *x.shape[2:]), SEQUENCE_PAD_VALUE, np.float32)
    padded[:, : x.shape[1]] = x
    return padded


def with_shards(dataset: Dataset, shards: list[LoadedShard]) -> Dataset:
    """`dataset` with the shards' samples appended to its training split (in name order)."""
    if not shards:
        return dataset
    parts = [dataset.train, *(Split(s.shard.x, s.shard.y, s.shard.lengths) for s in shards)]
    lengths = None
    if dataset.kind == "sequence":
        steps = max(part.x.shape[1] for part in parts)
        x = np.concatenate([_pad_to(part.x, steps) for part in parts])
        lengths = np.concatenate([np.asarray(part.lengths) for part in parts])
    else:
        x = np.concatenate([part.x for part in parts])
    y = np.concatenate([part.y for part in parts])
    added = sum(len(s.shard) for s in shards)
    return replace(
        dataset,
        train=Split(x.astype(np.float32, copy=False), y.astype(np.int64, copy=False), lengths),
        description=f"{dataset.description} + {added} samples from {len(shards)} shard(s)",
    )
