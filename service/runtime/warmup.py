"""Warm-up inputs: one run at each batch size the version's batcher forms (max, its preferred
sizes, 1) before a version reports ready, whatever loads it (start-up, a poll's new version, a
canary's candidate, a memory budget's load on first request), so that the first client does not
pay for ONNX Runtime's lazy allocations (and a model that cannot run at all fails its load
instead of its first request)."""

from __future__ import annotations

import numpy as np

from service.model_io.datatypes import NUMPY_DTYPES
from service.model_io.signature import ModelSignature


def warmup_batch_sizes(sig: ModelSignature, preferred: tuple[int, ...]) -> list[int]:
    """Largest first (what it allocates is reused by the smaller ones); one size for a model
    without a batch axis."""
    if not sig.batched:
        return [1]
    sizes = {1, sig.max_batch_size, *(p for p in preferred if 1 <= p <= sig.max_batch_size)}
    return sorted(sizes, reverse=True)


def warmup_inputs(sig: ModelSignature, batch: int) -> dict[str, np.ndarray]:
    """Dynamic axes get size 1; integers are 1 (a valid length or index), the rest zeros."""
    inputs = {}
    for name, spec in sig.inputs.items():
        shape = [1 if d == -1 else d for d in spec.shape]
        if sig.batched:
            shape[0] = batch
        if spec.datatype == "BYTES":
            inputs[name] = np.full(shape, "", dtype=object)
        elif spec.datatype.startswith(("INT", "UINT")):
            inputs[name] = np.ones(shape, dtype=NUMPY_DTYPES[spec.datatype])
        else:
            inputs[name] = np.zeros(shape, dtype=NUMPY_DTYPES[spec.datatype])
    return inputs
