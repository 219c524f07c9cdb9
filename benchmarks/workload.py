"""What the benchmark sends: deterministic sample inputs for a store model, one sample each.

Every contender gets the same samples (the request bodies and raw ONNX Runtime batches are all
built from them). Values are rounded to 4 decimals so a JSON body looks like one a client writes
(`0.1234`, not 17 digits of a float32 widened to float64); the binary body carries the same values
as float32. Ragged inputs (the GRU and transformer sequences) get mixed lengths, cycled by wrk.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from model_store import ModelConfig, TensorSpec, open_store
from model_store.schema import RaggedInput

# Japanese Vowels sequences are 7 to 29 steps long; these span that range.
SEQUENCE_LENGTHS = (7, 12, 16, 20, 24, 29)
_NUMPY = {
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "UINT8": np.uint8,
    "BOOL": np.bool_,
}

Sample = dict[str, np.ndarray]
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Workload:
    name: str
    version: int
    model_path: Path  # the fp32 model.onnx of the version
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    ragged: tuple[RaggedInput, ...]
    samples: tuple[Sample, ...]  # batch 1 each

    @property
    def path(self) -> str:
        return f"/v2/models/{self.name}/infer"


def ensure_store(store: Path, models: tuple[str, ...]) -> None:
    """Trains and publishes the demo models when one of `models` is missing (a few minutes)."""
    present = set(open_store(str(store)).list_models()) if store.exists() else set()
    missing = [m for m in models if m not in present]
    if missing:
        log.info("models %s missing from %s: running `python -m training demo`", missing, store)
        subprocess.run(
            [sys.executable, "-m", "training", "demo", "--store", str(store)], check=True
        )


def load_workload(store_dir: Path, name: str, cache_dir: Path, seed: int = 0) -> Workload:
    """The latest version of `name` in the store and its benchmark samples."""
    store = open_store(str(store_dir))
    version = store.resolve(name)
    manifest = store.manifest(name, version)
    config = store.config(name)
    version_dir = store.materialize(name, version, cache_dir)
    samples = make_samples(manifest.inputs, config, seed)
    return Workload(
        name,
        version,
        version_dir / manifest.model_file,
        manifest.inputs,
        manifest.outputs,
        config.ragged_inputs,
        samples,
    )


def make_samples(
    specs: tuple[TensorSpec, ...], config: ModelConfig, seed: int
) -> tuple[Sample, ...]:
    """One sample per sequence length for ragged models, else a single sample (the compute of
    these models does not depend on the values)."""
    rng = np.random.default_rng(seed)
    ragged = {r.input: r for r in config.ragged_inputs}
    lengths_inputs = {r.lengths_input: r for r in config.ragged_inputs if r.lengths_input}
    mask_inputs = {r.mask_input: r for r in config.ragged_inputs if r.mask_input}
    lengths = SEQUENCE_LENGTHS if ragged else (None,)
    samples = []
    for length in lengths:
        sample: Sample = {}
        for spec in specs:
            if spec.name in lengths_inputs:
                sample[spec.name] = np.array([length], dtype=_NUMPY[spec.datatype])
                continue
            if spec.name in mask_inputs:
                sample[spec.name] = np.zeros((1, length or 1), dtype=np.bool_)
                continue
            shape = [1, *(d if d != -1 else 1 for d in spec.shape[1:])]
            if spec.name in ragged and length is not None:
                shape[ragged[spec.name].axis] = length
            sample[spec.name] = _values(rng, spec.datatype, shape)
        samples.append(sample)
    return tuple(samples)


def _values(rng: np.random.Generator, datatype: str, shape: list[int]) -> np.ndarray:
    dtype = _NUMPY[datatype]
    if np.issubdtype(dtype, np.floating):
        return np.round(rng.random(shape), 4).astype(dtype)
    if dtype == np.bool_:
        return rng.random(shape) < 0.5
    return rng.integers(0, 2, shape).astype(dtype)


def collate(workload: Workload, batch: int) -> Sample:
    """`batch` samples cycled from the workload, ragged inputs padded to the longest (what the
    service's batcher does), as one set of model inputs for raw ONNX Runtime."""
    picked = [workload.samples[i % len(workload.samples)] for i in range(batch)]
    ragged = {r.input: r for r in workload.ragged}
    masks = {r.mask_input for r in workload.ragged if r.mask_input}
    out: Sample = {}
    for spec in workload.inputs:
        arrays = [s[spec.name] for s in picked]
        if spec.name in ragged or spec.name in masks:
            axis = ragged[spec.name].axis if spec.name in ragged else 1
            pad = ragged[spec.name].pad_value if spec.name in ragged else True
            longest = max(a.shape[axis] for a in arrays)
            arrays = [_pad(a, axis, longest, pad) for a in arrays]
        out[spec.name] = np.concatenate(arrays, axis=0)
    return out


def _pad(array: np.ndarray, axis: int, length: int, value: float | bool) -> np.ndarray:
    missing = length - array.shape[axis]
    if missing == 0:
        return array
    widths = [(0, 0)] * array.ndim
    widths[axis] = (0, missing)
    return np.pad(array, widths, constant_values=value)
