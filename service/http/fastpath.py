"""Inference answered at the connection: the HTTP protocol serves `…/infer` without ASGI.

Under uvicorn every request costs a scope dict, an `asyncio.Event`, a task running the app,
and `receive`/`send` coroutines exchanging message dicts. For `POST …/infer` that machinery
was ≈ 20 % of the server's time at concurrency 32 (benchmarks/results/profile/). Here the
protocol itself drives an `InferCall` (infer.py): the body is collected as httptools parses it,
the request is queued on its batcher as soon as the message is complete, and its ticket
writes the response bytes straight to the transport. Every other request, and inference
requests this path does not take (percent-encoded paths, CORS, pipelined behind another), go
to the ASGI app as before.

Most requests arrive whole in one read. When httptools has no message in progress, such a read
is matched by `parse_whole_request` (whole_request.py) and served in one call (`_serve_whole`),
skipping the parser's callback per header and event; anything that parser does not take is fed
to httptools as before.

An `_Exchange` stands in as uvicorn's `cycle` for such a request, so that uvicorn's own logic
(pipelining, graceful shutdown, disconnects) and the slow-client guard treat it like one of its
ASGI cycles; it carries the attributes they read.

Past the connection limit a request is refused here with the JSON 503 every other refusal
uses, where uvicorn would answer a plain-text one.
"""

from __future__ import annotations

import asyncio
import logging
from functools import partial
from typing import Any, ClassVar

import httptools
from uvicorn.protocols.http.httptools_impl import STATUS_LINE

from service.batching.ticket import Ticket
from service.errors import PayloadTooLargeError, ServiceError, UnavailableError
from service.http.guard import GuardedHttpToolsProtocol
from service.http.infer import (
    HeaderFacts,
    Headers,
    InferCall,
    Results,
    parse_infer_path,
    read_headers,
)
from service.http.state import PENDING_KEY, AppState
from service.http.whole_request import RequestHead, WholeRequest, parse_whole_request

log = logging.getLogger(__name__)

_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class _NoEvent:
    """uvicorn sets its cycle's message event on disconnect; nothing waits on an exchange."""

    def set(self) -> None:
        pass


_NO_EVENT = _NoEvent()


class _Exchange:
    """One request answered by the protocol; `call` is None for a refusal of the server's own
    (the connection limit)."""

    __slots__ = (
        "call",
        "chunks",
        "disconnected",
        "keep_alive",
        "response_complete",
        "response_started",
        "scope",
        "size",
    )  # fmt: skip

    message_event = _NO_EVENT

    def __init__(self, call: InferCall | None, keep_alive: bool) -> None:
        self.call = call
        self.keep_alive = keep_alive
        self.chunks: list[bytes] = []
        self.size = 0
        self.scope: dict[str, Any] = {}  # PENDING_KEY, as the ASGI route sets it
        self.response_started = False
        self.response_complete = False
        self.disconnected = False


class FastInferProtocol(GuardedHttpToolsProtocol):
    """The guarded httptools protocol, answering inference itself; build with `configured(…,
    state=app_state)`."""

    state: ClassVar[AppState]
    _reading: _Exchange | None  # the exchange whose body is being parsed
    _answering: _Exchange | None  # the exchange waiting for its batch
    # httptools has no message in progress: the next read may be served whole (whole_request.py)
    _parser_idle: bool

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._reading = None
        self._answering = None
        self._parser_idle = True
        # The head of the last request served whole, and what its headers say: a client sends
        # the same head again and again, which is then neither parsed nor read twice.
        self._last_head: RequestHead | None = None
        self._last_facts = HeaderFacts()

    def data_received(self, data: bytes) -> None:
        if self._parser_idle and self._takes_whole_requests():
            request = parse_whole_request(data, self._last_head)
            if request is not None:
                self._serve_whole(request)
                return
        self._parser_idle = False  # on_message_complete sets it again
        super().data_received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        for exchange in (self._reading, self._answering):
            if exchange is not None:
                self._abandon(exchange)
        self._reading = self._answering = None
        super().connection_lost(exc)

    # --- parser callbacks --------------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._parser_idle = False

    def on_headers_complete(self) -> None:
        if self._over_connection_limit():
            self._start(None, keep_alive=False)
            self._respond_error(
                UnavailableError(
                    f"too many connections: the server holds {self.limit_concurrency} at most"
                ),
                close=True,
            )
            self.state.metrics.rejected.labels("http", "overloaded").inc()
            return
        route = self._fast_route()
        if route is None:
            self._reading = None
            super().on_headers_complete()
            return
        call = InferCall(self.state, route[0], route[1], read_headers(self.headers))
        keep_alive = self.parser.get_http_version() == "1.1" and self.parser.should_keep_alive()
        exchange = self._start(call, keep_alive)
        try:
            call.admit()
        except PayloadTooLargeError as error:  # do not read a body that will be thrown away
            self._respond(exchange, *call.refuse(error), close=True)
            return
        except ServiceError as error:  # answered now; the body is read and dropped
            self._respond(exchange, *call.refuse(error))
            return
        if self.expect_100_continue:
            self.transport.write(_CONTINUE)

    def on_body(self, body: bytes) -> None:
        exchange = self._reading
        if exchange is None:
            super().on_body(body)
            return
        self._body_bytes += len(body)
        if exchange.response_complete:
            return
        exchange.size += len(body)
        limit = self.state.settings.max_body_bytes
        if exchange.size > limit:
            assert exchange.call is not None
            error = PayloadTooLargeError(f"request body is above the limit of {limit} bytes")
            self._respond(exchange, *exchange.call.refuse(error), close=True)
            return
        exchange.chunks.append(body)

    def on_message_complete(self) -> None:
        self._parser_idle = True
        exchange = self._reading
        if exchange is None:
            super().on_message_complete()
            return
        chunks = exchange.chunks
        exchange.chunks = []
        self._body_complete(exchange, chunks[0] if len(chunks) == 1 else b"".join(chunks))

    # --- answering -------------------------------------------------------------------------

    def _takes_whole_requests(self) -> bool:
        """Whether a request read whole may skip httptools: none in flight on this connection
        (a pipelined one must wait its turn, which uvicorn's queue handles), no CORS to apply, and
        room under the connection limit (the refusal is httptools' path)."""
        cycle = self.cycle
        return (
            (cycle is None or cycle.response_complete)
            and not self.state.settings.cors_origins
            and not self._over_connection_limit()
            and not self.transport.is_closing()
        )

    def _over_connection_limit(self) -> bool:
        limit = self.limit_concurrency
        return limit is not None and (len(self.connections) >= limit or len(self.tasks) >= limit)

    def _serve_whole(self, request: WholeRequest) -> None:
        """What the parser callbacks do for a request, in one go."""
        self._unset_keepalive_if_required()
        head = request.head
        if head is not self._last_head:
            self._last_head, self._last_facts = head, read_headers(head.headers)
        call = InferCall(self.state, head.name, head.version_text, self._last_facts)
        exchange = self._start(call, head.keep_alive)
        self._body_bytes = len(request.body)
        try:
            call.admit()
        except ServiceError as error:
            self._reading = None
            self._body_since = None
            too_large = isinstance(error, PayloadTooLargeError)
            self._respond(exchange, *call.refuse(error), close=too_large)
            return
        self._body_complete(exchange, request.body)

    def _body_complete(self, exchange: _Exchange, body: bytes) -> None:
        self._reading = None
        self._body_since = None
        call = exchange.call
        if exchange.response_complete or call is None:
            return
        try:
            pending = call.submit(body)
        except Exception as error:
            self._respond(exchange, *call.refuse(error))
            return
        exchange.scope[PENDING_KEY] = pending
        self._answering = exchange
        pending.add_done_callback(partial(self._on_result, exchange))

    def _fast_route(self) -> tuple[str, str | None] | None:
        if self.parser.get_method() != b"POST" or self.state.settings.cors_origins:
            return None
        if self.cycle is not None and not self.cycle.response_complete:
            return None  # pipelined behind a request in flight: uvicorn queues it
        if b"%" in self.url or self.parser.should_upgrade():
            return None  # percent-decoding and upgrades are uvicorn's to get right
        try:
            path = httptools.parse_url(self.url).path.decode("ascii")
        except (httptools.HttpParserInvalidURLError, UnicodeDecodeError):
            return None  # uvicorn answers it
        return parse_infer_path(path)

    def _start(self, call: InferCall | None, keep_alive: bool) -> _Exchange:
        self._headers_arrived()  # the guard's deadlines, as for any request
        exchange = _Exchange(call, keep_alive)
        self.cycle = exchange  # type: ignore[assignment]
        self._reading = exchange
        return exchange

    def _on_result(self, exchange: _Exchange, pending: Ticket[Results]) -> None:
        call = exchange.call
        assert call is not None
        if self._answering is exchange:
            self._answering = None
        if exchange.disconnected or pending.cancelled():
            call.close()  # the client went away: nobody to answer
            return
        try:
            try:
                status, headers, payload = call.answer(pending.result())
            except Exception as error:
                status, headers, payload = call.refuse(error)
            self._respond(exchange, status, headers, payload)
        except Exception:  # a bug of ours: the loop would only log it, and the client would hang
            log.exception("answering an inference request failed")
            call.close()
            self.transport.close()

    def _respond_error(self, error: ServiceError, close: bool) -> None:
        body = error.body()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            *error.headers,
        ]
        assert self._reading is not None
        self._respond(self._reading, error.status, headers, body, close=close)

    def _respond(
        self,
        exchange: _Exchange,
        status: int,
        headers: Headers,
        payload: bytes,
        close: bool = False,
    ) -> None:
        if exchange.call is not None:
            exchange.call.close()
        if exchange.disconnected or self.transport.is_closing():
            return
        exchange.response_started = True
        keep_alive = exchange.keep_alive and not close
        parts = [STATUS_LINE[status]]
        for name, value in (*self.server_state.default_headers, *headers):
            if name == b"connection":
                keep_alive = False
            parts += (name, b": ", value, b"\r\n")
        if not keep_alive and not any(name == b"connection" for name, _ in headers):
            parts.append(b"connection: close\r\n")
        parts += (b"\r\n", payload)
        self.transport.write(b"".join(parts))
        exchange.response_complete = True
        exchange.keep_alive = keep_alive
        if not keep_alive:
            self.transport.close()
        if self.flow.write_paused:  # a client not reading its answers sends nothing more
            self.flow.pause_reading()
        self.on_response_complete()

    def resume_writing(self) -> None:
        super().resume_writing()
        if self.cycle is None or self.cycle.response_complete:
            self.flow.resume_reading()

    def _abandon(self, exchange: _Exchange) -> None:
        exchange.disconnected = True
        pending: Ticket[Any] | None = exchange.scope.get(PENDING_KEY)
        if pending is not None and not pending.done():
            pending.cancel()  # dropped from the batcher's queue; _on_result closes the call
        elif exchange.call is not None:
            exchange.call.close()
