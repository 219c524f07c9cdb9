"""The shadow's comparison and its bounds, on the event loop with a fake candidate batcher (no
server, no ONNX Runtime); tests/e2e/test_shadow.py runs it in a real server."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import pytest

from service.batching.ticket import Ticket
from service.errors import ModelExecutionError, UnavailableError
from service.lifecycle.served import ServedVersion
from service.lifecycle.shadow import Shadow, ShadowLimits, compare
from service.metrics import Metrics
from tests.service.test_batcher import run_async

Results = dict[str, np.ndarray]


def logits(*rows: list[float]) -> Results:
    return {"logits": np.array(rows, np.float32)}


def test_agreement_is_per_sample_on_the_argmax_of_the_last_axis() -> None:
    ours = logits([0.1, 0.9, 0.0], [0.8, 0.1, 0.1], [0.2, 0.3, 0.5])
    theirs = logits([0.2, 0.7, 0.1], [0.1, 0.8, 0.1], [0.0, 0.0, 0.9])
    result = compare(ours, theirs)
    assert result is not None
    assert (result.samples, result.agreeing) == (3, 2)
    assert result.mean_abs_diff == pytest.approx(np.abs(ours["logits"] - theirs["logits"]).mean())


def test_every_class_output_must_agree_and_other_outputs_only_count_in_the_difference() -> None:
    ours = {**logits([1, 0], [1, 0]), "aux": np.array([[0, 1], [0, 1]], np.float32),
            "score": np.array([1.0, 2.0]), "tag": np.array(["a", "b"], dtype=object)}  # fmt: skip
    theirs = {**logits([1, 0], [1, 0]), "aux": np.array([[0, 1], [1, 0]], np.float32),
              "score": np.array([1.0, 4.0]), "tag": np.array(["x", "y"], dtype=object)}  # fmt: skip
    result = compare(ours, theirs)
    assert result is not None
    assert (result.samples, result.agreeing) == (2, 1)
    assert result.mean_abs_diff == pytest.approx((0 + 2 + 2) / (4 + 4 + 2))


@pytest.mark.parametrize(
    "theirs",
    [logits([1, 0, 0]), {"other": np.zeros((2, 3), np.float32)}, {}],
)
def test_outputs_of_other_names_or_shapes_cannot_be_compared(theirs: Results) -> None:
    assert compare(logits([1, 0, 0], [0, 1, 0]), theirs) is None


def test_outputs_without_a_class_axis_give_no_samples() -> None:
    result = compare({"y": np.array([1.0, 2.0])}, {"y": np.array([1.0, 2.5])})
    assert result is not None
    assert (result.samples, result.agreeing, result.mean_abs_diff) == (0, 0, 0.25)


# --- offering, bounds and outcomes -------------------------------------------------------


@dataclass
class FakeBatcher:
    """What a shadow uses of the candidate's batcher: its depth and `submit`."""

    label: str = "m:2"
    depth: int = 0
    refuse: bool = False
    tickets: list[Ticket[Results]] = field(default_factory=list)

    def submit(
        self, inputs: dict[str, np.ndarray], samples: int, timeout: float | None, key: Any
    ) -> Ticket[Results]:
        if self.refuse:
            raise UnavailableError("model m:2 is unloading; retry")
        ticket: Ticket[Results] = Ticket()
        self.tickets.append(ticket)
        return ticket


@dataclass
class Candidate:
    batcher: FakeBatcher = field(default_factory=FakeBatcher)


def draws(*values: float) -> Callable[[], float]:
    it: Iterator[float] = iter(values)
    return lambda: next(it)


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


def counts(metrics: Metrics) -> dict[str, float]:
    def value(name: str, **labels: str) -> float:
        found = metrics.registry.get_sample_value(
            name, {"model": "m", "champion": "1", "candidate": "2", **labels}
        )
        return found or 0.0

    got = {
        o: value("inductive_shadow_requests_total", outcome=o)
        for o in ("compared", "dropped", "failed")
    }
    got["samples"] = value("inductive_shadow_samples_total")
    got["agreeing"] = value("inductive_shadow_agreement_samples_total")
    return got


def shadow(metrics: Metrics, candidate: Candidate, share: float, draw: Callable[[], float],
           inflight: int = 8, queue: int = 8) -> Shadow:  # fmt: skip
    return Shadow(
        cast(ServedVersion, candidate),
        share,
        ShadowLimits(max_inflight=inflight, max_queue=queue),
        metrics.for_shadow("m", 1, 2),
        draw,
    )


X = {"x": np.zeros((2, 4), np.float32)}


@run_async
async def test_a_mirrored_request_is_compared_after_both_answered(metrics: Metrics) -> None:
    candidate = Candidate()
    mirror = shadow(metrics, candidate, 0.5, draws(0.4, 0.6))
    champion: Ticket[Results] = Ticket()
    mirror.offer(X, 2, None, champion)
    mirror.offer(X, 2, None, Ticket())  # drawn above the share: not mirrored
    assert len(candidate.batcher.tickets) == 1
    assert mirror.inflight == 1

    candidate.batcher.tickets[0].set_result(logits([0, 1, 0], [1, 0, 0]))
    champion.set_result(logits([0, 1, 0], [0, 0, 1]))
    assert counts(metrics)["compared"] == 0  # never in the champion's answer callback
    assert mirror.inflight == 0
    await asyncio.sleep(0)
    assert counts(metrics) == {
        "compared": 1, "dropped": 0, "failed": 0, "samples": 2, "agreeing": 1
    }  # fmt: skip


@run_async
async def test_a_candidate_behind_gets_nothing_more_until_it_catches_up(metrics: Metrics) -> None:
    candidate = Candidate()
    mirror = shadow(metrics, candidate, 1.0, lambda: 0.0, inflight=2, queue=3)
    tickets = [Ticket[Results]() for _ in range(4)]
    for ticket in tickets:
        mirror.offer(X, 2, None, ticket)
    assert len(candidate.batcher.tickets) == 2  # two in flight at most
    assert counts(metrics)["dropped"] == 2

    for ticket in (tickets[0], candidate.batcher.tickets[0]):
        ticket.set_result(logits([1, 0, 0], [1, 0, 0]))
    candidate.batcher.depth = 3  # its queue is at the bound
    mirror.offer(X, 2, None, Ticket())
    candidate.batcher.depth = 0
    candidate.batcher.refuse = True  # unloading, or full
    mirror.offer(X, 2, None, Ticket())
    await asyncio.sleep(0)
    assert counts(metrics)["dropped"] == 4
    assert counts(metrics)["compared"] == 1


@run_async
async def test_failures_and_cancellations_are_counted_and_never_reach_the_champion(
    metrics: Metrics,
) -> None:
    candidate = Candidate()
    mirror = shadow(metrics, candidate, 1.0, lambda: 0.0)
    failing, gone = Ticket[Results](), Ticket[Results]()
    mirror.offer(X, 2, None, failing)
    mirror.offer(X, 2, None, gone)
    failed_mirror, orphan = candidate.batcher.tickets
    failed_mirror.set_exception(ModelExecutionError("model m:2 failed to run this request"))
    failing.set_result(logits([1, 0, 0], [1, 0, 0]))
    assert failing.result()["logits"].shape == (2, 3)  # the champion's answer is untouched
    gone.cancel()  # the client went away: its mirror leaves the candidate's queue
    assert orphan.cancelled()
    await asyncio.sleep(0)
    assert mirror.inflight == 0
    assert counts(metrics) == {
        "compared": 0, "dropped": 1, "failed": 1, "samples": 0, "agreeing": 0
    }  # fmt: skip
