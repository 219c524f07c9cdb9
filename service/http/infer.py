"""The inference hot path as a raw ASGI handler, in front of FastAPI.

Why not a FastAPI route: on one core a FastAPI route served ≈ 6,950 req/s against ≈ 26,400 req/s
for a raw ASGI app (NOTES.md, 3 KB binary POST echo) — about 100 µs more per request, a third of
the whole batched compute of one `cnn` sample (≈ 280 µs). Issue 7 asks for ≥ 0.8 × raw ONNX
Runtime throughput, so `POST /v2/models/{m}[/versions/{v}]/infer` is handled here: read the body
(413 before buffering anything above the limit), decode, validate, queue on the version's
batcher, encode. Every other route goes to FastAPI.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any

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
from service.http.routes.deps import parse_version
from service.http.state import PENDING_KEY, AppState
from service.logging import request_id
from service.protocol import decode_request, encode_response
from service.protocol.validate import validate_request

log = logging.getLogger(__name__)

Scope = dict[str, Any]
_PREFIX = "/v2/models/"
_SUFFIX = "/infer"
_REJECT_REASONS = {
    400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
    408: "bad_request", 413: "too_large", 503: "not_ready",
}  # fmt: skip
_OUTCOMES = {400: "bad_request", 503: "unavailable"}


class _ClientGoneError(Exception):
    """The client disconnected before its body was read: nothing to answer."""


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


async def _read_body(receive: Any, declared: int | None, limit: int) -> bytes:
    if declared is not None and declared > limit:
        raise PayloadTooLargeError(
            f"request body of {declared} bytes is above the limit of {limit} bytes"
        )
    chunks = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _ClientGoneError
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLargeError(f"request body is above the limit of {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def _read_body_in_time(
    receive: Any, declared: int | None, limit: int, timeout: float
) -> bytes:
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
        return await _read_body(receive, declared, limit)
    except asyncio.CancelledError:
        if not expired:
            raise
        task.uncancel()
        raise RequestBodyTimeoutError(f"request body not received within {timeout:g} s") from None
    finally:
        timer.cancel()


async def handle_infer(
    state: AppState, name: str, version_text: str | None, scope: Scope, receive: Any, send: Any
) -> None:
    started = time.perf_counter()
    declared = header_length = authorization = rid = None
    try:
        for key, value in scope["headers"]:
            if key == b"content-length":
                declared = int(value)
            elif key == b"inference-header-content-length":
                header_length = int(value)
            elif key == b"authorization":
                authorization = value.decode("latin-1")
            elif key == b"x-request-id":
                rid = value.decode("latin-1")[:128]
    except ValueError:
        await _send_error(send, BadRequestError("Content-Length headers must be integers"), None)
        return
    if rid is not None:
        request_id.set(rid)
    manager = state.manager
    served = None
    state.inflight += 1
    try:
        if not manager.ready:
            raise UnavailableError(
                "server is shutting down" if manager.draining else "server is not ready yet"
            )
        if state.settings.api_keys:
            check_token(authorization, state.settings.api_keys, "inference")
        version = parse_version(version_text)
        settings = state.settings
        body = await _read_body_in_time(
            receive, declared, settings.max_body_bytes, settings.body_timeout_s
        )
        # From the lookup to `submit` nothing awaits, so a version being replaced cannot close
        # its queue in between: the request lands in the old queue (which drains) or the new.
        served = manager.lookup(name, version)
        served.batcher.check_capacity()
        request = decode_request(
            body, header_length, max_elements=state.settings.max_tensor_elements
        )
        samples = validate_request(request, served.signature)
        pending = served.batcher.submit(request.inputs, samples, request.timeout_s)
        scope[PENDING_KEY] = pending  # cancelled by the protocol if the client disconnects
        try:
            results = await pending
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if not pending.cancelled() or (task is not None and task.cancelling()):
                raise
            raise _ClientGoneError from None  # dropped from the queue, nobody to answer
        payload, json_length = encode_response(
            request,
            results,
            model_name=served.name,
            model_version=served.version,
            labels=served.signature.labels,
        )
        headers = [
            (b"content-type", b"application/json" if json_length is None
             else b"application/octet-stream"),
            (b"content-length", str(len(payload)).encode()),
        ]  # fmt: skip
        if json_length is not None:
            headers.append((b"inference-header-content-length", str(json_length).encode()))
        if rid is not None:
            headers.append((b"x-request-id", rid.encode("latin-1")))
        if manager.draining:
            headers.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": payload})
        served.metrics.outcomes["success"].inc()
        served.metrics.request_seconds.observe(time.perf_counter() - started)
    except _ClientGoneError:
        return
    except ServiceError as exc:
        if served is not None:
            outcome = "timeout" if isinstance(exc, RequestTimeoutError) else None
            served.metrics.outcomes[outcome or _OUTCOMES.get(exc.status, "error")].inc()
        else:
            state.metrics.rejected.labels(_REJECT_REASONS.get(exc.status, "bad_request")).inc()
        if exc.status == 500:  # 503s are load, not faults: a line each would flood the logs
            rid = _ensure_request_id(rid)
            log.warning("inference on %s failed: %s", name[:80], exc.message)
        elif isinstance(exc, ModelInputError):  # the client's fault, but the model's own words
            rid = _ensure_request_id(rid)
            log.info("inference on %s refused by the model: %s", name[:80], exc.message)
        await _send_error(send, exc, manager.draining, rid)
    except Exception:
        rid = _ensure_request_id(rid)
        log.exception("inference on %s failed with an internal error", name[:80])
        if served is not None:
            served.metrics.outcomes["error"].inc()
        await _send_error(send, ServiceError("internal server error"), manager.draining, rid)
    finally:
        state.inflight -= 1


def _ensure_request_id(rid: str | None) -> str:
    """Faults are logged with a request id, the client's or a fresh one, echoed in the reply."""
    if rid is None:
        rid = uuid.uuid4().hex
        request_id.set(rid)
    return rid


async def _send_error(
    send: Any, exc: ServiceError, closing: bool | None, rid: str | None = None
) -> None:
    body = exc.body()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *exc.headers,
    ]
    if rid is not None:
        headers.append((b"x-request-id", rid.encode("latin-1")))
    if closing:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": exc.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
