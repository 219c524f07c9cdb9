"""Checks a decoded request against the model's signature before it is queued.

Everything a client can get wrong is caught here with a message naming the input and what was
expected, so that the model only ever sees tensors it can take.
"""

from __future__ import annotations

import numpy as np

from service.errors import BadRequestError
from service.model_io.datatypes import FLOAT_DATATYPES
from service.model_io.signature import ModelSignature
from service.protocol.decode import InferRequest


def validate_request(request: InferRequest, sig: ModelSignature) -> int:
    """Returns the request's batch size (samples); raises BadRequestError on any mismatch."""
    samples = check_structure(request, sig)
    check_values(request, sig)
    return samples


def check_structure(request: InferRequest, sig: ModelSignature) -> int:
    """What the request's JSON header alone decides: input and output names, datatypes, shapes
    and the batch size, which it returns."""
    for name in request.inputs:
        if name not in sig.inputs:
            raise BadRequestError(
                f"unknown input '{name}'; the model's inputs are {', '.join(sig.inputs)}"
            )
    missing = [n for n in sig.inputs if n not in request.inputs and n not in sig.server_filled]
    if missing:
        raise BadRequestError(f"missing input(s) {', '.join(missing)}")

    batch: int | None = None
    for name, array in request.inputs.items():
        spec = sig.inputs[name]
        got_type = request.datatypes[name]
        if got_type != spec.datatype:
            raise BadRequestError(
                f"input '{name}': expected datatype {spec.datatype}, got {got_type}"
            )
        if array.ndim != len(spec.shape) or any(
            want != -1 and want != got for want, got in zip(spec.shape, array.shape, strict=True)
        ):
            raise BadRequestError(
                f"input '{name}': expected shape {list(spec.shape)} (-1 = any), "
                f"got {list(array.shape)}"
            )
        axis = sig.ragged_axes.get(name)
        if axis is not None:
            length = array.shape[axis]
            if length == 0:
                raise BadRequestError(f"input '{name}': its variable axis {axis} has length 0")
            limit = sig.ragged_max_lengths.get(name)
            if limit is not None and length > limit:
                raise BadRequestError(
                    f"input '{name}': its variable axis {axis} has length {length}, above the "
                    f"longest this model takes ({limit})"
                )
        if sig.batched:
            if batch is None:
                batch = array.shape[0]
            elif array.shape[0] != batch:
                raise BadRequestError(
                    f"input '{name}': batch size {array.shape[0]} differs from the other "
                    f"inputs' {batch}"
                )

    if sig.batched:
        assert batch is not None
        if batch == 0:
            raise BadRequestError("empty batch: the batch dimension is 0")
        if batch > sig.max_batch_size:
            raise BadRequestError(
                f"batch size {batch} is above this model's max batch size {sig.max_batch_size}"
            )
    _check_outputs(request, sig)
    return batch if batch is not None else 1


def check_values(request: InferRequest, sig: ModelSignature) -> None:
    """What the tensors' data decides: text elements are UTF-8, floats finite where the model
    asks for it, and lengths a client sends fit the tensor they describe."""
    for name, got_type in request.datatypes.items():
        if got_type == "BYTES":
            request.inputs[name] = _as_text(name, request.inputs[name])
        elif (
            sig.reject_non_finite
            and got_type in FLOAT_DATATYPES
            and not np.isfinite(request.inputs[name]).all()
        ):
            raise BadRequestError(f"input '{name}' contains NaN or Inf, which this model refuses")
    _check_ragged_lengths(request, sig)


def needs_value_checks(request: InferRequest, sig: ModelSignature) -> bool:
    """Whether `check_values` can refuse, or change, a request of this structure."""
    return any(
        t == "BYTES" or (sig.reject_non_finite and t in FLOAT_DATATYPES)
        for t in request.datatypes.values()
    ) or bool(sig.ragged_axes and sig.server_filled & request.inputs.keys())


def _as_text(name: str, array: np.ndarray) -> np.ndarray:
    """ONNX Runtime string tensors hold `str` (it would store `str(b"..")` for bytes): decode
    each element as UTF-8, the encoding ONNX strings use."""
    flat = array.reshape(-1)
    out = np.empty(flat.shape, dtype=object)
    for i, item in enumerate(flat):
        try:
            out[i] = item.decode() if isinstance(item, bytes) else item
        except UnicodeDecodeError:
            raise BadRequestError(f"input '{name}': BYTES element {i} is not UTF-8") from None
    return out.reshape(array.shape)


def _check_ragged_lengths(request: InferRequest, sig: ModelSignature) -> None:
    """Lengths a client sends must fit the tensor it sent: 1 ≤ length ≤ its ragged axis."""
    if not sig.ragged_axes:
        return
    from_signature = sig.server_filled & request.inputs.keys()
    for name in from_signature:
        lengths = request.inputs[name]
        if lengths.ndim != 1 or lengths.dtype.kind not in "iu":
            continue  # a mask input: its shape was checked against the signature
        for ragged, axis in sig.ragged_axes.items():
            if ragged not in request.inputs:
                continue
            longest = request.inputs[ragged].shape[axis]
            if lengths.size and (lengths.min() < 1 or lengths.max() > longest):
                raise BadRequestError(
                    f"input '{name}': lengths must be between 1 and {longest} (the length of "
                    f"'{ragged}' along axis {axis}), got {lengths.min()}..{lengths.max()}"
                )


def _check_outputs(request: InferRequest, sig: ModelSignature) -> None:
    if request.outputs is None:
        return
    seen = set()
    for out in request.outputs:
        if out.name not in sig.outputs:
            raise BadRequestError(
                f"unknown output '{out.name}'; the model's outputs are {', '.join(sig.outputs)}"
            )
        if out.name in seen:
            raise BadRequestError(f"output '{out.name}' is requested twice")
        seen.add(out.name)
        if out.classification and sig.outputs[out.name].datatype == "BYTES":
            raise BadRequestError(f"output '{out.name}' is BYTES and cannot be classified")
