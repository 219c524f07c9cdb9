"""ModelInfer's wire format: a `ModelInferRequest` into the decoded request every door queues, and
a request's results into a `ModelInferResponse`.

Tensors come either all in `raw_input_contents` (one bytes entry per input: row-major,
little-endian, BYTES elements each a 4-byte length then the bytes, as Triton's binary extension
lays them out) or each in the typed field of `contents` its datatype uses. Raw data becomes an
array with `np.frombuffer` (no per-element work); typed contents are converted once per tensor.
Every size and count is checked against the declared shape, and the shape against the element
limit, before anything is allocated; then the request goes through the same signature checks
as an HTTP one (service/protocol/validate.py).

The answer is raw when the request was (as Triton answers tritonclient, which always sends raw),
and typed otherwise; FP16 has no typed field, so a response with an FP16 output is raw whatever
the request.
"""

from __future__ import annotations

import math
import struct
from typing import Any

import numpy as np

from service.errors import BadRequestError
from service.grpc.protos.inference_pb2 import (
    InferParameter,
    InferTensorContents,
    ModelInferRequest,
    ModelInferResponse,
)
from service.lifecycle.served import ServedVersion
from service.model_io.datatypes import datatype_of
from service.protocol.classification import classify
from service.protocol.decode import InferRequest, RequestedOutput, tensor_from_bytes, tensor_header
from service.protocol.request_plans import Decoded
from service.protocol.validate import check_structure, check_values

# Which field of InferTensorContents holds a datatype's elements, and the numpy type its
# elements are read as before narrowing (INT8 arrives as int32 values, and is range-checked).
_FIELDS: dict[str, tuple[str, np.dtype[Any]]] = {
    "BOOL": ("bool_contents", np.dtype(np.bool_)),
    "INT8": ("int_contents", np.dtype(np.int32)),
    "INT16": ("int_contents", np.dtype(np.int32)),
    "INT32": ("int_contents", np.dtype(np.int32)),
    "INT64": ("int64_contents", np.dtype(np.int64)),
    "UINT8": ("uint_contents", np.dtype(np.uint32)),
    "UINT16": ("uint_contents", np.dtype(np.uint32)),
    "UINT32": ("uint_contents", np.dtype(np.uint32)),
    "UINT64": ("uint64_contents", np.dtype(np.uint64)),
    "FP32": ("fp32_contents", np.dtype(np.float32)),
    "FP64": ("fp64_contents", np.dtype(np.float64)),
    "BYTES": ("bytes_contents", np.dtype(object)),
}
_NARROW: dict[str, np.dtype[Any]] = {
    t: np.dtype(n) for t, n in (("INT8", "i1"), ("INT16", "i2"), ("UINT8", "u1"), ("UINT16", "u2"))
}
# Request parameters the server interprets (timeout, priority) or that Triton's clients send for
# features served otherwise here (sequences); the others are echoed in the response.
_RESERVED = frozenset(
    {"timeout", "priority", "sequence_id", "sequence_start", "sequence_end", "binary_data_output"}
)
_LENGTH = struct.Struct("<I")  # a raw BYTES element's length prefix


def decode_infer(message: ModelInferRequest, served: ServedVersion, max_elements: int) -> Decoded:
    """The request, checked against the served version's signature; raises BadRequestError."""
    raw = message.raw_input_contents
    if raw and len(raw) != len(message.inputs):
        raise BadRequestError(
            f"raw_input_contents has {len(raw)} entries for {len(message.inputs)} inputs: "
            "send every input raw, in the order of 'inputs', or none"
        )
    if not message.inputs:
        raise BadRequestError("'inputs' must be a non-empty list of tensors")
    inputs: dict[str, np.ndarray] = {}
    datatypes: dict[str, str] = {}
    for i, tensor in enumerate(message.inputs):
        name, datatype, shape = tensor_header(
            tensor.name, tensor.datatype, list(tensor.shape), max_elements
        )
        if name in inputs:
            raise BadRequestError(f"input '{name}' is given twice")
        if "shared_memory_region" in tensor.parameters:
            raise BadRequestError(
                f"input '{name}' names a shared memory region, which this server does not "
                "serve: send its data in the request"
            )
        if raw:
            if tensor.HasField("contents"):
                raise BadRequestError(
                    f"input '{name}' has contents although the request sends raw_input_contents"
                )
            inputs[name] = tensor_from_bytes(name, datatype, shape, raw[i])
        else:
            inputs[name] = _from_contents(name, datatype, shape, tensor.contents)
        datatypes[name] = datatype
    timeout_s, priority, echoed = _parameters(message)
    request = InferRequest(
        id=message.id or None,
        inputs=inputs,
        datatypes=datatypes,
        outputs=_requested_outputs(message) if message.outputs else None,
        binary_output=False,
        timeout_s=timeout_s,
        parameters=echoed,
        all_binary=bool(raw),
        priority=priority,
    )
    samples = check_structure(request, served.signature)
    check_values(request, served.signature)
    return Decoded(request, samples, None)


def _from_contents(
    name: str, datatype: str, shape: tuple[int, ...], contents: InferTensorContents
) -> np.ndarray:
    if datatype == "FP16":
        raise BadRequestError(
            f"input '{name}' is FP16, which has no typed contents field: send it raw"
        )
    field, wide = _FIELDS[datatype]
    for descriptor, _ in contents.ListFields():
        if descriptor.name != field:
            raise BadRequestError(
                f"input '{name}' is {datatype}: its elements go in contents.{field}, "
                f"not contents.{descriptor.name}"
            )
    values = getattr(contents, field)
    count = math.prod(shape)
    if len(values) != count:
        raise BadRequestError(
            f"input '{name}': shape {list(shape)} needs {count} elements, "
            f"contents.{field} has {len(values)}"
        )
    if datatype == "BYTES":
        array = np.empty(count, dtype=object)
        array[:] = list(values)
        return array.reshape(shape)
    array = np.fromiter(values, dtype=wide, count=count)
    narrow = _NARROW.get(datatype)
    if narrow is not None:
        info = np.iinfo(narrow)
        if count and (array.min() < info.min or array.max() > info.max):
            raise BadRequestError(
                f"input '{name}': {datatype} elements must lie in {info.min}..{info.max}, got "
                f"{array.min()}..{array.max()}"
            )
        array = array.astype(narrow)
    return array.reshape(shape)


def _parameters(message: ModelInferRequest) -> tuple[float | None, int, dict[str, Any]]:
    """The request's timeout (Triton's `timeout`: int64 microseconds; 0: the model's default),
    its priority (Triton's `priority`: 1 the most urgent level; 0: none) and the parameters
    echoed back."""
    timeout_s = None
    priority = 0
    echoed: dict[str, Any] = {}
    for key, value in message.parameters.items():
        if key == "priority":
            # tritonclient sends uint64_param; other clients may send int64_param.
            kind = value.WhichOneof("parameter_choice")
            if kind not in ("uint64_param", "int64_param") or getattr(value, kind) < 0:
                raise BadRequestError(
                    "parameter 'priority' must be a uint64_param ≥ 0 (1 is the highest)"
                )
            priority = getattr(value, kind)
        elif key == "timeout":
            if value.WhichOneof("parameter_choice") != "int64_param" or value.int64_param < 0:
                raise BadRequestError(
                    "parameter 'timeout' must be an int64_param of microseconds ≥ 0"
                )
            timeout_s = value.int64_param / 1e6 if value.int64_param > 0 else None
        elif key not in _RESERVED:
            echoed[key] = value
    return timeout_s, priority, echoed


def _requested_outputs(message: ModelInferRequest) -> list[RequestedOutput]:
    outputs = []
    for out in message.outputs:
        k = 0
        classification = out.parameters.get("classification")
        if classification is not None:
            if (
                classification.WhichOneof("parameter_choice") != "int64_param"
                or classification.int64_param < 0
            ):
                raise BadRequestError(
                    f"output '{out.name}': classification must be an int64_param ≥ 0"
                )
            k = classification.int64_param
        outputs.append(RequestedOutput(out.name, binary=False, classification=k))
    return outputs


def encode_infer(
    request: InferRequest, results: dict[str, np.ndarray], served: ServedVersion
) -> ModelInferResponse:
    response = ModelInferResponse(
        model_name=served.name, model_version=str(served.version), id=request.id or ""
    )
    wanted = request.outputs
    if wanted is None:
        wanted = [RequestedOutput(name, binary=False) for name in results]
    tensors = []
    for out in wanted:
        array = results[out.name]
        if out.classification:
            array = classify(array, out.classification, served.signature.labels.get(out.name))
        datatype = datatype_of(array)
        tensor = response.outputs.add(name=out.name, datatype=datatype, shape=array.shape)
        tensors.append((tensor, datatype, array))
    raw = request.all_binary or any(datatype == "FP16" for _, datatype, _ in tensors)
    for tensor, datatype, array in tensors:
        if raw:
            response.raw_output_contents.append(_raw_bytes(datatype, array))
        elif datatype == "BYTES":
            tensor.contents.bytes_contents.extend(_as_bytes(x) for x in array.reshape(-1))
        else:
            field = getattr(tensor.contents, _FIELDS[datatype][0])
            field.extend(array.reshape(-1).tolist())
    for key, value in request.parameters.items():
        if isinstance(value, InferParameter):
            response.parameters[key].CopyFrom(value)
    return response


def _raw_bytes(datatype: str, array: np.ndarray) -> bytes:
    if datatype != "BYTES":
        return np.ascontiguousarray(array).tobytes()
    parts: list[bytes] = []
    for item in array.reshape(-1):
        data = _as_bytes(item)
        parts += (_LENGTH.pack(len(data)), data)
    return b"".join(parts)


def _as_bytes(item: object) -> bytes:
    return item if isinstance(item, bytes) else str(item).encode()
