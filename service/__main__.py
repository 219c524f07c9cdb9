"""`python -m service` / `inductive-serve`: settings from INDUCTIVE_* variables, flags override.

One process, uvicorn with uvloop and httptools when installed. SIGTERM starts a graceful drain:
readiness turns false and new inference requests get 503 at once, everything already accepted or
queued completes, then uvicorn stops — all within `shutdown_grace_s`. A second signal forces exit.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import logging
import sys
from types import FrameType
from typing import Any

import uvicorn
from pydantic import ValidationError

from service.http import create_app
from service.http.app import Gateway
from service.logging import configure
from service.settings import Settings

log = logging.getLogger("service")

# Flag → settings field; the help text comes from the field's description.
_FLAGS = {
    "store": str, "cache_dir": str, "models": str, "model_control_mode": str,
    "poll_interval_s": float, "host": str, "port": int, "providers": str,
    "cuda_device_id": int, "intra_op_threads": int, "precision": str,
    "max_batch_size": int, "max_queue_delay_ms": float, "max_queue_size": int,
    "default_timeout_ms": float, "shutdown_grace_s": float, "shutdown_delay_s": float,
    "log_format": str, "log_level": str, "body_timeout_s": float, "header_timeout_s": float,
    "grpc_port": str,
}  # fmt: skip


def parse_args(argv: list[str] | None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        prog="inductive-serve",
        description="Serve the models of a store over the Open Inference Protocol. Every flag "
        "overrides the INDUCTIVE_* environment variable of the same name.",
    )
    fields = Settings.model_fields
    for name, kind in _FLAGS.items():
        parser.add_argument(
            f"--{name.replace('_', '-')}", dest=name, type=kind, help=fields[name].description
        )
    parser.add_argument(
        "--batching", dest="batching", action=argparse.BooleanOptionalAction, default=None,
        help=fields["batching"].description,
    )  # fmt: skip
    return {k: v for k, v in vars(parser.parse_args(argv)).items() if v is not None}


class DrainingServer(uvicorn.Server):
    """uvicorn, with SIGTERM/SIGINT draining the app before the listener closes."""

    def __init__(
        self, config: uvicorn.Config, gateway: Gateway, grace_s: float, linger_s: float
    ) -> None:
        super().__init__(config)
        self.gateway = gateway
        self.grace_s = grace_s
        self.linger_s = linger_s
        self._drain: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

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
        drained = await self.gateway.drain(self.grace_s, self.linger_s)
        if not drained:
            log.warning("grace period over with %d requests in flight", self.gateway.state.inflight)
        # What is left of the grace period bounds uvicorn's own connection shutdown.
        left = self.grace_s - (loop.time() - started)
        self.config.timeout_graceful_shutdown = max(1, int(left))
        self.should_exit = True


def _http_protocol(settings: Settings, gateway: Gateway) -> str | type[asyncio.Protocol]:
    """httptools with the slow-client guard (service/http/guard.py) and inference answered at
    the connection (service/http/fastpath.py); h11 (with neither) otherwise."""
    if not importlib.util.find_spec("httptools"):
        log.warning("httptools is not installed: h11 without header and body-rate deadlines")
        return "h11"
    from service.http.fastpath import FastInferProtocol

    header_timeout = settings.header_timeout_s or settings.timeout_keep_alive_s
    return FastInferProtocol.configured(
        header_timeout,
        settings.body_min_rate,
        settings.body_timeout_s,
        keep_alive_s=settings.timeout_keep_alive_s,
        state=gateway.state,
    )


def main(argv: list[str] | None = None) -> None:
    try:
        settings = Settings(**parse_args(argv))
    except ValidationError as exc:
        sys.exit(f"invalid settings:\n{exc}")
    configure(settings.log_format, settings.log_level)
    gateway = create_app(settings)
    config = uvicorn.Config(
        gateway,
        host=settings.host,
        port=settings.port,
        loop="uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
        http=_http_protocol(settings, gateway),
        lifespan="on",
        access_log=False,  # one line per request would cost more than a batched inference
        # Neither is needed on the hot path: no proxy rewriting of client addresses (the access
        # log is off) and no Server header.
        proxy_headers=False,
        server_header=False,
        log_config=None,  # our handlers (configure) already format uvicorn's records
        timeout_keep_alive=int(settings.timeout_keep_alive_s),
        # Slow-client protection: cap concurrent connections and pending requests per connection.
        limit_concurrency=4096,
        backlog=2048,
        h11_max_incomplete_event_size=64 * 1024,
    )
    server = DrainingServer(config, gateway, settings.shutdown_grace_s, settings.shutdown_delay_s)
    server.run()
    if not server.started:
        sys.exit(3)


if __name__ == "__main__":
    main()
