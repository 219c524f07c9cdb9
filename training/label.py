"""Captured shards plus labels → labelled shards that `retrain --data` accepts.

    python -m training label --shards DIR|s3://… --labels labels.csv|labels.npy --out DIR|s3://…

A server's capture (service/README.md, "Traffic capture") writes shards with y = -1. Labels come
from people or a review, in one of two forms:

- `labels.csv` with a header `request_id,label`: every sample of that request gets the label
  (the request id a client sent as `X-Request-ID` or the V2 `id`);
- `labels.npy`: one integer per captured sample, in the order of the shards' sorted names and
  rows within each shard; -1 leaves a sample out.

Each input shard becomes an output shard of the same name holding its labelled samples only
(inputs, lengths, outputs and provenance kept); a shard with none labelled is not written.
"""

from __future__ import annotations

import csv
import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from model_store.prefix import open_prefix
from model_store.shards import SUFFIX, UNLABELLED, Shard, ShardError, read_shard
from model_store.shards import write_shard as encode_shard


class LabelError(ValueError):
    """Labels that cannot be applied (one line saying which and why)."""


@dataclass(frozen=True)
class LabelSummary:
    samples: int
    labelled: int
    shards_written: int

    def line(self, out: str) -> str:
        return (
            f"labelled {self.labelled} of {self.samples} captured samples into "
            f"{self.shards_written} shard(s) at {out}"
        )


def _csv_labels(path: Path) -> dict[str, int]:
    labels: dict[str, int] = {}
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or not {"request_id", "label"} <= set(reader.fieldnames):
            raise LabelError(f"{path}: expected a header 'request_id,label'")
        for line, row in enumerate(reader, start=2):
            try:
                value = int(row["label"])
            except (TypeError, ValueError):
                raise LabelError(
                    f"{path}:{line}: label {row['label']!r} is not an integer"
                ) from None
            if value < 0:
                raise LabelError(f"{path}:{line}: label {value} is negative")
            rid = row["request_id"]
            if rid in labels and labels[rid] != value:
                raise LabelError(f"{path}:{line}: request {rid!r} labelled twice, differently")
            labels[rid] = value
    return labels


def _npy_labels(path: Path, total: int) -> np.ndarray:
    try:
        labels = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise LabelError(f"{path}: not a readable .npy file ({exc})") from None
    if labels.dtype.kind not in "iu" or labels.ndim != 1:
        raise LabelError(f"{path}: expected a 1-D integer array, got {labels.dtype} {labels.shape}")
    if len(labels) != total:
        raise LabelError(f"{path}: {len(labels)} labels for {total} captured samples")
    if (labels < UNLABELLED).any():
        raise LabelError(f"{path}: labels below -1 (-1 leaves a sample out)")
    return labels.astype(np.int64)


def _labelled_part(shard: Shard, y: np.ndarray) -> bytes | None:
    keep = np.flatnonzero(y != UNLABELLED)
    if len(keep) == 0:
        return None
    meta = {k: (v if k == "model" else v[keep]) for k, v in shard.meta.items()}
    return encode_shard(
        shard.x[keep],
        y[keep],
        lengths=None if shard.lengths is None else shard.lengths[keep],
        outputs={k: v[keep] for k, v in shard.outputs.items()},
        meta=meta,
    )


def label_shards(shards_uri: str, labels_path: Path, out_uri: str) -> LabelSummary:
    source, target = open_prefix(shards_uri), open_prefix(out_uri)
    names = source.names(SUFFIX)
    if not names:
        raise ShardError(f"{source.uri}: no {SUFFIX} shards to label")
    shards = [read_shard(source.read(name), name) for name in names]
    total = sum(len(s) for s in shards)
    if labels_path.suffix == ".csv":
        by_request = _csv_labels(labels_path)
        ys = []
        for shard in shards:
            if "request_id" not in shard.meta:
                raise LabelError(f"shard {shard.name}: has no request_id to match labels.csv by")
            ids = shard.meta["request_id"].tolist()
            ys.append(np.array([by_request.get(r, UNLABELLED) for r in ids], np.int64))
    elif labels_path.suffix == ".npy":
        flat = _npy_labels(labels_path, total)
        bounds = np.cumsum([0, *(len(s) for s in shards)])
        ys = [flat[a:b] for a, b in itertools.pairwise(bounds)]
    else:
        raise LabelError(f"{labels_path}: labels must be a .csv or a .npy file")
    written = labelled = 0
    for shard, y in zip(shards, ys, strict=True):
        data = _labelled_part(shard, y)
        if data is not None:
            target.write(shard.name, data)
            written += 1
            labelled += int((y != UNLABELLED).sum())
    return LabelSummary(total, labelled, written)


__all__ = ["LabelError", "LabelSummary", "label_shards"]
