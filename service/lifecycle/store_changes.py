"""Whether a poll has anything to read: the store's change marker against the last one seen.

Every change made through a `ModelStore` rewrites the store-wide marker (model_store/store.py),
so a poll first reads that one object and lists the store only when it changed: a poll of an
unchanged store of a thousand models costs one read instead of a listing and several reads per
model. A poll that failed anywhere is not remembered (the next one reads everything again), and
a full poll still runs every `full_every_s` whatever the marker says: a FAILED version's retry
is due then, and a change made without a store (files copied by hand, an older writer) is seen
within that time. A store without a marker (no change made through a store yet) is read whole
at every poll, as before markers existed.
"""

from __future__ import annotations

import time
from typing import Any


class ChangeWatch:
    def __init__(self, full_every_s: float) -> None:
        self._full_every_s = full_every_s
        self._seen: bytes | None = None
        self._last_full = float("-inf")

    def read(self, store: Any) -> tuple[bool, bytes | None]:
        """Loader thread: (whether this poll must read the store, the marker now)."""
        marker = store.changes()
        if marker is None or marker != self._seen:
            return True, marker
        return time.monotonic() - self._last_full >= self._full_every_s, marker

    def polled(self, marker: bytes | None) -> None:
        """A poll that read `marker` first then read the whole store without a failure."""
        self._seen = marker
        self._last_full = time.monotonic()
