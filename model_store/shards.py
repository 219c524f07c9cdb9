"""Labelled data shards: the one format training reads (`retrain --data`) and capture writes.

A shard is an `.npz` file (numpy's zip of arrays, read without pickle):

    x          float32 (N, *sample)   the model input `x`: images (N, C, H, W), sequences (N, T, C)
    y          int64   (N,)           class index per sample; -1 = not labelled yet
    lengths    int64   (N,)           sequences only: each sample's true length along axis 1
    output.K   any     (N, ...)       optional: what the served model answered for output K
    request_id str     (N,)           optional provenance: request, model version, unix time
    version    int64   (N,)
    time       float64 (N,)
    model      str     ()

Shards of sequences are padded along T with zeros to their longest sample. `read_shard` checks the
format itself (names, dtypes, sizes); `Shard.check` checks it against what a model takes (sample
shape, classes, finite values), each failure as one line naming the shard and what is wrong.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from model_store.errors import StoreError

SUFFIX = ".npz"
UNLABELLED = -1
OUTPUT_PREFIX = "output."
# Provenance arrays and the dtype kinds each may have.
_META = {"request_id": "U", "version": "iu", "time": "fiu", "model": "U"}


class ShardError(StoreError, ValueError):
    """A shard that is not in the format, or does not fit the model it is meant for."""


@dataclass(frozen=True)
class Shard:
    name: str
    x: np.ndarray
    y: np.ndarray
    lengths: np.ndarray | None = None
    outputs: dict[str, np.ndarray] = field(default_factory=dict)
    meta: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.y)

    @property
    def labelled(self) -> bool:
        return bool((self.y != UNLABELLED).all())

    def check(self, sample_shape: tuple[int, ...], num_classes: int, *, sequence: bool) -> None:
        """Raises ShardError unless every sample fits a model taking `sample_shape` (-1 = any
        size, the sequence axis) and every label is one of `num_classes` classes."""
        where = f"shard {self.name}"
        got = self.x.shape[1:]
        if len(got) != len(sample_shape) or any(
            want not in (-1, have) for want, have in zip(sample_shape, got, strict=True)
        ):
            shown = ["T" if d == -1 else d for d in sample_shape]
            raise ShardError(
                f"{where}: x has samples of shape {list(got)}, the model takes {shown}"
            )
        if not np.isfinite(self.x).all():
            bad = int((~np.isfinite(self.x)).reshape(len(self.x), -1).any(axis=1).sum())
            raise ShardError(f"{where}: x holds NaN or infinite values in {bad} sample(s)")
        if not self.labelled:
            missing = int((self.y == UNLABELLED).sum())
            raise ShardError(
                f"{where}: {missing} of {len(self)} samples are not labelled (y = -1); label them "
                "first (python -m training label)"
            )
        low, high = int(self.y.min(initial=0)), int(self.y.max(initial=0))
        if low < 0 or high >= num_classes:
            raise ShardError(
                f"{where}: labels range over [{low}, {high}]; "
                f"the model's classes are 0..{num_classes - 1}"
            )
        if sequence and self.lengths is None:
            raise ShardError(f"{where}: sequences need a 'lengths' array")
        if not sequence and self.lengths is not None:
            raise ShardError(f"{where}: 'lengths' is for sequences; the model takes images")


def write_shard(
    x: np.ndarray,
    y: np.ndarray | None = None,
    *,
    lengths: np.ndarray | None = None,
    outputs: Mapping[str, np.ndarray] | None = None,
    meta: Mapping[str, np.ndarray | str | int | float] | None = None,
) -> bytes:
    """The bytes of a shard (checked by `read_shard` before they are returned)."""
    arrays: dict[str, np.ndarray] = {
        "x": np.ascontiguousarray(x, dtype=np.float32),
        "y": np.full(len(x), UNLABELLED, np.int64) if y is None else np.asarray(y, np.int64),
    }
    if lengths is not None:
        arrays["lengths"] = np.asarray(lengths, np.int64)
    for key, output in (outputs or {}).items():
        arrays[OUTPUT_PREFIX + key] = np.asarray(output)
    for key, value in (meta or {}).items():
        arrays[key] = np.asarray(value)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # type: ignore[arg-type]
    data = buffer.getvalue()
    read_shard(data, "written shard")
    return data


def read_shard(data: bytes, name: str) -> Shard:
    """A shard from its bytes; ShardError (one line, naming `name`) when it is not one."""
    where = f"shard {name}"
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except Exception as exc:  # zip, npy header or pickle refusal: not a shard, whatever it is
        raise ShardError(
            f"{where}: not a readable .npz file ({type(exc).__name__}: {exc})"
        ) from None
    unknown = sorted(
        k
        for k in arrays
        if k not in {"x", "y", "lengths", *_META} and not k.startswith(OUTPUT_PREFIX)
    )
    if unknown:
        raise ShardError(f"{where}: unknown arrays {unknown}")
    for key in ("x", "y"):
        if key not in arrays:
            raise ShardError(f"{where}: missing array '{key}'")
    x, y = arrays["x"], arrays["y"]
    if x.dtype.kind != "f" or x.ndim < 2:
        raise ShardError(
            f"{where}: x must be a float array (N, ...), got {x.dtype} {list(x.shape)}"
        )
    if y.dtype.kind not in "iu" or y.shape != (len(x),):
        raise ShardError(
            f"{where}: y must be integers of shape [{len(x)}], got {y.dtype} {list(y.shape)}"
        )
    lengths = arrays.get("lengths")
    if lengths is not None:
        if lengths.dtype.kind not in "iu" or lengths.shape != (len(x),) or x.ndim < 3:
            raise ShardError(
                f"{where}: lengths must be integers of shape [{len(x)}] beside sequences (N, T, C)"
            )
        if len(x) and (lengths.min() < 1 or lengths.max() > x.shape[1]):
            raise ShardError(
                f"{where}: lengths range over [{lengths.min()}, {lengths.max()}], "
                f"sequences hold 1..{x.shape[1]} steps"
            )
    outputs = {}
    meta = {}
    for key, value in arrays.items():
        if key.startswith(OUTPUT_PREFIX):
            if len(value) != len(x):
                raise ShardError(f"{where}: {key} has {len(value)} rows for {len(x)} samples")
            outputs[key.removeprefix(OUTPUT_PREFIX)] = value
        elif key in _META:
            if value.dtype.kind not in _META[key]:
                raise ShardError(f"{where}: {key} has dtype {value.dtype}")
            if key != "model" and value.shape != (len(x),):
                raise ShardError(
                    f"{where}: {key} has shape {list(value.shape)} for {len(x)} samples"
                )
            meta[key] = value
    return Shard(
        name,
        x.astype(np.float32, copy=False),
        y.astype(np.int64, copy=False),
        None if lengths is None else lengths.astype(np.int64, copy=False),
        outputs,
        meta,
    )


def fingerprint(digests: list[str]) -> str:
    """One sha256 for a set of shards, whatever order they were listed in."""
    return hashlib.sha256("\n".join(sorted(digests)).encode()).hexdigest()
