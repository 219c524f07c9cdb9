"""The application factory: `create_app(settings)` builds everything; nothing exists at import.

It returns the `HttpService` every connection shares (service.py): the inference front end's
state, and the ASGI app — FastAPI, behind the CORS policy when one is configured — that answers
every route but inference and receives the lifespan events.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware

from service.errors import ServiceError
from service.http.asgi import App
from service.http.cors import Cors
from service.http.openapi import add_infer_paths
from service.http.responses import error_response
from service.http.routes import console, docs, health, models, repository, server, statistics
from service.http.routes import metrics as metrics_route
from service.http.service import HttpService
from service.http.state import AppState
from service.lifecycle.manager import ModelManager
from service.metrics import Metrics
from service.observability.observer import build_observer
from service.settings import Settings

if TYPE_CHECKING:
    from service.grpc.server import GrpcDoor

log = logging.getLogger(__name__)


def _error_response(error: ServiceError, status: int | None = None) -> Response:
    """The JSON error every refusal gets (responses.py); `status` overrides the error's own,
    for Starlette's errors that carry theirs."""
    code, headers, body = error_response(error)
    return Response(
        body,
        status_code=code if status is None else status,
        headers={k.decode(): v.decode() for k, v in headers},
    )


def _install_error_handlers(api: FastAPI) -> None:
    async def service_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, ServiceError)
        return _error_response(exc)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        message = str(exc.detail)
        if exc.status_code in (404, 405):
            message = f"{message}: no route {request.method} {request.url.path[:200]}"
        return _error_response(ServiceError(message), exc.status_code)

    async def validation_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        problems = "; ".join(
            f"{'.'.join(map(str, e.get('loc', ())))}: {e.get('msg')}" for e in exc.errors()
        )
        return _error_response(ServiceError(f"invalid request: {problems}"), 400)

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


def create_app(settings: Settings) -> HttpService:
    metrics = Metrics()
    manager = ModelManager(settings, metrics)
    # Raises TracingConfigError / AccessLogConfigError for what cannot be done.
    observer = build_observer(settings)
    state = AppState(settings=settings, manager=manager, metrics=metrics, observer=observer)

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
                # The drain (the HTTP service's drain) has already waited for the calls in flight.
                await grpc_door.stop(settings.shutdown_grace_s)
            await manager.close()
            if observer is not None:  # the last lines and spans, after the last request
                observer.close()

    api = FastAPI(
        title="Inductive",
        summary="Open Inference Protocol (V2) server for ONNX models",
        lifespan=lifespan,
        # FastAPI's pages load their scripts from public CDNs; docs.py serves Swagger UI itself.
        docs_url=None,
        redoc_url=None,
    )
    api.state.inductive = state
    for module in (health, server, statistics, models, repository, metrics_route):
        api.include_router(module.router)
    api.include_router(docs.router())
    api.include_router(console.router() if settings.console_enabled else console.disabled_router())
    _install_error_handlers(api)
    add_infer_paths(api)
    app: App = api
    cors = Cors(tuple(settings.cors_origins)) if settings.cors_origins else None
    if cors is not None:
        app = CORSMiddleware(
            api,
            allow_origins=cors.origins,
            allow_methods=cors.methods,
            allow_headers=cors.headers,
            expose_headers=cors.expose,
        )
    return HttpService(state, app, cors)
