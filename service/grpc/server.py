"""The gRPC front door: grpcio's asyncio server on the HTTP server's event loop, in its process.

Started and stopped by the app's lifespan (service/http/app.py), so it shares everything the
HTTP door has: the model manager, each version's batcher, the settings' limits and keys, the
metrics, and the drain. A SIGTERM turns readiness off (ServerReady, the health service and new
ModelInfer calls answer accordingly: UNAVAILABLE), in-flight calls finish, and the lifespan's
end stops the server (GOAWAY, then whatever is left of the grace period).

Every method is registered with bytes in and bytes out: messages are parsed in the handlers, so
a message that does not parse is INVALID_ARGUMENT naming the message, not a status grpcio picks.
Any other method (ModelStreamInfer, ModelConfig, shared memory, trace and log settings, health
Watch, other services) is UNIMPLEMENTED with a message saying what is served.

Limits: a message above INDUCTIVE_MAX_BODY_BYTES is refused by grpcio itself with
RESOURCE_EXHAUSTED before any of it reaches Python; at most `MAX_CONCURRENT_RPCS` calls run at
once (as the HTTP door holds at most that many connections); keepalive and connection age come
from the settings (INDUCTIVE_GRPC_*).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import grpc

from service.errors import BadRequestError, ServiceError
from service.grpc.protos import health_pb2 as health
from service.grpc.protos import inference_pb2 as pb
from service.grpc.servicer import Context, HealthService, InferenceService
from service.grpc.status import status_of
from service.http.state import AppState
from service.settings import Settings

log = logging.getLogger(__name__)

INFERENCE = "inference.GRPCInferenceService"
HEALTH = "grpc.health.v1.Health"
MAX_CONCURRENT_RPCS = 4096


class _Message(Protocol):
    def SerializeToString(self, *, deterministic: bool = ...) -> bytes: ...  # noqa: N802


Handler = Callable[[Any, Context], Awaitable[_Message]]


def _unary(handler: Handler, request_type: Any) -> grpc.RpcMethodHandler:
    """A unary method: parse, run, serialize; a ServiceError becomes its status."""
    name = request_type.DESCRIPTOR.name

    async def run(data: bytes, context: Context) -> bytes:
        try:
            try:
                request = request_type.FromString(data)
            except Exception as exc:  # DecodeError
                raise BadRequestError(f"the {name} does not parse: {exc}") from None
            response = await handler(request, context)
            return response.SerializeToString()
        except ServiceError as error:
            failure = error
        except Exception:
            log.exception("gRPC method taking %s failed", name)
            failure = ServiceError("internal server error")
        await context.abort(status_of(failure), failure.message)
        raise AssertionError("abort returns only by raising")

    return grpc.unary_unary_rpc_method_handler(run)


class _Unimplemented(grpc.GenericRpcHandler):
    """Every method not registered: UNIMPLEMENTED, saying what is."""

    def __init__(self, served: dict[str, list[str]]) -> None:
        self._served = "; ".join(f"{s}: {', '.join(methods)}" for s, methods in served.items())

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        method = str(handler_call_details.method)[:200]
        message = f"{method} is not implemented by this server; it serves {self._served}"

        async def refuse(_: Any, context: Context) -> None:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, message)

        # Stream-stream takes any call shape (unary, streaming) and refuses it before reading.
        return grpc.stream_stream_rpc_method_handler(refuse)


def server_options(settings: Settings) -> list[tuple[str, int]]:
    """grpcio channel arguments from the settings."""
    options = [
        ("grpc.max_receive_message_length", settings.max_body_bytes),
        # grpcio lets a second server bind a port already in use (and share its traffic) unless
        # told not to: a port taken must fail the start-up, as it does for HTTP.
        ("grpc.so_reuseport", 0),
        ("grpc.keepalive_time_ms", round(settings.grpc_keepalive_time_s * 1000)),
        ("grpc.keepalive_timeout_ms", round(settings.grpc_keepalive_timeout_s * 1000)),
        ("grpc.keepalive_permit_without_calls", 1),
        (
            "grpc.http2.min_recv_ping_interval_without_data_ms",
            round(settings.grpc_min_ping_interval_s * 1000),
        ),
    ]
    if settings.grpc_max_connection_age_s is not None:
        grace = settings.grpc_max_connection_age_grace_s
        options += [
            ("grpc.max_connection_age_ms", round(settings.grpc_max_connection_age_s * 1000)),
            ("grpc.max_connection_age_grace_ms", round(grace * 1000)),
        ]
    return options


class GrpcDoor:
    """The gRPC server of one app; `start` in the lifespan's start-up, `stop` at its end."""

    def __init__(self, state: AppState) -> None:
        self.state = state
        self.port: int | None = None
        self._server: grpc.aio.Server | None = None

    async def start(self) -> int:
        settings = self.state.settings
        assert settings.grpc_port is not None
        inference = InferenceService(self.state)
        methods: dict[str, grpc.RpcMethodHandler] = {
            "ModelInfer": grpc.unary_unary_rpc_method_handler(inference.model_infer),
            "ServerLive": _unary(inference.server_live, pb.ServerLiveRequest),
            "ServerReady": _unary(inference.server_ready, pb.ServerReadyRequest),
            "ModelReady": _unary(inference.model_ready, pb.ModelReadyRequest),
            "ServerMetadata": _unary(inference.server_metadata, pb.ServerMetadataRequest),
            "ModelMetadata": _unary(inference.model_metadata, pb.ModelMetadataRequest),
            "ModelStatistics": _unary(inference.model_statistics, pb.ModelStatisticsRequest),
            "RepositoryIndex": _unary(inference.repository_index, pb.RepositoryIndexRequest),
            "RepositoryModelLoad": _unary(
                inference.repository_model_load, pb.RepositoryModelLoadRequest
            ),
            "RepositoryModelUnload": _unary(
                inference.repository_model_unload, pb.RepositoryModelUnloadRequest
            ),
        }
        checks = {"Check": _unary(HealthService(self.state).check, health.HealthCheckRequest)}
        server = grpc.aio.server(
            options=server_options(settings), maximum_concurrent_rpcs=MAX_CONCURRENT_RPCS
        )
        server.add_registered_method_handlers(INFERENCE, methods)
        server.add_registered_method_handlers(HEALTH, checks)
        server.add_generic_rpc_handlers(
            (_Unimplemented({INFERENCE: sorted(methods), HEALTH: sorted(checks)}),)
        )
        host = settings.host
        address = (
            f"[{host}]:{settings.grpc_port}" if ":" in host else f"{host}:{settings.grpc_port}"
        )
        try:
            self.port = server.add_insecure_port(address)
        except RuntimeError as exc:  # grpcio: "Failed to bind to address …"
            raise OSError(f"gRPC cannot listen on {address}: {exc}") from None
        await server.start()
        self._server = server
        log.info("gRPC listening on %s:%d", host, self.port)
        return self.port

    async def stop(self, grace_s: float) -> None:
        """GOAWAY to every connection; calls still running get `grace_s` to finish."""
        if self._server is not None:
            await self._server.stop(grace_s)
            self._server = None
