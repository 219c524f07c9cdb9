"""A shadow: a share of the champion's requests also runs on a canary's candidate, whose answers
are compared with the champion's and never sent.

A mirrored request is the champion's own request (the same input arrays, shared and not copied:
nothing downstream of decoding writes to a request's inputs) queued on the candidate's batcher
right after the champion's. The champion's answer never waits for the candidate: each side's
ticket only notes that it resolved, and the comparison runs on a later loop iteration, once both
have. A candidate that is behind (its queue at `max_queue` requests, or `max_inflight` mirrored
requests unanswered) gets no more until it catches up: those are dropped and counted. A mirrored
request that fails is counted and goes no further: the client never sees it.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from service.batching.ticket import Ticket
from service.errors import ServiceError
from service.metrics import ShadowMetrics

if TYPE_CHECKING:
    from service.lifecycle.served import ServedVersion

log = logging.getLogger(__name__)

Results = dict[str, np.ndarray]


@dataclass(frozen=True, slots=True)
class ShadowLimits:
    max_inflight: int
    max_queue: int


@dataclass(frozen=True, slots=True)
class Comparison:
    samples: int  # samples with a class axis to compare (0 when no output has one)
    agreeing: int  # of those, the ones whose argmax is the same on every such output
    mean_abs_diff: float  # over every element of the numeric outputs


def compare(champion: Results, candidate: Results) -> Comparison | None:
    """Champion and candidate outputs of one request; None when they differ in names or shapes.

    Agreement is per sample, on the argmax of the last axis of every numeric output that has
    one beyond the batch axis (class scores); the mean absolute difference covers every numeric
    output. Other outputs (strings, booleans) are left out."""
    agree: np.ndarray | None = None
    total = 0.0
    count = 0
    if champion.keys() != candidate.keys():
        return None
    for name, ours in champion.items():
        theirs = candidate[name]
        if ours.shape != theirs.shape:
            return None
        if ours.dtype.kind not in "fiu" or theirs.dtype.kind not in "fiu":
            continue
        total += float(np.abs(ours.astype(np.float64) - theirs).sum())
        count += ours.size
        if ours.ndim >= 2 and ours.shape[-1] > 1:
            same = (ours.argmax(axis=-1) == theirs.argmax(axis=-1)).reshape(len(ours), -1)
            rows = same.all(axis=1)
            agree = rows if agree is None else agree & rows
    samples = 0 if agree is None else len(agree)
    agreeing = 0 if agree is None else int(agree.sum())
    return Comparison(samples, agreeing, total / count if count else 0.0)


class Shadow:
    """Mirrors a share of one champion's requests to `candidate`; built by the model manager."""

    __slots__ = ("_draw", "_loop", "_metrics", "candidate", "inflight", "limits", "share")

    def __init__(
        self,
        candidate: ServedVersion,
        share: float,
        limits: ShadowLimits,
        metrics: ShadowMetrics,
        draw: Callable[[], float] = random.random,
    ) -> None:
        self.candidate = candidate
        self.share = share  # the manager updates it in place when only the share changes
        self.limits = limits
        self._metrics = metrics
        self._draw = draw
        self._loop = asyncio.get_running_loop()
        self.inflight = 0

    def offer(
        self,
        inputs: dict[str, np.ndarray],
        samples: int,
        key: tuple[object, ...] | None,
        ticket: Ticket[Results],
    ) -> None:
        """Called right after the champion queued the request; mirrors it or not."""
        if self._draw() >= self.share:
            return
        batcher = self.candidate.batcher
        if self.inflight >= self.limits.max_inflight or batcher.depth >= self.limits.max_queue:
            self._metrics.outcomes["dropped"].inc()
            return
        try:
            mirrored = batcher.submit(inputs, samples, None, key)
        except ServiceError:  # the candidate is unloading or full: it is behind all the same
            self._metrics.outcomes["dropped"].inc()
            return
        self.inflight += 1
        pair = _Pair(self, ticket, mirrored)
        ticket.add_done_callback(pair.resolved)
        mirrored.add_done_callback(pair.resolved)

    def _judge(self, champion: Ticket[Results], candidate: Ticket[Results]) -> None:
        """Loop iteration after both resolved: count the pair's outcome and compare."""
        outcomes = self._metrics.outcomes
        try:
            ours = champion.result()
        except BaseException:  # cancelled (client gone) or failed: nothing to compare with
            outcomes["dropped"].inc()
            return
        try:
            theirs = candidate.result()
        except BaseException as exc:
            outcomes["failed"].inc()
            log.debug("mirrored request on %s failed: %s", self.candidate.batcher.label, exc)
            return
        comparison = compare(ours, theirs)
        if comparison is None:
            outcomes["failed"].inc()
            return
        outcomes["compared"].inc()
        if comparison.samples:
            self._metrics.samples.inc(comparison.samples)
            self._metrics.agreement.inc(comparison.agreeing)
        if np.isfinite(comparison.mean_abs_diff):
            self._metrics.abs_diff.observe(comparison.mean_abs_diff)


class _Pair:
    """A mirrored request and the champion's: judged once both tickets resolved."""

    __slots__ = ("candidate", "champion", "pending", "shadow")

    def __init__(
        self, shadow: Shadow, champion: Ticket[Results], candidate: Ticket[Results]
    ) -> None:
        self.shadow = shadow
        self.champion = champion
        self.candidate = candidate
        self.pending = 2

    def resolved(self, ticket: Ticket[Results]) -> None:
        # Runs inside the batcher's completion callback, before the champion's answer is
        # written: only counts here, the comparison waits for a later loop iteration.
        self.pending -= 1
        if self.pending == 0:
            self.shadow.inflight -= 1
            self.shadow._loop.call_soon(self.shadow._judge, self.champion, self.candidate)
        elif ticket is self.champion and ticket.cancelled():
            # Nobody to compare with: the mirrored request leaves the candidate's queue (its
            # ticket resolves now, re-entering here as the second of the pair).
            self.candidate.cancel()
