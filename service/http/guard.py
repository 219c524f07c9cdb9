"""Slow-client guard at the connection level: uvicorn's HTTP protocol with read deadlines.

uvicorn only times out connections *between* requests (keep-alive, armed after a response), so
a client that connects and sends nothing, never finishes its headers, or trickles its body holds
its connection (and one of `limit_concurrency` slots) forever. Here each connection records when
it started waiting for a request and how far its body got; one sweep per event loop, every
`_SWEEP_S`, closes those past their deadline:

- headers: a request's headers must be complete within `header_timeout_s` of the connection
  opening or of the previous response (bytes trickling in do not extend it);
- body: it must keep up a minimum rate: `header_timeout_s` of grace plus one second for every
  `min_rate` bytes received, and never longer than `body_cap_s` in all.

The sweep also closes keep-alive connections idle past `keep_alive_s` (uvicorn's
`timeout_keep_alive`), in place of the timer uvicorn arms after every response and cancels when
the next request arrives (a libuv timer created and torn down per request, ≈ 3 % of the event
loop's time for `cnn`). So the hot path pays a few attribute writes per request and a counter
per body chunk: no timer is armed or cancelled per request; the sweep walks the open connections
(at most the concurrency limit) a few times a second. A client cut off mid-request gets a JSON
408 when no response has started; the app then sees `http.disconnect` for its pending
`receive()`.

A client that disconnects while its request waits in a batcher's queue cancels that request's
ticket (`PENDING_KEY` in the scope): the batcher skips it when it forms the next batch.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from service.batching.ticket import Ticket
from service.http.state import PENDING_KEY

log = logging.getLogger("service.http")

_SWEEP_S = 0.5
_IDLE = "idle keep-alive connection"


def _timeout_response(message: str) -> bytes:
    body = b'{"error":"' + message.encode() + b'"}'
    return (
        b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
        b"connection: close\r\ncontent-length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """HttpToolsProtocol with header and body read deadlines; configure with `configured()`."""

    header_timeout_s = 5.0
    keep_alive_s = 5.0  # idle between requests, no byte of the next one yet: closed silently
    min_rate = 16 * 1024  # bytes a second a body must keep up after the grace period
    body_cap_s = 30.0
    _sweeping: ClassVar[set[asyncio.AbstractEventLoop]] = set()  # loops with a sweep running

    # When the connection started waiting for a request's headers (None: not waiting), whether
    # any byte of that request came, when its body started (None: no body being read), how
    # many body bytes came, and how many requests are between headers and response.
    _idle_since: float | None
    _begun: bool
    _body_since: float | None
    _body_bytes: int
    _in_flight: int

    @classmethod
    def configured(
        cls,
        header_timeout_s: float,
        min_rate: int,
        body_cap_s: float,
        keep_alive_s: float | None = None,
        **attributes: Any,
    ) -> type[GuardedHttpToolsProtocol]:
        """A subclass with these deadlines (and any further class attributes a subclass has);
        `keep_alive_s` defaults to the header timeout."""
        attributes.update(
            header_timeout_s=header_timeout_s,
            min_rate=min_rate,
            body_cap_s=body_cap_s,
            keep_alive_s=header_timeout_s if keep_alive_s is None else keep_alive_s,
        )
        return type(cls.__name__, (cls,), attributes)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._idle_since = self.loop.time()
        self._begun = False
        self._body_since = None
        self._body_bytes = 0
        self._in_flight = 0
        if self.loop not in self._sweeping:
            self._sweeping.add(self.loop)
            self.loop.call_later(_SWEEP_S, _sweep, self.loop, self.connections)

    def connection_lost(self, exc: Exception | None) -> None:
        # The client is gone: a request of its still waiting in a batcher's queue is dropped
        # from it (the ticket the app registered in its scope), nothing computes for nobody.
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            pending: Ticket[Any] | None = cycle.scope.get(PENDING_KEY)  # type: ignore[assignment]
            if pending is not None and not pending.done():
                pending.cancel()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._begun = True

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        self._headers_arrived()

    def on_body(self, body: bytes) -> None:
        super().on_body(body)
        self._body_bytes += len(body)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._body_since = None

    def on_response_complete(self) -> None:
        # uvicorn's own, less its keep-alive timer: `overdue` applies that deadline.
        self.server_state.total_requests += 1
        if not self.transport.is_closing():
            self.flow.resume_reading()
            if self.pipeline:
                cycle, app = self.pipeline.pop()
                self._start_asgi_task(cycle, app)
        self._in_flight -= 1
        if self._in_flight <= 0:
            self._in_flight = 0
            self._idle_since = self.loop.time()

    def _headers_arrived(self) -> None:
        """The header deadline is met; the body's starts (subclasses answering a request
        themselves call this in place of `on_headers_complete`)."""
        self._in_flight += 1
        self._idle_since = None
        self._begun = False
        self._body_since = self.loop.time()
        self._body_bytes = 0

    def overdue(self, now: float) -> str | None:
        """Why this connection is past a deadline, or None."""
        if self._body_since is not None:
            waited = now - self._body_since
            if waited > self.body_cap_s:
                return f"request body not received within {self.body_cap_s:g} s"
            if waited > self.header_timeout_s + self._body_bytes / self.min_rate:
                return (
                    f"request body too slow: {self._body_bytes} bytes in {waited:.1f} s "
                    f"(at least {self.min_rate} bytes a second are needed)"
                )
        elif self._idle_since is not None:
            idle = now - self._idle_since
            if self._begun and idle > self.header_timeout_s:
                return f"request headers not received within {self.header_timeout_s:g} s"
            if not self._begun and idle > min(self.keep_alive_s, self.header_timeout_s):
                return _IDLE
        return None

    def cut_off(self, reason: str) -> None:
        if self.transport.is_closing():
            return
        cycle = self.cycle
        if self._body_since is not None and cycle is not None and not cycle.response_started:
            # The app sees http.disconnect for its pending receive() and its reply is dropped.
            cycle.disconnected = True
            self.transport.write(_timeout_response(reason))
        elif self._begun:  # part of a request's headers came: tell the client why
            self.transport.write(_timeout_response(reason))
        if reason is not _IDLE:  # the ordinary end of a keep-alive connection is not news
            log.info("closing a slow connection from %s: %s", self.client, reason)
        self.transport.close()


def _sweep(loop: asyncio.AbstractEventLoop, connections: set[Any]) -> None:
    now = loop.time()
    for connection in list(connections):
        if isinstance(connection, GuardedHttpToolsProtocol):
            reason = connection.overdue(now)
            if reason is not None:
                connection.cut_off(reason)
    if not loop.is_closed():
        loop.call_later(_SWEEP_S, _sweep, loop, connections)
