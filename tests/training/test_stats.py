"""The gate's statistics against values computed independently (exact binomial sums by hand,
and the Wilson interval of Newcombe 1998's worked example)."""

from __future__ import annotations

import pytest

from training.stats import compare_paired, mcnemar_two_sided, mcnemar_worse, wilson_interval


def test_exact_mcnemar_matches_hand_computed_binomial_tails() -> None:
    # b=10, c=2: P(X ≥ 10 | n=12, ½) = (C(12,10)+C(12,11)+C(12,12)) / 4096 = 79/4096.
    assert mcnemar_worse(10, 2) == pytest.approx(79 / 4096)
    assert mcnemar_two_sided(10, 2) == pytest.approx(2 * 79 / 4096)  # 0.0386
    assert mcnemar_two_sided(2, 10) == pytest.approx(2 * 79 / 4096)  # symmetric
    # The challenger winning the discordant pairs is no evidence that it is worse.
    assert mcnemar_worse(2, 10) == pytest.approx(1 - 13 / 4096)  # 1 − P(X ≤ 1)
    assert mcnemar_worse(0, 0) == 1.0
    assert mcnemar_two_sided(0, 0) == 1.0
    assert mcnemar_two_sided(5, 5) == 1.0  # capped
    assert mcnemar_worse(3, 0) == pytest.approx(1 / 8)  # three coin flips all heads


def test_exact_tails_stay_exact_for_large_counts() -> None:
    assert mcnemar_worse(600, 400) < 1e-9
    assert mcnemar_worse(600, 400) > 0.0
    assert mcnemar_worse(500, 500) == pytest.approx(0.5, abs=0.02)


def test_wilson_interval_known_values() -> None:
    low, high = wilson_interval(81, 263)  # Newcombe (1998): 0.2553 to 0.3662
    assert low == pytest.approx(0.2553, abs=1e-4)
    assert high == pytest.approx(0.3662, abs=1e-4)
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert wilson_interval(10, 10) == pytest.approx((0.7225, 1.0), abs=1e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError, match="11 successes out of 10"):
        wilson_interval(11, 10)


def test_paired_comparison_counts_discordant_samples_and_decides() -> None:
    champion = [True] * 12 + [False] * 3 + [True] * 5
    challenger = [False] * 12 + [True] * 3 + [True] * 5  # loses 12, wins 3
    worse = compare_paired(champion, challenger)
    assert (worse.b, worse.c, worse.samples) == (12, 3, 20)
    assert worse.champion_accuracy == pytest.approx(17 / 20)
    assert worse.challenger_accuracy == pytest.approx(8 / 20)
    assert worse.p_worse == pytest.approx(mcnemar_worse(12, 3))
    assert not worse.not_worse
    tie = compare_paired(champion, champion)  # identical answers: b = c = 0, not worse
    assert tie.not_worse
    assert tie.p_worse == 1.0
    record = worse.as_dict()
    assert record["test"] == "mcnemar-exact"
    assert record["interval"] == "wilson"
    with pytest.raises(ValueError, match="differ in number"):
        compare_paired([True], [True, False])
