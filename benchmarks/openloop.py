"""Open-loop load: requests arrive at a constant rate whatever the server does, and each one's
latency counts from the moment it was due, not from when a free connection could send it.

A closed loop (wrk) sends a connection's next request only after the previous answer, so a
server that stalls also stalls the clock of every request it delays: one 200 ms stall shows in
one latency per connection (coordinated omission). Here request i is due at t0 + i / rate; it
goes out at once on a free keep-alive connection or, when every connection is busy, waits in
the client's queue, and its latency still counts from t0 + i / rate. A 200 ms stall at 500 req/s
shows in the hundred requests due during it.

The generator checks that it held its rate: each request's send lag (sent − due) is recorded,
apart for those that waited for a connection (the server was behind) and those that did not
(the generator's own precision), with the generator's CPU use. Timers on the event loop are
millisecond-grained, so the last 2 ms before a due time are spent polling the loop (its I/O
keeps running): the load core is busy while a run lasts, and sends are on time to within tens
of microseconds.

The command (and `run_open_loop`) primes its connections first: one request on each, answered
and not counted, then 0.2 s of quiet, so that the server has accepted every connection before
the first request is due.

Python with uvloop and prepared request bytes (no HTTP library) costs a few tens of µs a request
on the load core: tens of thousands of requests a second, far above what one server core
answers here.

    python -m benchmarks.openloop --url http://127.0.0.1:8000 --rate 2000 --seconds 10 \
        [--connections 256] [--latencies out.npz] REQUEST_FILE [REQUEST_FILE ...]

prints one JSON line (`OpenLoopResult`); `run_open_loop` runs it pinned to the load core.
`OpenLoop` is also used in-process: `LoadPool` in benchmarks/lifecycle_e2e.py checks every
answer through its `on_answer` hook.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import resource
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np

_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)", re.IGNORECASE)
_CHUNKED = re.compile(rb"\r\ntransfer-encoding:[ \t]*chunked", re.IGNORECASE)
_CLOSE = re.compile(rb"\r\nconnection:[ \t]*close", re.IGNORECASE)
SPIN_S = 0.002  # poll the loop instead of sleeping this close to a due time
IDLE_CLOSE_S = 1.0  # an idle connection is replaced before a server's keep-alive timeout
LOST = 0  # the status recorded for a request whose connection failed
PRIME_PAUSE_S = 0.2  # between the priming requests' answers and the schedule's start

# Called with (request index, status, response head, body, due, sent, answered); may be None.
AnswerHook = Callable[[int, int, bytes, bytes, float, float, float], None]


@dataclass(frozen=True)
class OpenLoopResult:
    rate: float  # intended requests per second
    seconds: float  # length of the schedule
    scheduled: int
    sent_rate: float  # requests sent per second, from the start to the last send
    answered: int
    ok: int  # 2xx answers
    statuses: dict[str, int]  # answers by HTTP status; "0": connection lost
    unanswered: int  # still due or in flight when the drain time ran out
    latency_ms: dict[str, float]  # of 2xx answers, from the due time
    service_ms: dict[str, float]  # of 2xx answers, from the send (what a closed loop reports)
    send_lag_ms: dict[str, float]  # sent − due, requests that found a free connection
    queued: int  # requests that waited for a free connection (the server was behind)
    queued_lag_ms: dict[str, float]  # sent − due of those
    connections: int
    client_cpu: float  # load-generator CPU seconds per second of the run

    @property
    def errors(self) -> int:
        return self.answered - self.ok + self.statuses.get("0", 0) + self.unanswered

    @property
    def held(self) -> bool:
        """The rate was offered in full and every request got a 2xx answer."""
        return self.errors == 0 and self.sent_rate >= 0.98 * self.rate

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "errors": self.errors, "held": self.held}


def percentiles_ms(seconds: np.ndarray) -> dict[str, float]:
    if not len(seconds):
        return {}
    ms = seconds * 1000
    p50, p90, p99, p999 = (float(v) for v in np.percentile(ms, [50, 90, 99, 99.9]))
    return {"p50": p50, "p90": p90, "p99": p99, "p999": p999, "max": float(ms.max())}


class _Connection(asyncio.Protocol):
    """One keep-alive connection: sends a request, reads its whole answer, frees itself."""

    def __init__(self, loop: OpenLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.index = -1  # the request in flight, -1: none
        self.due = self.sent = 0.0
        self.waited = False  # whether it waited in the client's queue for a connection
        self.idle_since = time.monotonic()
        self.closing = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.loop.ready(self)

    def send(self, index: int, due: float, now: float, waited: bool) -> None:
        assert self.transport is not None
        self.index, self.due, self.sent, self.waited = index, due, now, waited
        self.transport.write(self.loop.requests[index % len(self.loop.requests)])

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer + data if self.buffer else data
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            self.buffer = buffer
            return
        length = _LENGTH.search(buffer, 0, end + 2)
        if length is not None:
            total = end + 4 + int(length.group(1))
        elif _CHUNKED.search(buffer, 0, end + 2):
            total = _chunked_end(buffer, end + 4)
        else:
            total = end + 4
        if total < 0 or len(buffer) < total:
            self.buffer = buffer
            return
        now = time.monotonic()
        self.buffer = b""
        index, self.index = self.index, -1
        head = buffer[:end]
        self.loop.answered(index, int(head[9:12]), head, buffer[end + 4 : total], self, now)
        if _CLOSE.search(head) and self.transport is not None:
            self.closing = True
            self.transport.close()
        else:
            self.idle_since = now
            self.loop.ready(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.loop.lost(self)


def _chunked_end(buffer: bytes, pos: int) -> int:
    """Where a chunked body that starts at `pos` ends, or -1 while it is incomplete."""
    while True:
        line_end = buffer.find(b"\r\n", pos)
        if line_end < 0:
            return -1
        size = int(buffer[pos:line_end].split(b";")[0], 16)
        pos = line_end + 2 + size + 2
        if size == 0:  # no trailers expected; the last chunk's CRLF ends the body
            return pos if len(buffer) >= pos else -1
        if len(buffer) < pos:
            return -1


class OpenLoop:
    """Requests `requests` (whole HTTP/1.1 requests, cycled) at `rate` a second over
    `connections` keep-alive connections to host:port."""

    def __init__(
        self,
        host: str,
        port: int,
        requests: Sequence[bytes],
        *,
        rate: float,
        connections: int,
        on_answer: AnswerHook | None = None,
        record: bool = True,
        prime: bool = False,
    ) -> None:
        if rate <= 0 or connections < 1 or not requests:
            raise ValueError("a positive rate, one connection or more and a request are needed")
        self.host, self.port = host, port
        self.requests = list(requests)
        self.rate = rate
        self.connections = connections
        self.on_answer = on_answer
        self.record = record
        self.prime = prime
        self._priming = False  # answers to the priming requests are neither recorded nor hooked
        self.free: deque[_Connection] = deque()
        self.open: set[_Connection] = set()
        self.backlog: deque[tuple[int, float]] = deque()
        self.in_flight = 0
        # Per answered request: due, sent, answered (monotonic s), status, waited for a connection.
        self.due: list[float] = []
        self.sent: list[float] = []
        self.done: list[float] = []
        self.status: list[int] = []
        self.waited: list[bool] = []
        self.scheduled = 0
        self._aio: asyncio.AbstractEventLoop | None = None
        self._closing = False

    # --- connections --------------------------------------------------------------------------

    async def _connect(self) -> None:
        assert self._aio is not None
        try:
            await self._aio.create_connection(lambda: _Connection(self), self.host, self.port)
        except OSError:
            self._record(-1, LOST, 0.0, 0.0, time.monotonic(), False)
            await asyncio.sleep(0.05)  # the server refuses: retry soon, without spinning
            if not self._closing:
                self._aio.create_task(self._connect())

    def ready(self, connection: _Connection) -> None:
        self.open.add(connection)
        if self.backlog:
            index, due = self.backlog.popleft()
            self._send(connection, index, due, time.monotonic(), waited=True)
        else:
            self.free.append(connection)

    def _send(
        self, connection: _Connection, index: int, due: float, now: float, waited: bool
    ) -> None:
        self.in_flight += 1
        connection.send(index, due, now, waited)

    def answered(
        self, index: int, status: int, head: bytes, body: bytes, connection: _Connection, now: float
    ) -> None:
        self.in_flight -= 1
        if self._priming:
            return
        self._record(index, status, connection.due, connection.sent, now, connection.waited)
        if self.on_answer is not None:
            self.on_answer(index, status, head, body, connection.due, connection.sent, now)

    def _record(
        self, index: int, status: int, due: float, sent: float, now: float, waited: bool
    ) -> None:
        if self.record:
            self.due.append(due)
            self.sent.append(sent)
            self.done.append(now)
            self.status.append(status)
            self.waited.append(waited)

    def lost(self, connection: _Connection) -> None:
        self.open.discard(connection)
        if connection in self.free:
            self.free.remove(connection)
        if connection.index >= 0:  # a request was in flight: it is lost
            self.in_flight -= 1
            if self._priming:
                connection.index = -1
                self._reconnect()
                return
            now = time.monotonic()
            self._record(connection.index, LOST, connection.due, connection.sent, now, False)
            if self.on_answer is not None:
                self.on_answer(
                    connection.index, LOST, b"", b"", connection.due, connection.sent, now
                )
        self._reconnect()

    def _reconnect(self) -> None:
        if not self._closing and self._aio is not None:
            self._aio.create_task(self._connect())

    async def _sweep_idle(self) -> None:
        """Replaces connections idle for IDLE_CLOSE_S: a server closes idle keep-alive
        connections after its own timeout, and a request sent just as it does would be lost."""
        while not self._closing:
            await asyncio.sleep(IDLE_CLOSE_S / 2)
            now = time.monotonic()
            for connection in [c for c in self.free if now - c.idle_since > IDLE_CLOSE_S]:
                self.free.remove(connection)
                if connection.transport is not None:
                    connection.transport.close()  # connection_lost opens its replacement

    async def _prime_connections(self, timeout_s: float = 30.0) -> None:
        """One request on every connection, answered before the schedule starts: a connection
        the client has opened may not have been accepted by the server yet, and 256 accepts
        while the first requests are due are a start-up burst that a server near its capacity
        carries as a backlog through the whole run. Then a pause, so the schedule starts on an
        idle server."""
        self._priming = True
        now = time.monotonic()
        for index, connection in enumerate(list(self.free)):
            self.free.remove(connection)
            self._send(connection, index, now, now, waited=False)
        deadline = now + timeout_s
        while self.in_flight and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        self._priming = False
        await asyncio.sleep(PRIME_PAUSE_S)

    # --- the schedule -------------------------------------------------------------------------

    async def run(
        self, seconds: float | None, stop: threading.Event | None = None, drain_s: float = 30.0
    ) -> float:
        """Sends on schedule for `seconds` (or until `stop` is set), then waits up to
        `drain_s` for the answers still due; returns the schedule's start (monotonic s)."""
        self._aio = asyncio.get_running_loop()
        await asyncio.gather(*(self._connect() for _ in range(self.connections)))
        if self.prime:
            await self._prime_connections()
        sweeper = self._aio.create_task(self._sweep_idle())
        interval = 1.0 / self.rate
        start = time.monotonic() + 0.01
        total = int(seconds * self.rate) if seconds is not None else sys.maxsize
        index = 0
        clock = time.monotonic
        while index < total and not (stop is not None and stop.is_set()):
            now = clock()
            while index < total and start + index * interval <= now:
                due = start + index * interval
                if self.free:
                    self._send(self.free.popleft(), index, due, now, waited=False)
                else:
                    self.backlog.append((index, due))
                index += 1
            wait = start + index * interval - clock()
            if wait > SPIN_S:
                await asyncio.sleep(wait - SPIN_S / 2)
            else:
                await asyncio.sleep(0)  # poll: answers keep being read meanwhile
        self.scheduled = index
        deadline = clock() + drain_s
        while (self.backlog or self.in_flight) and clock() < deadline:
            await asyncio.sleep(0.005)
        self._closing = True
        sweeper.cancel()
        for connection in list(self.open):
            if connection.transport is not None:
                connection.transport.close()
        await asyncio.sleep(0.01)  # their connection_lost callbacks record what was in flight
        return start

    def result(self, start: float, seconds: float, cpu_s: float, wall_s: float) -> OpenLoopResult:
        due, sent, done = (np.asarray(a) for a in (self.due, self.sent, self.done))
        status = np.asarray(self.status, dtype=np.int64)
        waited = np.asarray(self.waited, dtype=bool)
        ok = (status >= 200) & (status < 300)
        counts = {str(s): int((status == s).sum()) for s in sorted(set(self.status))}
        answered = int((status != LOST).sum())
        # Sends per second from the schedule's start to the last send (or its end): requests
        # due at the very end may go out a little after it; a generator or server that fell
        # behind sends its backlog long after it.
        sends = sent[sent > 0]
        span = max(seconds, float(sends.max()) - start) if len(sends) else seconds
        return OpenLoopResult(
            rate=self.rate,
            seconds=seconds,
            scheduled=self.scheduled,
            sent_rate=len(sends) / span if span else 0.0,
            answered=answered,
            ok=int(ok.sum()),
            statuses=counts,
            unanswered=len(self.backlog) + self.in_flight,
            latency_ms=percentiles_ms(done[ok] - due[ok]),
            service_ms=percentiles_ms(done[ok] - sent[ok]),
            send_lag_ms=percentiles_ms((sent - due)[~waited & (status != LOST)]),
            queued=int(waited.sum()),
            queued_lag_ms=percentiles_ms((sent - due)[waited]),
            connections=self.connections,
            client_cpu=cpu_s / wall_s if wall_s else 0.0,
        )


def drive(
    url: str, requests: Sequence[bytes], *, rate: float, seconds: float, connections: int
) -> tuple[OpenLoopResult, OpenLoop]:
    """Runs one open-loop load in this process (on uvloop), its connections primed, and
    returns its result."""
    import uvloop

    host, port = url.removeprefix("http://").split("/")[0].rsplit(":", 1)
    load = OpenLoop(host, int(port), requests, rate=rate, connections=connections, prime=True)
    cpu0, wall0 = _cpu_seconds(), time.monotonic()
    start = uvloop.run(load.run(seconds))
    return load.result(start, seconds, _cpu_seconds() - cpu0, time.monotonic() - wall0), load


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_open_loop(
    url: str,
    request_files: Sequence[Path],
    *,
    rate: float,
    seconds: float,
    connections: int,
    core: int | str | None,
    latencies: Path | None = None,
) -> OpenLoopResult:
    """`python -m benchmarks.openloop` pinned to `core`: the load generator's own process, so
    that the harness running it shares nothing with it."""
    argv = [
        *(["taskset", "-c", str(core)] if core is not None else []),
        *(sys.executable, "-m", "benchmarks.openloop", "--url", url),
        *("--rate", f"{rate:g}", "--seconds", f"{seconds:g}", "--connections", str(connections)),
        *(["--latencies", str(latencies)] if latencies else []),
        *(str(p) for p in request_files),
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 90, check=False)
    if done.returncode != 0:
        raise RuntimeError(
            f"the open-loop generator failed ({done.returncode}):\n{done.stderr[-2000:]}"
        )
    doc = json.loads(done.stdout.strip().splitlines()[-1])
    doc.pop("errors"), doc.pop("held")
    return OpenLoopResult(**doc)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.openloop", description=__doc__)
    parser.add_argument("--url", required=True, help="http://host:port (the path is in the files)")
    parser.add_argument("--rate", type=float, required=True, help="requests per second")
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--connections", type=int, default=256)
    parser.add_argument("--latencies", type=Path, help="write due/sent/done/status arrays (.npz)")
    parser.add_argument("requests", type=Path, nargs="+", help="request files (bodies.py)")
    args = parser.parse_args(argv)
    requests = [path.read_bytes() for path in args.requests]
    result, load = drive(
        args.url, requests, rate=args.rate, seconds=args.seconds, connections=args.connections
    )
    if args.latencies:
        np.savez(args.latencies, due=load.due, sent=load.sent, done=load.done, status=load.status)
    print(json.dumps(result.to_dict()))


if __name__ == "__main__":
    main()
