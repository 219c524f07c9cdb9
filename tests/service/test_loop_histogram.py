"""The lock-free histogram (service/loop_histogram.py) exposes what prometheus_client's does."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from service.loop_histogram import LoopHistogram

BUCKETS = (0.001, 0.01, 0.1, 1.0, 10.0)


def _exposition(registry: CollectorRegistry) -> list[str]:
    return [
        line
        for line in generate_latest(registry).decode().splitlines()
        if not line.startswith("#") and "_created" not in line
    ]


@given(st.lists(st.floats(0, 100, allow_nan=False) | st.sampled_from(BUCKETS), max_size=50))
def test_same_observations_same_exposition(values: list[float]) -> None:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    loop = LoopHistogram("h_seconds", "doc", ("model",), BUCKETS, ours)
    reference = Histogram("h_seconds", "doc", ("model",), buckets=BUCKETS, registry=theirs)
    for value in values:
        loop.labels("m").observe(value)
        reference.labels("m").observe(value)
    loop.labels("empty")
    reference.labels("empty")
    assert _exposition(ours) == _exposition(theirs)


def test_removed_series_are_not_exposed_and_labels_are_checked() -> None:
    registry = CollectorRegistry()
    histogram = LoopHistogram("h_seconds", "doc", ("model", "version"), BUCKETS, registry)
    histogram.labels("a", "1").observe(0.5)
    histogram.labels("b", "1").observe(0.5)
    histogram.remove("a", "1")
    assert not any('model="a"' in line for line in _exposition(registry))
    assert any('model="b"' in line for line in _exposition(registry))
    with pytest.raises(ValueError, match="takes labels"):
        histogram.labels("a")
    with pytest.raises(ValueError, match="increasing"):
        LoopHistogram("g_seconds", "doc", (), (1.0, 0.5), registry)
