"""Captured requests of one model version → the bytes of one shard (model_store/shards.py)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import numpy as np

from model_store.schema import RaggedInput
from model_store.shards import SUFFIX, write_shard
from service.batching.assemble import sample_lengths

if TYPE_CHECKING:
    from service.capture.version import VersionCapture


@dataclass(frozen=True, slots=True)
class Captured:
    """One captured request, as queued for the writer (the arrays are the request's own)."""

    capture: VersionCapture
    inputs: dict[str, np.ndarray]
    outputs: dict[str, np.ndarray]
    request_id: str
    time: float  # unix time of the answer
    samples: int
    size: int  # bytes of its input and outputs, held while it waits


def shard_name(model: str, version: int, when: datetime, seq: str) -> str:
    """`<model>-v<version>-<UTC time>-<seq>.npz`; `seq` tells apart the shards of one second
    (a per-process token and a counter, so that replicas writing to one prefix never collide)."""
    return f"{model}-v{version}-{when.astimezone(UTC):%Y%m%dT%H%M%SZ}-{seq}{SUFFIX}"


def build_shard(
    model: str,
    version: int,
    input_name: str,
    ragged: RaggedInput | None,
    entries: Sequence[Captured],
) -> bytes:
    """One shard from requests of one version: `x` (sequences padded with zeros along axis 1,
    beside their `lengths`), `y` = -1 (unlabelled), every output, and the provenance."""
    xs = [entry.inputs[input_name] for entry in entries]
    lengths = None
    if ragged is None:
        x = np.concatenate(xs)
    else:
        lengths = np.concatenate([sample_lengths(entry.inputs, ragged) for entry in entries])
        longest = max(part.shape[1] for part in xs)
        x = np.zeros((len(lengths), longest, *xs[0].shape[2:]), np.float32)
        row = 0
        for part in xs:
            x[row : row + len(part), : part.shape[1]] = part
            row += len(part)
    outputs = {
        name: np.concatenate([entry.outputs[name] for entry in entries])
        for name in entries[0].outputs
    }
    counts = [entry.samples for entry in entries]
    meta: dict[str, np.ndarray | str] = {
        "request_id": np.repeat(np.array([e.request_id for e in entries], dtype=str), counts),
        "version": np.full(len(x), version, np.int64),
        "time": np.repeat(np.array([e.time for e in entries], np.float64), counts),
        "model": model,
    }
    return write_shard(x, lengths=lengths, outputs=outputs, meta=meta)
