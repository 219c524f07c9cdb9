"""The access log: one JSON line per inference request (INDUCTIVE_ACCESS_LOG=true), or per
sampled request (INDUCTIVE_ACCESS_LOG_SAMPLE_RATE).

A line, in this key order:

    {"time": "2026-12-01T10:00:00.123Z", "request_id": "…", "trace_id": "…" | null,
     "client": "10.0.0.7:51234" | null, "protocol": "http" | "grpc", "model": "cnn",
     "version": 3 | null, "status": 200, "bytes_in": 3136, "bytes_out": 412,
     "queue_ms": 1.204, "compute_ms": 2.551, "total_ms": 4.12, "batch_size": 8}

`time` is when the request's head was read; `queue_ms` from queued to its batch starting,
`compute_ms` the batch in the worker thread, `total_ms` head to response written; the three and
`batch_size` are null for a request refused before it ran. `status` is the HTTP status (also
for gRPC, whose status derives from it), 499 when the client went away before its answer.

Lines are written by a thread of their own, a buffer at a time: the event loop only appends a
line to a list, and hands the list over at most every `FLUSH_S` (a slow stdout pipe then slows a
thread, never the requests). At exit what is buffered is written.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import random
import threading
import time
from queue import SimpleQueue
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from service.inference.call import InferCall

FLUSH_S = 0.2


class AccessLogConfigError(Exception):
    """The access log cannot be written where the settings say; start-up stops with this."""


class LineWriter:
    """Lines to a file descriptor from a thread, handed over in buffers."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._lines: list[bytes] = []
        self._timer: asyncio.TimerHandle | None = None
        self._buffers: SimpleQueue[bytes | None] = SimpleQueue()
        self._thread = threading.Thread(target=self._write, name="access-log", daemon=True)
        self._thread.start()
        self._closed = False
        atexit.register(self.close)

    def add(self, line: bytes) -> None:
        self._lines.append(line)
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(FLUSH_S, self.flush)

    def flush(self) -> None:
        self._timer = None
        lines, self._lines = self._lines, []
        if lines:
            self._buffers.put(b"".join(lines))

    def close(self) -> None:
        """Writes what is buffered and stops the thread; idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
        self.flush()
        self._buffers.put(None)
        self._thread.join(timeout=5)

    def _write(self) -> None:
        while (buffer := self._buffers.get()) is not None:
            view = memoryview(buffer)
            try:
                while view:
                    view = view[os.write(self._fd, view) :]
            except OSError:  # the reader went away: the log has nowhere to go
                continue


class AccessLog:
    def __init__(self, writer: LineWriter, sample_rate: float) -> None:
        self._writer = writer
        self._rate = sample_rate
        # perf_counter seconds → Unix seconds, for each line's `time`.
        self._epoch = time.time() - time.perf_counter()
        self._second = -1  # the whole second `_prefix` spells
        self._prefix = ""

    def sampled(self) -> bool:
        """Whether the next request is logged: decided when it starts, so that only logged
        requests pay for a request id of their own."""
        rate = self._rate
        return rate >= 1.0 or random.random() < rate  # noqa: S311 (sampling, not secrets)

    def record(self, call: InferCall, trace_id: str | None, ended: float) -> None:
        served = call.served
        ticket = call.ticket
        run = None if ticket is None else ticket.run
        entry: dict[str, Any] = {
            "time": self._time(self._epoch + call.started),
            "request_id": call.rid,
            "trace_id": trace_id,
            "client": _address(call.client),
            "protocol": call.protocol,
            "model": call.name[:200],
            "version": None if served is None else served.version,
            "status": call.status,
            "bytes_in": call.bytes_in,
            "bytes_out": call.bytes_out,
            "queue_ms": None,
            "compute_ms": None,
            "total_ms": _ms(ended - call.started),
            "batch_size": None,
        }
        if run is not None:
            if call.queued_at is not None:
                entry["queue_ms"] = _ms(max(run.started - call.queued_at, 0.0))
            entry["compute_ms"] = _ms(run.ended - run.started)
            entry["batch_size"] = run.samples
        self._writer.add(orjson.dumps(entry) + b"\n")

    def _time(self, unix: float) -> str:
        """ISO 8601 in UTC to the millisecond; the date and time to the second are formatted
        once a second (datetime's isoformat per line cost more than the rest of the line)."""
        second = int(unix)
        if second != self._second:
            self._second = second
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._prefix}.{int((unix - second) * 1000):03d}Z"

    def close(self) -> None:
        self._writer.close()


def _ms(seconds: float) -> float:
    """Milliseconds to the microsecond (a third of what round() costs)."""
    return int(seconds * 1e6) / 1000


def _address(client: tuple[str, int] | str | None) -> str | None:
    """`host:port`: the HTTP door's peer tuple, or gRPC's peer string (`ipv4:10.0.0.7:5123`)."""
    if isinstance(client, tuple):
        host, port = client
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if client is not None:
        for scheme in ("ipv4:", "ipv6:"):
            if client.startswith(scheme):
                return client[len(scheme) :]
    return client


def trace_id_of(traceparent: str | None) -> str | None:
    """The trace id of a W3C traceparent (`00-<32 hex>-<16 hex>-<2 hex>`), None when it has
    none or is malformed: what the access log shows while tracing is off."""
    if traceparent is None or len(traceparent) < 55 or traceparent[2] != "-":
        return None
    trace_id = traceparent[3:35].lower()
    if traceparent[35] != "-" or trace_id == "0" * 32:
        return None
    try:
        int(trace_id, 16)
    except ValueError:
        return None
    return trace_id
