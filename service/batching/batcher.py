"""The dynamic batcher of one model version: an asyncio queue in front of a worker thread.

A request is a `Pending` holding its inputs and a future. One loop per version takes compatible
requests off the queue until the batch is full (max batch size, or a preferred size with nothing
more waiting) or the oldest request has waited the max queue delay, runs the batch in a dedicated
worker thread (ONNX Runtime releases the GIL, so the event loop keeps accepting requests), and
resolves each request's future with its own slice of the outputs.

While a batch computes, new requests pile up; the next batch takes them at once because their
delay window has already passed — under load batches grow by themselves, at low load a request
waits at most the max queue delay.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Protocol

import numpy as np

from service.batching.assemble import Layout, assemble, batch_key, split
from service.batching.worker import Worker
from service.errors import (
    ModelExecutionError,
    ModelInputError,
    RequestTimeoutError,
    ServiceError,
    UnavailableError,
)
from service.metrics import VersionMetrics

log = logging.getLogger(__name__)

Runner = Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]
Result = dict[str, np.ndarray]


class Clock(Protocol):
    """Time as the batcher sees it; tests substitute a fake one."""

    def now(self) -> float: ...

    async def wait(self, event: asyncio.Event, timeout: float) -> None:
        """Returns when `event` is set or `timeout` seconds have passed, whichever comes first."""


class MonotonicClock:
    def now(self) -> float:
        return time.monotonic()

    async def wait(self, event: asyncio.Event, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout)


@dataclass(frozen=True)
class BatchPolicy:
    max_batch_size: int
    max_queue_delay_s: float
    preferred_batch_sizes: tuple[int, ...] = ()
    max_queue_size: int = 1024
    default_timeout_s: float | None = None
    # False: every request runs alone (batching off), still through the queue and worker thread.
    merge: bool = True


@dataclass(slots=True, eq=False)
class Pending:
    inputs: dict[str, np.ndarray]
    samples: int
    key: tuple[object, ...]
    future: asyncio.Future[Result]
    enqueued: float
    deadline: float | None
    started: bool = False


@dataclass(slots=True)
class _Outcome:
    results: list[Result | BaseException]
    compute_s: float
    ran_alone: bool = False


class Batcher:
    def __init__(
        self,
        label: str,
        runner: Runner,
        layout: Layout,
        policy: BatchPolicy,
        metrics: VersionMetrics,
        clock: Clock | None = None,
        worker_nice: int = 0,
    ) -> None:
        self.label = label
        self._runner = runner
        self._layout = layout
        self._policy = policy
        self._metrics = metrics
        self._clock = clock or MonotonicClock()
        self._queue: deque[Pending] = deque()
        self._arrived = asyncio.Event()
        self._closing = False
        self._worker_nice = worker_nice
        self._worker: Worker | None = None
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._busy = False
        # Read when /metrics is scraped rather than set on every request (a lock each time).
        metrics.queue_depth.set_function(lambda: len(self._queue))

    # --- the request side (event loop) ---------------------------------------------------

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        nice, label = self._worker_nice, self.label
        self._worker = Worker(f"infer-{label}", on_start=lambda: _lower_priority(nice, label))
        self._task = self._loop.create_task(self._run(), name=f"batcher-{self.label}")

    @property
    def depth(self) -> int:
        return len(self._queue)

    @property
    def idle(self) -> bool:
        return not self._queue and not self._busy

    def check_capacity(self) -> None:
        """Raises UnavailableError when a request would be refused; called before decoding so
        that refusing under overload costs as little as possible."""
        if self._closing:
            raise UnavailableError(f"model {self.label} is unloading; retry")
        if len(self._queue) >= self._policy.max_queue_size:
            raise UnavailableError(
                f"model {self.label} is overloaded: {len(self._queue)} requests queued "
                f"(max_queue_size {self._policy.max_queue_size})"
            )

    def submit(
        self,
        inputs: dict[str, np.ndarray],
        samples: int,
        timeout_s: float | None = None,
        key: tuple[object, ...] | None = None,
    ) -> asyncio.Future[Result]:
        """Queues a validated request; its future resolves with that request's outputs. `key`
        is its `batch_key`, when the caller has it already."""
        self.check_capacity()
        assert self._loop is not None, "Batcher.start() was not called"
        now = self._clock.now()
        timeout = timeout_s if timeout_s is not None else self._policy.default_timeout_s
        if not self._policy.merge:
            key = ()
        elif key is None:
            key = batch_key(inputs, self._layout)
        pending = Pending(
            inputs=inputs,
            samples=samples,
            key=key,
            future=self._loop.create_future(),
            enqueued=now,
            deadline=None if timeout is None else now + timeout,
        )
        self._queue.append(pending)
        if timeout is not None:
            self._loop.call_later(timeout, self._expire, pending, timeout)
        self._arrived.set()
        return pending.future

    def _expire(self, pending: Pending, timeout: float) -> None:
        if not pending.started and not pending.future.done():
            pending.future.set_exception(
                RequestTimeoutError(
                    f"request timed out after {timeout * 1000:.1f} ms waiting in the queue of "
                    f"model {self.label}"
                )
            )

    async def close(self) -> None:
        """Refuses new requests, runs everything queued, then stops the worker thread."""
        self._closing = True
        self._arrived.set()
        if self._task is not None:
            await self._task
        if self._worker is not None:
            self._worker.stop()

    # --- the batching loop ---------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            self._purge()
            if not self._queue:
                if self._closing:
                    return
                self._arrived.clear()
                await self._arrived.wait()
                continue
            batch = await self._gather()
            if not batch:
                continue
            try:
                await self._execute(batch)
            except Exception as exc:  # never let one batch stop the loop: later requests would hang
                log.exception("batcher of %s failed on a batch", self.label)
                for p in batch:
                    if not p.future.done():
                        p.future.set_exception(_as_service_error(exc, self.label))

    def _purge(self) -> None:
        """Drops requests already answered (timed out, or their client went away)."""
        while self._queue and self._queue[0].future.done():
            self._queue.popleft()

    async def _gather(self) -> list[Pending]:
        policy = self._policy
        window_end = self._queue[0].enqueued + policy.max_queue_delay_s
        while True:
            self._purge()
            if not self._queue:
                return []
            available = self._compatible_samples()
            if (
                not policy.merge
                or self._closing
                or available >= policy.max_batch_size
                or self._clock.now() >= window_end
            ):
                return self._take(policy.max_batch_size)
            # As Triton does: a preferred size that can be formed runs now, without waiting.
            preferred = [p for p in policy.preferred_batch_sizes if p <= available]
            if preferred:
                return self._take(max(preferred))
            self._arrived.clear()
            await self._clock.wait(self._arrived, window_end - self._clock.now())

    def _compatible_samples(self) -> int:
        head = self._queue[0].key
        total = 0
        for p in self._queue:
            if p.key == head and not p.future.done():
                total += p.samples
                if total >= self._policy.max_batch_size:
                    break
        return total

    def _take(self, limit: int) -> list[Pending]:
        """The head and the compatible requests behind it, up to `limit` samples, in order."""
        head = self._queue[0]
        if not self._policy.merge:
            self._queue.popleft()
            return [head]
        batch: list[Pending] = []
        kept: deque[Pending] = deque()
        samples = 0
        while self._queue:
            p = self._queue.popleft()
            if p.future.done():
                continue
            if p.key == head.key and samples + p.samples <= limit:
                batch.append(p)
                samples += p.samples
                if samples == limit:
                    break
            else:
                kept.append(p)
        kept.extend(self._queue)
        self._queue = kept
        return batch

    async def _execute(self, batch: list[Pending]) -> None:
        assert self._worker is not None
        start = self._clock.now()
        for p in batch:
            p.started = True
            self._metrics.queue_seconds.observe(start - p.enqueued)
        self._busy = True
        try:
            outcome = await self._worker.run(partial(self._compute, batch))
        except Exception as exc:  # a bug in assembling, not the model: fail this batch only
            log.exception("batch of %s failed outside the model", self.label)
            outcome = _Outcome([exc] * len(batch), 0.0)
        finally:
            self._busy = False
        samples = sum(p.samples for p in batch)
        if outcome.compute_s:
            self._metrics.compute_seconds.observe(outcome.compute_s)
            self._metrics.batch_size.observe(samples)
            self._metrics.execution_count.inc(len(batch) if outcome.ran_alone else 1)
            self._metrics.inference_count.inc(samples)
        for p, result in zip(batch, outcome.results, strict=True):
            if p.future.done():  # the client went away; its neighbours are unaffected
                continue
            if isinstance(result, BaseException):
                p.future.set_exception(_as_service_error(result, self.label))
            else:
                p.future.set_result(result)

    def _compute(self, batch: list[Pending]) -> _Outcome:
        """Worker thread: one run for the whole batch; if it fails, each request alone, so a
        request the model cannot take fails by itself and not its neighbours."""
        requests = [p.inputs for p in batch]
        samples = [p.samples for p in batch]
        t0 = time.perf_counter()
        try:
            outputs = self._runner(assemble(requests, self._layout))
            results: list[Result | BaseException] = list(
                split(outputs, requests, samples, self._layout)
            )
            return _Outcome(results, time.perf_counter() - t0)
        except Exception as exc:
            if len(batch) == 1:
                return _Outcome([_failed_alone(exc, self.label)], time.perf_counter() - t0)
        results = []
        for request, n in zip(requests, samples, strict=True):
            try:
                out = self._runner(assemble([request], self._layout))
                results.extend(split(out, [request], [n], self._layout))
            except Exception as exc:
                results.append(_failed_alone(exc, self.label))
        return _Outcome(results, time.perf_counter() - t0, ran_alone=True)


def _lower_priority(nice: int, label: str) -> None:
    """Runs in the worker thread: on Linux a thread has its own nice value. When the event loop
    and a batch share a core, the loop then wins it as soon as a request arrives, so a refusal
    or a reply is not held up by the rest of the scheduler slice of a batch (≈ 4 ms)."""
    if nice <= 0 or not hasattr(os, "setpriority"):
        return
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
    except OSError as exc:
        log.warning("cannot lower the priority of the worker of %s: %s", label, exc)


# ONNX Runtime's error classes (onnxruntime.capi.onnxruntime_pybind11_state) that a kernel
# failing on its data raises: "[ONNXRuntimeError] : 1 : FAIL : Non-zero status code returned
# while running GatherElements node ... Out of range value in index tensor".
_ORT_MODULE = "onnxruntime.capi.onnxruntime_pybind11_state"
_ORT_DATA_ERRORS = frozenset({"Fail", "InvalidArgument", "RuntimeException"})
_ORT_NODE_FAILED = "Non-zero status code returned while running"
# A node can also fail for want of resources or because of its execution provider: that is the
# server's fault whatever the input (the same request may well pass on retry), so it stays 500.
# (Not bare "cuda" or "provider": every kernel's message carries its source path, e.g.
# ".../core/providers/cuda/tensor/gather_elements_impl.cu".)
_RESOURCE_MARKERS = (
    "failed to allocate", "out of memory", "bad_alloc", "cuda failure", "cuda error",
    "cudaerror", "cublas failure", "cudnn failure", "cufft failure", "curand failure",
)  # fmt: skip


def _failed_alone(exc: Exception, label: str) -> Exception:
    """A request that fails when it runs alone: when ONNX Runtime refused its data (a node failed
    on it at run time), the input is at fault → 400 naming the model and its message. Anything
    else stays a fault of ours → 500: our own errors (session closed on unload: AttributeError,
    assembling bugs), out of memory, provider failures, ONNX Runtime errors outside a node run."""
    cls = type(exc)
    message = str(exc)
    if (
        cls.__module__ == _ORT_MODULE
        and cls.__name__ in _ORT_DATA_ERRORS
        and _ORT_NODE_FAILED in message
        and not any(marker in message.lower() for marker in _RESOURCE_MARKERS)
    ):
        name, _, version = label.rpartition(":")
        detail = _without_source_locations(message.split(_ORT_NODE_FAILED, 1)[1].strip())
        return ModelInputError(
            f"model '{name}' version {version} failed on this input: {_ORT_NODE_FAILED} {detail}"
        )
    return exc


# An ONNX Runtime check prefixes its message with the C++ file, line and function signature:
# "/onnxruntime_src/…/gather_elements.cc:150 void onnxruntime::core_impl(const Tensor*, …)
# [with Tin = long int; …] GatherElements op: Out of range value in index tensor".
_SOURCE_LOCATION = re.compile(r"(?:/[\w.+-]+)+\.(?:cc|cpp|cu|cuh|h|hpp):\d+ ")


def _without_source_locations(message: str) -> str:
    """The client gets the check's message, not the server build's paths and signatures."""
    while (found := _SOURCE_LOCATION.search(message)) is not None:
        message = message[: found.start()] + _after_signature(message[found.end() :])
    return message


def _after_signature(text: str) -> str:
    """`text` past a leading C++ signature (up to its closing parenthesis, then an optional
    `const` and `[with …]`); unchanged when it does not start with one."""
    depth = 0
    opened = False
    for i, char in enumerate(text):
        if char in "([":
            depth += 1
            opened = True
        elif char in ")]":
            depth -= 1
        elif char == " " and depth == 0 and opened:
            rest = text[i + 1 :].removeprefix("const ")
            if rest.startswith("[with ") and "] " in rest:
                rest = rest.split("] ", 1)[1]
            return rest
        elif char == ":" and depth == 0 and not opened and text[i + 1 : i + 2] == " ":
            return text  # "GatherElements op: …": a message, not a signature
    return text


def _as_service_error(exc: BaseException, label: str) -> ServiceError:
    if isinstance(exc, ServiceError):
        return exc
    return ModelExecutionError(f"model {label} failed to run this request: {exc}")
