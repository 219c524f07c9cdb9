"""Large JSON tensors checked before parsing: `"data"` arrays cut out of the raw body.

Parsing a JSON body whole costs ≈ 15 × its size before any element is checked (a Python float
and a list slot for every 4-byte `0.5,`), so a 64 MB body would take about a gigabyte. For a body
above `SCAN_FROM_BYTES`, each `"data"` array holding no string is cut out of the text before
JSON parsing and replaced by a slot marker; its elements are then counted from its commas and
checked against the declared shape, and only an array of the declared size is parsed. What a
request can make the server allocate is then bounded by what it declares, which the element
limit bounds, not by what it sends.

The scan needs to know what is inside a JSON string. A body with no backslash has no escaped
quote, so its quotes pair up in order and a `"data"` key is one whose quote opens a string; a body
with a backslash is left to the ordinary parse. The slot marker itself holds an escape, so no
body the scan accepted can contain one of its own. The scan uses only `bytes` searches and counts
over the body: nothing it allocates grows with the body but the skeleton left to parse.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import orjson

from service.errors import BadRequestError

SCAN_FROM_BYTES = 64 * 1024
SLOT_PREFIX = "\x00inductive-slot:"
_SLOT_JSON = b'"\\u0000inductive-slot:%d"'
_KEY = b'"data"'
_WHITESPACE = b" \t\r\n"
_NESTING = b"[] \t\r\n"
_PIECE = 1 << 20
# Rows of a nested array matched one `]` at a time; past this many the ordinary parse decides,
# so that a body of millions of `]` cannot make the scan itself costly.
_MAX_CLOSES = 1 << 16


@dataclass(frozen=True, slots=True)
class Slot:
    """Where a cut-out array lies in the body."""

    body: bytes
    start: int
    end: int

    def text(self) -> memoryview:
        return memoryview(self.body)[self.start : self.end]


def cut_data_arrays(body: bytes) -> tuple[bytes, list[Slot]] | None:
    """The body with each `"data"` array that holds no string replaced by a slot marker, and
    where the arrays lie; None when there is nothing to cut (or the body has escapes)."""
    if b"\\" in body:
        return None
    view = memoryview(body)
    pieces: list[bytes | memoryview] = []
    slots: list[Slot] = []
    done = 0  # body[:done] is in `pieces`
    quotes = counted_to = 0  # quotes in body[:counted_to]
    at = body.find(_KEY)
    while at >= 0:
        quotes += _count(body, ord('"'), counted_to, at)
        counted_to = at
        span = None if quotes % 2 else _array_after(body, at + len(_KEY))
        if span is not None:
            start, end = span
            pieces += (view[done:start], _SLOT_JSON % len(slots))
            slots.append(Slot(body, start, end))
            done = end
        at = body.find(_KEY, span[1] if span else at + len(_KEY))
    if not slots:
        return None
    pieces.append(view[done:])
    return b"".join(pieces), slots


def _array_after(body: bytes, i: int) -> tuple[int, int] | None:
    """(start, end) of the array without strings that is the value of the key ending at `i`."""
    i = _skip_whitespace(body, i)
    if body[i : i + 1] != b":":
        return None  # "data" as a value, not a key
    start = _skip_whitespace(body, i + 1)
    if body[start : start + 1] != b"[":
        return None
    # An array without strings ends before the next quote, or the body does.
    limit = body.find(b'"', start)
    limit = len(body) if limit < 0 else limit
    depth, pos = 0, start
    for _ in range(_MAX_CLOSES):
        close = body.find(b"]", pos, limit)
        if close < 0:
            return None
        depth += _count(body, ord("["), pos, close) - 1
        pos = close + 1
        if depth == 0:
            break
    else:
        return None
    return start, pos


def _skip_whitespace(body: bytes, i: int) -> int:
    while i < len(body) and body[i] in _WHITESPACE:
        i += 1
    return i


def _count(body: bytes, byte: int, start: int, end: int) -> int:
    """`body.count(bytes([byte]), start, end)`, 5 × faster: numpy over 1 MiB views, so that
    its temporaries stay small whatever the body."""
    if end - start < 4096:
        return body.count(bytes((byte,)), start, end)
    raw = np.frombuffer(body, dtype=np.uint8)
    return sum(
        int(np.count_nonzero(raw[i : min(i + _PIECE, end)] == byte))
        for i in range(start, end, _PIECE)
    )


def slot_index(data: object) -> int | None:
    if isinstance(data, str) and data.startswith(SLOT_PREFIX):
        return int(data[len(SLOT_PREFIX) :])
    return None


def slot_data(name: str, shape: tuple[int, ...], slot: Slot) -> object:
    """The parsed data of a cut-out array (nested or flat), once its element count, read off
    its commas, matches `shape`: a mismatch is refused before anything its size exists. (An
    array without strings holds scalars, or empty objects: commas separate them, at any depth;
    a ragged nesting the count misjudges is refused by the ordinary checks after parsing.)"""
    count = math.prod(shape)
    found = _count(slot.body, ord(","), slot.start, slot.end) + 1
    if found == 1 and not slot.body[slot.start : slot.end].translate(None, _NESTING):
        found = 0  # [], [[]], …
    if found != count:
        raise BadRequestError(
            f"input '{name}': shape {list(shape)} needs {count} elements, data has {found}"
        )
    try:
        return orjson.loads(slot.text())
    except orjson.JSONDecodeError as exc:
        raise BadRequestError(f"request body is not valid JSON: input '{name}': {exc}") from None
