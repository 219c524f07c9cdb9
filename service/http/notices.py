"""Client-caused conditions in the log: one line per kind and interval, never a traceback.

A client can cause as many of these as it sends requests (bad framing, an over-limit connection,
hanging up on queued requests), so a line per event would let any client flood the log. Each
kind is logged at most once per `interval_s`; the next line says how many more came meanwhile.
"""

from __future__ import annotations

import logging
import time


class Notices:
    def __init__(self, logger: logging.Logger, interval_s: float = 10.0) -> None:
        self._log = logger
        self._interval_s = interval_s
        self._last: dict[str, float] = {}  # kind → when its last line was written
        self._unsaid: dict[str, int] = {}  # kind → events since that line

    def note(self, level: int, kind: str, message: str, *args: object) -> None:
        """`message % args` under `kind` (a short fixed name, e.g. "bad request framing")."""
        if not self._log.isEnabledFor(level):
            return
        now = time.monotonic()
        last = self._last.get(kind)
        if last is not None and now - last < self._interval_s:
            self._unsaid[kind] = self._unsaid.get(kind, 0) + 1
            return
        self._last[kind] = now
        unsaid = self._unsaid.pop(kind, 0)
        if unsaid:
            message += f" ({unsaid} more of this kind since the last line about it)"
        self._log.log(level, f"{kind}: {message}", *args)
