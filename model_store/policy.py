"""What serves, decided by the store: the versions a policy selects, and the champion.

The store, not the server, decides what serves (every replica polls the same documents), so the
selection lives here, where training (which judges a challenger against the champion) and the
service (which loads what is selected) both read it.
"""

from __future__ import annotations

from model_store.errors import VersionNotFoundError
from model_store.schema import VersionPolicy
from model_store.store import ModelStore


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
    stable = aliases.get("stable")
    if stable in versions:
        assert stable is not None
        return stable
    served = desired_versions(store.config(name).version_policy, versions, aliases)
    if not served:
        raise VersionNotFoundError(f"model {name!r} serves no version: there is no champion")
    return served[-1]
