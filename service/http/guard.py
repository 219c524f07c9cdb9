"""Slow-client deadlines for every connection, kept by one sweep per event loop.

A connection records when it started waiting for what (`Watch`); `Sweep` walks the open
connections every `SWEEP_S` and cuts off those past a deadline:

- headers: a request's head must be complete within `header_s` of the connection opening or of
  the previous response (bytes trickling in do not extend it); a connection idle between
  requests, with no byte of the next one, is closed silently after `keep_alive_s`;
- body: it must keep up a minimum rate: `header_s` of grace plus one second for every
  `min_rate` bytes received, and never longer than `body_cap_s` in all;
- send: a client that takes none of its responses' bytes (the connection's send buffer stays
  above its high-water mark, or a close cannot flush what is left) is cut off after `send_s`;
- linger: after an early error the connection reads and discards for at most `linger_s`.

While the server itself holds a connection's reading back (its client pipelines requests faster
than they are answered), no read deadline runs: the client is not late. The hot path pays a few
attribute writes per request and no timer: the sweep walks at most the connection limit a few
times a second. It also refreshes the `date` response header once a second.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

SWEEP_S = 0.5
IDLE = "idle keep-alive connection"
STALLED = "the client takes none of its responses"  # cut off at once: nothing can be flushed


@dataclass(frozen=True, slots=True)
class Timeouts:
    header_s: float = 5.0
    keep_alive_s: float = 5.0
    min_rate: int = 16 * 1024  # bytes a second a body must keep up after the grace period
    body_cap_s: float = 30.0
    send_s: float = 30.0
    linger_s: float = 10.0


class Watch:
    """A connection's clocks (event-loop time); None where nothing is awaited."""

    __slots__ = (
        "begun",
        "body_bytes",
        "body_since",
        "closing_since",
        "idle_since",
        "linger_until",
        "send_since",
    )  # fmt: skip

    def __init__(self, now: float) -> None:
        self.idle_since: float | None = now  # waiting for a request's head since
        self.begun = False  # a byte of that head came
        self.body_since: float | None = None  # reading a request body since
        self.body_bytes = 0
        self.send_since: float | None = None  # the send buffer above its high-water mark since
        self.linger_until: float | None = None  # discarding what the client sends until
        self.closing_since: float | None = None  # closed, flushing what is left, since

    def overdue(self, now: float, limits: Timeouts, reading_held: bool) -> str | None:
        """Why the connection is past a deadline, or None."""
        if self.closing_since is not None:
            return STALLED if now - self.closing_since > limits.send_s else None
        if self.linger_until is not None:
            return "lingering over" if now > self.linger_until else None
        if self.send_since is not None and now - self.send_since > limits.send_s:
            return STALLED
        if reading_held:
            return None
        if self.body_since is not None:
            waited = now - self.body_since
            if waited > limits.body_cap_s:
                return f"request body not received within {limits.body_cap_s:g} s"
            if waited > limits.header_s + self.body_bytes / limits.min_rate:
                return (
                    f"request body too slow: {self.body_bytes} bytes in {waited:.1f} s "
                    f"(at least {limits.min_rate} bytes a second are needed)"
                )
        elif self.idle_since is not None:
            idle = now - self.idle_since
            if self.begun and idle > limits.header_s:
                return f"request headers not received within {limits.header_s:g} s"
            if not self.begun and idle > min(limits.keep_alive_s, limits.header_s):
                return IDLE
        return None


class Watched(Protocol):
    watch: Watch

    def overdue(self, now: float) -> str | None: ...

    def cut_off(self, reason: str) -> None: ...


class Sweep:
    """The periodic walk over one event loop's connections; started by the first connection."""

    def __init__(self, connections: Iterable[Watched], on_date: Callable[[float], None]) -> None:
        self._connections = connections
        self._on_date = on_date
        self._loop: asyncio.AbstractEventLoop | None = None
        self._second = -1

    def ensure_running(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._loop is not loop:
            self._loop = loop
            self._tick()

    def _tick(self) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        wall = time.time()
        if int(wall) != self._second:
            self._second = int(wall)
            self._on_date(wall)
        now = loop.time()
        for connection in list(self._connections):
            reason = connection.overdue(now)
            if reason is not None:
                connection.cut_off(reason)
        loop.call_later(SWEEP_S, self._tick)
