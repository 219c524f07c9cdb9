"""A model version as a client names it in a path: a positive integer, or a 400."""

from __future__ import annotations

from service.errors import BadRequestError


def parse_version(text: str | None) -> int | None:
    if text is None:
        return None
    # isascii: str.isdigit accepts '¹' and other digits int() refuses.
    if not (text.isascii() and text.isdigit()) or not 0 < int(text) < 2**63:
        raise BadRequestError(f"model version must be a positive integer, got {text[:40]!r}")
    return int(text)
