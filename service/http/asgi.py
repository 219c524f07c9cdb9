"""Every route but inference: the request handed to the ASGI app (FastAPI), as uvicorn would.

The exchange builds the request's scope (percent-decoded `path`, `raw_path`, `query_string`,
lower-cased header names), runs the app in a task of its own and gives it the ASGI
`receive`/`send` pair:

- `receive` yields the body as the connection reads it; once the response is complete or the
  client is gone it says `http.disconnect`. A body the app does not take is held up to
  `HIGH_WATER` bytes, then the connection stops reading until the app takes it;
  `Expect: 100-continue` is answered when the app first asks for the body.
- `send` writes the response: `Content-Length` when the app gives one, chunked otherwise, no body
  for `HEAD`, 204 and 304; it waits while the client does not take what was written.
- An app that fails before its response starts gets a JSON 500, after it a closed connection.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

from service.errors import ServiceError
from service.http.exchange import Exchange
from service.http.responses import CONTINUE, STATUS_LINES, Headers, error_response

if TYPE_CHECKING:
    from service.http.connection import HttpConnection

log = logging.getLogger("service.http")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

HIGH_WATER = 64 * 1024
_NAME = re.compile(rb"[^!#$%&'*+.^_`|~0-9A-Za-z-]")  # anything but a token
_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")  # control bytes: no response splitting


def http_scope(
    conn: HttpConnection,
    version: str,
    method: bytes,
    path: str,
    raw_path: bytes,
    query: bytes,
    headers: Headers,
    app_state: dict[str, Any],
) -> Scope:
    """The ASGI `http` scope of a request, as uvicorn builds it (`path` percent-decoded)."""
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": version,
        "server": conn.server,
        "client": conn.client,
        "scheme": "http",
        "method": method.decode("ascii"),
        "root_path": "",
        "path": path,
        "raw_path": raw_path,
        "query_string": query,
        "headers": headers,
        "state": app_state.copy(),  # the lifespan's state, a copy per request
    }


class AppExchange(Exchange):
    __slots__ = (
        "app",
        "body",
        "chunked",
        "disconnected",
        "ended",
        "expect_continue",
        "finished",
        "left",
        "no_body",
        "refusal",
        "scope",
        "started",
        "task",
        "waiter",
    )  # fmt: skip

    def __init__(
        self,
        conn: HttpConnection,
        app: App,
        scope: Scope,
        keep_alive: bool,
        expect_continue: bool,
    ) -> None:
        super().__init__(conn, keep_alive)
        self.app = app
        self.scope = scope
        self.expect_continue = expect_continue
        self.body = bytearray()  # received, not yet taken by the app
        self.ended = False  # the app got the last piece of the body
        self.waiter: asyncio.Future[None] | None = None
        self.task: asyncio.Task[None] | None = None
        self.refusal: tuple[int, Headers, bytes] | None = None  # failed before its turn
        self.disconnected = False  # nothing more reaches the client from the app
        self.started = False  # the response's head is written
        self.finished = False  # and its body
        self.no_body = scope["method"] == "HEAD"
        self.chunked = False
        self.left = 0  # body bytes the response's Content-Length still expects

    # --- what the connection asks ---------------------------------------------------------

    def start(self) -> None:
        self.running = True
        if self.refusal is not None:
            self.conn.respond(self, *self.refusal)
            return
        self.task = self.conn.run_task(self._run())

    def on_body(self, chunk: bytes) -> None:
        if self.dropping or self.disconnected or self.finished:
            return
        self.body += chunk
        if len(self.body) > HIGH_WATER:
            self.holding = True
        self._wake()

    def on_complete(self) -> None:
        self._wake()

    def fail(self, error: ServiceError) -> None:
        self.keep_alive = False
        self.dropping = True
        if self.finished:
            return
        if not self.running:
            self.refusal = error_response(error)
            return
        self._disconnect()
        if self.started:
            self.conn.abort()  # part of a response is out: only closing can end it
        else:
            self.started = True
            self.conn.respond(self, *error_response(error))

    def abandon(self) -> None:
        self._disconnect()

    # --- the ASGI interface ---------------------------------------------------------------

    async def _run(self) -> None:
        try:
            await self.app(self.scope, self.receive, self.send)
        except asyncio.CancelledError:
            self._disconnect()
            self.conn.abort()
            raise
        except Exception as exc:
            log.error(
                "the app failed on %s %s", self.scope["method"], self.scope["path"][:200],
                exc_info=exc,
            )  # fmt: skip
            self._fault()
        else:
            if not self.finished and not self.disconnected:
                log.error("the app returned without a whole response to %s", self.scope["path"])
                self._fault()

    def _fault(self) -> None:
        if self.disconnected or self.finished:
            return
        if self.started:
            self.conn.abort()
        else:
            self.started = True
            self.conn.respond(self, *error_response(ServiceError("internal server error")))

    async def receive(self) -> Message:
        conn = self.conn
        if self.expect_continue and not self.started and not conn.closed:
            self.expect_continue = False
            conn.write(CONTINUE)
        while not (self.disconnected or self.finished):
            if self.body or (self.body_done and not self.ended):
                body = bytes(self.body)
                self.body.clear()
                self.ended = self.body_done
                if self.holding:
                    self.holding = False
                    conn.update_reading()
                return {"type": "http.request", "body": body, "more_body": not self.ended}
            waiter = self.waiter = conn.loop.create_future()
            await waiter
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        conn = self.conn
        if conn.write_paused and not self.disconnected:
            await conn.writable()
        if self.disconnected:
            return
        kind = message["type"]
        if not self.started:
            if kind != "http.response.start":
                raise RuntimeError(f"expected 'http.response.start', got {kind!r}")
            self.started = True
            self.expect_continue = False
            conn.write(self._head(message["status"], message.get("headers", ())))
        elif not self.finished:
            if kind != "http.response.body":
                raise RuntimeError(f"expected 'http.response.body', got {kind!r}")
            self._body(message.get("body", b""), message.get("more_body", False))
        else:
            raise RuntimeError(f"{kind!r} sent after the response was complete")

    # --- writing the response -------------------------------------------------------------

    def _head(self, status: int, headers: Any) -> bytes:
        conn = self.conn
        parts = [STATUS_LINES[status], conn.service.date]
        length: int | None = None
        for raw_name, value in headers:
            name = raw_name.lower()
            if _NAME.search(name) or _VALUE.search(value):
                raise RuntimeError(f"invalid response header {raw_name!r}")
            if name == b"content-length":
                length = int(value)
                continue  # written below, once
            if name == b"connection":
                if b"close" in value.lower():
                    self.keep_alive = False
                continue  # ours to set, below
            if name == b"transfer-encoding":
                continue  # ours to set, below
            parts += (name, b": ", value, b"\r\n")
        if status in (204, 304) or status < 200:
            self.no_body = True
        if self.no_body:
            if length is not None:
                parts += (b"content-length: ", str(length).encode(), b"\r\n")
        elif length is not None:
            self.left = length
            parts += (b"content-length: ", str(length).encode(), b"\r\n")
        else:
            self.chunked = True
            parts.append(b"transfer-encoding: chunked\r\n")
        if not self.keep_alive or conn.closing_after_response:
            self.keep_alive = False
            parts.append(b"connection: close\r\n")
        parts.append(b"\r\n")
        return b"".join(parts)

    def _body(self, body: bytes, more: bool) -> None:
        conn = self.conn
        if self.no_body:
            pass
        elif self.chunked:
            if body:
                conn.write(b"%x\r\n%b\r\n" % (len(body), body))
            if not more:
                conn.write(b"0\r\n\r\n")
        else:
            if len(body) > self.left:
                raise RuntimeError("the response body is longer than its Content-Length")
            self.left -= len(body)
            conn.write(body)
        if not more:
            if self.left:
                raise RuntimeError("the response body is shorter than its Content-Length")
            self.finished = True
            self._wake()
            conn.response_done(self, close=not self.keep_alive)

    def _disconnect(self) -> None:
        self.disconnected = True
        self._wake()

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            if not waiter.done():
                waiter.set_result(None)
