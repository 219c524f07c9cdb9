"""What serves, decided by the store: the versions a policy selects, the champion, and a canary's
start and end.

The store, not the server, decides what serves (every replica polls the same documents), so the
selection lives here, where training (which judges a challenger against the champion) and the
service (which loads what is selected) both read it.

A canary changes two documents, `config.json` (the policy) and `aliases.json` (which version is
`stable`), which a polling server reads one after the other (the config first, then the aliases).
They are written in an order such that every state a server may see between the writes serves
the champion, the candidate or both, never a third version and never one already left behind:

- start: one write, the policy becomes `canary` (the candidate loads, then takes its share);
- promote: the alias moves to the candidate first. A server that reads the old policy with the
  new alias sees a canary whose champion is its candidate and serves the candidate alone, which is
  the end state; then the policy returns to `alias`. The other order would, for one poll, serve
  the old champion alone and unload the candidate, only to load it again;
- rollback: one write, the policy returns to `alias` (the alias never moved).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from model_store.errors import InvalidReferenceError, StoreError, VersionNotFoundError
from model_store.schema import ModelConfig, VersionPolicy

if TYPE_CHECKING:
    from model_store.store import ModelStore

DEFAULT_ALIAS = "stable"


class CanaryError(StoreError):
    """A canary that cannot start or end as asked (the message says why, in one line)."""


def desired_versions(
    policy: VersionPolicy, versions: list[int], aliases: dict[str, int]
) -> list[int]:
    """The versions `policy` selects among the store's complete `versions` (ascending)."""
    if policy.kind == "latest":
        return versions[-policy.latest :]
    if policy.kind == "all":
        return list(versions)
    if policy.kind == "specific":
        return [v for v in versions if v in policy.versions]
    target = aliases.get(policy.alias)
    selected = {target} if target in versions else set()
    if policy.kind == "canary" and policy.candidate in versions:
        selected.add(policy.candidate)
    return sorted(v for v in selected if v is not None)


def champion(store: ModelStore, name: str) -> int:
    """The version a challenger must beat: the one the `stable` alias names, else the newest
    version the model's policy serves."""
    versions = store.list_versions(name)
    aliases = store.aliases(name)
    stable = aliases.get(DEFAULT_ALIAS)
    if stable in versions:
        assert stable is not None
        return stable
    served = desired_versions(store.config(name).version_policy, versions, aliases)
    if not served:
        raise VersionNotFoundError(f"model {name!r} serves no version: there is no champion")
    return served[-1]


def describe(policy: VersionPolicy) -> str:
    """The policy in a few words, for `list` and `show`."""
    if policy.kind == "latest":
        return f"latest {policy.latest}"
    if policy.kind == "specific":
        return f"versions {','.join(map(str, policy.versions))}"
    if policy.kind == "all":
        return "all versions"
    if policy.kind == "alias":
        return f"alias {policy.alias}"
    return (
        f"canary v{policy.candidate} answers {policy.weight:.0%} (champion: {policy.alias}), "
        f"mirrors {policy.mirror:.0%}"
    )


# --- canary: start, promote, roll back --------------------------------------------------------


@dataclass(frozen=True)
class Canary:
    """A canary as it stands: the champion (what the alias names) and the candidate."""

    champion: int
    candidate: int
    alias: str
    weight: float
    mirror: float


def current_canary(store: ModelStore, name: str) -> VersionPolicy | None:
    """The model's policy when it is a canary, else None."""
    policy = store.config(name).version_policy
    return policy if policy.kind == "canary" else None


def start_canary(
    store: ModelStore, name: str, version: int | str, *, weight: float, mirror: float = 0.0
) -> Canary:
    """Makes `version` the candidate of a canary against the version the alias names (the
    model's alias policy's, else `stable`); a canary of the same candidate gets the new shares.
    Raises CanaryError when there is no champion, the candidate is the champion, another canary
    is in progress, or the two versions do not take the same inputs."""
    for what, share in (("weight", weight), ("mirror", mirror)):
        if not 0.0 <= share <= 1.0:
            raise InvalidReferenceError(f"canary {what} {share} must be between 0 and 1")
    if weight == 0.0 and mirror == 0.0:
        raise CanaryError(
            "a canary with weight 0 and mirror 0 sends the candidate nothing: give a weight, "
            "or a mirror share for a shadow"
        )
    candidate = store.resolve(name, version)
    policy = store.config(name).version_policy
    alias = policy.alias if policy.kind in ("alias", "canary") else DEFAULT_ALIAS
    target = store.aliases(name).get(alias)
    if target is None or target not in store.list_versions(name):
        raise CanaryError(
            f"model {name!r} has no {alias!r} version to be the champion: promote one first "
            f"(python -m model_store promote {name} VERSION)"
        )
    if target == candidate:
        raise CanaryError(f"version {candidate} of {name!r} is already {alias!r}: nothing to try")
    _check_same_inputs(store, name, target, candidate)
    canary = VersionPolicy(
        kind="canary", alias=alias, candidate=candidate, weight=weight, mirror=mirror
    )

    def start(config: ModelConfig) -> ModelConfig:
        now = config.version_policy
        if now.kind == "canary" and now.candidate != candidate:
            raise CanaryError(
                f"model {name!r} already has a canary of version {now.candidate}: promote or "
                "roll it back first"
            )
        return config.model_copy(update={"version_policy": canary})

    store.update_config(name, start)
    return Canary(target, candidate, alias, weight, mirror)


def promote_canary(store: ModelStore, name: str) -> Canary:
    """Ends the canary in the candidate's favour: the alias moves to it, then the policy returns
    to `alias` (the order is the module docstring's)."""
    policy = _canary_or_raise(store, name)
    assert policy.candidate is not None
    if policy.candidate not in store.list_versions(name):
        raise CanaryError(
            f"the candidate, version {policy.candidate} of {name!r}, no longer exists: "
            "roll the canary back"
        )
    previous = store.aliases(name).get(policy.alias, policy.candidate)
    store.promote(name, policy.candidate, alias=policy.alias)
    store.update_config(name, _back_to_alias(name, policy))
    return Canary(previous, policy.candidate, policy.alias, policy.weight, policy.mirror)


def rollback_canary(store: ModelStore, name: str) -> Canary:
    """Ends the canary in the champion's favour: the policy returns to `alias`; the alias (the
    champion) never moved."""
    policy = _canary_or_raise(store, name)
    assert policy.candidate is not None
    store.update_config(name, _back_to_alias(name, policy))
    target = store.aliases(name).get(policy.alias, 0)
    return Canary(target, policy.candidate, policy.alias, policy.weight, policy.mirror)


def _canary_or_raise(store: ModelStore, name: str) -> VersionPolicy:
    policy = current_canary(store, name)
    if policy is None:
        raise CanaryError(f"model {name!r} has no canary in progress")
    return policy


def _back_to_alias(name: str, ended: VersionPolicy) -> Callable[[ModelConfig], ModelConfig]:
    def update(config: ModelConfig) -> ModelConfig:
        if config.version_policy != ended:
            raise CanaryError(f"the version policy of {name!r} changed meanwhile; look again")
        policy = VersionPolicy(kind="alias", alias=ended.alias)
        return config.model_copy(update={"version_policy": policy})

    return update


def _check_same_inputs(store: ModelStore, name: str, champion: int, candidate: int) -> None:
    """Requests meant for the champion must suit the candidate: same inputs, same outputs."""
    old, new = store.manifest(name, champion), store.manifest(name, candidate)
    for what in ("inputs", "outputs"):
        if getattr(old, what) != getattr(new, what):
            shown = {v: [f"{t.name} {t.datatype} {list(t.shape)}" for t in getattr(m, what)]
                     for v, m in ((champion, old), (candidate, new))}  # fmt: skip
            raise CanaryError(
                f"versions {champion} and {candidate} of {name!r} differ in their {what} "
                f"({shown[champion]} vs {shown[candidate]}): requests meant for one would fail "
                "on the other"
            )
