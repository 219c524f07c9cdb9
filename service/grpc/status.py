"""The gRPC status a service error maps to (the one place that decides it).

A bad request is INVALID_ARGUMENT, an unknown model or version NOT_FOUND, a server or model not
ready (or shutting down) UNAVAILABLE, a full queue or a message over the size limit
RESOURCE_EXHAUSTED, a request that waited past its timeout DEADLINE_EXCEEDED, missing or wrong
credentials UNAUTHENTICATED or PERMISSION_DENIED. INTERNAL is left for faults of the server or
the model, never for anything a client sends.
"""

from __future__ import annotations

import grpc

from service.errors import (
    OverloadedError,
    PayloadTooLargeError,
    RequestBodyTimeoutError,
    RequestTimeoutError,
    ServiceError,
)

_BY_HTTP_STATUS = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    503: grpc.StatusCode.UNAVAILABLE,
}


def status_of(error: ServiceError) -> grpc.StatusCode:
    # Subclasses first: each is a more precise case of its HTTP status.
    if isinstance(error, RequestTimeoutError | RequestBodyTimeoutError):
        return grpc.StatusCode.DEADLINE_EXCEEDED
    if isinstance(error, OverloadedError | PayloadTooLargeError):
        return grpc.StatusCode.RESOURCE_EXHAUSTED
    return _BY_HTTP_STATUS.get(error.status, grpc.StatusCode.INTERNAL)
