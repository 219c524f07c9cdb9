"""The RPCs of `inference.GRPCInferenceService` and `grpc.health.v1.Health`.

ModelInfer goes through the same `InferCall` as an HTTP request (service/inference/call.py): the
same admission (readiness, API keys from `authorization` metadata, version), the same queue on
the version's batcher (so gRPC and HTTP requests share batches), the same accounting; only
decoding and encoding are gRPC's own (codec.py). The client's deadline bounds the time queued:
a request still queued when it passes is dropped from the queue, as one whose client went away.

The other RPCs answer what the HTTP routes answer, from the same sources (service/metadata.py,
service/statistics.py, the model manager). Every error a client can cause is a ServiceError with
its message, turned into the gRPC status `status.py` gives it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, TypeAlias

import grpc
from google.protobuf import json_format

from service import metadata
from service.errors import (
    BadRequestError,
    ForbiddenError,
    NotFoundError,
    ServiceError,
    UnavailableError,
)
from service.grpc.codec import decode_infer, encode_infer
from service.grpc.protos import health_pb2 as health
from service.grpc.protos import inference_pb2 as pb
from service.grpc.status import status_of
from service.http.auth import check_token
from service.http.state import AppState
from service.inference.call import InferCall
from service.protocol.version import parse_version
from service.statistics import statistics_report

log = logging.getLogger(__name__)

Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]
# The names a health check may ask about: the whole server, or its inference service.
HEALTH_SERVICES = frozenset({"", "inference.GRPCInferenceService"})


def _authorization(context: Context) -> str | None:
    for key, value in context.invocation_metadata() or ():
        if key == "authorization":
            return value if isinstance(value, str) else value.decode("latin-1")
    return None


# Metadata the observer reads: W3C trace context and the client's request id.
_OBSERVED = frozenset({"traceparent", "tracestate", "x-request-id"})


def _observed_metadata(context: Context) -> dict[str, str]:
    found: dict[str, str] = {}
    for key, value in context.invocation_metadata() or ():
        if key in _OBSERVED:
            found[key] = value if isinstance(value, str) else value.decode("latin-1")
    return found


def _version(text: str) -> int | None:
    """The protocol's empty version string means the version served by default."""
    return parse_version(text) if text else None


class InferenceService:
    def __init__(self, state: AppState) -> None:
        self.state = state

    # --- inference ---------------------------------------------------------------------------

    async def model_infer(self, data: bytes, context: Context) -> bytes:
        state = self.state
        authorization = _authorization(context) if state.settings.api_keys else None
        call: InferCall | None = None
        try:
            try:
                message = pb.ModelInferRequest.FromString(data)
            except Exception as exc:  # DecodeError, or a nested message that does not parse
                raise BadRequestError(f"the ModelInferRequest does not parse: {exc}") from None
            if not message.model_name:
                raise BadRequestError("model_name is empty")
            if state.observer is None:
                call = InferCall(
                    state, message.model_name, message.model_version or None, "grpc", authorization
                )
            else:  # tracing or the access log is on: what they read from the metadata
                seen = _observed_metadata(context)
                call = InferCall(
                    state,
                    message.model_name,
                    message.model_version or None,
                    "grpc",
                    authorization,
                    (seen.get("x-request-id") or message.id)[:128] or None,
                    context.peer(),
                    seen.get("traceparent"),
                    seen.get("tracestate"),
                )
            call.bytes_in = len(data)
            call.admit()
            served = await call.resolve_loading()
            decoded = decode_infer(message, served, state.settings.max_tensor_elements)
            request = decoded.request
            left = context.time_remaining()
            if left is not None and (request.timeout_s is None or left < request.timeout_s):
                request.timeout_s = max(left, 0.0)
            results = await call.enqueue(
                request.inputs, decoded.samples, request.timeout_s, decoded.key, request.priority
            )
            if call.observer is not None:  # the encode span's start
                call.encode_started = time.perf_counter()
            answer = encode_infer(request, results, served).SerializeToString()
            call.answered(results, request.id)
            call.finish(200, len(answer))
            return answer
        except asyncio.CancelledError:
            if call is not None:  # the client went away or its deadline passed
                call.abandon()  # the ticket leaves the queue
            raise
        except Exception as exc:
            error = call.failed(exc) if call is not None else self._refused(exc)
        if call is not None:
            call.finish(error.status, 0)
        await context.abort(status_of(error), error.message)
        raise AssertionError("abort returns only by raising")

    def _refused(self, exc: Exception) -> ServiceError:
        """A request refused before it named a model (it does not parse, names none)."""
        if isinstance(exc, ServiceError):
            self.state.metrics.rejected.labels("grpc", "bad_request").inc()
            return exc
        log.exception("a gRPC inference request failed before reaching a model")
        return ServiceError("internal server error")

    # --- health and metadata -----------------------------------------------------------------

    async def server_live(self, _: pb.ServerLiveRequest, __: Context) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=True)

    async def server_ready(self, _: pb.ServerReadyRequest, __: Context) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=self.state.manager.readiness().ready)

    async def model_ready(self, request: pb.ModelReadyRequest, _: Context) -> pb.ModelReadyResponse:
        try:
            self.state.manager.lookup(request.name, _version(request.version), split=False)
        except UnavailableError:  # known, but loading: not ready (an unknown model is NOT_FOUND)
            return pb.ModelReadyResponse(ready=False)
        return pb.ModelReadyResponse(ready=True)

    async def server_metadata(
        self, _: pb.ServerMetadataRequest, __: Context
    ) -> pb.ServerMetadataResponse:
        return json_format.ParseDict(metadata.server_metadata(), pb.ServerMetadataResponse())

    async def model_metadata(
        self, request: pb.ModelMetadataRequest, _: Context
    ) -> pb.ModelMetadataResponse:
        manager = self.state.manager
        served = manager.lookup(request.name, _version(request.version), split=False)
        doc = metadata.model_metadata(manager, served)
        return json_format.ParseDict(doc, pb.ModelMetadataResponse())

    async def model_statistics(
        self, request: pb.ModelStatisticsRequest, _: Context
    ) -> pb.ModelStatisticsResponse:
        if request.version and not request.name:
            raise BadRequestError("a statistics request naming a version must name its model")
        doc = statistics_report(self.state.manager, request.name or None, _version(request.version))
        return json_format.ParseDict(doc, pb.ModelStatisticsResponse())

    # --- model repository (admin token) ------------------------------------------------------

    def _require_admin(self, context: Context, repository: str) -> None:
        token = self.state.settings.admin_token
        if token is None:
            raise ForbiddenError(
                "the repository API is off: set INDUCTIVE_ADMIN_TOKEN to enable it"
            )
        check_token(_authorization(context), [token], "the repository API")
        if repository:
            raise NotFoundError(
                f"unknown repository {repository[:80]!r}: this server has one, unnamed"
            )

    async def repository_index(
        self, request: pb.RepositoryIndexRequest, context: Context
    ) -> pb.RepositoryIndexResponse:
        self._require_admin(context, request.repository_name)
        entries = self.state.manager.index()
        if request.ready:
            entries = [e for e in entries if e.get("state") == "READY"]
        return json_format.ParseDict({"models": entries}, pb.RepositoryIndexResponse())

    async def repository_model_load(
        self, request: pb.RepositoryModelLoadRequest, context: Context
    ) -> pb.RepositoryModelLoadResponse:
        self._require_admin(context, request.repository_name)
        if request.parameters:
            raise BadRequestError(
                f"load parameters {sorted(request.parameters)} are not taken: a model is what "
                "the store holds (publish a version instead of overriding its config or files)"
            )
        await self.state.manager.load(request.model_name)
        return pb.RepositoryModelLoadResponse()

    async def repository_model_unload(
        self, request: pb.RepositoryModelUnloadRequest, context: Context
    ) -> pb.RepositoryModelUnloadResponse:
        self._require_admin(context, request.repository_name)
        # unload_dependents: a model here has no dependents (no ensembles), so it changes nothing.
        unknown = sorted(set(request.parameters) - {"unload_dependents"})
        if unknown:
            raise BadRequestError(f"unload parameters {unknown} are not taken")
        await self.state.manager.unload(request.model_name)
        return pb.RepositoryModelUnloadResponse()


class HealthService:
    """grpc.health.v1: SERVING while the server is ready, NOT_SERVING while models load and from
    the moment a SIGTERM starts the drain (as `/v2/health/ready`)."""

    def __init__(self, state: AppState) -> None:
        self.state = state

    async def check(
        self, request: health.HealthCheckRequest, _: Context
    ) -> health.HealthCheckResponse:
        if request.service not in HEALTH_SERVICES:
            raise NotFoundError(
                f"unknown service {request.service[:80]!r}: ask about '' (the server) or "
                "'inference.GRPCInferenceService'"
            )
        ready = self.state.manager.readiness().ready
        status = (
            health.HealthCheckResponse.SERVING if ready else health.HealthCheckResponse.NOT_SERVING
        )
        return health.HealthCheckResponse(status=status)
