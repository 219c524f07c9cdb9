"""uvicorn as the process runner: event loop, lifespan, listening socket, signals, shutdown.

HTTP itself is ours (connection.py); uvicorn only runs the process around it. What this relies on
from uvicorn, all of it checked by tests/service/test_uvicorn_contract.py (pinned to the minor
release range it was tested with in pyproject.toml):

- `uvicorn.Config(app, http=<factory>, ...)` takes any callable as the HTTP protocol factory, and
  `uvicorn.Server` calls it per connection as `factory(config=, server_state=, app_state=,
  _loop=)`, `app_state` being the lifespan's state;
- `Server.server_state.connections` and `.tasks`: the sets whose members `Server.shutdown` waits
  for, after calling `shutdown()` on every connection (ours close once their response is out);
- `Server.handle_exit(sig, frame)`, `.should_exit`, `.force_exit`, `.started`, `.serve()`,
  `.run()` and `Config.timeout_graceful_shutdown`, for the drain below.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import sys
from types import FrameType
from typing import Any

import uvicorn

from service.http.connection import HttpConnection
from service.http.service import HttpService
from service.settings import Settings

log = logging.getLogger("service")


def protocol_factory(service: HttpService) -> Any:
    """What `uvicorn.Config(http=...)` takes: a connection of ours per accepted socket."""

    def create(
        config: uvicorn.Config,
        server_state: Any,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> HttpConnection:
        return HttpConnection(service, app_state)

    return create


class DrainingServer(uvicorn.Server):
    """uvicorn, with SIGTERM/SIGINT draining the app before the listener closes."""

    def __init__(
        self, config: uvicorn.Config, service: HttpService, grace_s: float, linger_s: float
    ) -> None:
        super().__init__(config)
        self.service = service
        self.grace_s = grace_s
        self.linger_s = linger_s
        self._drain: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        service.bind(self.server_state.connections, self.server_state.tasks)

    async def serve(self, sockets: Any = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # Not recorded in uvicorn's captured signals: it would re-raise SIGTERM after the
        # shutdown and the process would die by the signal instead of exiting 0.
        if self._drain is not None or self._loop is None:
            self.should_exit = True
            self.force_exit = self._drain is not None
            return
        log.info("signal %d: draining (grace %.1f s)", sig, self.grace_s)
        self._loop.call_soon_threadsafe(self._start_drain)

    def _start_drain(self) -> None:
        self._drain = asyncio.get_running_loop().create_task(self._drain_then_exit())

    async def _drain_then_exit(self) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        drained = await self.service.drain(self.grace_s, self.linger_s)
        if not drained:
            log.warning("grace period over with %d requests in flight", self.service.state.inflight)
        # What is left of the grace period bounds uvicorn's own connection shutdown.
        left = self.grace_s - (loop.time() - started)
        self.config.timeout_graceful_shutdown = max(1, int(left))
        self.should_exit = True


def run(settings: Settings, service: HttpService) -> None:
    config = uvicorn.Config(
        service.app,
        host=settings.host,
        port=settings.port,
        loop="uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
        http=protocol_factory(service),
        ws="none",  # no WebSocket is served: our connections refuse every upgrade
        lifespan="on",
        # Neither is needed: no proxy rewriting of client addresses, no Server header.
        proxy_headers=False,
        server_header=False,
        log_config=None,  # our handlers (service/logging.py) already format uvicorn's records
        backlog=2048,
    )
    server = DrainingServer(config, service, settings.shutdown_grace_s, settings.shutdown_delay_s)
    server.run()
    if not server.started:
        sys.exit(3)
