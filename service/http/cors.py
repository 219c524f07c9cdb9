"""The CORS policy: off unless origins are configured; one policy for every route.

Preflight requests (`OPTIONS`) and the FastAPI routes go through Starlette's `CORSMiddleware`
built from this policy (app.py); the inference route, answered by the connection itself, adds
the headers Starlette adds to an actual cross-origin response (`response_headers`), so that both
kinds of route answer a browser alike.
"""

from __future__ import annotations

from dataclasses import dataclass

Headers = tuple[tuple[bytes, bytes], ...]


@dataclass(frozen=True)
class Cors:
    origins: tuple[str, ...]
    methods: tuple[str, ...] = ("GET", "POST")
    headers: tuple[str, ...] = ("authorization", "content-type", "inference-header-content-length")
    expose: tuple[str, ...] = ("inference-header-content-length",)

    def response_headers(self, origin: str) -> Headers:
        """What an actual (not preflight) response to a request from `origin` carries."""
        allowed: Headers = ()
        if "*" in self.origins:
            allowed = ((b"access-control-allow-origin", b"*"),)
        elif origin in self.origins:
            allowed = ((b"access-control-allow-origin", origin.encode("latin-1")),)
        expose = ", ".join(self.expose).encode("latin-1")
        return (
            (b"access-control-expose-headers", expose),
            *allowed,
            (b"vary", b"Origin"),
        )
