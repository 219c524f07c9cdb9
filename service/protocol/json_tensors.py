"""Large JSON tensors without Python objects: numeric `"data"` arrays cut out of the raw body.

Parsing a JSON body whole costs ≈ 15 × its size before any element is checked (a Python float
and a list slot for every 4-byte `0.5,`), so a 64 MB body would take about a gigabyte. For a body
above `SCAN_FROM_BYTES`, each `"data"` array holding only numbers is cut out of the text before
JSON parsing and replaced by a slot marker; its elements are then counted from its commas and
checked against the declared shape, and only an array of the declared size is parsed. What a
request can make the server allocate is then bounded by what it declares, which the element
limit bounds, not by what it sends.

The scan needs to know what is inside a JSON string. A body with no backslash has no escaped
quote, so its quotes pair up in order and a `"data"` key is one whose quote opens a string; a body
with a backslash is left to the ordinary parse. The slot marker itself holds an escape, so no
body the scan accepted can contain one of its own. The scan uses only `bytes` searches and counts
over the body and over 1 MiB pieces of it: nothing it allocates grows with the body.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import orjson

from service.errors import BadRequestError

SCAN_FROM_BYTES = 64 * 1024
SLOT_PREFIX = "\x00inductive-slot:"
_SLOT_JSON = b'"\\u0000inductive-slot:%d"'
_KEY = b'"data"'
_WHITESPACE = b" \t\r\n"
# What a numeric array may hold: digits, sign, decimal point, exponent, separators, nesting.
_NUMERIC = b"0123456789+-.eE,[] \t\r\n"
_DIGITS = b"0123456789"
_PIECE = 1 << 20
# Rows of a nested array matched one `]` at a time; past this many the ordinary parse decides,
# so that a body of millions of `]` cannot make the scan itself costly.
_MAX_CLOSES = 1 << 16


def cut_numeric_arrays(body: bytes) -> tuple[bytes, list[memoryview]] | None:
    """The body with each numeric `"data"` array replaced by a slot marker, and the arrays'
    text; None when there is nothing to cut (or the body has escapes, see above)."""
    if b"\\" in body:
        return None
    view = memoryview(body)
    pieces: list[bytes | memoryview] = []
    slots: list[memoryview] = []
    done = 0  # body[:done] is in `pieces`
    quotes = counted_to = 0  # quotes in body[:counted_to]
    at = body.find(_KEY)
    while at >= 0:
        quotes += body.count(b'"', counted_to, at)
        counted_to = at
        span = None if quotes % 2 else _numeric_array_after(body, at + len(_KEY))
        if span is not None:
            start, end = span
            pieces += (view[done:start], _SLOT_JSON % len(slots))
            slots.append(view[start:end])
            done = end
        at = body.find(_KEY, span[1] if span else at + len(_KEY))
    if not slots:
        return None
    pieces.append(view[done:])
    return b"".join(pieces), slots


def _numeric_array_after(body: bytes, i: int) -> tuple[int, int] | None:
    """(start, end) of the array of numbers that is the value of the key ending at `i`."""
    i = _skip_whitespace(body, i)
    if body[i : i + 1] != b":":
        return None  # "data" as a value, not a key
    start = _skip_whitespace(body, i + 1)
    if body[start : start + 1] != b"[":
        return None
    # An array of numbers holds no quote: it ends before the next one, or the body does.
    limit = body.find(b'"', start)
    limit = len(body) if limit < 0 else limit
    depth, pos = 0, start
    for _ in range(_MAX_CLOSES):
        close = body.find(b"]", pos, limit)
        if close < 0:
            return None
        depth += body.count(b"[", pos, close) - 1
        pos = close + 1
        if depth == 0:
            break
    else:
        return None
    if any(piece.translate(None, _NUMERIC) for piece in _pieces(memoryview(body)[start:pos])):
        return None  # booleans, nulls, objects: the ordinary parse decides
    return start, pos


def _skip_whitespace(body: bytes, i: int) -> int:
    while i < len(body) and body[i] in _WHITESPACE:
        i += 1
    return i


def _pieces(text: memoryview) -> Iterator[bytes]:
    for offset in range(0, len(text), _PIECE):
        yield bytes(text[offset : offset + _PIECE])


def slot_index(data: object) -> int | None:
    if isinstance(data, str) and data.startswith(SLOT_PREFIX):
        return int(data[len(SLOT_PREFIX) :])
    return None


def slot_data(name: str, shape: tuple[int, ...], text: memoryview) -> object:
    """The parsed data of a numeric JSON array (nested or flat), once its element count, read
    off its commas, matches `shape`: a mismatch is refused before anything its size exists."""
    count = math.prod(shape)
    commas = 0
    digits = False
    for piece in _pieces(text):
        commas += piece.count(b",")
        digits = digits or len(piece.translate(None, _DIGITS)) < len(piece)
    found = commas + 1 if digits else 0
    if found != count:
        raise BadRequestError(
            f"input '{name}': shape {list(shape)} needs {count} elements, data has {found}"
        )
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise BadRequestError(f"request body is not valid JSON: input '{name}': {exc}") from None
