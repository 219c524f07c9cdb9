"""Typed errors of the service, each carrying the HTTP status it maps to.

Every error body is `{"error": "..."}`; the message names what was wrong (which input, expected
versus got) so that a client can fix its request without reading the server's logs. 500 is kept
for real faults (a model that fails at run time, a bug), never for a bad request.
"""

from __future__ import annotations

import orjson


class ServiceError(Exception):
    """Base class: an error with an HTTP status and a message safe to show to clients."""

    status: int = 500
    headers: tuple[tuple[bytes, bytes], ...] = ()

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def body(self) -> bytes:
        return orjson.dumps({"error": self.message})


class BadRequestError(ServiceError):
    """The request is malformed or does not match the model's signature."""

    status = 400


class UnauthorizedError(ServiceError):
    status = 401
    headers = ((b"www-authenticate", b"Bearer"),)


class ForbiddenError(ServiceError):
    status = 403


class NotFoundError(ServiceError):
    """Unknown model, unknown or unserved version, unknown route."""

    status = 404


class PayloadTooLargeError(ServiceError):
    status = 413


class UriTooLongError(ServiceError):
    status = 414


class HeadersTooLargeError(ServiceError):
    """A header line, the request's head or its number of header fields is above its limit."""

    status = 431


class HttpVersionNotSupportedError(ServiceError):
    """A request line naming an HTTP version other than 1.1 and 1.0 (2.0 spoken as text, or a
    version-less HTTP/0.9 line), which the parser would otherwise let through."""

    status = 505


class RequestBodyTimeoutError(ServiceError):
    """The client did not send its request in time (a slow or stalled client)."""

    status = 408


class UnavailableError(ServiceError):
    """Not ready, draining, overloaded or timed out: retrying later may succeed."""

    status = 503
    headers = ((b"retry-after", b"1"),)


class OverloadedError(UnavailableError):
    """A version's queue is full: the server is at capacity (gRPC: RESOURCE_EXHAUSTED)."""


class ModelInputError(BadRequestError):
    """ONNX Runtime failed on one request run alone, for a reason in its data (e.g. an index out
    of range): the client's input is at fault, reported as 400 with the model's message."""


class ModelExecutionError(ServiceError):
    """ONNX Runtime failed while running a batch: a real fault, reported as 500."""

    status = 500


class RequestTimeoutError(UnavailableError):
    """The request's timeout passed while it waited in the queue; it never reached the model."""
