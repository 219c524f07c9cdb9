"""`POST /v2/models/{m}[/versions/{v}]/infer` over HTTP: the front end's steps (service/inference/
call.py) with the HTTP wire format around them.

It is the one route whose cost matters, so the connection answers it itself (a FastAPI route
costs several times a raw one per request, benchmarks/results/profile/): no ASGI scope, no task,
no message dicts. An `InferExchange` reads what the headers say (`HeaderFacts`), has the call
admit the request before any body byte is kept, decodes the body (JSON or Triton's binary tensors,
through the served version's request plans), queues it, and writes the answer or the error
straight to the connection when its ticket resolves.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from service.batching.ticket import Ticket
from service.errors import BadRequestError, ServiceError, UnavailableError
from service.http.cors import Cors
from service.http.exchange import Exchange
from service.http.responses import CONTINUE, JSON, Headers, error_response
from service.inference.call import InferCall, LoadPending, Results
from service.protocol import InferRequest, encode_response

if TYPE_CHECKING:
    from service.http.connection import HttpConnection

log = logging.getLogger("service.http")

_PREFIX = "/v2/models/"
_SUFFIX = "/infer"
_BINARY = b"application/octet-stream"
Response = tuple[int, Headers, bytes]


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
    """What an inference request's headers tell its exchange. The same headers give the same
    facts, so a connection keeps them with its repeated head (whole_request.py)."""

    header_length: int | None = None  # Inference-Header-Content-Length
    authorization: str | None = None
    rid: str | None = None  # X-Request-ID
    traceparent: str | None = None  # W3C trace context, read by tracing and the access log
    tracestate: str | None = None
    echo: tuple[tuple[bytes, bytes], ...] = ()  # response headers they decide: request id, CORS
    error: str | None = None  # a header the request is refused for


def read_headers(headers: Iterable[tuple[bytes, bytes]], cors: Cors | None) -> HeaderFacts:
    header_length = None
    authorization = rid = origin = traceparent = tracestate = None
    error = None
    for key, value in headers:
        if key == b"inference-header-content-length":
            try:
                header_length = int(value)
            except ValueError:
                error = "Inference-Header-Content-Length must be an integer"
        elif key == b"authorization":
            authorization = value.decode("latin-1")
        elif key == b"x-request-id":
            rid = value.decode("latin-1")[:128]
        elif key == b"origin":
            origin = value.decode("latin-1")
        elif key == b"traceparent":
            traceparent = value.decode("latin-1")
        elif key == b"tracestate":
            tracestate = value.decode("latin-1")
    echo: tuple[tuple[bytes, bytes], ...] = ()
    if rid is not None:
        echo = ((b"x-request-id", rid.encode("latin-1")),)
    if cors is not None and origin is not None:
        echo += cors.response_headers(origin)
    return HeaderFacts(header_length, authorization, rid, traceparent, tracestate, echo, error)


class InferExchange(Exchange):
    """One inference request on a connection."""

    __slots__ = ("call", "chunks", "expect_continue", "facts", "refusal", "request")

    def __init__(
        self,
        conn: HttpConnection,
        name: str,
        version_text: str | None,
        facts: HeaderFacts,
        keep_alive: bool,
        expect_continue: bool = False,
    ) -> None:
        super().__init__(conn, keep_alive)
        self.facts = facts
        self.expect_continue = expect_continue
        self.chunks: list[bytes] = []
        self.request: InferRequest | None = None
        call = self.call = InferCall(
            conn.service.state,
            name,
            version_text,
            "http",
            facts.authorization,
            facts.rid,
            conn.client,
            facts.traceparent,
            facts.tracestate,
        )
        # Refused on its headers alone: answered in its turn, its body read and dropped (the
        # connection stays usable), none of it kept.
        self.refusal: Response | None = None
        try:
            if facts.error is not None:
                raise BadRequestError(facts.error)
            call.admit()
        except ServiceError as error:
            self.refusal = self._refuse(error)
            self.dropping = True

    # --- what the connection asks ---------------------------------------------------------

    def start(self) -> None:
        self.running = True
        if self.refusal is not None:
            if self.expect_continue and not self.body_done:
                self.keep_alive = False  # the client may never send the body it asked about
            self._send(*self.refusal)
        elif self.body_done:
            self._submit()
        elif self.expect_continue:
            self.conn.write(CONTINUE)

    def serve_whole(self, body: bytes) -> None:
        """`start` for a request read whole with its body (the connection's fast case)."""
        self.running = True
        self.body_done = True
        self.size = len(body)
        if self.refusal is not None:
            self._send(*self.refusal)
        else:
            self._submit_body(body)

    def on_body(self, chunk: bytes) -> None:
        if self.refusal is None:
            self.chunks.append(chunk)

    def on_complete(self) -> None:
        if self.running and self.refusal is None and not self.responded:
            self._submit()

    def fail(self, error: ServiceError) -> None:
        self.keep_alive = False
        self.dropping = True
        if self.responded:
            return
        self.chunks = []
        self.refusal = self._refuse(error)
        if self.running:
            self._send(*self.refusal)

    def abandon(self) -> None:
        self.call.abandon()

    # --- the request ----------------------------------------------------------------------

    def _submit(self) -> None:
        chunks = self.chunks
        self.chunks = []
        self._submit_body(chunks[0] if len(chunks) == 1 else b"".join(chunks))

    def _submit_body(self, body: bytes) -> None:
        call = self.call
        call.bytes_in = len(body)
        try:
            served = call.resolve()
            decoded = served.plans.decode(body, self.facts.header_length)
            request = self.request = decoded.request
            ticket = call.enqueue(
                request.inputs, decoded.samples, request.timeout_s, decoded.key, request.priority
            )
        except LoadPending as pending:  # memory budget: its model loads on this request
            pending.load.add_done_callback(lambda load: self._on_load(load, body))
            return
        except Exception as error:
            self._send(*self._refuse(error))
            return
        ticket.add_done_callback(self._on_result)

    def _on_load(self, load: asyncio.Future[None], body: bytes) -> None:
        if not self.call.is_open or self.responded:
            return  # the client went away while the model loaded
        error: BaseException | None = (
            UnavailableError("the model's load was cancelled")
            if load.cancelled()
            else load.exception()
        )
        if error is not None:
            self._send(*self._refuse(error))
        else:
            self._submit_body(body)

    def _on_result(self, ticket: Ticket[Results]) -> None:
        if ticket.cancelled():
            return  # abandoned: the client is gone and the call is closed
        try:
            try:
                status, headers, payload = self._answer(ticket.result())
            except Exception as error:
                status, headers, payload = self._refuse(error)
            self._send(status, headers, payload)
        except Exception:  # a bug of ours: the loop would only log it, and the client would hang
            log.exception("answering an inference request failed")
            self.call.finish(500, 0)
            self.conn.abort()

    def _answer(self, results: Results) -> Response:
        call, request = self.call, self.request
        served = call.served
        assert served is not None
        assert request is not None
        if call.observer is not None:  # the encode span's start
            call.encode_started = time.perf_counter()
        payload, json_length = encode_response(
            request,
            results,
            model_name=served.name,
            model_version=served.version,
            labels=served.signature.labels,
        )
        call.answered(results, request.id)
        headers = [
            (b"content-type", JSON if json_length is None else _BINARY),
            (b"content-length", str(len(payload)).encode()),
            *self.facts.echo,
        ]
        if json_length is not None:
            headers.append((b"inference-header-content-length", str(json_length).encode()))
        if call.rid is not None and self.facts.rid is None:  # one the access log gave it
            headers.append((b"x-request-id", call.rid.encode("latin-1")))
        return 200, headers, payload

    def _refuse(self, exc: BaseException) -> Response:
        call = self.call
        status, headers, body = error_response(call.failed(exc))
        headers += self.facts.echo
        if self.facts.rid is None and call.rid is not None:  # the id its log line carries
            headers.append((b"x-request-id", call.rid.encode("latin-1")))
        return status, headers, body

    def _send(self, status: int, headers: Headers, payload: bytes) -> None:
        self.call.finish(status, len(payload))
        self.conn.respond(self, status, headers, payload)
