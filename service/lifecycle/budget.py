"""The memory budget's accounting: what each loaded version is charged, and which models to
unload, least recently used first, to make room for a load.

Pure bookkeeping, no I/O: `on_demand.py` decides when to load and unload and asks this module
what fits. A model is charged per loaded version (a canary holds two); it is unloaded whole.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

MB = 1024 * 1024


def megabytes(n: int | float) -> str:
    return f"{n / MB:.1f} MB"


@dataclass(frozen=True, slots=True)
class Charge:
    name: str
    version: int
    nbytes: int


class MemoryBudget:
    """How many bytes the loaded models may take together, and what each one takes."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._charges: dict[tuple[str, int], Charge] = {}

    @property
    def used(self) -> int:
        return sum(c.nbytes for c in self._charges.values())

    def charge(self, name: str, version: int, nbytes: int) -> None:
        self._charges[(name, version)] = Charge(name, version, nbytes)

    def release(self, name: str, version: int) -> int:
        """Forgets the version's charge; the bytes it was charged (0 if none)."""
        charge = self._charges.pop((name, version), None)
        return 0 if charge is None else charge.nbytes

    def of_model(self, name: str) -> int:
        return sum(c.nbytes for c in self._charges.values() if c.name == name)

    def charges(self) -> list[Charge]:
        return sorted(self._charges.values(), key=lambda c: (c.name, c.version))

    def victims(
        self, need: int, last_used: Mapping[str, float], keep: Collection[str]
    ) -> list[str] | None:
        """The models to unload, least recently used first, so that `need` more bytes fit;
        [] when they fit already, None when unloading every model not in `keep` (pinned,
        loading) would still not make room."""
        free = self.capacity - self.used
        if need <= free:
            return []
        by_model: dict[str, int] = {}
        for c in self._charges.values():
            if c.name not in keep:
                by_model[c.name] = by_model.get(c.name, 0) + c.nbytes
        chosen = []
        for name in sorted(by_model, key=lambda n: last_used.get(n, 0.0)):
            chosen.append(name)
            free += by_model[name]
            if need <= free:
                return chosen
        return None
