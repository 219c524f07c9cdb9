"""What every HTTP connection of the process shares: the inference state, the app for the other
routes, limits, timeouts, the CORS policy, the open connections and their sweep."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from service.http.asgi import App
from service.http.cors import Cors
from service.http.guard import Sweep, Timeouts
from service.http.head_rules import HeadLimits
from service.http.notices import Notices
from service.http.responses import date_line
from service.http.state import AppState

if TYPE_CHECKING:
    from service.http.connection import HttpConnection

log = logging.getLogger("service.http")


class HttpService:
    def __init__(self, state: AppState, app: App, cors: Cors | None) -> None:
        settings = state.settings
        self.state = state
        self.app = app  # the ASGI app answering every route but inference
        self.cors = cors
        self.max_body = settings.max_body_bytes
        self.max_connections = settings.max_connections
        self.linger_max_bytes = settings.linger_max_bytes
        self.head_limits = HeadLimits(
            line=settings.max_header_line_bytes,
            head=settings.max_head_bytes,
            count=settings.max_headers,
        )
        header_s = settings.header_timeout_s or settings.timeout_keep_alive_s
        self.timeouts = Timeouts(
            header_s=header_s,
            keep_alive_s=settings.timeout_keep_alive_s,
            min_rate=settings.body_min_rate,
            body_cap_s=settings.body_timeout_s,
            send_s=settings.send_timeout_s,
            linger_s=settings.linger_s,
        )
        # The open connections and the app's tasks: the process runner's own sets when it has
        # them (`bind`), so that its shutdown sees them.
        self.connections: set[HttpConnection] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        self.draining = False  # every response closes its connection from now on
        self.date = date_line(time.time())
        self.notices = Notices(log)
        self.sweep = Sweep(self.connections, self._set_date)
        rejected = state.metrics.rejected
        self.rejected = {
            status: rejected.labels("http", reason) for status, reason in _REJECTED.items()
        }

    def bind(self, connections: set[Any], tasks: set[asyncio.Task[None]]) -> None:
        self.connections = connections
        self.tasks = tasks
        self.sweep = Sweep(connections, self._set_date)

    def _set_date(self, now: float) -> None:
        self.date = date_line(now)

    async def drain(self, timeout: float, linger: float = 0.0) -> bool:
        """Readiness off, then wait until no inference request is in flight (and at least
        `linger` seconds); True if drained within `timeout`."""
        self.state.manager.begin_drain()
        self.draining = True
        loop = asyncio.get_running_loop()
        start = loop.time()
        deadline = start + timeout
        linger_end = start + min(linger, timeout)
        while (self.state.inflight > 0 or loop.time() < linger_end) and loop.time() < deadline:
            await asyncio.sleep(0.01)
        return self.state.inflight == 0


# Refusals by the connection, as `rejected{reason}` counts them (service/metrics.py).
_REJECTED = {400: "bad_request", 408: "bad_request", 413: "too_large", 414: "bad_request",
             431: "bad_request", 503: "overloaded"}  # fmt: skip
