"""One inference request through the steps every front door shares, whatever its wire format.

A front door (the HTTP/1.1 connection, `service/http/`; gRPC next) reads its request, then
drives an `InferCall` through the same steps, in this order:

    call = InferCall(state, model, version_text, "http", authorization, request_id)
    call.admit()                       # readiness, credentials, version: before any body is kept
    served = call.resolve()            # the version that answers; 503 at once if its queue is full
    ...the door decodes its body into tensors, checked against served.signature / served.plans...
    ticket = call.enqueue(inputs, samples, timeout_s, key, priority)  # on the version's batcher
    ...the ticket resolves...
    call.answered(results)  or  error = call.failed(exc)      # metrics and logs
    ...the door encodes the response and sends it...
    call.finish(status, bytes_out)     # out of the in-flight count (what a drain waits for)

or `call.abandon()` when the client goes away: a request still queued is dropped from its
batcher's queue, so nothing computes for nobody. No step does I/O or knows a wire format: decoding
the body and encoding the answer are the door's (JSON and binary tensors for HTTP, protobuf for
gRPC), so a request from either door can share a batch with the other's.

The call keeps what an access log or a trace needs: when it started, was queued and was
answered, its status, bytes in and out, the door it came by, the served version, the client's
address and trace context. When tracing or the access log is on (`state.observer`, service/
observability/), the observer sees the call begin (its span opens) and end (the span closes,
the line is written); off, each costs one `is None` test.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import TYPE_CHECKING

import numpy as np

from service.batching.ticket import Ticket
from service.errors import (
    ModelInputError,
    RequestTimeoutError,
    ServiceError,
    UnavailableError,
)
from service.http.auth import check_token
from service.http.state import AppState
from service.lifecycle.served import ServedVersion
from service.logging import request_id
from service.protocol.version import parse_version

if TYPE_CHECKING:
    from opentelemetry.trace import Span

log = logging.getLogger("service.inference")

Inputs = dict[str, np.ndarray]
Results = dict[str, np.ndarray]

# Refusals before any version is involved, by status, as counted in `rejected{reason}`.
_REJECT_REASONS = {
    400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
    408: "bad_request", 413: "too_large", 503: "not_ready",
}  # fmt: skip
_OUTCOMES = {400: "bad_request", 503: "unavailable"}
# Front ends whose calls take several event-loop steps to receive and answer (the asyncio gRPC
# server): their batches compute on a worker thread even where short ones may use the loop.
_STEPS_ON_LOOP = frozenset({"grpc"})
# The status of a request whose client went away before its answer (nginx's convention), as
# its trace and access log line show it.
CLIENT_GONE = 499
# Under a memory budget, how many loads one request waits for before it gives up: a model is
# evicted again before its waiters run only when the budget holds about one model.
_LOAD_WAITS = 3


class LoadPending(Exception):  # noqa: N818 - a signal to the door, not an error
    """The model is not loaded yet (memory budget): the door waits for `load`, then resolves
    again."""

    def __init__(self, load: asyncio.Future[None]) -> None:
        super().__init__("model loading")
        self.load = load


class InferCall:
    """One inference request in flight; counted in `state.inflight` until `finish` or
    `abandon`."""

    __slots__ = (
        "_open",
        "answered_at",
        "authorization",
        "bytes_in",
        "bytes_out",
        "client",
        "encode_started",
        "inputs",
        "load_waits",
        "logged",
        "name",
        "observer",
        "protocol",
        "queued_at",
        "rid",
        "served",
        "span",
        "started",
        "state",
        "status",
        "ticket",
        "trace_id",
        "version_text",
    )  # fmt: skip

    def __init__(
        self,
        state: AppState,
        name: str,
        version_text: str | None,
        protocol: str,
        authorization: str | None = None,
        rid: str | None = None,
        client: tuple[str, int] | str | None = None,
        traceparent: str | None = None,
        tracestate: str | None = None,
    ) -> None:
        self.state = state
        self.name = name
        self.version_text = version_text
        self.protocol = protocol
        self.authorization = authorization
        self.rid = rid
        self.started = time.perf_counter()
        self.queued_at: float | None = None
        self.answered_at: float | None = None
        self.status = 0
        self.bytes_in = 0
        self.bytes_out = 0
        self.served: ServedVersion | None = None
        self.inputs: Inputs | None = None
        self.ticket: Ticket[Results] | None = None
        self.load_waits = 0
        state.inflight += 1
        self._open = True
        observer = self.observer = state.observer
        self.span: Span | None = None  # its trace span, while tracing is on
        if observer is not None:
            # What only the observer reads: left unset (slots) when nothing observes.
            self.client = client  # the peer: (host, port) from HTTP, gRPC's peer string
            self.encode_started: float | None = None  # set by the door before it encodes
            self.trace_id: str | None = None
            self.logged = False  # the access log writes its line
            observer.begin(self, traceparent, tracestate)

    # --- the steps, in order -------------------------------------------------------------

    def admit(self) -> None:
        """What is decided before any body byte is kept: raises the ServiceError the client
        gets (not ready, bad credentials, bad version)."""
        manager = self.state.manager
        if not manager.ready:
            raise UnavailableError(
                "server is shutting down" if manager.draining else "server is not ready yet"
            )
        settings = self.state.settings
        if settings.api_keys:
            check_token(self.authorization, settings.api_keys, "inference")
        parse_version(self.version_text)

    def resolve(self) -> ServedVersion:
        """The version that answers, checked for room in its queue before anything is decoded
        (refusing under overload then costs as little as possible)."""
        # From here to `enqueue` nothing awaits, so a version being replaced cannot close its
        # queue in between: the request lands in the old queue (which drains) or the new.
        manager = self.state.manager
        try:
            served = self.served = manager.lookup(self.name, parse_version(self.version_text))
        except ServiceError:
            load = manager.load_on_demand(self.name)  # None: no budget, or nothing to load
            if load is None or self.load_waits >= _LOAD_WAITS:
                raise
            self.load_waits += 1
            raise LoadPending(load) from None
        served.last_used = self.started  # the memory budget unloads the least recently used
        served.uses += 1
        served.batcher.check_capacity()
        return served

    async def resolve_loading(self) -> ServedVersion:
        """`resolve`, waiting for the model's load on first request (for an async door)."""
        while True:
            try:
                return self.resolve()
            except LoadPending as pending:
                await asyncio.shield(pending.load)

    @property
    def is_open(self) -> bool:
        return self._open

    def enqueue(
        self,
        inputs: Inputs,
        samples: int,
        timeout_s: float | None,
        key: tuple[object, ...] | None,
        priority: int = 0,
    ) -> Ticket[Results]:
        """Queues decoded, checked inputs on the resolved version's batcher; the ticket resolves
        with this request's outputs. Everything a mirror of the request would need is here:
        the served version, the inputs, their sample count, the batch key and the ticket."""
        served = self.served
        assert served is not None, "resolve() comes first"
        self.inputs = inputs
        if self.load_waits and timeout_s is not None:  # its wait for the load counts
            timeout_s = max(timeout_s - (time.perf_counter() - self.started), 0.001)
        ticket = self.ticket = served.batcher.submit(
            inputs, samples, timeout_s, key=key, priority=priority, trace=self.span,
            needs_loop=self.protocol in _STEPS_ON_LOOP,
        )  # fmt: skip
        self.queued_at = time.perf_counter()
        if served.shadow is not None:  # a canary's candidate runs a share of it too
            served.shadow.offer(inputs, samples, key, ticket)
        return ticket

    def answered(self, results: Results, request_id: str | None = None) -> None:
        """The outputs are in (the served version, the inputs and these results are what a
        capture of the exchange would record): counted as a success. `request_id` is the
        request's own V2 `id`: a capture records the transport's request id (`X-Request-ID`)
        before it, and it when there is none."""
        served = self.served
        assert served is not None
        now = self.answered_at = time.perf_counter()
        door = served.metrics.by_protocol[self.protocol]
        door.outcomes["success"].inc()
        door.request_seconds.observe(now - self.started)
        if served.capture is not None:  # a sample of the traffic, written as shards
            assert self.inputs is not None
            served.capture.offer(self.inputs, results, self.rid or request_id)

    def failed(self, exc: BaseException) -> ServiceError:
        """The error the client gets for `exc`, counted, and logged when it is a fault of ours
        or the model's own words about the client's input."""
        now = self.answered_at = time.perf_counter()
        served = self.served
        door = None if served is None else served.metrics.by_protocol[self.protocol]
        if door is not None:
            door.failure_seconds.inc(now - self.started)
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

    def finish(self, status: int, bytes_out: int) -> None:
        """The response is sent; idempotent."""
        if self._open:
            self._open = False
            self.status = status
            self.bytes_out = bytes_out
            self.state.inflight -= 1
            if self.observer is not None:
                self.observer.end(self)

    def abandon(self) -> None:
        """The client went away: a queued request is dropped from its batcher's queue (the
        ticket's callbacks see it cancelled), and the call leaves the in-flight count."""
        ticket = self.ticket
        if ticket is not None and not ticket.done():
            ticket.cancel()
        if self._open:
            self._open = False
            self.status = CLIENT_GONE
            self.state.inflight -= 1
            if self.observer is not None:
                self.observer.end(self)

    def _log(
        self, level: int, message: str, *args: object, exc: BaseException | None = None
    ) -> None:
        """Faults are logged with a request id, the client's or a fresh one the door echoes
        in its reply; set only around the log call, since a call has no task of its own."""
        if self.rid is None:
            self.rid = uuid.uuid4().hex
        token = request_id.set(self.rid)
        try:
            log.log(level, message, self.name[:80], *args, exc_info=exc)
        finally:
            request_id.reset(token)
