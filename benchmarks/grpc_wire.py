"""The Open Inference Protocol's gRPC messages on the wire, for the peers' gRPC front doors.

h2load replays one prepared gRPC request (a `ModelInferRequest` in a gRPC length-prefixed
frame); this module writes that frame from a benchmark sample and reads a `ModelInferResponse`
back to check what a server answered. Protocol Buffers' wire format is small enough to write by
hand for these two messages (field numbers from the protocol's `open_inference_grpc.proto`),
which spares the suite a protobuf code generator. Tensors travel as `raw_input_contents` (raw
little-endian bytes, the protocol's fast form), answers are read raw or typed.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.bodies import DATATYPES, NUMPY_TYPES
from benchmarks.workload import Sample

INFER_PATH = "/inference.GRPCInferenceService/ModelInfer"
# The headers every gRPC call carries over HTTP/2.
HEADERS = ("content-type: application/grpc", "te: trailers")
_VARINT, _FIXED64, _BYTES, _FIXED32 = 0, 1, 2, 5
# InferTensorContents' typed fields (the field number for each datatype a server may answer in).
_TYPED_CONTENTS = {
    1: ("BOOL", _VARINT),
    2: ("INT32", _VARINT),
    3: ("INT64", _VARINT),
    4: ("UINT32", _VARINT),
    5: ("UINT64", _VARINT),
    6: ("FP32", _FIXED32),
    7: ("FP64", _FIXED64),
}


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (strings, bytes, sub-messages, packed numbers)."""
    return _varint(number << 3 | _BYTES) + _varint(len(payload)) + payload


def infer_request(model: str, sample: Sample) -> bytes:
    """A `ModelInferRequest` for `sample` in a gRPC frame (uncompressed flag, big-endian
    length)."""
    message = _field(1, model.encode())
    for name, array in sample.items():
        tensor = _field(1, name.encode()) + _field(2, DATATYPES[array.dtype].encode())
        tensor += _field(3, b"".join(_varint(d) for d in array.shape))
        message += _field(5, tensor)
    for array in sample.values():
        message += _field(
            7, np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<")).tobytes()
        )
    return struct.pack(">BI", 0, len(message)) + message


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def _fields(data: bytes) -> list[tuple[int, int, Any]]:
    """(field number, wire type, value) of each field of a message, in order."""
    pos, fields = 0, []
    while pos < len(data):
        key, pos = _read_varint(data, pos)
        number, kind = key >> 3, key & 7
        value: int | bytes
        if kind == _VARINT:
            value, pos = _read_varint(data, pos)
        elif kind == _BYTES:
            length, pos = _read_varint(data, pos)
            value, pos = data[pos : pos + length], pos + length
        elif kind in (_FIXED32, _FIXED64):
            size = 4 if kind == _FIXED32 else 8
            value, pos = data[pos : pos + size], pos + size
        else:
            raise ValueError(f"unsupported protobuf wire type {kind} (field {number})")
        fields.append((number, kind, value))
    return fields


def _typed(contents: bytes, datatype: str) -> np.ndarray:
    dtype = np.dtype(NUMPY_TYPES[datatype]).newbyteorder("<")
    for number, kind, value in _fields(contents):
        name, wire = _TYPED_CONTENTS.get(number, ("", -1))
        if name != datatype:
            continue
        if kind == _BYTES and wire in (_FIXED32, _FIXED64):  # packed floats
            return np.frombuffer(value, dtype=dtype)
        if kind == _BYTES:  # packed varints
            values, pos = [], 0
            while pos < len(value):
                item, pos = _read_varint(value, pos)
                values.append(item)
            return np.asarray(values, dtype=dtype)
    return np.zeros(0, dtype=dtype)


def infer_response(frame: bytes) -> dict[str, np.ndarray]:
    """Output tensors of a `ModelInferResponse` in a gRPC frame, raw or typed contents."""
    compressed, length = struct.unpack(">BI", frame[:5])
    if compressed:
        raise ValueError("compressed gRPC message")
    fields = _fields(frame[5 : 5 + length])
    outputs, raw = [], []
    for number, _, value in fields:
        if number == 5:
            tensor = {n: v for n, _, v in _fields(value) if n != 3}
            shape = [d for n, _, v in _fields(value) if n == 3 for d in _packed(v)]
            outputs.append((tensor[1].decode(), tensor[2].decode(), shape, tensor.get(5, b"")))
        elif number == 6:
            raw.append(value)
    arrays = {}
    for i, (name, datatype, shape, contents) in enumerate(outputs):
        if i < len(raw):
            dtype = np.dtype(NUMPY_TYPES[datatype]).newbyteorder("<")
            array = np.frombuffer(raw[i], dtype=dtype)
        else:
            array = _typed(contents, datatype)
        arrays[name] = array.reshape(shape)
    return arrays


def _packed(value: bytes | int) -> list[int]:
    if isinstance(value, int):  # an unpacked repeated field: one value per occurrence
        return [value]
    values, pos = [], 0
    while pos < len(value):
        item, pos = _read_varint(value, pos)
        values.append(item)
    return values


def call(port: int, body: Path, timeout_s: float = 30) -> bytes:
    """One gRPC call through `nghttp` (Debian's nghttp2-client, which brings h2load too): the
    answer's DATA bytes, empty when the call failed (a failed call answers with trailers only)."""
    nghttp = shutil.which("nghttp")
    if nghttp is None:
        raise RuntimeError("nghttp is not installed: apt-get install -y nghttp2-client")
    headers = [arg for header in HEADERS for arg in ("-H", header)]
    url = f"http://127.0.0.1:{port}{INFER_PATH}"
    done = subprocess.run(
        [nghttp, *headers, "-d", str(body), url],
        capture_output=True,
        timeout=timeout_s,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"nghttp failed ({done.returncode}): {done.stderr[-500:]!r}")
    return done.stdout
