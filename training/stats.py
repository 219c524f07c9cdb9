"""The statistics of the retrain gate, in plain Python: exact McNemar test and Wilson intervals.

Champion and challenger answer the same frozen evaluation set, so their errors are paired: only
the samples on which they disagree carry information. Of those, `b` are right for the champion
and wrong for the challenger, `c` the other way round. Under "equally good" each discordant
sample is a fair coin, so b ~ Binomial(b + c, 1/2); the tails are summed exactly with integers
(`math.comb`), which stays exact for any evaluation-set size we meet.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# Two-sided 95 %: the 0.975 quantile of the standard normal.
Z_95 = 1.959963984540054


def _binomial_half_upper_tail(n: int, k: int) -> float:
    """P(X ≥ k) for X ~ Binomial(n, 1/2), exactly (integer sums, one division at the end)."""
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    return sum(math.comb(n, i) for i in range(k, n + 1)) / 2**n


def mcnemar_two_sided(b: int, c: int) -> float:
    """Exact two-sided McNemar p-value: twice the smaller tail, capped at 1."""
    _check_counts(b, c)
    n = b + c
    if n == 0:
        return 1.0
    return min(1.0, 2 * _binomial_half_upper_tail(n, max(b, c)))


def mcnemar_worse(b: int, c: int) -> float:
    """Exact one-sided p-value for "the challenger is worse": P(X ≥ b), X ~ Binomial(b + c, 1/2).

    `b` counts samples only the champion gets right, `c` those only the challenger gets right.
    A small value means the challenger loses more discordant samples than chance explains.
    """
    _check_counts(b, c)
    return _binomial_half_upper_tail(b + c, b)


def _check_counts(b: int, c: int) -> None:
    if b < 0 or c < 0:
        raise ValueError(f"discordant counts must be ≥ 0, got b={b}, c={c}")


def wilson_interval(successes: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval for a proportion (95 % by default); (0, 1) when n is 0."""
    if not 0 <= successes <= n:
        raise ValueError(f"{successes} successes out of {n} trials")
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z / (1 + z2 / n) * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    # Clamp the rounding crumbs at the ends (0/n and n/n give exactly 0 and 1 in exact terms).
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class PairedComparison:
    """Champion vs challenger on the same samples, and the gate's verdict."""

    samples: int
    champion_correct: int
    challenger_correct: int
    b: int  # champion right, challenger wrong
    c: int  # champion wrong, challenger right
    p_worse: float  # one-sided exact McNemar: evidence that the challenger is worse
    p_two_sided: float
    alpha: float

    @property
    def champion_accuracy(self) -> float:
        return self.champion_correct / self.samples

    @property
    def challenger_accuracy(self) -> float:
        return self.challenger_correct / self.samples

    @property
    def champion_interval(self) -> tuple[float, float]:
        return wilson_interval(self.champion_correct, self.samples)

    @property
    def challenger_interval(self) -> tuple[float, float]:
        return wilson_interval(self.challenger_correct, self.samples)

    @property
    def not_worse(self) -> bool:
        """The rule: the challenger passes unless the test shows it worse at level `alpha`."""
        return self.p_worse >= self.alpha

    def as_dict(self) -> dict[str, object]:
        return {
            "test": "mcnemar-exact",
            "alpha": self.alpha,
            "samples": self.samples,
            "champion_accuracy": self.champion_accuracy,
            "champion_interval_95": list(self.champion_interval),
            "challenger_accuracy": self.challenger_accuracy,
            "challenger_interval_95": list(self.challenger_interval),
            "interval": "wilson",
            "b": self.b,
            "c": self.c,
            "p_value": self.p_worse,
            "p_value_two_sided": self.p_two_sided,
            "not_worse": self.not_worse,
        }


def compare_paired(
    champion_right: list[bool], challenger_right: list[bool], alpha: float = 0.05
) -> PairedComparison:
    """Compare two models' per-sample correctness on the same samples, in the same order."""
    if len(champion_right) != len(challenger_right):
        raise ValueError(
            f"paired samples differ in number: {len(champion_right)} vs {len(challenger_right)}"
        )
    if not champion_right:
        raise ValueError("the evaluation set is empty")
    pairs = list(zip(champion_right, challenger_right, strict=True))
    b = sum(1 for old, new in pairs if old and not new)
    c = sum(1 for old, new in pairs if new and not old)
    return PairedComparison(
        samples=len(pairs),
        champion_correct=sum(map(bool, champion_right)),
        challenger_correct=sum(map(bool, challenger_right)),
        b=b,
        c=c,
        p_worse=mcnemar_worse(b, c),
        p_two_sided=mcnemar_two_sided(b, c),
        alpha=alpha,
    )
