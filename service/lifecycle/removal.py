"""Models gone from the store: unloaded once they have stayed gone for a grace period.

A model whose directory (or every complete version) disappears from the store's listing keeps
serving for `INDUCTIVE_REMOVAL_GRACE_S`: a store being reorganised, a model deleted and published
again, or a listing caught halfway through a rename do not cost its clients a gap. Only a
successful listing counts: an unreachable store (an outage) never starts the clock. A model
listed again before its grace is over is simply kept.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterable


class RemovalWatch:
    def __init__(self, grace_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.grace_s = grace_s
        self._clock = clock
        self._missing_since: dict[str, float] = {}

    def update(self, listed: Collection[str], loaded: Iterable[str]) -> list[str]:
        """After a successful listing: the loaded models whose grace is over, sorted. Starts
        the clock for loaded models the listing lacks, and forgets those it has again."""
        now = self._clock()
        loaded = set(loaded)
        for name in list(self._missing_since):
            if name in listed or name not in loaded:
                del self._missing_since[name]
        for name in loaded.difference(listed):
            self._missing_since.setdefault(name, now)
        return sorted(n for n, t in self._missing_since.items() if now - t >= self.grace_s)

    @property
    def counting(self) -> bool:
        """Whether a model's grace is running: polls must list the store until it ends, even
        when the store's change marker says nothing changed."""
        return bool(self._missing_since)

    def missing_for(self, name: str) -> float | None:
        """Seconds since the model was first seen missing, None when it is not missing."""
        since = self._missing_since.get(name)
        return None if since is None else self._clock() - since

    def forget(self, name: str) -> None:
        self._missing_since.pop(name, None)
