"""The bytes of an HTTP/1.1 response, and the one way an error becomes one.

Every error the service answers, whoever finds it (the connection's framing rules and deadlines,
the inference front end, the FastAPI routes' handlers), is a `ServiceError` turned into a response
by `error_response`: a JSON body `{"error": "..."}` with the status the error carries.
"""

from __future__ import annotations

import http
from email.utils import formatdate

from service.errors import ServiceError

Headers = list[tuple[bytes, bytes]]

JSON = b"application/json"
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


def _status_line(status: int) -> bytes:
    try:
        phrase = http.HTTPStatus(status).phrase
    except ValueError:
        phrase = ""
    return f"HTTP/1.1 {status} {phrase}\r\n".encode("ascii")


STATUS_LINES = {status: _status_line(status) for status in range(100, 600)}


def date_line(now: float) -> bytes:
    """The `date` header line for the wall-clock time `now` (refreshed by the connections'
    sweep, not formatted per response)."""
    return b"date: " + formatdate(now, usegmt=True).encode("ascii") + b"\r\n"


def render(status: int, headers: Headers, body: bytes, close: bool, date: bytes) -> bytes:
    """A whole response; `headers` hold no `connection` header (`close` adds it)."""
    parts = [STATUS_LINES[status], date]
    for name, value in headers:
        parts += (name, b": ", value, b"\r\n")
    if close:
        parts.append(b"connection: close\r\n")
    parts += (b"\r\n", body)
    return b"".join(parts)


def error_response(error: ServiceError) -> tuple[int, Headers, bytes]:
    body = error.body()
    headers = [
        (b"content-type", JSON),
        (b"content-length", str(len(body)).encode()),
        *error.headers,
    ]
    return error.status, headers, body
