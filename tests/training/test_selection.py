"""Figures over seeds and the choice of a model on validation data only."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from training.compare import ComparePlan, Outcome
from training.compare_report import Provenance, write_json, write_markdown
from training.selection import (
    Interval,
    SeedRun,
    Summary,
    best_by_validation,
    summarise,
    t_interval,
)
from training.trainer import TrainConfig

T_975_DF2 = 4.302652729911275  # Student-t 97.5 % quantile, 2 degrees of freedom (tables)


def test_t_interval_of_three_seeds() -> None:
    interval = t_interval([0.90, 0.92, 0.94])
    assert interval.mean == pytest.approx(0.92)
    assert interval.half_width == pytest.approx(T_975_DF2 * 0.02 / math.sqrt(3))
    assert interval.n == 3
    assert str(interval) == "92.00% ± 4.97%"


def test_one_seed_has_no_interval_and_none_is_refused() -> None:
    single = t_interval([0.5])
    assert math.isnan(single.half_width)
    assert str(single) == "50.00%"
    with pytest.raises(ValueError, match="at least one value"):
        t_interval([])


def _summary(dataset: str, arch: str, val: float, test: float, parameters: int = 1000) -> Summary:
    return Summary(
        dataset,
        arch,
        parameters,
        Interval(val, 0.01, 3),
        Interval(test, 0.01, 3),
        (3, 4, 5),
        1.0,
        0.1,
    )


# On both datasets the best on test is NOT the best on validation: a selection that peeked at
# test would pick differently.
ROWS = [
    _summary("images", "cnn", val=0.97, test=0.95),
    _summary("images", "resnet", val=0.95, test=0.99),
    _summary("speech", "gru", val=0.80, test=0.90),
    _summary("speech", "transformer", val=0.85, test=0.84),
]


def test_the_best_architecture_is_chosen_on_validation_not_test() -> None:
    best = best_by_validation(ROWS)
    assert {d: s.arch for d, s in best.items()} == {"images": "cnn", "speech": "transformer"}
    assert best["images"].test.mean == 0.95  # its own test figure is what gets reported


def test_a_validation_tie_goes_to_the_smaller_model() -> None:
    rows = [
        _summary("d", "big", 0.9, 0.9, parameters=10_000),
        _summary("d", "small", 0.9, 0.8, parameters=100),
    ]
    assert best_by_validation(rows)["d"].arch == "small"
    assert best_by_validation(rows[::-1])["d"].arch == "small"


def test_runs_are_summarised_per_dataset_and_architecture() -> None:
    runs = [
        SeedRun("d", arch, seed, 10, val, test, seed + 1, 5, 2.0)
        for arch, seed, val, test in [
            ("a", 0, 0.5, 0.6),
            ("b", 0, 0.7, 0.7),
            ("a", 1, 0.7, 0.8),
        ]
    ]
    by_arch = {s.arch: s for s in summarise(runs, {("d", "a"): 0.25})}
    assert by_arch["a"].val.mean == pytest.approx(0.6)
    assert by_arch["a"].test.mean == pytest.approx(0.7)
    assert by_arch["a"].best_epochs == (1, 2)
    assert by_arch["a"].latency_ms == 0.25
    assert by_arch["b"].val.n == 1
    assert by_arch["b"].latency_ms is None


def test_the_report_headlines_the_validation_winner_with_its_test_figure(tmp_path: Path) -> None:
    plan = ComparePlan(("images", "speech"), ("cnn", "resnet"), (0, 1, 2), TrainConfig())
    outcome = Outcome([], ROWS, 60.0)
    provenance = Provenance("python -m training compare", "2026-01-01 00:00 UTC", "a test box")
    md = write_markdown(tmp_path / "compare.md", plan, outcome, provenance).read_text()
    headline = md.split("## Headline")[1].split("## Every")[0]
    assert "| images | cnn | 97.00% ± 1.00% | **95.00% ± 1.00%** |" in headline
    assert "| speech | transformer | 85.00% ± 1.00% | **84.00% ± 1.00%** |" in headline
    assert "resnet" not in headline
    assert "gru" not in headline
    assert "Reproduce: `python -m training compare`" in md

    document = json.loads(write_json(tmp_path / "c.json", plan, outcome, provenance).read_text())
    assert document["selection"]["images"]["arch"] == "cnn"
    assert document["selection"]["images"]["test"]["mean"] == 0.95
