"""Which version answers a request naming none: plain policies, a canary's split, a shadow's
pair, and the states between a canary's document writes (no server; tests/e2e/test_canary.py
runs it under load)."""

from __future__ import annotations

import random

import pytest

from model_store import Manifest, ModelConfig, Producer, TensorSpec, VersionPolicy
from service.lifecycle.routing import CanaryRoute, plan
from service.lifecycle.served import ServedVersion
from service.model_io.signature import ModelSignature


def served(version: int, features: int = 4) -> ServedVersion:
    manifest = Manifest(
        name="m",
        version=version,
        inputs=(TensorSpec(name="x", datatype="FP32", shape=(-1, features)),),
        outputs=(TensorSpec(name="logits", datatype="FP32", shape=(-1, 3)),),
        producer=Producer(package="test"),
    )
    signature = ModelSignature.build(manifest, ModelConfig(), 8)
    fields = dict.fromkeys(("config", "model", "batcher", "metrics", "plans"))
    return ServedVersion("m", version, manifest, signature=signature, **fields)  # type: ignore[arg-type]


TABLE = {v: served(v) for v in (1, 2, 3)}
STABLE = {"stable": 1}


def canary(candidate: int, weight: float = 0.0, mirror: float = 0.0) -> VersionPolicy:
    return VersionPolicy(kind="canary", candidate=candidate, weight=weight, mirror=mirror)


def test_outside_a_canary_the_newest_served_version_answers() -> None:
    routing = plan(TABLE, VersionPolicy(kind="latest", latest=3), {})
    assert routing.default is TABLE[3]
    assert (routing.canary, routing.mirror, routing.note) == (None, None, "")


def test_a_canary_splits_by_weight_and_mirrors_from_the_champion() -> None:
    routing = plan(TABLE, canary(3, weight=0.25, mirror=0.5), STABLE)
    assert routing.default is TABLE[1]
    assert routing.canary is not None
    assert (routing.canary.champion, routing.canary.candidate) == (TABLE[1], TABLE[3])
    assert routing.mirror is not None
    assert (routing.mirror.champion, routing.mirror.candidate, routing.mirror.share) == (
        TABLE[1], TABLE[3], 0.5
    )  # fmt: skip
    assert "v3 answers 25.0% of the requests naming no version, v1 the rest" in routing.note


def test_a_shadow_alone_leaves_every_answer_to_the_champion() -> None:
    routing = plan(TABLE, canary(2, mirror=0.1), STABLE)
    assert routing.canary is None
    assert routing.default is TABLE[1]
    assert routing.mirror is not None


def test_the_pick_follows_the_weight() -> None:
    route = CanaryRoute(TABLE[1], TABLE[2], 0.2, random.Random(0).random)
    picks = [route.pick().version for _ in range(20_000)]
    assert picks.count(2) / len(picks) == pytest.approx(0.2, abs=0.01)
    assert {CanaryRoute(TABLE[1], TABLE[2], 0.0).pick() for _ in range(100)} == {TABLE[1]}
    assert {CanaryRoute(TABLE[1], TABLE[2], 1.0).pick() for _ in range(100)} == {TABLE[2]}


@pytest.mark.parametrize(
    ("table", "aliases", "alone"),
    [
        ({1: TABLE[1]}, STABLE, 1),  # the candidate is still loading (or failed)
        ({2: TABLE[2]}, {"stable": 2}, 2),  # promote: the alias moved, the policy not yet
        ({2: TABLE[2]}, {"stable": 9}, 2),  # the champion is gone from the store
    ],
)
def test_until_both_serve_one_version_answers_alone(
    table: dict[int, ServedVersion], aliases: dict[str, int], alone: int
) -> None:
    routing = plan(table, canary(2, weight=0.5, mirror=0.5), aliases)
    assert (routing.default.version, routing.canary, routing.mirror) == (alone, None, None)


def test_a_candidate_taking_other_inputs_gets_no_traffic() -> None:
    table = {1: TABLE[1], 2: served(2, features=5)}
    routing = plan(table, canary(2, weight=0.5, mirror=0.5), STABLE)
    assert (routing.default, routing.canary, routing.mirror) == (TABLE[1], None, None)
    assert "takes other inputs or outputs than v1; it gets no traffic" in routing.note
    assert routing.key != plan(TABLE, canary(2, 0.5), STABLE).key
