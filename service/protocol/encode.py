"""Response encoding: JSON tensors, or Triton's binary tensor extension per output.

An output goes binary when its request entry says `binary_data: true`, or when the request lists
no outputs and sets `binary_data_output: true`. Binary outputs follow the JSON header in output
order; the header's length travels in `Inference-Header-Content-Length`.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
import orjson

from service.model_io.datatypes import datatype_of
from service.protocol.classification import classify
from service.protocol.decode import InferRequest, RequestedOutput

_OPTS = orjson.OPT_SERIALIZE_NUMPY
_LENGTH_PREFIX = struct.Struct("<I")


def encode_response(
    request: InferRequest,
    results: dict[str, np.ndarray],
    *,
    model_name: str,
    model_version: int,
    labels: dict[str, tuple[str, ...]],
) -> tuple[bytes, int | None]:
    """Returns the body and, when any output is binary, the JSON header's length."""
    wanted = request.outputs
    if wanted is None:
        wanted = [RequestedOutput(name, request.binary_output) for name in results]
    outputs: list[dict[str, Any]] = []
    chunks: list[Any] = []
    for out in wanted:
        array = results[out.name]
        if out.classification:
            array = classify(array, out.classification, labels.get(out.name))
        datatype = datatype_of(array)
        entry: dict[str, Any] = {"name": out.name, "datatype": datatype, "shape": array.shape}
        if out.binary:
            raw = _bytes_binary(array) if datatype == "BYTES" else np.ascontiguousarray(array)
            size = raw.nbytes if isinstance(raw, np.ndarray) else len(raw)
            entry["parameters"] = {"binary_data_size": size}
            chunks.append(raw)
        elif datatype == "BYTES":
            entry["data"] = [_as_text(x) for x in array.reshape(-1)]
        else:
            entry["data"] = np.ascontiguousarray(array).reshape(-1)
        outputs.append(entry)

    doc: dict[str, Any] = {"model_name": model_name, "model_version": str(model_version)}
    if request.id is not None:
        doc["id"] = request.id
    if request.parameters:
        doc["parameters"] = request.parameters
    doc["outputs"] = outputs
    header = orjson.dumps(doc, option=_OPTS)
    if not chunks:
        return header, None
    return b"".join([header, *chunks]), len(header)


def _bytes_binary(array: np.ndarray) -> bytes:
    parts = []
    for item in array.reshape(-1):
        data = item if isinstance(item, bytes) else str(item).encode()
        parts.append(_LENGTH_PREFIX.pack(len(data)))
        parts.append(data)
    return b"".join(parts)


def _as_text(item: object) -> str:
    if isinstance(item, bytes):
        return item.decode("utf-8", errors="replace")
    return str(item)
