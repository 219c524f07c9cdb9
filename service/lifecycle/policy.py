"""Which versions of a model a server loads, by the version policy the store holds."""

from __future__ import annotations

from model_store.schema import VersionPolicy


def desired_versions(
    policy: VersionPolicy, versions: list[int], aliases: dict[str, int]
) -> list[int]:
    """The versions a policy selects among the store's complete versions (ascending)."""
    if policy.kind == "latest":
        return versions[-policy.latest :]
    if policy.kind == "all":
        return list(versions)
    if policy.kind == "specific":
        return [v for v in versions if v in policy.versions]
    target = aliases.get(policy.alias)
    return [target] if target in versions else []
