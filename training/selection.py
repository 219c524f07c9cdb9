"""Figures over seeds, and choosing a model on validation data only.

A figure from one seed says little: the same architecture retrained with another seed (other
initial weights, batch order and validation split) can land a few points away. Each figure is a
mean over seeds with a 95 % Student-t interval, and the winner per dataset is chosen on the
VALIDATION mean; its TEST figure is then reported as seen once, never used to choose.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from scipy.stats import t as student_t


@dataclass(frozen=True)
class Interval:
    """A mean and the half-width of its 95 % t-interval (NaN with one value: no spread known)."""

    mean: float
    half_width: float
    n: int

    def __str__(self) -> str:
        if math.isnan(self.half_width):
            return f"{self.mean:.2%}"
        return f"{self.mean:.2%} ± {self.half_width:.2%}"


def t_interval(values: Sequence[float], confidence: float = 0.95) -> Interval:
    if not values:
        raise ValueError("an interval needs at least one value")
    n = len(values)
    mean = statistics.fmean(values)
    if n == 1:
        return Interval(mean, math.nan, 1)
    quantile = float(student_t.ppf((1 + confidence) / 2, n - 1))
    return Interval(mean, quantile * statistics.stdev(values) / math.sqrt(n), n)


@dataclass(frozen=True)
class SeedRun:
    """One (dataset, architecture, seed) training run."""

    dataset: str
    arch: str
    seed: int
    parameters: int
    val_accuracy: float  # at the epoch chosen on validation (the weights kept)
    test_accuracy: float  # of those same weights, scored once
    best_epoch: int
    epochs_run: int
    train_time_s: float


@dataclass(frozen=True)
class Summary:
    """One (dataset, architecture) over all its seeds."""

    dataset: str
    arch: str
    parameters: int
    val: Interval
    test: Interval
    best_epochs: tuple[int, ...]
    train_time_s: float  # mean per seed
    latency_ms: float | None  # batch-1, one CPU thread; measured once (it does not vary by seed)


def summarise(runs: Iterable[SeedRun], latency_ms: dict[tuple[str, str], float]) -> list[Summary]:
    """Group runs by (dataset, arch), in first-seen order."""
    groups: dict[tuple[str, str], list[SeedRun]] = {}
    for run in runs:
        groups.setdefault((run.dataset, run.arch), []).append(run)
    return [
        Summary(
            dataset,
            arch,
            group[0].parameters,
            t_interval([r.val_accuracy for r in group]),
            t_interval([r.test_accuracy for r in group]),
            tuple(r.best_epoch for r in group),
            statistics.fmean(r.train_time_s for r in group),
            latency_ms.get((dataset, arch)),
        )
        for (dataset, arch), group in groups.items()
    ]


def best_by_validation(summaries: Iterable[Summary]) -> dict[str, Summary]:
    """Per dataset, the architecture with the highest mean validation accuracy.

    Test accuracy plays no part: choosing on it would make the reported test figure the maximum of
    several noisy estimates, biased upwards. A tie goes to the smaller model.
    """
    best: dict[str, Summary] = {}
    for s in summaries:
        current = best.get(s.dataset)
        if current is None or (s.val.mean, -s.parameters) > (
            current.val.mean,
            -current.parameters,
        ):
            best[s.dataset] = s
    return best
