"""The dynamic batcher of one model version: a queue on the event loop in front of a worker thread.

A request is a `Pending` holding its inputs and a `Ticket` (ticket.py) for its answer. Dispatch is
driven by callbacks, not a task: a request arriving at an idle batcher schedules one `_dispatch`
for the end of this loop iteration (so every request read in the same iteration can join it), and a
finished batch dispatches the next one straight from its completion callback. `_dispatch` takes
compatible requests off the queue until the batch is full (max batch size, or a preferred size with
nothing more waiting) or the oldest request has waited the max queue delay (a timer then calls it
again), and hands the batch to the worker thread (ONNX Runtime releases the GIL, so the event loop
keeps accepting requests), whose outcome resolves each request's ticket with its own slice: the
answer reaches its connection in the same loop iteration as the batch's.

On the event loop itself (`loop_batch_max_s`, set when the server has one CPU): a thread cannot
compute while the loop reads on a single core anyway, and the handoff costs two context
switches, a GIL transfer and preemptions in the middle of a batch. A batch then runs in
`_dispatch` when its expected time (the model's last seconds per sample times the batch's
samples: how long a batch on the loop held it, or a worker thread's own CPU time, which does not
count the loop's preemptions) is within the limit; a longer one, and the first (nothing measured
yet), still go to the worker thread, so the loop is never blocked for long: health probes,
refusals and other models' answers wait one short batch at most. The estimate is per sample: a
batch of a ragged model's longest sequences can exceed it by as much as their length exceeds
the last batch's. A batch holding a gRPC call computes on the worker thread too: the asyncio gRPC
server receives and answers a call in several loop steps, and calls stalled behind batches on
the loop cut its throughput by 28 % (benchmarks/results/one-cpu/). After a batch the next
dispatch comes one loop iteration later, so that everything that arrived while the loop
computed is read first and joins it.

Priority (Triton's `priority` parameter, its schedule_policy extension): the queue is kept in
order of level, then of arrival. A request without a level (0, nearly all) is appended, exactly as
before; one with a level is inserted ahead of every request without one and of every less urgent
level (1 is the most urgent), so it is in the next batch formed. A batch is then formed as always:
the head and the compatible requests behind it.

While a batch computes, new requests pile up; the next batch takes them at once because their
delay window has already passed — under load batches grow by themselves, at low load a request
waits at most the max queue delay. A task awaiting an `asyncio.Event` did the same with a
coroutine step, an event waiter and a chained future per batch, and two loop iterations more
between a batch finishing and its answers going out.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Protocol

import numpy as np

from service.batching.assemble import Layout, assemble, batch_key, split
from service.batching.run import BatchRun
from service.batching.ticket import Ticket
from service.batching.worker import WorkerPool
from service.errors import (
    ModelExecutionError,
    ModelInputError,
    OverloadedError,
    RequestTimeoutError,
    ServiceError,
    UnavailableError,
)
from service.metrics import VersionMetrics
from service.observability import tracing

log = logging.getLogger(__name__)

Runner = Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]
Result = dict[str, np.ndarray]


class Timer(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    """Time as the batcher sees it; tests substitute a fake one."""

    def now(self) -> float: ...

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer:
        """Calls `callback` on the event loop once `delay` seconds have passed."""


class MonotonicClock:
    def now(self) -> float:
        return time.monotonic()

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer:
        return asyncio.get_running_loop().call_later(delay, callback)


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
    ticket: Ticket[Result]
    enqueued: float
    started: bool = False
    trace: object | None = None  # the request's span, when tracing is on
    # Its front end needs the event loop while the batch computes (see `submit`).
    needs_loop: bool = False


@dataclass(slots=True, eq=False)
class LeveledPending(Pending):
    """A request with a priority level (1 is the most urgent). Its own class, so that a request
    without one (nearly all) is built and queued exactly as before priority existed."""

    priority: int = 1


@dataclass(slots=True)
class _Execution:
    """One run of the model: its size and how long each phase took (service/statistics.py)."""

    samples: int
    requests: int
    input_s: float  # assembling the batch
    infer_s: float  # the ONNX Runtime run
    output_s: float  # splitting its outputs per request


@dataclass(slots=True)
class _Outcome:
    results: list[Result | BaseException]
    executions: list[_Execution]


class Batcher:
    # Batches started by every batcher of the process, read by the allocator's trims to tell a
    # quiet interval (runtime/memory.py); batchers start batches only on their event loop.
    started_in_process = 0

    def __init__(
        self,
        label: str,
        runner: Runner,
        layout: Layout,
        policy: BatchPolicy,
        metrics: VersionMetrics,
        clock: Clock | None = None,
        workers: WorkerPool | None = None,
        loop_batch_max_s: float | None = None,
    ) -> None:
        self.label = label
        self._runner = runner
        self._layout = layout
        self._policy = policy
        self._metrics = metrics
        self._clock = clock or MonotonicClock()
        self._queue: deque[Pending] = deque()
        self._closing = False
        # The server's shared pool; a batcher built alone (tests, tools) owns a thread of its own.
        self._workers = workers
        self._owns_workers = workers is None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._busy = False  # a batch is in the worker thread
        self._dispatch_due = False  # a `_dispatch` is scheduled for this loop iteration
        self._window: Timer | None = None  # calls `_dispatch` when the head's delay window ends
        self._window_end = 0.0
        self._drained: asyncio.Future[None] | None = None  # set by `close`
        # Batches expected to take at most this long run on the event loop (None: never).
        self._loop_batch_max_s = loop_batch_max_s
        self._sample_s: float | None = None  # the last batch's, set by whichever thread ran it
        # Read when /metrics is scraped rather than set on every request (a lock each time).
        metrics.queue_depth.set_function(lambda: len(self._queue))

    # --- the request side (event loop) ---------------------------------------------------

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        if self._workers is None:
            self._workers = WorkerPool(1, f"infer-{self.label}")

    @property
    def depth(self) -> int:
        return len(self._queue)

    @property
    def policy(self) -> BatchPolicy:
        return self._policy

    @property
    def idle(self) -> bool:
        return not self._queue and not self._busy

    def check_capacity(self) -> None:
        """Raises UnavailableError when a request would be refused; called before decoding so
        that refusing under overload costs as little as possible."""
        if self._closing:
            raise UnavailableError(f"model {self.label} is unloading; retry")
        if len(self._queue) >= self._policy.max_queue_size:
            # Requests that timed out or whose client went away stay in the queue until a batch
            # is formed; at the limit (only there: it walks the queue) they give their place up.
            self._queue = deque(p for p in self._queue if not p.ticket.done())
        if len(self._queue) >= self._policy.max_queue_size:
            raise OverloadedError(
                f"model {self.label} is overloaded: {len(self._queue)} requests queued "
                f"(max_queue_size {self._policy.max_queue_size})"
            )

    def submit(
        self,
        inputs: dict[str, np.ndarray],
        samples: int,
        timeout_s: float | None = None,
        key: tuple[object, ...] | None = None,
        priority: int = 0,
        trace: object | None = None,
        needs_loop: bool = False,
    ) -> Ticket[Result]:
        """Queues a validated request; its ticket resolves with that request's outputs. `key`
        is its `batch_key`, when the caller has it already; `priority` its level (0: none);
        `trace` its span, which the span of the batch it runs in links to. `needs_loop`: its
        front end takes several loop steps to receive and answer a call (gRPC's asyncio
        server), so a batch holding it computes on the worker thread, never on the loop."""
        self.check_capacity()
        loop = self._loop
        assert loop is not None, "Batcher.start() was not called"
        timeout = timeout_s if timeout_s is not None else self._policy.default_timeout_s
        if not self._policy.merge:
            key = ()
        elif key is None:
            key = batch_key(inputs, self._layout)
        pending: Pending
        if priority:
            leveled = LeveledPending(
                inputs, samples, key, Ticket(), self._clock.now(), trace=trace,
                needs_loop=needs_loop, priority=priority,
            )  # fmt: skip
            self._insert_by_level(leveled)
            pending = leveled
        else:
            pending = Pending(
                inputs=inputs,
                samples=samples,
                key=key,
                ticket=Ticket(),
                enqueued=self._clock.now(),
                trace=trace,
                needs_loop=needs_loop,
            )
            self._queue.append(pending)
        if timeout is not None:
            loop.call_later(timeout, self._expire, pending, timeout)
        if not self._busy:
            self._soon()
        return pending.ticket

    def _insert_by_level(self, pending: LeveledPending) -> None:
        """Ahead of every request without a level and of every less urgent level, behind the
        ones of its own level or a more urgent one (a walk only for requests with a level)."""
        level = pending.priority
        for index, queued in enumerate(self._queue):
            if not isinstance(queued, LeveledPending) or queued.priority > level:
                self._queue.insert(index, pending)
                return
        self._queue.append(pending)

    def _expire(self, pending: Pending, timeout: float) -> None:
        if not pending.started and not pending.ticket.done():
            pending.ticket.set_exception(
                RequestTimeoutError(
                    f"request timed out after {timeout * 1000:.1f} ms waiting in the queue of "
                    f"model {self.label}"
                )
            )

    async def close(self) -> None:
        """Refuses new requests, runs everything queued, then stops the worker thread."""
        self._closing = True
        if self._loop is not None:
            if self._drained is None:
                self._drained = self._loop.create_future()
                self._dispatch()
            await asyncio.shield(self._drained)
        if self._owns_workers and self._workers is not None:
            self._workers.stop()

    # --- dispatch (event loop) -----------------------------------------------------------

    def _dispatch(self) -> None:
        """Starts the next batch if the worker is free and one is ready; otherwise arms the
        timer of the head's delay window. Called when a request arrives at an idle batcher,
        when a batch finishes, and when the window ends."""
        self._dispatch_due = False
        if self._busy:
            return  # the batch in flight dispatches the next when it finishes
        self._purge()
        if not self._queue:
            self._cancel_window()
            if self._drained is not None and not self._drained.done():
                self._drained.set_result(None)
            return
        batch = self._ready_batch()
        if batch is None:
            return
        self._cancel_window()
        try:
            self._launch(batch)
        except Exception as exc:  # never strand a batch: its clients would hang
            log.exception("batcher of %s failed to start a batch", self.label)
            self._busy = False
            self._fail(batch, exc)
            self._soon()

    def _soon(self) -> None:
        """A `_dispatch` at the end of this loop iteration, not at once: the other requests
        read in this iteration may join the batch."""
        if not self._dispatch_due:
            self._dispatch_due = True
            assert self._loop is not None
            self._loop.call_soon(self._dispatch)

    def _purge(self) -> None:
        """Drops requests already answered (timed out, or their client went away)."""
        while self._queue and self._queue[0].ticket.done():
            self._queue.popleft()

    def _ready_batch(self) -> list[Pending] | None:
        """The batch to run now, or None (with the window's timer armed) to wait for more."""
        policy = self._policy
        if not policy.merge:
            return [self._queue.popleft()]
        if self._closing:
            return self._take(policy.max_batch_size)
        available = self._compatible_samples()
        window_end = self._queue[0].enqueued + policy.max_queue_delay_s
        if available >= policy.max_batch_size or self._clock.now() >= window_end:
            return self._take(policy.max_batch_size)
        # As Triton does: a preferred size that can be formed runs now, without waiting.
        preferred = [p for p in policy.preferred_batch_sizes if p <= available]
        if preferred:
            return self._take(max(preferred))
        if self._window is None or self._window_end != window_end:
            self._cancel_window()
            self._window_end = window_end
            delay = window_end - self._clock.now()
            self._window = self._clock.call_later(delay, self._window_ended)
        return None

    def _window_ended(self) -> None:
        # The loop's timers run on their own clock (libuv's is cached per iteration, in whole
        # milliseconds), so this may come a little before `now()` reaches the window's end;
        # `_dispatch` then arms a new timer for the rest.
        self._window = None
        self._dispatch()

    def _cancel_window(self) -> None:
        if self._window is not None:
            self._window.cancel()
            self._window = None

    def _compatible_samples(self) -> int:
        head = self._queue[0].key
        total = 0
        for p in self._queue:
            if p.key == head and not p.ticket.done():
                total += p.samples
                if total >= self._policy.max_batch_size:
                    break
        return total

    def _take(self, limit: int) -> list[Pending]:
        """The head and the compatible requests behind it, up to `limit` samples, in order."""
        head = self._queue[0]
        batch: list[Pending] = []
        kept: deque[Pending] = deque()
        samples = 0
        while self._queue:
            p = self._queue.popleft()
            if p.ticket.done():
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

    def _launch(self, batch: list[Pending]) -> None:
        assert self._workers is not None
        start = self._clock.now()
        observe = self._metrics.queue_seconds.observe
        samples = 0
        needs_loop = False
        for p in batch:
            p.started = True
            samples += p.samples
            needs_loop |= p.needs_loop
            observe(start - p.enqueued)
        run = BatchRun(time.perf_counter(), samples, len(batch))
        self._busy = True
        Batcher.started_in_process += 1
        if not needs_loop and self._runs_on_loop(samples):
            self._compute_here(batch, run)
        else:
            self._workers.submit(partial(self._compute, batch), partial(self._finished, batch, run))

    def _runs_on_loop(self, samples: int) -> bool:
        limit, per_sample = self._loop_batch_max_s, self._sample_s
        return limit is not None and per_sample is not None and per_sample * samples <= limit

    def _compute_here(self, batch: list[Pending], run: BatchRun) -> None:
        """The batch on the event loop, start to answers, as the worker thread would run it.
        What the next batch is judged by is how long this one held the loop, assembling and
        splitting included (its thread's CPU time would miss ONNX Runtime's other threads)."""
        try:
            outcome: _Outcome | None = self._compute(batch)
            error: BaseException | None = None
        except Exception as exc:  # handed over like the worker thread's
            outcome, error = None, exc
        self._sample_s = (time.perf_counter() - run.started) / max(run.samples, 1)
        self._finished(batch, run, outcome, error)

    def _finished(
        self,
        batch: list[Pending],
        run: BatchRun,
        outcome: _Outcome | None,
        error: BaseException | None,
    ) -> None:
        """Event loop, when `batch` is done: the next batch is dispatched first (a worker
        thread is idle until it is; on the loop, one iteration later, once what arrived meanwhile
        is read), then every request gets its answer."""
        run.ended = time.perf_counter()
        self._busy = False
        if self._loop_batch_max_s is None:
            self._dispatch()
        else:  # what arrived while the loop computed is read first, and joins the next batch
            self._soon()
        tracer = tracing.batch_tracer  # None unless tracing is on: one global read per batch
        if tracer is not None:
            tracer.record_batch(self.label, run, [p.trace for p in batch])
        if error is not None:  # a bug in assembling, not the model: fail this batch only
            log.error("batch of %s failed outside the model", self.label, exc_info=error)
            self._fail(batch, error, run)
            return
        assert outcome is not None
        try:
            self._deliver(batch, outcome, run)
        except Exception as exc:
            log.exception("batcher of %s failed to deliver a batch", self.label)
            self._fail(batch, exc, run)

    def _deliver(self, batch: list[Pending], outcome: _Outcome, batch_run: BatchRun) -> None:
        metrics = self._metrics
        for run in outcome.executions:
            metrics.compute_seconds.observe(run.input_s + run.infer_s + run.output_s)
            metrics.batch_size.observe(run.samples)
            metrics.execution_count.inc()
            metrics.inference_count.inc(run.samples)
            metrics.batches.record(
                run.samples, run.requests, run.input_s, run.infer_s, run.output_s
            )
        for p, result in zip(batch, outcome.results, strict=True):
            if p.ticket.done():  # the client went away; its neighbours are unaffected
                continue
            p.ticket.run = batch_run
            if isinstance(result, BaseException):
                p.ticket.set_exception(_as_service_error(result, self.label))
            else:
                p.ticket.set_result(result)

    def _fail(self, batch: list[Pending], exc: BaseException, run: BatchRun | None = None) -> None:
        for p in batch:
            if not p.ticket.done():
                p.ticket.run = run
                p.ticket.set_exception(_as_service_error(exc, self.label))

    # --- the worker thread ---------------------------------------------------------------

    def _compute(self, batch: list[Pending]) -> _Outcome:
        """Worker thread (or the loop): one run for the whole batch; if it fails, each request
        alone, so a request the model cannot take fails by itself and not its neighbours."""
        requests = [p.inputs for p in batch]
        samples = [p.samples for p in batch]
        try:
            results, run = self._run(requests, samples)
            return _Outcome(results, [run])
        except Exception as exc:
            if len(batch) == 1:
                return _Outcome([_failed_alone(exc, self.label)], [])
        outcome = _Outcome([], [])
        for request, n in zip(requests, samples, strict=True):
            try:
                results, run = self._run([request], [n])
            except Exception as exc:
                outcome.results.append(_failed_alone(exc, self.label))
                continue
            outcome.results.extend(results)
            outcome.executions.append(run)
        return outcome

    def _run(
        self, requests: list[dict[str, np.ndarray]], samples: list[int]
    ) -> tuple[list[Result | BaseException], _Execution]:
        t0 = time.perf_counter()
        inputs = assemble(requests, self._layout)
        t1 = time.perf_counter()
        cpu = time.thread_time()
        outputs = self._runner(inputs)
        t2 = time.perf_counter()
        # On a worker, the thread's own clock: its wall time counts the loop's preemptions. (On
        # the loop, `_compute_here` replaces this with how long the batch held the loop.)
        self._sample_s = (time.thread_time() - cpu) / max(sum(samples), 1)
        results: list[Result | BaseException] = list(
            split(outputs, requests, samples, self._layout)
        )
        t3 = time.perf_counter()
        return results, _Execution(sum(samples), len(requests), t1 - t0, t2 - t1, t3 - t2)


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
