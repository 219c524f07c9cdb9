"""Which served version answers a request that names none, and which one mirrors to which.

Outside a canary, the newest served version answers. During a canary (the store's version policy,
model_store/policy.py) the champion is the version the policy's alias names and the candidate
the policy's; a request naming no version goes to the candidate with probability `weight` (one
draw, `CanaryRoute.pick`), and of the requests the champion answers, a share `mirror` also runs
on the candidate (a shadow, shadow.py). A request naming a version is never split: the manager
looks it up by number. Until both versions serve, or when they do not take the same inputs (a
config written by hand), the champion, or whichever of the two serves, answers alone.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from model_store.schema import VersionPolicy
from service.lifecycle.served import ServedVersion


@dataclass(frozen=True, slots=True)
class CanaryRoute:
    champion: ServedVersion
    candidate: ServedVersion
    weight: float
    draw: Callable[[], float] = random.random

    def pick(self) -> ServedVersion:
        return self.candidate if self.draw() < self.weight else self.champion


@dataclass(frozen=True, slots=True)
class Mirror:
    champion: ServedVersion
    candidate: ServedVersion
    share: float


@dataclass(frozen=True, slots=True)
class Routing:
    default: ServedVersion  # answers requests naming no version (the champion in a canary)
    canary: CanaryRoute | None = None  # splits them instead, when the candidate has a weight
    mirror: Mirror | None = None
    note: str = ""  # what the canary does, or why it does nothing yet, for the log

    @property
    def key(self) -> tuple[object, ...]:
        """What the log and the gauges show; a poll that changes it is logged."""
        canary, mirror = self.canary, self.mirror
        return (
            self.default.version,
            canary and (canary.candidate.version, canary.weight),
            mirror and (mirror.candidate.version, mirror.share),
            self.note,
        )


def plan(
    table: dict[int, ServedVersion], policy: VersionPolicy, aliases: dict[str, int]
) -> Routing:
    """The routing of a model serving `table` (not empty) under `policy`."""
    if policy.kind != "canary":
        return Routing(table[max(table)])
    champion = table.get(aliases.get(policy.alias, 0))
    candidate = table.get(policy.candidate or 0)
    if champion is None or candidate is None or champion is candidate:
        alone = champion or candidate or table[max(table)]
        return Routing(alone, note=f"canary: v{alone.version} serves alone")
    if not _same_inputs(champion, candidate):
        return Routing(
            champion,
            note=f"canary: v{candidate.version} takes other inputs or outputs than "
            f"v{champion.version}; it gets no traffic",
        )
    canary = CanaryRoute(champion, candidate, policy.weight) if policy.weight > 0 else None
    mirror = Mirror(champion, candidate, policy.mirror) if policy.mirror > 0 else None
    note = (
        f"canary: v{candidate.version} answers {policy.weight:.1%} of the requests naming no "
        f"version, v{champion.version} the rest; {policy.mirror:.1%} of v{champion.version}'s "
        f"also run on v{candidate.version} (shadow)"
    )
    return Routing(champion, canary, mirror, note)


def _same_inputs(a: ServedVersion, b: ServedVersion) -> bool:
    """Whether a request checked against one version's signature suits the other's batcher."""
    x, y = a.signature, b.signature
    return (x.inputs, x.outputs, x.server_filled, x.ragged_axes) == (
        y.inputs, y.outputs, y.server_filled, y.ragged_axes
    )  # fmt: skip
