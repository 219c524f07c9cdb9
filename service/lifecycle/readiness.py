"""Server readiness: can this process serve what its configuration asks it to serve?

The models to serve are the ones INDUCTIVE_MODELS names, else every model in the store (as last
listed; in explicit mode, as the repository API last loaded and unloaded them). A model is ready
when one of its versions is READY, so an older version that keeps serving while a newer one fails
keeps its model ready. By INDUCTIVE_READY_REQUIRES the server is ready when

- `all` (default): every model to serve is ready;
- `any`: at least one model is.

Never while nothing is served (an empty store, every model failed), while start-up is still
loading, or once a SIGTERM has started the drain; except in explicit mode before anything was
asked for: a server told to load nothing serves what it was told (Triton answers ready there too),
and its repository API, reached through the same load balancer, must be callable.

A model that first appears in the store after start-up does not make a ready server unready
while its first load runs: every replica polls the same store at about the same time, and a
probe failing on all of them at once would take the whole service out of its load balancers for
a model nobody could call yet. Once that load has finished without a READY version, the model
counts like any other.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Literal

ReadyRule = Literal["all", "any"]

FIRST_LOAD = "loading its first version"


@dataclass(frozen=True, slots=True)
class Readiness:
    ready: bool
    reason: str = ""  # why the server is not ready; empty when it is
    # Models to serve without a READY version, with why (the first load still running, or the
    # states and errors of the versions their policy selects).
    not_ready: dict[str, str] = field(default_factory=dict)

    def body(self) -> dict[str, object]:
        doc: dict[str, object] = {"ready": self.ready}
        if self.reason:
            doc["reason"] = self.reason
        if self.not_ready:
            doc["not_ready"] = self.not_ready
        return doc


def assess(
    rule: ReadyRule,
    *,
    started: bool,
    draining: bool,
    to_serve: Collection[str],
    served: Collection[str],
    outcomes: Mapping[str, str],
    nothing_asked_is_ready: bool = False,
) -> Readiness:
    """`outcomes` holds, per model, why its last load gave it no READY version ("" when it did);
    a model to serve that is not in it has its first load still running."""
    if draining:
        return Readiness(False, "shutting down")
    if not started:
        return Readiness(False, "loading the models at start-up")
    not_ready = {
        name: outcomes.get(name) or FIRST_LOAD for name in sorted(to_serve) if name not in served
    }
    failed = [name for name, why in not_ready.items() if why != FIRST_LOAD]
    if not served:
        if not to_serve and nothing_asked_is_ready:
            return Readiness(True)
        if not to_serve:
            return Readiness(False, "no model to serve: none in the store, or all unloaded")
        return Readiness(False, "no model is served", not_ready)
    if rule == "all" and failed:
        return Readiness(
            False, f"{len(failed)} of {len(to_serve)} models to serve have no READY version",
            not_ready,
        )  # fmt: skip
    return Readiness(True, "", not_ready)
