"""One request on a connection, from its head to its response: what the connection asks of each.

A connection (connection.py) turns every request head it reads into an exchange and keeps them
in arrival order; the first is the one being answered, the others wait their turn (pipelining).
Three kinds: `InferExchange` (infer.py) answers inference through the front end,
`AppExchange` (asgi.py) runs the FastAPI app, `Refusal` answers an error the connection found
itself (a head breaking a rule or limit, the connection limit, bad framing).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from service.errors import ServiceError
from service.http.responses import Headers, error_response

if TYPE_CHECKING:
    from service.http.connection import HttpConnection


class Exchange:
    __slots__ = (
        "body_done",
        "conn",
        "dropping",
        "holding",
        "keep_alive",
        "responded",
        "running",
        "size",
    )  # fmt: skip

    def __init__(self, conn: HttpConnection, keep_alive: bool) -> None:
        self.conn = conn
        self.keep_alive = keep_alive
        self.size = 0  # body bytes received
        self.body_done = False  # the whole request has been read
        self.running = False  # its turn has come (`start` was called)
        self.responded = False  # its whole response is written
        self.holding = False  # it holds more unread body than the connection buffers
        self.dropping = False  # refused: its body is read only to be dropped

    def start(self) -> None:
        """Its turn: answer now, or once its body is in."""
        raise NotImplementedError

    def on_body(self, chunk: bytes) -> None:
        """A piece of its body (the connection counts `size` and enforces the limit)."""

    def on_complete(self) -> None:
        """Its body is complete (`body_done` is set)."""

    def fail(self, error: ServiceError) -> None:
        """The connection gives up on the request (its framing broke, its body is too large or
        too slow): answer `error` when it can still be, and the connection closes after it."""
        raise NotImplementedError

    def abandon(self) -> None:
        """The connection is gone: nobody to answer."""


class Refusal(Exchange):
    """An error found by the connection: answered in its turn, then the connection closes (what
    follows the request on the connection is not read as requests)."""

    __slots__ = ("response",)

    def __init__(self, conn: HttpConnection, error: ServiceError) -> None:
        super().__init__(conn, keep_alive=False)
        self.dropping = True
        self.response: tuple[int, Headers, bytes] = error_response(error)

    def start(self) -> None:
        self.running = True
        self.conn.respond(self, *self.response)

    def fail(self, error: ServiceError) -> None:
        pass  # it is an error response already
