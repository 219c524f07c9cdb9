"""The exact HTTP requests wrk replays, built here in Python and written one per file.

wrk's Lua script (requests.lua) only reads these files and cycles through them, so what goes on
the wire is decided and tested here: a JSON body (Open Inference Protocol), or Triton's binary
tensor extension (JSON header + raw little-endian tensor bytes, binary outputs asked for).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import orjson

from benchmarks.workload import Sample, Workload

DATATYPES: dict[np.dtype[Any], str] = {
    np.dtype(np.float16): "FP16",
    np.dtype(np.float32): "FP32",
    np.dtype(np.float64): "FP64",
    np.dtype(np.int8): "INT8",
    np.dtype(np.int16): "INT16",
    np.dtype(np.int32): "INT32",
    np.dtype(np.int64): "INT64",
    np.dtype(np.uint8): "UINT8",
    np.dtype(np.bool_): "BOOL",
}
NUMPY_TYPES = {name: dtype for dtype, name in DATATYPES.items()}
# The servers ignore the Host header's value; a constant keeps the files independent of ports.
_HOST = "127.0.0.1"


def _json_values(array: np.ndarray) -> list[Any]:
    if array.dtype in (np.float16, np.float32):
        # The shortest decimal that reads back as the same value (`0.1234`), as a client holding
        # float32 data writes it, not 17 digits of the value widened to float64.
        return [float(str(value)) for value in array.ravel()]
    values: list[Any] = array.ravel().tolist()
    return values


def json_body(sample: Sample) -> bytes:
    inputs = [
        {
            "name": name,
            "shape": list(array.shape),
            "datatype": DATATYPES[array.dtype],
            "data": _json_values(array),
        }
        for name, array in sample.items()
    ]
    return orjson.dumps({"inputs": inputs})


def binary_body(sample: Sample) -> tuple[bytes, int]:
    """(body, length of its JSON header) for the binary tensor extension."""
    inputs = [
        {
            "name": name,
            "shape": list(array.shape),
            "datatype": DATATYPES[array.dtype],
            "parameters": {"binary_data_size": array.nbytes},
        }
        for name, array in sample.items()
    ]
    header = orjson.dumps({"inputs": inputs, "parameters": {"binary_data_output": True}})
    tensors = b"".join(
        np.ascontiguousarray(a).astype(a.dtype.newbyteorder("<")).tobytes() for a in sample.values()
    )
    return header + tensors, len(header)


def http_request(
    path: str,
    body: bytes,
    header_length: int | None = None,
    extra_headers: dict[str, str] | None = None,
) -> bytes:
    """One complete HTTP/1.1 keep-alive POST: JSON, or the binary tensor extension when the
    JSON header's length is given."""
    lines = [
        f"POST {path} HTTP/1.1",
        f"Host: {_HOST}",
        "Content-Type: "
        + ("application/json" if header_length is None else "application/octet-stream"),
        f"Content-Length: {len(body)}",
    ]
    if header_length is not None:
        lines.append(f"Inference-Header-Content-Length: {header_length}")
    lines += [f"{name}: {value}" for name, value in (extra_headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + body


def write_requests(workload: Workload, protocol: str, directory: Path) -> list[Path]:
    """One request file per sample of the workload; returns their paths in cycling order."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, sample in enumerate(workload.samples):
        if protocol == "json":
            raw = http_request(workload.path, json_body(sample))
        elif protocol == "binary":
            raw = http_request(workload.path, *binary_body(sample))
        else:
            raise ValueError(f"protocol {protocol!r}: expected 'json' or 'binary'")
        path = directory / f"{workload.name}-{protocol}-{i}.http"
        path.write_bytes(raw)
        paths.append(path)
    return paths


def decode_response(body: bytes, header_length: int | None) -> dict[str, np.ndarray]:
    """Output tensors of an inference response, JSON or binary (to check what a server answered
    to the benchmark's requests). A bare list of output tensors (what BentoML answers) is read
    like a response's `outputs`."""
    doc = orjson.loads(body if header_length is None else body[:header_length])
    offset = header_length or 0
    outputs = {}
    for out in doc if isinstance(doc, list) else doc["outputs"]:
        dtype = NUMPY_TYPES[out["datatype"]]
        size = (out.get("parameters") or {}).get("binary_data_size")
        if size is None:
            array = np.asarray(out["data"], dtype=dtype)
        else:
            array = np.frombuffer(
                body, dtype=dtype.newbyteorder("<"), count=size // dtype.itemsize, offset=offset
            )
            offset += size
        outputs[out["name"]] = array.reshape(out["shape"])
    return outputs
