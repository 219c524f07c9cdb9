"""Histograms observed on the event loop without a lock.

prometheus_client's `Histogram.observe` takes two locks and walks the buckets in Python until one
fits: ≈ 2.4 µs for a 12 ms latency on the Intel VM, and every request observes two (its latency
and its time queued). These histograms are only ever observed from the event loop thread, which
also serves `/metrics`, so a bucket index found by `bisect` and two plain additions are enough
(≈ 0.3 µs). The exposition is prometheus_client's own: same names, `le` labels, `_count` and
`_sum` (no `_created` series).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Iterator
from itertools import accumulate

from prometheus_client import CollectorRegistry
from prometheus_client.core import HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString


class LoopHistogramChild:
    """The series of one label set."""

    __slots__ = ("_bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self._bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one is +Inf's own
        self.sum = 0.0

    def observe(self, amount: float) -> None:
        # bisect_left: the first bound ≥ amount, as Prometheus' `le` (less than or equal) wants.
        self.counts[bisect_left(self._bounds, amount)] += 1
        self.sum += amount


class LoopHistogram(Collector):
    """A labelled histogram family; register it once, observe through `labels(...)`."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Iterable[str],
        buckets: Iterable[float],
        registry: CollectorRegistry,
    ) -> None:
        self._name = name
        self._documentation = documentation
        self._labelnames = tuple(labelnames)
        self._bounds = tuple(float(b) for b in buckets)
        if list(self._bounds) != sorted(set(self._bounds)):
            raise ValueError(f"{name}: buckets must be increasing, got {self._bounds}")
        self._le = [floatToGoString(b) for b in self._bounds] + ["+Inf"]
        self._children: dict[tuple[str, ...], LoopHistogramChild] = {}
        registry.register(self)

    def labels(self, *values: str) -> LoopHistogramChild:
        if len(values) != len(self._labelnames):
            raise ValueError(f"{self._name} takes labels {self._labelnames}, got {values}")
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = LoopHistogramChild(self._bounds)
        return child

    def remove(self, *values: str) -> None:
        del self._children[values]

    def describe(self) -> Iterator[Metric]:
        yield HistogramMetricFamily(self._name, self._documentation, labels=self._labelnames)

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(self._name, self._documentation, labels=self._labelnames)
        for values, child in list(self._children.items()):
            cumulative = list(accumulate(child.counts))
            family.add_metric(list(values), list(zip(self._le, cumulative, strict=True)), child.sum)
        yield family
