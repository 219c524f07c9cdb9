"""What a request's head must be on every route, before anything reads it: limits and rules.

- Limits: the request line and each header line at most `line` bytes (414 and 431 above), the
  whole head at most `head` bytes and `count` header fields (431). Without them only the header
  deadline bounds a head, and a client could make the server hold megabytes per connection.
- One of each: `Host`, `Content-Length`, `Authorization` and `Inference-Header-Content-Length`
  given twice are a 400, not "the last one wins": a proxy in front that reads the first would
  disagree with the server about who is asking, or where the body ends.
- HTTP/1.1 requires `Host` (RFC 9112 §3.2): a 400 without it.
- HTTP/1.1 or HTTP/1.0 only: httptools also parses `HTTP/2.0` in a text request line and a
  version-less HTTP/0.9 line, which get a 505 rather than an HTTP/1.1 answer they did not ask
  for (RFC 9110 §15.6.6).
- No protocol upgrade (`Upgrade`, `CONNECT`): the service speaks HTTP/1.1 only, and a body
  behind an upgrade request would otherwise be read as the next request (request smuggling).

The connection applies them to every request httptools parses; the whole-request parser
(whole_request.py) takes no head that breaks one, leaving the refusal to that path.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from service.errors import BadRequestError, HttpVersionNotSupportedError, ServiceError

SINGLETONS = {
    b"host": "Host",
    b"content-length": "Content-Length",
    b"authorization": "Authorization",
    b"inference-header-content-length": "Inference-Header-Content-Length",
}


@dataclass(frozen=True, slots=True)
class HeadLimits:
    line: int = 8 * 1024
    head: int = 64 * 1024
    count: int = 100


def head_error(
    version: str, headers: Iterable[tuple[bytes, bytes]], upgrade: bool
) -> ServiceError | None:
    """The 400 a parsed head deserves, or None. `headers` have lower-case names; `upgrade` is
    what the parser says (`Connection: upgrade` with `Upgrade`, or `CONNECT`)."""
    seen: set[bytes] = set()
    for name, _ in headers:
        if name in SINGLETONS:
            if name in seen:
                return BadRequestError(f"the {SINGLETONS[name]} header is given twice")
            seen.add(name)
        elif name == b"upgrade":
            upgrade = True
    if upgrade:
        return BadRequestError("protocol upgrades are not supported: this server speaks HTTP/1.1")
    if version not in ("1.1", "1.0"):
        return HttpVersionNotSupportedError(
            f"HTTP/{version} is not supported: this server speaks HTTP/1.1 and HTTP/1.0"
        )
    if version == "1.1" and b"host" not in seen:
        return BadRequestError("an HTTP/1.1 request needs a Host header")
    return None
