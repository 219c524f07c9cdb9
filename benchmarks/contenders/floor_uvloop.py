"""The floor: the least work a batching HTTP server in Python on uvloop can do per request.

Not a product and not a peer: it checks nothing, counts nothing and has no limits, timeouts or
error answers beyond closing the connection. It exists so the report can say how much of the gap
between a served model and raw ONNX Runtime on one core is Inductive's own and how much any
Python server pays: reading and writing the socket, the event loop, the handoff to a thread.

Binary tensor extension only (what wrk sends for the binary contenders). Per request: the head
is split at the blank line, the JSON header is parsed once per distinct header bytes, the
tensors are cut out of the body with numpy and queued; a thread runs everything queued
(requests of one header shape together, concatenated along axis 0) and writes each answer back
through one `call_soon_threadsafe` per batch. Requests of different shapes (variable-length
sequences) are run in separate groups, unpadded, so for ragged models it does less work than
a server batching them together and is no bound there; it is one for fixed-shape models.

    python benchmarks/contenders/floor_uvloop.py --model model.onnx --name cnn --port 8002
"""

from __future__ import annotations

import argparse
import asyncio
import threading
from collections import defaultdict, deque
from typing import Any

import numpy as np
import onnxruntime as ort
import orjson
import uvloop

_DTYPES = {"FP32": np.float32, "FP16": np.float16, "INT64": np.int64, "INT32": np.int32}
_READY = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"

Tensors = list[tuple[str, np.dtype[Any], tuple[int, ...], int]]  # name, dtype, shape, offset


class Floor:
    def __init__(self, model: str, name: str) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        self.outputs = [o.name for o in self.session.get_outputs()]
        self.name = name
        self.plans: dict[bytes, Tensors] = {}
        self.heads: dict[tuple[Any, ...], bytes] = {}
        self.queue: deque[tuple[bytes, Tensors, np.ndarray, asyncio.Transport]] = deque()
        self.ready = threading.Condition()
        self.loop = asyncio.get_event_loop()
        threading.Thread(target=self.work, daemon=True).start()

    def plan(self, header: bytes) -> Tensors:
        tensors = self.plans.get(header)
        if tensors is None:
            offset = len(header)
            tensors = []
            for t in orjson.loads(header)["inputs"]:
                dtype = np.dtype(_DTYPES[t["datatype"]])
                tensors.append((t["name"], dtype, tuple(t["shape"]), offset))
                offset += t["parameters"]["binary_data_size"]
            self.plans[header] = tensors
        return tensors

    def submit(self, header: bytes, body: bytes, transport: asyncio.Transport) -> None:
        tensors = self.plan(header)
        arrays = [np.ndarray(shape, dtype, body, offset) for _, dtype, shape, offset in tensors]
        with self.ready:
            self.queue.append((header, tensors, arrays, transport))  # type: ignore[arg-type]
            self.ready.notify()

    def work(self) -> None:
        while True:
            with self.ready:
                while not self.queue:
                    self.ready.wait()
                taken = list(self.queue)
                self.queue.clear()
            groups = defaultdict(list)
            for item in taken:
                groups[item[0]].append(item)
            answers = []
            for items in groups.values():
                tensors = items[0][1]
                feeds = {
                    name: np.concatenate([item[2][i] for item in items])
                    for i, (name, *_) in enumerate(tensors)
                }
                values = self.session.run(self.outputs, feeds)
                start = 0
                for _, _, arrays, transport in items:
                    n = arrays[0].shape[0]
                    parts = [v[start : start + n] for v in values]
                    start += n
                    answers.append((transport, self.answer(parts)))
            self.loop.call_soon_threadsafe(deliver, answers)

    def answer(self, parts: list[np.ndarray]) -> bytes:
        key = tuple((p.dtype.str, p.shape) for p in parts)
        head = self.heads.get(key)
        if head is None:
            outputs = [
                {"name": name, "datatype": "FP32" if p.dtype == np.float32 else str(p.dtype),
                 "shape": list(p.shape), "parameters": {"binary_data_size": p.nbytes}}
                for name, p in zip(self.outputs, parts, strict=True)
            ]  # fmt: skip
            header = orjson.dumps({"model_name": self.name, "outputs": outputs})
            length = len(header) + sum(p.nbytes for p in parts)
            head = self.heads[key] = (
                b"HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\n"
                b"content-length: %d\r\ninference-header-content-length: %d\r\n\r\n%s"
                % (length, len(header), header)
            )
        chunks: list[Any] = [head, *(np.ascontiguousarray(p) for p in parts)]
        return b"".join(chunks)


def deliver(answers: list[tuple[asyncio.Transport, bytes]]) -> None:
    for transport, data in answers:
        if not transport.is_closing():
            transport.write(data)


class Connection(asyncio.Protocol):
    floor: Floor

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer + data if self.buffer else data
        while True:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                break
            fields = {}
            for line in buffer[:end].split(b"\r\n")[1:]:
                key, _, value = line.partition(b":")
                fields[key.strip().lower()] = value.strip()
            length = int(fields.get(b"content-length", b"0"))
            if len(buffer) < end + 4 + length:
                break
            is_get = buffer.startswith(b"GET")
            body, buffer = buffer[end + 4 : end + 4 + length], buffer[end + 4 + length :]
            if is_get or not length:
                self.transport.write(_READY)
            else:
                header_length = int(fields[b"inference-header-content-length"])
                self.floor.submit(body[:header_length], body, self.transport)
        self.buffer = buffer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvloop.install()
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    Connection.floor = Floor(args.model, args.name)
    loop.run_until_complete(loop.create_server(Connection, "127.0.0.1", args.port))
    loop.run_forever()


if __name__ == "__main__":
    main()
