"""A steady open-loop load in a background thread that records, for every request, when it was
due, when it was answered and which model version answered: what the lifecycle benchmark and the
rollout tests (canary, shadow, retrain under load, S3 outages) read their zero-failure and
split figures from. The requests themselves are sent by benchmarks/openloop.py."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import uvloop

from benchmarks.bodies import http_request
from benchmarks.openloop import LOST, OpenLoop

# An answer's check: returns what is wrong with it, or None.
Check = Callable[[dict[str, Any]], str | None]


@dataclass(frozen=True)
class Record:
    """One request: monotonic due time (its latency counts from there) and answer time, the
    version that answered (0: none), what was wrong (None: nothing)."""

    start: float
    end: float
    version: int
    error: str | None


class LoadPool:
    """Requests at `rps` a second in total over `workers` keep-alive connections, on a constant
    schedule whatever the server does (benchmarks/openloop.py, in a background thread),
    recording every request: its due time, its answer's time, the version that answered."""

    def __init__(
        self,
        url: str,
        model: str,
        bodies: Sequence[bytes],
        *,
        rps: float,
        workers: int = 16,
        check: Check | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        host, port = url.removeprefix("http://").rsplit(":", 1)
        path = f"/v2/models/{model}/infer"
        requests = [http_request(path, body, extra_headers=headers) for body in bodies]
        self.rps = rps
        self.workers = workers
        self.check = check
        # Appended by the load thread only; list.append is atomic, readers take slices.
        self.records: list[Record] = []
        self._load = OpenLoop(host, int(port), requests, rate=rps, connections=workers,
                              on_answer=self._answered, record=False)  # fmt: skip
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> LoadPool:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> list[Record]:
        if not self._stop.is_set():
            self._stop.set()
            self._thread.join(60)
        return self.records

    def _run(self) -> None:
        uvloop.run(self._load.run(None, stop=self._stop))
        now = time.monotonic()
        for index, due in self._load.backlog:  # still due when the answers stopped coming
            self.records.append(Record(due, now, 0, f"request {index} never sent"))

    def _answered(self, index: int, status: int, head: bytes, body: bytes, due: float,
                  sent: float, done: float) -> None:  # fmt: skip
        version, error = self._judge(status, body)
        self.records.append(Record(due, done, version, error))

    def _judge(self, status: int, body: bytes) -> tuple[int, str | None]:
        if status == LOST:
            return 0, "transport: the connection was lost"
        if status != 200:
            return 0, f"status {status}: {body[:200]!r}"
        try:
            doc = orjson.loads(body)
            version = int(doc["model_version"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return 0, f"no model_version in {body[:200]!r}"
        problem = self.check(doc) if self.check else None
        return version, None if problem is None else f"v{version}: {problem}"

    def first_served(self, version: int, since: float, timeout: float) -> float:
        """The end time of the first answer from `version` to a request due after `since`."""
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            records = self.records[seen:]
            seen += len(records)
            for r in records:
                if r.version == version and r.start >= since:
                    return r.end
            if time.monotonic() > deadline:
                raise TimeoutError(f"version {version} not served within {timeout} s")
            time.sleep(0.02)

    def served_since(self, since: float) -> set[int]:
        return {r.version for r in self.records if r.start >= since and r.version}
