"""What serves, as the store decides it: version policies (a canary among them) and the champion."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from model_store import ModelStore, VersionNotFoundError, add_onnx
from model_store.policy import champion, desired_versions
from model_store.schema import ModelConfig, VersionPolicy


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        (VersionPolicy(), [5]),
        (VersionPolicy(kind="latest", latest=2), [3, 5]),
        (VersionPolicy(kind="all"), [1, 2, 3, 5]),
        (VersionPolicy(kind="specific", versions=(2, 4)), [2]),
        (VersionPolicy(kind="alias"), [3]),
        (VersionPolicy(kind="alias", alias="canary"), []),
        (VersionPolicy(kind="canary", candidate=5, weight=0.2), [3, 5]),
        (VersionPolicy(kind="canary", candidate=5, mirror=0.5), [3, 5]),
        (VersionPolicy(kind="canary", candidate=4, weight=0.2), [3]),  # candidate gone: champion
        (VersionPolicy(kind="canary", candidate=3, weight=0.2), [3]),
    ],
)
def test_desired_versions(policy: VersionPolicy, expected: list[int]) -> None:
    assert desired_versions(policy, [1, 2, 3, 5], {"stable": 3}) == expected


@pytest.mark.parametrize(
    "fields",
    [
        {"kind": "canary"},  # no candidate
        {"kind": "canary", "candidate": 2, "weight": 1.5},
        {"kind": "canary", "candidate": 2, "mirror": -0.1},
        {"kind": "alias", "candidate": 2},  # canary fields on another kind
        {"kind": "latest", "weight": 0.5},
    ],
)
def test_invalid_canary_policies_are_refused(fields: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        VersionPolicy.model_validate(fields)


def test_the_champion_is_stable_else_the_newest_served(store: ModelStore, model_file: Path) -> None:
    with pytest.raises(VersionNotFoundError):
        champion(store, "m")
    for _ in range(3):
        add_onnx(store, "m", model_file)
    assert champion(store, "m") == 3  # latest 1
    store.set_config(
        "m", ModelConfig(version_policy=VersionPolicy(kind="specific", versions=(1, 2)))
    )
    assert champion(store, "m") == 2
    store.promote("m", 1)
    assert champion(store, "m") == 1  # the stable alias wins whatever the policy
    canary = VersionPolicy(kind="canary", candidate=3, weight=0.5)
    store.set_config("m", ModelConfig(version_policy=canary))
    assert champion(store, "m") == 1  # a candidate is never the champion
