"""The model's frozen evaluation set, and how a version is judged on it: by running its ONNX.

The set is stored once per model in the store (`<model>/evaluation.npz`, a labelled shard in the
format of model_store/shards.py), frozen from the test split of the data the first published
version was trained on. Every version's manifest records its sha256, so a retrain can tell that
champion and challenger were judged on the very same samples. Both are judged as served: their
ONNX artifacts run in ONNX Runtime, not their PyTorch modules.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from model_store import ModelStore, StoreError
from model_store.shards import read_shard, write_shard
from training.data import Split
from training.export import cpu_session, run_onnx


@dataclass(frozen=True)
class EvaluationSet:
    split: Split
    sha256: str

    def as_dict(self) -> dict[str, object]:
        return {"sha256": self.sha256, "samples": len(self.split)}


def _decode(name: str, data: bytes) -> EvaluationSet:
    shard = read_shard(data, f"{name}/evaluation.npz")
    return EvaluationSet(Split(shard.x, shard.y, shard.lengths), hashlib.sha256(data).hexdigest())


def frozen_evaluation_set(store: ModelStore, name: str, held_out: Split) -> EvaluationSet:
    """The model's evaluation set; `held_out` becomes it when the model has none yet."""
    stored = store.evaluation_set(name)
    if stored is None:
        fresh = write_shard(held_out.x, held_out.y, lengths=held_out.lengths)
        stored = store.freeze_evaluation_set(name, fresh)
    return _decode(name, stored)


def stored_evaluation_set(store: ModelStore, name: str) -> EvaluationSet | None:
    stored = store.evaluation_set(name)
    return None if stored is None else _decode(name, stored)


def correct_answers(onnx_path: Path, split: Split, batch_size: int = 256) -> list[bool]:
    """Per sample, whether the ONNX model's top class is the label (in the split's order)."""
    session = cpu_session(onnx_path, threads=0)  # 0: ONNX Runtime's default, all cores
    right: list[bool] = []
    for start in range(0, len(split), batch_size):
        part = split.subset(np.arange(start, min(start + batch_size, len(split))))
        try:
            logits = run_onnx(session, part.inputs())
        except Exception as exc:  # onnxruntime raises its own types for shape/type mismatches
            raise StoreError(
                f"{onnx_path.name} cannot run the evaluation set ({type(exc).__name__}: "
                f"{str(exc).splitlines()[0] if str(exc) else ''})"
            ) from None
        right.extend((logits.argmax(axis=1) == part.y).tolist())
    return right
