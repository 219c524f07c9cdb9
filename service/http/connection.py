"""An HTTP/1.1 connection: framing, limits, order, flow control and close, owned by the service.

Framing. A read that holds exactly one plain inference request (the common case under load) is
matched whole by `parse_whole_request` (whole_request.py) and served in one call; everything else
goes to httptools, a strict, maintained parser, and its callbacks. The whole-request parser takes
a strict subset of what httptools takes and reads it identically, so no bytes can mean one
request on one path and another on the other.

Rules and limits (head_rules.py), on every route, before anything reads the request: the request
line, each header line, the whole head and the header count are bounded (414 / 431); singleton
headers given twice, HTTP/1.1 without `Host` and any protocol upgrade are a 400. A head still
arriving is counted as it is fed, so memory held for it is bounded too. A body above
`max_body_bytes` is a 413, refused before it is read when its length is declared.

Order. Each request becomes an exchange (exchange.py): inference (`InferExchange`, infer.py), any
other route run through the ASGI app (`AppExchange`, asgi.py), or a refusal the connection found
itself. The first is answered; pipelined ones wait their turn, and only one is answered at a time,
so responses go out in request order and a pipelined repository call cannot overtake the
inference request before it.

Flow control. Reading pauses while (a) the transport's send buffer is above its high-water mark
(`pause_writing`; resumed only below its low-water mark, `resume_writing`), (b) requests wait
behind the one being answered, (c) the app has not taken the body it was given. httptools is fed
at most `_SLICE` bytes at a time outside a body of known length and no further while requests
wait, so a read full of small pipelined requests never becomes more than a slice's worth of
waiting exchanges: a client that pipelines and never reads holds a bounded amount of memory.

Close. A request that closes its connection (its own `Connection: close`, HTTP/1.0, a refusal,
broken framing) ends the connection after its response; nothing after it is read as a request.
When the client may still be sending (an early 413, 431 or 400), the connection lingers: its
write side is shut, and what arrives is read and discarded for at most `linger_s` and
`linger_max_bytes` before it closes, so that a client that sends its whole body before reading
gets the error rather than a reset.

Deadlines (guard.py) are kept by one sweep per event loop. Client-caused conditions are logged
through `Notices`: at most one line per kind and interval, never a traceback.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Coroutine
from typing import Any, NoReturn
from urllib.parse import unquote

import httptools

from service.errors import (
    BadRequestError,
    HeadersTooLargeError,
    PayloadTooLargeError,
    RequestBodyTimeoutError,
    ServiceError,
    UnavailableError,
    UriTooLongError,
)
from service.http.asgi import AppExchange, http_scope
from service.http.exchange import Exchange, Refusal
from service.http.guard import IDLE, STALLED, Watch
from service.http.head_rules import head_error
from service.http.infer import HeaderFacts, InferExchange, parse_infer_path, read_headers
from service.http.responses import Headers, error_response, render
from service.http.service import HttpService
from service.http.whole_request import RequestHead, WholeRequest, parse_whole_request

log = logging.getLogger("service.http")

# Bytes fed to httptools at a time outside a body of known length: the most a read of
# pipelined requests turns into waiting exchanges before the connection stops reading.
_SLICE = 4096


class _StopReadingError(Exception):
    """Raised in a parser callback: httptools reads nothing further on this connection."""


class HttpConnection(asyncio.Protocol):
    def __init__(self, service: HttpService, app_state: dict[str, Any]) -> None:
        self.service = service
        self.limits = service.head_limits
        self.app_state = app_state  # the lifespan's state, copied into each ASGI scope
        self.parser = httptools.HttpRequestParser(self)
        self.loop: asyncio.AbstractEventLoop
        self.transport: asyncio.Transport
        self.watch: Watch
        self.client: tuple[str, int] | None = None
        self.server: tuple[str, int] | None = None
        self.closed = False  # nothing more is written
        self.write_paused = False
        self._writable: asyncio.Future[None] | None = None
        self._read_paused = False
        # The exchange being answered, those waiting behind it, and the one whose message
        # httptools is reading (any of them, or one already answered whose body is dropped).
        self._active: Exchange | None = None
        self._waiting: deque[Exchange] = deque()
        self._parsing: Exchange | None = None
        # The message httptools is in: its head, as far as it came.
        self._mid_message = False
        self._in_head = False
        self._head_began_now = False  # in the piece being fed
        self._head_fed = 0  # head bytes fed in later pieces
        self._head_size = 0
        self._url = b""
        self._headers: Headers = []
        self._expect_continue = False
        self._body_left = 0  # of a body with a Content-Length
        self._unfed: bytes | None = None  # read, held back while requests wait
        self._stopped = False  # no more requests are read on this connection
        self._upgrade_length = 0  # what the upgrade request being refused announced
        # Lingering: its write side shut, the connection reads and drops what the client still
        # sends (a refused request's body, through httptools when its framing is known; raw
        # bytes otherwise, `_to_drain` of them when known), then closes.
        self._lingering = False
        self._to_drain: int | None = None
        self._discarded = 0
        self._shutting_down = False
        # The head of the last request read whole, and what its headers say: a client sends
        # the same head again and again, which is then neither parsed nor read twice.
        self._last_head: RequestHead | None = None
        self._last_facts = HeaderFacts()

    # --- asyncio ---------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self.transport = transport
        self.loop = loop = asyncio.get_running_loop()
        self.watch = Watch(loop.time())
        self.client = _address(transport.get_extra_info("peername"))
        self.server = _address(transport.get_extra_info("sockname"))
        service = self.service
        service.connections.add(self)
        service.sweep.ensure_running(loop)

    def data_received(self, data: bytes) -> None:
        try:
            service = self.service
            if (
                self._active is None
                and not self._mid_message
                and not self._stopped
                and self._unfed is None
                and len(service.connections) <= service.max_connections
            ):
                request = parse_whole_request(data, self._last_head, self.limits)
                if request is not None and request.head.content_length <= service.max_body:
                    self._serve_whole(request)
                    return
            if self._stopped:
                self._discard(len(data))
            elif self._unfed is not None:
                self._unfed += data
            else:
                if self._lingering:
                    self._count_discarded(len(data))
                self._feed(data)
        except Exception:  # a bug of ours: the client gets a closed connection, not a hang
            log.exception("reading a request from %s failed", _shown(self.client))
            self.abort()

    def eof_received(self) -> None:
        """The client closed its side: taken as gone (as uvicorn does), which drops its
        requests still queued. Returning None closes the transport."""

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._lingering = False
        self.service.connections.discard(self)
        pending = [e for e in (self._active, *self._waiting, self._parsing) if e is not None]
        unanswered = {id(e) for e in pending if not e.responded}
        for exchange in dict.fromkeys(pending):
            exchange.abandon()
        self._active = self._parsing = None
        self._waiting.clear()
        self._unfed = None
        self._wake_writers()
        if unanswered:
            self.service.notices.note(
                logging.DEBUG, "client gone", "a client left %d request(s) unanswered",
                len(unanswered),
            )  # fmt: skip

    def pause_writing(self) -> None:
        self.write_paused = True
        self.watch.send_since = self.loop.time()
        self.update_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        self.watch.send_since = None
        self._wake_writers()
        active = self._active
        if active is not None and not active.running:
            self._start_active()
        else:
            self.update_reading()

    # --- the process runner ----------------------------------------------------------------

    def shutdown(self) -> None:
        """Graceful shutdown: the response in progress is the last, then the connection
        closes; an idle or lingering connection closes now."""
        self._shutting_down = True
        if self._lingering or (self._active is None and self._parsing is None):
            self._close()

    # --- what exchanges use ----------------------------------------------------------------

    @property
    def closing_after_response(self) -> bool:
        return self.service.draining or self._shutting_down

    def write(self, data: bytes) -> None:
        if not self.closed:
            self.transport.write(data)

    def respond(self, exchange: Exchange, status: int, headers: Headers, body: bytes) -> None:
        """The whole response of `exchange` (the one being answered)."""
        close = not exchange.keep_alive or self.service.draining or self._shutting_down
        if not self.closed:
            self.transport.write(render(status, headers, body, close, self.service.date))
        self._finished(exchange, close)

    def response_done(self, exchange: Exchange, close: bool) -> None:
        """`exchange` wrote its whole response itself."""
        self._finished(exchange, close)

    async def writable(self) -> None:
        """Returns once the client takes what was written (or is gone)."""
        if self.write_paused and not self.closed:
            if self._writable is None:
                self._writable = self.loop.create_future()
            await self._writable

    def run_task(self, coroutine: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = self.loop.create_task(coroutine)
        tasks = self.service.tasks
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        return task

    def update_reading(self) -> None:
        """Reads while nothing holds it back (see the module's docstring)."""
        if self.closed and not self._lingering:
            return
        active = self._active
        hold = not self._lingering and (
            self.write_paused
            or bool(self._waiting)
            or self._unfed is not None
            or (active is not None and active.holding)
        )
        if hold == self._read_paused:
            return
        self._read_paused = hold
        if hold:
            self.transport.pause_reading()
            return
        self.transport.resume_reading()
        # The client was not late while the server held its reading back.
        watch = self.watch
        now = self.loop.time()
        if watch.body_since is not None:
            watch.body_since, watch.body_bytes = now, 0
        if watch.idle_since is not None:
            watch.idle_since = now

    def abort(self) -> None:
        """Closes at once: a response cannot be completed."""
        self._close()

    # --- deadlines (guard.py's sweep) ------------------------------------------------------

    def overdue(self, now: float) -> str | None:
        return self.watch.overdue(
            now, self.service.timeouts, reading_held=self._read_paused and not self._lingering
        )

    def cut_off(self, reason: str) -> None:
        if reason is STALLED:
            self.service.notices.note(
                logging.INFO, "slow client", "dropping a connection from %s: %s",
                _shown(self.client), reason,
            )  # fmt: skip
            self.closed = True
            self.transport.abort()  # what is left unsent goes: the client takes none of it
            return
        if self._lingering or self.closed:
            self._close()
            return
        if reason is not IDLE:  # the ordinary end of a keep-alive connection is not news
            self.service.notices.note(
                logging.INFO, "slow client", "closing a connection from %s: %s",
                _shown(self.client), reason,
            )  # fmt: skip
        error = RequestBodyTimeoutError(reason)
        parsing = self._parsing
        if parsing is not None and parsing is self._active and not parsing.responded:
            parsing.fail(error)  # its app sees `http.disconnect`
        elif self._in_head and self._active is None:
            status, headers, body = error_response(error)
            self.write(render(status, headers, body, True, self.service.date))
        self._close()

    # --- whole requests --------------------------------------------------------------------

    def _serve_whole(self, request: WholeRequest) -> None:
        head = request.head
        if head is not self._last_head:
            self._last_head = head
            self._last_facts = read_headers(head.headers, self.service.cors)
        watch = self.watch
        watch.idle_since = None
        watch.begun = False
        exchange = InferExchange(
            self, head.name, head.version_text, self._last_facts, head.keep_alive
        )
        self._active = exchange
        exchange.serve_whole(request.body)

    # --- httptools -------------------------------------------------------------------------

    def _feed(self, data: bytes) -> None:
        view = memoryview(data)
        size = len(data)
        pos = 0
        parser = self.parser
        while pos < size and not self._stopped:
            if self._waiting:  # requests wait their turn: read no further for now
                self._unfed = data[pos:]
                break
            piece = view[pos : pos + (self._body_left or _SLICE)]
            pos += len(piece)
            self._head_began_now = False
            try:
                parser.feed_data(piece)
            except httptools.HttpParserCallbackError as error:
                if not isinstance(error.__context__, _StopReadingError):
                    raise
            except httptools.HttpParserUpgrade as upgrade:
                # Refused at its head; what follows the head is its body, never a request.
                self._stopped = True
                after_head = len(piece) - int(upgrade.args[0])
                self._to_drain = self._upgrade_length - after_head
                self._discard(0)
            except httptools.HttpParserError as error:
                self._bad_framing(str(error))
            else:
                if self._in_head and not self._head_began_now:
                    # The head began in an earlier piece: all of this one is head.
                    self._head_fed += len(piece)
                    if self._head_fed > self.limits.head:
                        self._refuse_now(self._head_too_large())
        if self._stopped and pos < size and not self.closed:
            self._discard(size - pos)
        self.update_reading()

    def on_message_begin(self) -> None:
        self._mid_message = True
        self._in_head = True
        self._head_began_now = True
        self._head_fed = 0
        self._head_size = 0
        self._url = b""
        self._headers = []
        self._expect_continue = False
        self.watch.begun = True

    def on_url(self, url: bytes) -> None:
        self._url += url
        if len(self._url) > self.limits.line:
            self._refuse(UriTooLongError(f"the request target is above {self.limits.line} bytes"))

    def on_header(self, name: bytes, value: bytes) -> None:
        limits = self.limits
        headers = self._headers
        if len(headers) >= limits.count:
            self._refuse(HeadersTooLargeError(f"more than {limits.count} header fields"))
        line = len(name) + len(value) + 2
        if line > limits.line:
            self._refuse(
                HeadersTooLargeError(
                    f"a header line of {line} bytes is above the limit of {limits.line}"
                )
            )
        self._head_size += line + 2
        if self._head_size + len(self._url) > limits.head:
            self._refuse(self._head_too_large())
        name = name.lower()
        if name == b"expect" and value.lower() == b"100-continue":
            self._expect_continue = True
        headers.append((name, value))

    def on_headers_complete(self) -> None:
        self._in_head = False
        parser = self.parser
        service = self.service
        version = parser.get_http_version()
        headers = self._headers
        length = 0
        for name, value in headers:
            if name == b"content-length":
                length = int(value)  # httptools has checked it
        watch = self.watch
        watch.idle_since = None
        watch.begun = False
        watch.body_since = self.loop.time()
        watch.body_bytes = 0
        self._body_left = length
        # A request refused here is framed soundly: httptools reads its body and it is dropped
        # (an upgrade's, which httptools does not read, is drained raw: see `_feed`).
        upgrade = parser.should_upgrade()
        error = head_error(version, headers, upgrade)
        if error is not None:
            self._upgrade_length = length if upgrade else 0
            self._refuse_message(error)
            return
        if len(service.connections) > service.max_connections:
            limit = service.max_connections
            error = UnavailableError(f"too many connections: the server holds {limit} at most")
            self._refuse_message(error, kind="connection limit")
            return
        if length > service.max_body:
            error = PayloadTooLargeError(
                f"request body of {length} bytes is above the limit of {service.max_body} bytes"
            )
            self._refuse_message(error)
            return
        try:
            url = httptools.parse_url(self._url)
            raw_path = url.path
            path = raw_path.decode("ascii")
        except (httptools.HttpParserInvalidURLError, UnicodeDecodeError):
            self._refuse_message(BadRequestError("the request target is not a valid path"))
            return
        if "%" in path:
            path = unquote(path)
        keep_alive = version != "1.0" and parser.should_keep_alive()
        method = parser.get_method()
        route = parse_infer_path(path) if method == b"POST" else None
        exchange: Exchange
        if route is not None:
            facts = read_headers(headers, service.cors)
            exchange = InferExchange(
                self, route[0], route[1], facts, keep_alive, self._expect_continue
            )
        else:
            scope = http_scope(
                self, version, method, path, raw_path, url.query or b"", headers, self.app_state
            )
            exchange = AppExchange(self, service.app, scope, keep_alive, self._expect_continue)
        self._parsing = exchange
        self._enqueue(exchange)

    def on_body(self, body: bytes) -> None:
        exchange = self._parsing
        assert exchange is not None
        size = len(body)
        self.watch.body_bytes += size
        if self._body_left:
            self._body_left -= size
        exchange.size += size
        limit = self.service.max_body
        if exchange.size > limit and not exchange.dropping:
            # Answered now; the rest is read and dropped, and the connection closes after it.
            error = PayloadTooLargeError(f"request body is above the limit of {limit} bytes")
            self._note("bad request", error)
            exchange.fail(error)
        exchange.on_body(body)

    def on_message_complete(self) -> None:
        exchange = self._parsing
        assert exchange is not None
        self._parsing = None
        self._mid_message = False
        self._body_left = 0
        self.watch.body_since = None
        exchange.body_done = True
        exchange.on_complete()
        if not exchange.keep_alive:
            self._stopped = True  # nothing after a request that closes its connection is read
            if self._upgrade_length:
                return  # httptools then says where the head ended (`_feed`)
            if self._lingering:
                self._close()  # the refused request's body is drained
            raise _StopReadingError

    # --- refusals --------------------------------------------------------------------------

    def _refuse(self, error: ServiceError, kind: str = "bad request") -> NoReturn:
        """In a parser callback, before the head's end: refuse the request being read and stop
        reading (where its head would end is unknown)."""
        self._refuse_now(error, kind)
        raise _StopReadingError

    def _refuse_now(self, error: ServiceError, kind: str = "bad request") -> None:
        self._stopped = True
        self._in_head = False
        self._note(kind, error)
        self._enqueue(Refusal(self, error))

    def _refuse_message(self, error: ServiceError, kind: str = "bad request") -> None:
        """At the head's end: refuse the request; its body is read and dropped, and nothing
        after it is read."""
        self._note(kind, error)
        refusal = Refusal(self, error)
        self._parsing = refusal
        self._enqueue(refusal)

    def _bad_framing(self, reason: str) -> None:
        error = BadRequestError(f"invalid HTTP request: {reason}")
        parsing = self._parsing
        if parsing is None:
            self._refuse_now(error)
        else:
            self._give_up(parsing, error)

    def _give_up(self, exchange: Exchange, error: ServiceError) -> None:
        """The request being read cannot be read to its end (its framing broke): it is answered
        with `error` if it still can be, and nothing more is read."""
        self._stopped = True
        self._parsing = None
        self._note("bad request", error)
        if exchange.responded:
            if self._active is None:
                self._linger()
        else:
            exchange.fail(error)

    def _head_too_large(self) -> HeadersTooLargeError:
        limit = self.limits.head
        return HeadersTooLargeError(f"the request head is above the limit of {limit} bytes")

    def _note(self, kind: str, error: ServiceError) -> None:
        rejected = self.service.rejected.get(error.status)
        if rejected is not None:
            rejected.inc()
        self.service.notices.note(
            logging.INFO, kind, "%d %s (from %s)", error.status, error.message,
            _shown(self.client),
        )  # fmt: skip

    # --- answering in order ----------------------------------------------------------------

    def _enqueue(self, exchange: Exchange) -> None:
        if self._active is None:
            self._active = exchange
            exchange.start()
        else:
            self._waiting.append(exchange)

    def _finished(self, exchange: Exchange, close: bool) -> None:
        exchange.responded = True
        if close or self._shutting_down:
            self._close_after(exchange)
            return
        if self._waiting:
            # Started from the loop, not from here: this may be a parser callback or the
            # batcher delivering its answers.
            self._active = self._waiting.popleft()
            self.loop.call_soon(self._start_active)
            return
        self._active = None
        if self._stopped:
            self._linger()
            return
        watch = self.watch
        watch.idle_since = self.loop.time()
        watch.begun = self._in_head
        if self._read_paused:
            self.update_reading()

    def _start_active(self) -> None:
        active = self._active
        if self.closed or active is None or active.running or self.write_paused:
            return  # gone, or `resume_writing` starts it
        active.start()
        unfed = self._unfed
        if unfed is not None and not self._waiting and not self.closed:
            self._unfed = None
            self._feed(unfed)
        else:
            self.update_reading()

    def _close_after(self, exchange: Exchange) -> None:
        """`exchange`'s response closes the connection: what waits behind it is dropped."""
        self._stopped = True
        for waiting in self._waiting:
            waiting.abandon()
        self._waiting.clear()
        self._active = None
        self._unfed = None
        parsing = self._parsing
        if parsing is not None and parsing is not exchange:
            parsing.abandon()
        if exchange.body_done and not (self._to_drain and self._to_drain > 0):
            self._close()
        else:  # the client may still be sending
            self._linger()

    def _linger(self) -> None:
        if self.closed:
            return
        limit_s = self.service.timeouts.linger_s
        if limit_s <= 0 or (self._to_drain is not None and self._to_drain <= 0):
            self._close()
            return
        self._lingering = True
        self.closed = True
        self.watch.linger_until = self.loop.time() + limit_s
        if self.transport.can_write_eof():
            self.transport.write_eof()
        if self._read_paused:
            self._read_paused = False
            self.transport.resume_reading()

    def _discard(self, size: int) -> None:
        """Drops `size` bytes read after the last request (parsing has stopped)."""
        self._count_discarded(size)
        if self._to_drain is not None:
            self._to_drain -= size
            if self._to_drain <= 0 and self._lingering:
                self._close()  # all the client announced has come

    def _count_discarded(self, size: int) -> None:
        self._discarded += size
        if self._discarded > self.service.linger_max_bytes:
            self._close()

    def _close(self) -> None:
        self.closed = True
        self._lingering = False
        if self.watch.closing_since is None:
            self.watch.closing_since = self.loop.time()
        self.transport.close()

    def _wake_writers(self) -> None:
        waiter = self._writable
        if waiter is not None:
            self._writable = None
            if not waiter.done():
                waiter.set_result(None)


def _address(info: object) -> tuple[str, int] | None:
    if isinstance(info, tuple) and len(info) >= 2:
        return str(info[0]), int(info[1])
    return None


def _shown(client: tuple[str, int] | None) -> str:
    return "unknown" if client is None else f"{client[0]}:{client[1]}"
