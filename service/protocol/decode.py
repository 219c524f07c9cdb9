"""Request decoding: JSON tensors and Triton's binary tensor extension into numpy arrays.

No per-element Python work for numeric tensors: binary data becomes an array with `np.frombuffer`
(zero copy), JSON data with one `np.asarray` call. Only BYTES elements are walked one by one,
because each has its own length. Every size is checked against the declared shape and the
element limit before anything is allocated.

Binary extension (Triton `docs/protocol/extension_binary_data.md`): the header
`Inference-Header-Content-Length: N` says the first N bytes are the JSON request; each input with
`parameters.binary_data_size` takes that many bytes, in input order, from what follows. BYTES
elements are each a 4-byte little-endian length followed by the bytes.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from service.errors import BadRequestError
from service.model_io.datatypes import NUMPY_DTYPES
from service.protocol.json_tensors import (
    SCAN_FROM_BYTES,
    Slot,
    cut_data_arrays,
    slot_data,
    slot_index,
)

# Request-level parameters the server interprets; the rest are echoed back in the response.
_RESERVED_PARAMETERS = frozenset(
    {"binary_data_output", "timeout", "priority", "sequence_id", "sequence_start", "sequence_end"}
)
_LENGTH_PREFIX = struct.Struct("<I")


@dataclass(slots=True)
class RequestedOutput:
    name: str
    binary: bool
    classification: int = 0  # top-k classes; 0 = the raw tensor


@dataclass(slots=True)
class InferRequest:
    id: str | None
    inputs: dict[str, np.ndarray]
    datatypes: dict[str, str]
    outputs: list[RequestedOutput] | None
    binary_output: bool  # default for outputs the request does not list
    timeout_s: float | None
    parameters: dict[str, Any] = field(default_factory=dict)
    # Every input came from the binary section: the JSON header alone decided its structure
    # (what request_plans.py caches).
    all_binary: bool = False
    # Triton's `priority`: 0 = none; 1 is the most urgent level (service/batching/batcher.py).
    priority: int = 0


def decode_request(body: bytes, header_length: int | None, *, max_elements: int) -> InferRequest:
    header: bytes | memoryview
    binary = memoryview(b"")
    slots: list[Slot] = []
    if header_length is None:
        header = body
        if len(body) >= SCAN_FROM_BYTES and (cut := cut_data_arrays(body)) is not None:
            header, slots = cut
    else:
        if header_length < 0 or header_length > len(body):
            raise BadRequestError(
                f"Inference-Header-Content-Length is {header_length} but the body has "
                f"{len(body)} bytes"
            )
        view = memoryview(body)
        header, binary = view[:header_length], view[header_length:]
    try:
        doc = orjson.loads(header)
    except orjson.JSONDecodeError as exc:
        raise BadRequestError(f"request body is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise BadRequestError("request body must be a JSON object")

    raw_params = doc.get("parameters") or {}
    if not isinstance(raw_params, dict):
        raise BadRequestError("'parameters' must be an object")
    if slots:  # a "data" array among the parameters was cut out too: put it back
        for key, value in raw_params.items():
            if (slot := slot_index(value)) is not None:
                raw_params[key] = orjson.loads(slots[slot].text())
    raw_inputs = doc.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise BadRequestError("'inputs' must be a non-empty list of tensors")

    inputs: dict[str, np.ndarray] = {}
    datatypes: dict[str, str] = {}
    offset = 0
    all_binary = True
    for raw in raw_inputs:
        name, datatype, shape = _tensor_header(raw, max_elements)
        if name in inputs:
            raise BadRequestError(f"input '{name}' is given twice")
        params = raw.get("parameters") or {}
        size = params.get("binary_data_size") if isinstance(params, dict) else None
        if size is not None:
            if not isinstance(size, int) or isinstance(size, bool) or size < 0:
                raise BadRequestError(f"input '{name}': binary_data_size must be an integer ≥ 0")
            if offset + size > len(binary):
                raise BadRequestError(
                    f"input '{name}': binary_data_size {size} runs past the end of the body "
                    f"({len(binary) - offset} binary bytes left)"
                )
            chunk = binary[offset : offset + size]
            offset += size
            array = tensor_from_bytes(name, datatype, shape, chunk)
        elif "data" in raw:
            all_binary = False
            data = raw["data"]
            if slots and (slot := slot_index(data)) is not None:
                data = slot_data(name, shape, slots[slot])
            array = _from_json(name, datatype, shape, data)
        else:
            raise BadRequestError(f"input '{name}' has neither 'data' nor binary_data_size")
        inputs[name] = array
        datatypes[name] = datatype
    if offset != len(binary):
        raise BadRequestError(
            f"the inputs' binary_data_size add up to {offset} bytes but the body carries "
            f"{len(binary)} binary bytes after the JSON header"
        )

    binary_output = raw_params.get("binary_data_output", False)
    if not isinstance(binary_output, bool):
        raise BadRequestError("parameter 'binary_data_output' must be true or false")
    request_id = doc.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise BadRequestError("'id' must be a string")
    return InferRequest(
        id=request_id,
        inputs=inputs,
        datatypes=datatypes,
        outputs=_requested_outputs(doc.get("outputs")),
        binary_output=binary_output,
        timeout_s=_timeout(raw_params.get("timeout")),
        parameters={k: v for k, v in raw_params.items() if k not in _RESERVED_PARAMETERS},
        all_binary=all_binary,
        priority=_priority(raw_params.get("priority")),
    )


def _tensor_header(raw: object, max_elements: int) -> tuple[str, str, tuple[int, ...]]:
    if not isinstance(raw, dict):
        raise BadRequestError("each input must be an object with name, shape, datatype")
    return tensor_header(raw.get("name"), raw.get("datatype"), raw.get("shape"), max_elements)


def tensor_header(
    name: object, datatype: object, shape: object, max_elements: int
) -> tuple[str, str, tuple[int, ...]]:
    """An input tensor's name, datatype and shape, checked (shared by every wire format): a
    known datatype, at most 32 dimensions ≥ 0, at most `max_elements` elements."""
    if not isinstance(name, str) or not name:
        raise BadRequestError("an input has no 'name'")
    if not isinstance(datatype, str):  # a list or an object is not even hashable
        raise BadRequestError(f"input '{name}': 'datatype' must be a string")
    if datatype not in NUMPY_DTYPES:
        raise BadRequestError(
            f"input '{name}': unknown datatype {datatype!r} (one of {', '.join(NUMPY_DTYPES)})"
        )
    if (
        not isinstance(shape, list)
        or len(shape) > 32
        or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
    ):
        raise BadRequestError(
            f"input '{name}': shape must be a list of at most 32 integers ≥ 0, got {shape!r}"
        )
    count = math.prod(shape)
    if count > max_elements:
        raise BadRequestError(
            f"input '{name}': shape {shape} has {count} elements, above the limit of {max_elements}"
        )
    if count == 0:
        # A zero-element tensor passes the element limit whatever its other dimensions, but
        # numpy refuses to reshape into dimensions whose non-zero product overflows its index
        # type (ValueError, was a 500): every dimension is held to the element limit too.
        _check_empty_shape(name, shape, max_elements)
    return name, datatype, tuple(shape)


def _check_empty_shape(name: str, shape: list[int], max_elements: int) -> None:
    span = 1
    for axis, dim in enumerate(shape):
        if dim > max_elements:
            raise BadRequestError(
                f"input '{name}': dimension {axis} of shape {shape} is {dim}, above the limit "
                f"of {max_elements} elements"
            )
        span *= dim or 1
    if span > max_elements:
        raise BadRequestError(
            f"input '{name}': the non-zero dimensions of shape {shape} span {span} elements, "
            f"above the limit of {max_elements}"
        )


def tensor_from_bytes(
    name: str, datatype: str, shape: tuple[int, ...], chunk: bytes | memoryview
) -> np.ndarray:
    """A tensor from its raw bytes (row-major, little-endian; BYTES elements each a 4-byte
    length then the bytes): the size must be exactly what the checked shape needs."""
    count = math.prod(shape)
    if datatype == "BYTES":
        return _bytes_elements(name, shape, chunk, count)
    dtype = NUMPY_DTYPES[datatype]
    expected = count * dtype.itemsize
    if len(chunk) != expected:
        raise BadRequestError(
            f"input '{name}': shape {list(shape)} of {datatype} needs {expected} bytes, "
            f"binary_data_size is {len(chunk)}"
        )
    return np.frombuffer(chunk, dtype=dtype).reshape(shape)


def _bytes_elements(
    name: str, shape: tuple[int, ...], chunk: bytes | memoryview, count: int
) -> np.ndarray:
    # The declared count is not allocated up front (a 4-byte body may declare millions of
    # elements): elements are collected as the data yields them, so the walk stops, and refuses,
    # where the data ends, before any memory proportional to the claim is taken.
    items: list[bytes] = []
    pos, end = 0, len(chunk)
    for i in range(count):
        if pos + 4 > end:
            raise BadRequestError(f"input '{name}': BYTES data ends after {i} of {count} elements")
        (length,) = _LENGTH_PREFIX.unpack_from(chunk, pos)
        pos += 4
        if pos + length > end:
            raise BadRequestError(
                f"input '{name}': BYTES element {i} claims {length} bytes, {end - pos} left"
            )
        items.append(bytes(chunk[pos : pos + length]))
        pos += length
    if pos != end:
        raise BadRequestError(
            f"input '{name}': {end - pos} bytes left over after {count} BYTES elements"
        )
    out = np.empty(count, dtype=object)
    out[:] = items
    return out.reshape(shape)


def _from_json(name: str, datatype: str, shape: tuple[int, ...], data: object) -> np.ndarray:
    if not isinstance(data, list):
        data = [data]
    try:
        if datatype == "BYTES":
            array = np.asarray(data, dtype=object)
        else:
            array = np.asarray(data, dtype=NUMPY_DTYPES[datatype])
    except (ValueError, TypeError, OverflowError) as exc:
        raise BadRequestError(f"input '{name}': data is not a {datatype} tensor: {exc}") from None
    count = math.prod(shape)
    if array.size != count:
        raise BadRequestError(
            f"input '{name}': shape {list(shape)} needs {count} elements, data has {array.size}"
        )
    if datatype == "BYTES":
        flat = array.reshape(-1)
        for i, item in enumerate(flat):
            if isinstance(item, str):
                flat[i] = item.encode()
            elif not isinstance(item, bytes):
                raise BadRequestError(f"input '{name}': BYTES element {i} is not a string")
        return flat.reshape(shape)
    return array.reshape(shape)


def _requested_outputs(raw: object) -> list[RequestedOutput] | None:
    if raw is None:
        return None
    if not isinstance(raw, list):
        raise BadRequestError("'outputs' must be a list")
    outputs = []
    for item in raw:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise BadRequestError("each requested output must be an object with a 'name'")
        params = item.get("parameters") or {}
        if not isinstance(params, dict):
            raise BadRequestError(f"output '{item['name']}': 'parameters' must be an object")
        binary = params.get("binary_data", False)
        k = params.get("classification", 0)
        if not isinstance(binary, bool):
            raise BadRequestError(f"output '{item['name']}': binary_data must be true or false")
        if not isinstance(k, int) or isinstance(k, bool) or k < 0:
            raise BadRequestError(f"output '{item['name']}': classification must be an integer ≥ 0")
        outputs.append(RequestedOutput(item["name"], binary, k))
    return outputs


def _priority(raw: object) -> int:
    """Triton's `priority` parameter: an unsigned level, 1 the most urgent; 0 or absent: none."""
    if raw is None:
        return 0
    if not isinstance(raw, int) or isinstance(raw, bool) or not 0 <= raw < 2**64:
        raise BadRequestError("parameter 'priority' must be an integer ≥ 0 (1 is the highest)")
    return raw


def _timeout(raw: object) -> float | None:
    """Triton's `timeout` parameter is in microseconds; 0 or absent means the model's default."""
    if raw is None:
        return None
    if not isinstance(raw, int) or isinstance(raw, bool) or raw < 0:
        raise BadRequestError("parameter 'timeout' must be an integer number of microseconds ≥ 0")
    return raw / 1e6 if raw > 0 else None
