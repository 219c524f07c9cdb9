"""One inference request, from its headers to its answer, with the transport left to the caller.

`POST /v2/models/{m}[/versions/{v}]/infer` is the one route whose cost matters, so it never goes
through FastAPI (a FastAPI route costs several times a raw ASGI one per request). `InferCall`
holds everything the request needs and does no I/O: `admit` checks what the headers decide
(readiness, credentials, version, declared size) before any body byte is buffered, `submit`
decodes, validates and queues the body on the version's batcher, and `answer` / `refuse` turn
the outcome into a status, headers and a body, counting it in the metrics.

The steps that know nothing of HTTP are methods of their own, so that another front door (the
gRPC one, service/grpc/) decodes and encodes its own wire format around the same admission,
queueing and accounting: `resolve` (the served version, refusing under overload before any
decoding), `enqueue` (decoded inputs onto its batcher), `answered` and `failed` (the outcome
counted and, for faults, logged; `failed` returns the error the client is told). The names are
those of the protocol-neutral front end being written for every door (service/inference/), so
that a door written against one runs against the other.

Two front ends drive it: the connection-level fast path (`fastpath.py`, the one serving under
uvicorn with httptools: no ASGI scope, no task per request) and `handle_infer` below, the same
request as a raw ASGI handler for every other server (h11, in-process ASGI clients).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from service.batching.ticket import Ticket
from service.errors import (
    BadRequestError,
    ModelInputError,
    PayloadTooLargeError,
    RequestBodyTimeoutError,
    RequestTimeoutError,
    ServiceError,
    UnavailableError,
)
from service.http.auth import check_token
from service.http.state import PENDING_KEY, AppState
from service.lifecycle.served import ServedVersion
from service.logging import request_id
from service.protocol import InferRequest, encode_response
from service.protocol.version import parse_version

log = logging.getLogger(__name__)

Scope = dict[str, Any]
Headers = list[tuple[bytes, bytes]]
Inputs = dict[str, np.ndarray]
Results = dict[str, np.ndarray]
_PREFIX = "/v2/models/"
_SUFFIX = "/infer"
_REJECT_REASONS = {
    400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
    408: "bad_request", 413: "too_large", 503: "not_ready",
}  # fmt: skip
_OUTCOMES = {400: "bad_request", 503: "unavailable"}
_JSON = b"application/json"
_BINARY = b"application/octet-stream"


class ClientGoneError(Exception):
    """The client disconnected before its answer: there is nobody to answer."""


def parse_infer_path(path: str) -> tuple[str, str | None] | None:
    """`/v2/models/m/infer` → (m, None); `/v2/models/m/versions/3/infer` → (m, "3")."""
    if not (path.startswith(_PREFIX) and path.endswith(_SUFFIX)):
        return None
    parts = path[len(_PREFIX) : -len(_SUFFIX)].split("/")
    if len(parts) == 1 and parts[0]:
        return parts[0], None
    if len(parts) == 3 and parts[0] and parts[1] == "versions":
        return parts[0], parts[2]
    return None


@dataclass(frozen=True, slots=True)
class HeaderFacts:
    """What an inference request's headers tell `InferCall`. The same headers give the same
    facts, so the fast path keeps them with a connection's repeated head (whole_request.py)."""

    declared: int | None = None  # Content-Length
    header_length: int | None = None  # Inference-Header-Content-Length
    authorization: str | None = None
    rid: str | None = None  # X-Request-ID
    error: str | None = None  # a header the request is refused for


def read_headers(headers: Iterable[tuple[bytes, bytes]]) -> HeaderFacts:
    declared = header_length = None
    authorization = rid = None
    try:
        for key, value in headers:
            if key == b"content-length":
                declared = int(value)
            elif key == b"inference-header-content-length":
                header_length = int(value)
            elif key == b"authorization":
                authorization = value.decode("latin-1")
            elif key == b"x-request-id":
                rid = value.decode("latin-1")[:128]
    except ValueError:
        error = "Content-Length headers must be integers"
        return HeaderFacts(declared, header_length, authorization, rid, error)
    return HeaderFacts(declared, header_length, authorization, rid)


class InferCall:
    """One inference request in flight; counted in `state.inflight` until `close()`."""

    __slots__ = (
        "_header_error",
        "_open",
        "authorization",
        "declared",
        "header_length",
        "name",
        "protocol",
        "request",
        "rid",
        "served",
        "started",
        "state",
        "version_text",
    )  # fmt: skip

    def __init__(
        self,
        state: AppState,
        name: str,
        version_text: str | None,
        facts: HeaderFacts,
        protocol: str = "http",
    ) -> None:
        self.state = state
        self.protocol = protocol  # the front door, as the metrics label it
        self.name = name
        self.version_text = version_text
        self.started = time.perf_counter()
        self.declared = facts.declared
        self.header_length = facts.header_length
        self.authorization = facts.authorization
        self.rid = facts.rid
        self.served: ServedVersion | None = None
        self.request: InferRequest | None = None
        self._header_error = facts.error
        state.inflight += 1
        self._open = True

    def close(self) -> None:
        """The request is answered or abandoned; idempotent."""
        if self._open:
            self._open = False
            self.state.inflight -= 1

    def admit(self) -> None:
        """Everything the headers decide, before any body byte is buffered: raises the
        ServiceError the client gets (not ready, bad credentials, bad version, body too big)."""
        if self._header_error is not None:
            raise BadRequestError(self._header_error)
        manager = self.state.manager
        if not manager.ready:
            raise UnavailableError(
                "server is shutting down" if manager.draining else "server is not ready yet"
            )
        settings = self.state.settings
        if settings.api_keys:
            check_token(self.authorization, settings.api_keys, "inference")
        parse_version(self.version_text)
        limit = settings.max_body_bytes
        if self.declared is not None and self.declared > limit:
            raise PayloadTooLargeError(
                f"request body of {self.declared} bytes is above the limit of {limit} bytes"
            )

    def resolve(self) -> ServedVersion:
        """The served version the request names; raises when there is none, or when its queue
        would refuse the request (checked before decoding: refusing under overload is cheap)."""
        served = self.served = self.state.manager.lookup(
            self.name, parse_version(self.version_text)
        )
        served.batcher.check_capacity()
        return served

    def enqueue(
        self,
        inputs: Inputs,
        samples: int,
        timeout_s: float | None,
        key: tuple[object, ...] | None,
    ) -> Ticket[Results]:
        """Queues decoded, validated inputs on the resolved version's batcher; the ticket
        resolves with this request's outputs. Nothing may await between `resolve` and
        `enqueue`: a version being replaced cannot close its queue in between, so the request
        lands in the old queue (which drains) or the new."""
        served = self.served
        assert served is not None, "resolve() first"
        return served.batcher.submit(inputs, samples, timeout_s, key=key)

    def submit(self, body: bytes) -> Ticket[Results]:
        """Decodes, validates and queues an HTTP request body."""
        served = self.resolve()
        decoded = served.plans.decode(body, self.header_length)
        request = self.request = decoded.request
        return self.enqueue(request.inputs, decoded.samples, request.timeout_s, decoded.key)

    def answered(self, results: Results) -> None:
        """Counts the request as answered: its outputs are in."""
        served = self.served
        assert served is not None
        door = served.metrics.by_protocol[self.protocol]
        door.outcomes["success"].inc()
        door.request_seconds.observe(time.perf_counter() - self.started)

    def failed(self, exc: BaseException) -> ServiceError:
        """Counts the failure and logs it when it is a fault of ours or the model's own words
        about the client's input; returns the error the client is told."""
        served = self.served
        door = None if served is None else served.metrics.by_protocol[self.protocol]
        if door is not None:
            door.failure_seconds.inc(time.perf_counter() - self.started)
        if not isinstance(exc, ServiceError):
            self._log(logging.ERROR, "inference on %s failed with an internal error", exc=exc)
            if door is not None:
                door.outcomes["error"].inc()
            return ServiceError("internal server error")
        if door is not None:
            outcome = "timeout" if isinstance(exc, RequestTimeoutError) else None
            door.outcomes[outcome or _OUTCOMES.get(exc.status, "error")].inc()
        else:
            reason = _REJECT_REASONS.get(exc.status, "bad_request")
            self.state.metrics.rejected.labels(self.protocol, reason).inc()
        if exc.status == 500:  # 503s are load, not faults: a line each would flood the logs
            self._log(logging.WARNING, "inference on %s failed: %s", exc.message)
        elif isinstance(exc, ModelInputError):  # the client's fault, in the model's words
            self._log(logging.INFO, "inference on %s refused by the model: %s", exc.message)
        return exc

    def answer(self, results: Results) -> tuple[int, Headers, bytes]:
        served, request = self.served, self.request
        assert served is not None
        assert request is not None
        payload, json_length = encode_response(
            request,
            results,
            model_name=served.name,
            model_version=served.version,
            labels=served.signature.labels,
        )
        headers = [
            (b"content-type", _JSON if json_length is None else _BINARY),
            (b"content-length", str(len(payload)).encode()),
        ]
        if json_length is not None:
            headers.append((b"inference-header-content-length", str(json_length).encode()))
        self._finish_headers(headers)
        self.answered(results)
        return 200, headers, payload

    def refuse(self, exc: BaseException) -> tuple[int, Headers, bytes]:
        """The error response for `exc`, counted and logged by `failed`."""
        error = self.failed(exc)
        body = error.body()
        headers = [
            (b"content-type", _JSON),
            (b"content-length", str(len(body)).encode()),
            *error.headers,
        ]
        self._finish_headers(headers)
        return error.status, headers, body

    def _finish_headers(self, headers: Headers) -> None:
        if self.rid is not None:
            headers.append((b"x-request-id", self.rid.encode("latin-1")))
        if self.state.manager.draining:
            headers.append((b"connection", b"close"))

    def _log(
        self, level: int, message: str, *args: object, exc: BaseException | None = None
    ) -> None:
        """Faults are logged with a request id, the client's or a fresh one echoed in the reply;
        set only around the log call, since the fast path has no task of its own to scope it."""
        if self.rid is None:
            self.rid = uuid.uuid4().hex
        token = request_id.set(self.rid)
        try:
            log.log(level, message, self.name[:80], *args, exc_info=exc)
        finally:
            request_id.reset(token)


# --- the same request as a raw ASGI handler ----------------------------------------------


async def handle_infer(
    state: AppState, name: str, version_text: str | None, scope: Scope, receive: Any, send: Any
) -> None:
    call = InferCall(state, name, version_text, read_headers(scope["headers"]))
    try:
        try:
            call.admit()
            settings = state.settings
            body = await _read_body_in_time(
                receive, settings.max_body_bytes, settings.body_timeout_s
            )
            pending = call.submit(body)
            scope[PENDING_KEY] = pending  # cancelled by the protocol if the client disconnects
            try:
                results = await pending
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if not pending.cancelled() or (task is not None and task.cancelling()):
                    raise
                raise ClientGoneError from None  # dropped from the queue, nobody to answer
            status, headers, payload = call.answer(results)
        except ClientGoneError:
            return
        except Exception as exc:
            status, headers, payload = call.refuse(exc)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})
    finally:
        call.close()


async def _read_body(receive: Any, limit: int) -> bytes:
    chunks = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGoneError
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLargeError(f"request body is above the limit of {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def _read_body_in_time(receive: Any, limit: int, timeout: float) -> bytes:
    """Slow-client guard: the whole body must arrive within `timeout`, or 408. A timer handle
    that cancels this task costs ~1 µs, far less than `asyncio.wait_for` (a task per call)."""
    task = asyncio.current_task()
    assert task is not None
    expired = False

    def expire() -> None:
        nonlocal expired
        expired = True
        task.cancel()

    timer = asyncio.get_running_loop().call_later(timeout, expire)
    try:
        return await _read_body(receive, limit)
    except asyncio.CancelledError:
        if not expired:
            raise
        task.uncancel()
        raise RequestBodyTimeoutError(f"request body not received within {timeout:g} s") from None
    finally:
        timer.cancel()
