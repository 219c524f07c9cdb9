"""The application factory: `create_app(settings)` builds everything; nothing exists at import.

The outermost ASGI callable is `Gateway`: it answers inference itself (see `infer.py` for why)
and hands every other request, and the lifespan events, to the FastAPI app.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware

from service.errors import ServiceError
from service.http.infer import handle_infer, parse_infer_path
from service.http.openapi import add_infer_paths
from service.http.routes import health, models, repository, server, statistics
from service.http.routes import metrics as metrics_route
from service.http.state import AppState
from service.lifecycle.manager import ModelManager
from service.metrics import Metrics
from service.settings import Settings

if TYPE_CHECKING:
    from service.grpc.server import GrpcDoor

log = logging.getLogger(__name__)


class Gateway:
    """Raw ASGI: `POST …/infer` here, the rest to FastAPI."""

    def __init__(self, api: FastAPI, state: AppState) -> None:
        self.api = api
        self.state = state
        origins = state.settings.cors_origins
        # CORS wraps the inference route too, so it sits outside the routing; off by default.
        self._entry: Any = (
            self._route
            if not origins
            else CORSMiddleware(
                self._route,  # type: ignore[arg-type]
                allow_origins=origins,
                allow_methods=["GET", "POST"],
                allow_headers=["authorization", "content-type", "inference-header-content-length"],
                expose_headers=["inference-header-content-length"],
            )
        )

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        await self._entry(scope, receive, send)

    async def _route(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            route = parse_infer_path(scope["path"])
            if route is not None:
                await handle_infer(self.state, route[0], route[1], scope, receive, send)
                return
        await self.api(scope, receive, send)

    async def drain(self, timeout: float, linger: float = 0.0) -> bool:
        """Readiness off, then wait until no inference request is in flight (and at least
        `linger` seconds); True if drained within `timeout`."""
        self.state.manager.begin_drain()
        loop = asyncio.get_running_loop()
        start = loop.time()
        deadline = start + timeout
        linger_end = start + min(linger, timeout)
        while (self.state.inflight > 0 or loop.time() < linger_end) and loop.time() < deadline:
            await asyncio.sleep(0.01)
        return self.state.inflight == 0


def _error_response(status: int, message: str, headers: Any = ()) -> Response:
    return Response(
        ServiceError(message).body(),
        status_code=status,
        media_type="application/json",
        headers={k.decode(): v.decode() for k, v in headers},
    )


def _install_error_handlers(api: FastAPI) -> None:
    async def service_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, ServiceError)
        return _error_response(exc.status, exc.message, exc.headers)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        message = str(exc.detail)
        if exc.status_code in (404, 405):
            message = f"{message}: no route {request.method} {request.url.path[:200]}"
        return _error_response(exc.status_code, message)

    async def validation_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        problems = "; ".join(
            f"{'.'.join(map(str, e.get('loc', ())))}: {e.get('msg')}" for e in exc.errors()
        )
        return _error_response(400, f"invalid request: {problems}")

    api.add_exception_handler(ServiceError, service_error)
    api.add_exception_handler(HTTPException, http_error)
    api.add_exception_handler(RequestValidationError, validation_error)


async def _start_grpc(state: AppState) -> GrpcDoor | None:
    """The gRPC door on this event loop, unless INDUCTIVE_GRPC_PORT is off (then grpcio is not
    even imported)."""
    if state.settings.grpc_port is None:
        return None
    from service.grpc.server import GrpcDoor

    door = GrpcDoor(state)
    await door.start()
    return door


def create_app(settings: Settings) -> Gateway:
    metrics = Metrics()
    manager = ModelManager(settings, metrics)
    state = AppState(settings=settings, manager=manager, metrics=metrics)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # Provider detection fails fast (a bad INDUCTIVE_PROVIDERS stops start-up); models load
        # in the background so that liveness answers while readiness is still false.
        await manager.prepare()
        grpc_door = await _start_grpc(state)
        loading = asyncio.get_running_loop().create_task(manager.load_all())
        try:
            yield
        finally:
            loading.cancel()
            if grpc_door is not None:
                # The drain (Gateway.drain) has already waited for the calls in flight.
                await grpc_door.stop(settings.shutdown_grace_s)
            await manager.close()

    api = FastAPI(
        title="Inductive",
        summary="Open Inference Protocol (V2) server for ONNX models",
        lifespan=lifespan,
    )
    api.state.inductive = state
    for module in (health, server, statistics, models, repository, metrics_route):
        api.include_router(module.router)
    _install_error_handlers(api)
    add_infer_paths(api)
    return Gateway(api, state)
