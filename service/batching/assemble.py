"""Turning queued requests into one batch and the batch's outputs back into per-request results.

Requests are concatenated along axis 0. Ragged inputs (declared in the model's config) are padded
along their variable axis to the longest request in the batch, and the model's lengths/mask inputs
are filled from each request's true lengths, so a request's result equals running it alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from model_store.schema import RaggedInput
from service.model_io.datatypes import NUMPY_DTYPES
from service.model_io.signature import ModelSignature


@dataclass(frozen=True, slots=True)
class Layout:
    """What the assembler needs to know about a model."""

    signature: ModelSignature
    ragged: tuple[RaggedInput, ...]


def batch_key(inputs: dict[str, np.ndarray], layout: Layout) -> tuple[object, ...]:
    """Requests with equal keys can share a batch: same inputs, dtypes and non-batch shapes."""
    axes = layout.signature.ragged_axes
    filled = layout.signature.server_filled
    key: list[object] = []
    for name in sorted(inputs):
        if name in filled:
            continue
        shape = list(inputs[name].shape[1:])
        axis = axes.get(name)
        if axis is not None:
            shape[axis - 1] = -1
        key.append((name, inputs[name].dtype.str, tuple(shape)))
    return tuple(key)


def sample_lengths(request: dict[str, np.ndarray], r: RaggedInput) -> np.ndarray:
    """Each sample's true length along the ragged axis: sent by the client, or the tensor's own."""
    if r.lengths_input is not None and r.lengths_input in request:
        return request[r.lengths_input].astype(np.int64, copy=False)
    tensor = request[r.input]
    if r.mask_input is not None and r.mask_input in request:
        return (~request[r.mask_input].astype(bool)).sum(axis=1).astype(np.int64)
    return np.full(tensor.shape[0], tensor.shape[r.axis], dtype=np.int64)


def assemble(requests: Sequence[dict[str, np.ndarray]], layout: Layout) -> dict[str, np.ndarray]:
    if len(requests) == 1 and not layout.ragged:
        return dict(requests[0])
    sig = layout.signature
    out: dict[str, np.ndarray] = {}
    ragged_names = {r.input for r in layout.ragged}
    for name in requests[0]:
        if name in ragged_names or name in sig.server_filled:
            continue
        parts = [req[name] for req in requests]
        out[name] = parts[0] if len(parts) == 1 else np.concatenate(parts)
    for r in layout.ragged:
        tensors = [req[r.input] for req in requests]
        longest = max(t.shape[r.axis] for t in tensors)
        total = sum(t.shape[0] for t in tensors)
        shape = list(tensors[0].shape)
        shape[0], shape[r.axis] = total, longest
        padded = np.full(shape, r.pad_value, dtype=tensors[0].dtype)
        row = 0
        for t in tensors:
            index = [slice(row, row + t.shape[0])] + [slice(None)] * (t.ndim - 1)
            index[r.axis] = slice(0, t.shape[r.axis])
            padded[tuple(index)] = t
            row += t.shape[0]
        out[r.input] = padded
        lengths = np.concatenate([sample_lengths(req, r) for req in requests])
        if r.lengths_input is not None and r.lengths_input in sig.inputs:
            dtype = NUMPY_DTYPES[sig.inputs[r.lengths_input].datatype]
            out[r.lengths_input] = lengths.astype(dtype, copy=False)
        if r.mask_input is not None and r.mask_input in sig.inputs:
            # (B, T) True where a step is padding.
            out[r.mask_input] = np.arange(longest)[None, :] >= lengths[:, None]
    return out


def split(
    outputs: dict[str, np.ndarray],
    requests: Sequence[dict[str, np.ndarray]],
    samples: Sequence[int],
    layout: Layout,
) -> list[dict[str, np.ndarray]]:
    """Per-request views of the batch outputs (axis 0), trimmed back along ragged axes."""
    total = sum(samples)
    if len(requests) == 1 and not layout.ragged:
        return [outputs]
    for name, array in outputs.items():
        if array.ndim == 0 or array.shape[0] != total:
            raise ValueError(
                f"output '{name}' has shape {list(array.shape)}, expected {total} rows "
                "(one per sample in the batch)"
            )
    trims = _ragged_trims(outputs, requests, layout)
    results = []
    row = 0
    for i, n in enumerate(samples):
        result = {}
        for name, array in outputs.items():
            part = array[row : row + n]
            trim = trims.get(name)
            if trim is not None:
                axis, lengths = trim
                index = [slice(None)] * part.ndim
                index[axis] = slice(0, lengths[i])
                part = part[tuple(index)]
            result[name] = part
        results.append(result)
        row += n
    return results


def _ragged_trims(
    outputs: dict[str, np.ndarray], requests: Sequence[dict[str, np.ndarray]], layout: Layout
) -> dict[str, tuple[int, list[int]]]:
    """Outputs that carry a ragged axis (dynamic in the signature, as long as the padded input)."""
    trims: dict[str, tuple[int, list[int]]] = {}
    for r in layout.ragged:
        own = [req[r.input].shape[r.axis] for req in requests]
        longest = max(own)
        for name, array in outputs.items():
            spec = layout.signature.outputs.get(name)
            if (
                spec is not None
                and len(spec.shape) > r.axis
                and spec.shape[r.axis] == -1
                and array.shape[r.axis] == longest
            ):
                trims[name] = (r.axis, own)
    return trims
