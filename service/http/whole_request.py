"""One inference request read whole from one socket read, parsed by a single regular expression.

Under load a client's `POST …/infer` almost always arrives in one read: request line, headers
and the complete body. Fed to httptools it costs a Python callback per header, one for the URL,
the body and each parser event (benchmarks/results/profile/ shows what they cost). Here the same
bytes are matched in one pass of C (`re`), and the connection (connection.py) serves the request
directly. A client sends the same head (request line and headers) again and again on its
connection, so the caller may hand back the last head it got: when the new request begins with
exactly those bytes, they are not parsed a second time.

This parser only ever says "this is one complete, plain request" or "not mine": anything else
(a body split over reads, pipelined requests, chunked or absent Content-Length, `Expect`,
`Upgrade`, HTTP/1.0, percent-encoded or query-bearing paths, a header byte outside RFC 9110's
grammar, a head that breaks a rule or limit of head_rules.py) returns None, and the bytes go to
httptools, whose path applies those rules and refuses. So it accepts a strict subset of what
httptools accepts and reads it the same way: no request can mean one thing here and another
there (the root of request smuggling).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from service.http.head_rules import SINGLETONS, HeadLimits

# pchar without "%" (RFC 3986): a model name or version as it appears in a plain path.
_SEGMENT = rb"[A-Za-z0-9._~!$&'()*+,;=:@-]+"
# field-name = token; field-value = VCHAR, obs-text, SP and HTAB (RFC 9110 §5): a bare CR or LF
# anywhere, or any other control byte, fails the match. One match validates the request line
# and every header line; the loop below only splits what it matched.
_HEAD = re.compile(
    rb"POST /v2/models/(" + _SEGMENT + rb")(?:/versions/(" + _SEGMENT + rb"))?/infer HTTP/1\.1\r\n"
    rb"((?:[!#$%&'*+.^_`|~0-9A-Za-z-]+:[\t\x20-\x7e\x80-\xff]*\r\n)*)\r\n"
)
_OWS = b" \t"
# Headers whose presence hands the request to httptools: they change how the body is framed
# or what the connection becomes.
_NOT_PLAIN = frozenset({b"transfer-encoding", b"expect", b"upgrade"})


@dataclass(frozen=True, slots=True)
class RequestHead:
    """What a plain request's head says. `raw` holds its bytes through the blank line: a head
    is a pure function of them, so a request that begins with the same bytes has the same head."""

    raw: bytes
    name: str
    version_text: str | None
    headers: list[tuple[bytes, bytes]]  # names lower-cased, as uvicorn gives them; not mutated
    content_length: int
    keep_alive: bool


@dataclass(slots=True)
class WholeRequest:
    head: RequestHead
    body: bytes


_NO_LIMITS = HeadLimits()


def parse_whole_request(
    data: bytes, previous: RequestHead | None = None, limits: HeadLimits = _NO_LIMITS
) -> WholeRequest | None:
    """The request `data` holds exactly, or None when it is not one plain, complete request
    within `limits`. `previous`: a head this parser returned before (with the same limits),
    reused when `data` begins with its bytes."""
    if previous is not None and data.startswith(previous.raw):
        # The head ends at the first blank line and no head line holds CR or LF, so a match
        # would end exactly where `previous.raw` does and read the same.
        head: RequestHead | None = previous
    else:
        head = _parse_head(data, limits)
    if head is None or len(data) - len(head.raw) != head.content_length:
        return None  # not plain, a body still to come, or another request behind this one
    return WholeRequest(head, data[len(head.raw) :])


def _parse_head(data: bytes, limits: HeadLimits) -> RequestHead | None:
    head = _HEAD.match(data)
    if head is None or head.end() > limits.head or data.find(b"\r\n") > limits.line:
        return None
    lines = head[3].split(b"\r\n")[:-1]
    if len(lines) > limits.count:
        return None
    headers = []
    length: int | None = None
    keep_alive = True
    seen: set[bytes] = set()
    for line in lines:
        if len(line) > limits.line:
            return None
        raw_name, _, raw_value = line.partition(b":")
        name = raw_name.lower()
        value = raw_value.lstrip(_OWS)  # trailing OWS is kept, as httptools keeps it
        if name in _NOT_PLAIN:
            return None
        if name in SINGLETONS:
            if name in seen:
                return None  # given twice: the httptools path refuses it
            seen.add(name)
        if name == b"content-length":
            if not value.isdigit():
                return None  # not a plain decimal: httptools decides
            length = int(value)
        elif name == b"connection":
            tokens = {token.strip(_OWS).lower() for token in value.split(b",")}
            if not tokens <= {b"keep-alive", b"close"}:
                return None  # "upgrade" and the like
            keep_alive = b"close" not in tokens
        headers.append((name, value))
    if length is None or b"host" not in seen:
        return None  # a body framed some other way, or no Host: httptools decides
    version = head[2]
    return RequestHead(
        raw=data[: head.end()],
        name=head[1].decode("ascii"),
        version_text=None if version is None else version.decode("ascii"),
        headers=headers,
        content_length=length,
        keep_alive=keep_alive,
    )
