"""benchmarks.compare's two sides: a tree (or the floor) with the environment its server gets."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.compare import _side


def test_a_side_carries_its_environment_and_names_it() -> None:
    side = _side("B", Path("."), ["INDUCTIVE_ACCESS_LOG=true", "OTEL_TRACES_SAMPLER_ARG=0.1"])
    assert side.env == {"INDUCTIVE_ACCESS_LOG": "true", "OTEL_TRACES_SAMPLER_ARG": "0.1"}
    assert side.tree == Path(".").resolve()
    assert (
        side.label
        == f"B ({Path('.').resolve()} INDUCTIVE_ACCESS_LOG=true OTEL_TRACES_SAMPLER_ARG=0.1)"
    )


def test_a_value_may_hold_equals_signs() -> None:
    assert _side("A", Path("."), ["OTEL_RESOURCE_ATTRIBUTES=a=1,b=2"]).env == {
        "OTEL_RESOURCE_ATTRIBUTES": "a=1,b=2"
    }


def test_a_pair_without_equals_is_refused_naming_it() -> None:
    with pytest.raises(SystemExit, match="--a-env takes KEY=VALUE, not 'INDUCTIVE_ACCESS_LOG'"):
        _side("A", Path("."), ["INDUCTIVE_ACCESS_LOG"])


def test_the_floor_stays_the_floor() -> None:
    assert _side("A", Path("floor"), []).tree == Path("floor")
