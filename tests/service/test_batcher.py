"""The dynamic batcher with a fake clock and a fake runner (no server, no ONNX Runtime)."""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import numpy as np
import pytest

from model_store.schema import RaggedInput, TensorSpec
from service.batching import Batcher, BatchPolicy
from service.batching.assemble import Layout
from service.batching.batcher import Pending, _Outcome, _without_source_locations
from service.errors import (
    ModelExecutionError,
    ModelInputError,
    RequestTimeoutError,
    UnavailableError,
)
from service.metrics import Metrics
from service.model_io.signature import ModelSignature


def run_async(test: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Runs an async test in a fresh event loop (the suite has no asyncio plugin)."""

    @functools.wraps(test)
    def run(*args: object, **kwargs: object) -> None:
        asyncio.run(test(*args, **kwargs))

    return run


class FakeTimer:
    def __init__(self, deadline: float, callback: Callable[[], None]) -> None:
        self.deadline = deadline
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeClock:
    """Time moves only when the test says so; a timer fires on the `advance` that passes it."""

    def __init__(self) -> None:
        self.t = 0.0
        self._timers: list[FakeTimer] = []

    def now(self) -> float:
        return self.t

    def call_later(self, delay: float, callback: Callable[[], None]) -> FakeTimer:
        timer = FakeTimer(self.t + delay, callback)
        self._timers.append(timer)
        return timer

    async def advance(self, seconds: float) -> None:
        self.t += seconds
        due = [t for t in self._timers if t.deadline <= self.t and not t.cancelled]
        self._timers = [t for t in self._timers if t not in due and not t.cancelled]
        for timer in due:
            timer.callback()
        await settle()


async def settle() -> None:
    """Lets the batcher loop and its worker thread run until nothing moves."""
    for _ in range(20):
        await asyncio.sleep(0.005)


class FakeRunner:
    """y = 2x; fails on any x == -1; can be held busy to let the queue fill."""

    def __init__(self) -> None:
        self.batches: list[dict[str, np.ndarray]] = []
        self.gate = threading.Event()
        self.gate.set()

    def __call__(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.gate.wait(5)
        self.batches.append({k: v.copy() for k, v in inputs.items()})
        if (inputs["x"] == -1).any():
            raise RuntimeError("x == -1 is out of this model's domain")
        y = inputs["x"].sum(axis=tuple(range(2, inputs["x"].ndim))) if "lengths" in inputs else None
        return {"y": 2 * inputs["x"]} if y is None else {"y": y}


def _signature(ragged: bool = False) -> ModelSignature:
    inputs: tuple[TensorSpec, ...]
    if ragged:
        inputs = (TensorSpec(name="x", datatype="FP32", shape=(-1, -1, 1)),
                  TensorSpec(name="lengths", datatype="INT64", shape=(-1,)))  # fmt: skip
        outputs = (TensorSpec(name="y", datatype="FP32", shape=(-1, -1)),)
    else:
        inputs = (TensorSpec(name="x", datatype="FP32", shape=(-1, -1)),)
        outputs = (TensorSpec(name="y", datatype="FP32", shape=(-1, -1)),)
    return ModelSignature(
        inputs={t.name: t for t in inputs},
        outputs={t.name: t for t in outputs},
        server_filled=frozenset({"lengths"}) if ragged else frozenset(),
        ragged_axes={"x": 1} if ragged else {},
        ragged_max_lengths={},
        batched=True,
        max_batch_size=8,
        reject_non_finite=False,
        labels={},
    )


RAGGED = (RaggedInput(input="x", axis=1, pad_value=0.0, lengths_input="lengths"),)


@pytest.fixture
def runner() -> Iterator[FakeRunner]:
    r = FakeRunner()
    yield r
    r.gate.set()


def _batcher(
    runner: FakeRunner, clock: FakeClock, ragged: bool = False, **policy: object
) -> Batcher:
    defaults: dict[str, object] = {"max_batch_size": 8, "max_queue_delay_s": 0.010}
    layout = Layout(_signature(ragged), RAGGED if ragged else ())
    return Batcher(
        "m:1",
        runner,
        layout,
        BatchPolicy(**(defaults | policy)),  # type: ignore[arg-type]
        Metrics().for_version("m", 1),
        clock,
    )


def _x(*rows: list[float]) -> dict[str, np.ndarray]:
    return {"x": np.array(rows, dtype=np.float32)}


@run_async
async def test_requests_in_the_delay_window_share_one_batch(runner: FakeRunner) -> None:
    clock = FakeClock()
    b = _batcher(runner, clock)
    b.start()
    futures = [b.submit(_x([1, 1]), 1), b.submit(_x([2, 2], [3, 3]), 2), b.submit(_x([4, 4]), 1)]
    await settle()
    assert runner.batches == []  # still inside the 10 ms window
    await clock.advance(0.011)
    assert len(runner.batches) == 1
    assert runner.batches[0]["x"].shape == (4, 2)
    results = [f.result()["y"] for f in futures]
    np.testing.assert_array_equal(results[1], [[4, 4], [6, 6]])
    np.testing.assert_array_equal(results[2], [[8, 8]])
    await b.close()


@run_async
async def test_full_batch_runs_without_waiting(runner: FakeRunner) -> None:
    clock = FakeClock()
    b = _batcher(runner, clock, max_batch_size=4)
    b.start()
    futures = [b.submit(_x([i, i]), 1) for i in range(6)]
    await settle()
    assert [len(batch["x"]) for batch in runner.batches] == [4]
    await clock.advance(0.011)
    assert [len(batch["x"]) for batch in runner.batches] == [4, 2]
    assert all(f.done() for f in futures)
    await b.close()


@run_async
async def test_preferred_batch_size_runs_at_once(runner: FakeRunner) -> None:
    clock = FakeClock()
    b = _batcher(runner, clock, preferred_batch_sizes=(2,))
    b.start()
    for _ in range(3):
        b.submit(_x([1, 1]), 1)
    await settle()
    assert [len(batch["x"]) for batch in runner.batches] == [2]  # no wait for the window
    await clock.advance(0.011)
    assert [len(batch["x"]) for batch in runner.batches] == [2, 1]
    await b.close()


@run_async
async def test_different_shapes_never_share_a_batch(runner: FakeRunner) -> None:
    clock = FakeClock()
    b = _batcher(runner, clock)
    b.start()
    narrow, wide = b.submit(_x([1, 1]), 1), b.submit(_x([1, 1, 1]), 1)
    other_narrow = b.submit(_x([2, 2]), 1)
    await clock.advance(0.011)
    await clock.advance(0.011)
    assert sorted(batch["x"].shape for batch in runner.batches) == [(1, 3), (2, 2)]
    assert narrow.result()["y"].shape == other_narrow.result()["y"].shape == (1, 2)
    assert wide.result()["y"].shape == (1, 3)
    await b.close()


@run_async
async def test_a_failing_request_fails_alone(runner: FakeRunner) -> None:
    clock = FakeClock()
    b = _batcher(runner, clock)
    b.start()
    good, bad, good2 = b.submit(_x([1, 1]), 1), b.submit(_x([-1, 1]), 1), b.submit(_x([3, 3]), 1)
    await clock.advance(0.011)
    np.testing.assert_array_equal(good.result()["y"], [[2, 2]])
    np.testing.assert_array_equal(good2.result()["y"], [[6, 6]])
    with pytest.raises(ModelExecutionError, match="out of this model's domain"):
        bad.result()
    await b.close()


class Fail(Exception):  # noqa: N818 (onnxruntime's name)
    """Stands for onnxruntime's own `Fail` (same module and name, as the batcher sees them)."""


Fail.__module__ = "onnxruntime.capi.onnxruntime_pybind11_state"
NODE_FAILED = "[ONNXRuntimeError] : 1 : FAIL : Non-zero status code returned while running "


class OrtLikeRunner(FakeRunner):
    """y = 2x; x == -2: a node fails on the data; x == -3: the arena runs out of memory."""

    def __call__(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if (inputs["x"] == -2).any():
            raise Fail(NODE_FAILED + "Gather node. Name:'g' Status Message: indices out of bounds")
        if (inputs["x"] == -3).any():
            raise Fail(NODE_FAILED + "MatMul node. Status Message: Failed to allocate memory")
        return super().__call__(inputs)


@run_async
async def test_a_request_the_model_refuses_alone_is_a_bad_request() -> None:
    """The batch fails, each request reruns alone: the one whose data makes a node fail gets a
    400 naming the model and its message; an out-of-memory failure alone stays a 500; the good
    requests of the same batch succeed."""
    clock = FakeClock()
    b = _batcher(OrtLikeRunner(), clock)
    b.start()
    good, refused, oom, good2 = (b.submit(_x([v, 1]), 1) for v in (1, -2, -3, 3))
    await clock.advance(0.011)
    np.testing.assert_array_equal(good.result()["y"], [[2, 2]])
    np.testing.assert_array_equal(good2.result()["y"], [[6, 2]])
    with pytest.raises(ModelInputError) as info:
        refused.result()
    assert info.value.status == 400
    assert info.value.message.startswith("model 'm' version 1 failed on this input: ")
    assert "Gather node" in info.value.message
    with pytest.raises(ModelExecutionError, match="Failed to allocate memory"):
        oom.result()
    # A request alone in its batch is judged the same way.
    alone = b.submit(_x([-2, 1]), 1)
    await clock.advance(0.011)
    with pytest.raises(ModelInputError):
        alone.result()
    await b.close()


@run_async
async def test_full_queue_refuses_at_once(runner: FakeRunner) -> None:
    b = _batcher(runner, FakeClock(), max_queue_size=2)
    b.start()
    b.submit(_x([1, 1]), 1)
    b.submit(_x([1, 1]), 1)
    with pytest.raises(UnavailableError, match="overloaded"):
        b.submit(_x([1, 1]), 1)
    await b.close()


@run_async
async def test_requests_answered_while_queued_free_their_place(runner: FakeRunner) -> None:
    """Requests that timed out or whose client went away no longer count against the queue's
    size, even while they still sit in it behind a batch in flight."""
    b = _batcher(runner, FakeClock(), max_queue_size=2, max_queue_delay_s=0.0)
    b.start()
    runner.gate.clear()  # the model is busy: whatever comes next waits in the queue
    first = b.submit(_x([1, 1]), 1)
    await settle()
    b.submit(_x([2, 2]), 1).cancel()
    b.submit(_x([3, 3]), 1, timeout_s=0.01)
    await asyncio.sleep(0.05)
    kept = [b.submit(_x([4, 4]), 1), b.submit(_x([5, 5]), 1)]
    with pytest.raises(UnavailableError, match="overloaded: 2 requests queued"):
        b.submit(_x([6, 6]), 1)
    runner.gate.set()
    await settle()
    assert first.result()["y"].tolist() == [[2, 2]]
    assert [k.result()["y"].tolist() for k in kept] == [[[8, 8]], [[10, 10]]]
    await b.close()


@run_async
async def test_timed_out_request_never_reaches_the_model(runner: FakeRunner) -> None:
    b = _batcher(runner, FakeClock(), max_queue_delay_s=0.0)
    b.start()
    runner.gate.clear()  # the model is busy with the first request
    first = b.submit(_x([1, 1]), 1)
    await settle()
    late = b.submit(_x([5, 5]), 1, timeout_s=0.02)
    await asyncio.sleep(0.05)
    with pytest.raises(RequestTimeoutError, match="timed out"):
        late.result()
    runner.gate.set()
    await settle()
    assert first.result()["y"].tolist() == [[2, 2]]
    assert all(5 not in batch["x"] for batch in runner.batches)
    await b.close()


@run_async
async def test_a_cancelled_request_does_not_poison_its_batch(runner: FakeRunner) -> None:
    clock = FakeClock()
    b = _batcher(runner, clock)
    b.start()
    gone, kept = b.submit(_x([1, 1]), 1), b.submit(_x([2, 2]), 1)
    gone.cancel()  # its client disconnected
    await clock.advance(0.011)
    np.testing.assert_array_equal(kept.result()["y"], [[4, 4]])
    await b.close()


@run_async
async def test_ragged_inputs_are_padded_and_lengths_filled(runner: FakeRunner) -> None:
    clock = FakeClock()
    b = _batcher(runner, clock, ragged=True)
    b.start()
    short = {"x": np.ones((1, 2, 1), np.float32)}
    long = {"x": np.full((2, 5, 1), 2, np.float32)}
    f_short, f_long = b.submit(short, 1), b.submit(long, 2)
    await clock.advance(0.011)
    (batch,) = runner.batches
    assert batch["x"].shape == (3, 5, 1)
    np.testing.assert_array_equal(batch["lengths"], [2, 5, 5])
    np.testing.assert_array_equal(batch["x"][0, 2:, 0], 0)  # pad value
    # The output's time axis (as long as the padded input) is trimmed back per request.
    assert f_short.result()["y"].shape == (1, 2)
    assert f_long.result()["y"].shape == (2, 5)
    await b.close()


@run_async
async def test_close_drains_then_refuses(runner: FakeRunner) -> None:
    b = _batcher(runner, FakeClock(), max_queue_delay_s=60.0)
    b.start()
    pending = [b.submit(_x([i, i]), 1) for i in range(3)]
    await b.close()  # does not wait for the 60 s window: closing flushes the queue
    assert [f.result()["y"][0, 0] for f in pending] == [0, 2, 4]
    with pytest.raises(UnavailableError, match="unloading"):
        b.submit(_x([1, 1]), 1)


@run_async
async def test_batching_off_runs_each_request_alone(runner: FakeRunner) -> None:
    b = _batcher(runner, FakeClock(), merge=False, max_queue_delay_s=0.0)
    b.start()
    futures = [b.submit(_x([i, i], [i, i]), 2) for i in range(3)]
    await settle()
    assert [batch["x"].shape for batch in runner.batches] == [(2, 2)] * 3
    assert all(f.done() for f in futures)
    await b.close()


def test_source_locations_are_cut_from_onnx_runtime_messages() -> None:
    message = (
        "Status Message: /onnxruntime_src/onnxruntime/core/providers/cpu/tensor/"
        "gather_elements.cc:150 void onnxruntime::core_impl(const Tensor*, Tensor*, int64_t) "
        "[with Tin = long int; int64_t = long int] GatherElements op: Out of range value"
    )
    assert _without_source_locations(message) == (
        "Status Message: GatherElements op: Out of range value"
    )
    plain = "Status Message: indices out of bounds (3 >= 2)"
    assert _without_source_locations(plain) == plain


@run_async
async def test_requests_queued_in_one_loop_iteration_share_a_batch(runner: FakeRunner) -> None:
    """With no delay window at all, requests read in the same iteration still run together:
    dispatch waits for the end of the iteration, not for the first request."""
    b = _batcher(runner, FakeClock(), max_queue_delay_s=0.0)
    b.start()
    futures = [b.submit(_x([i, i]), 1) for i in range(3)]
    await settle()
    assert [len(batch["x"]) for batch in runner.batches] == [3]
    assert [f.result()["y"][0, 0] for f in futures] == [0, 2, 4]
    await b.close()


@run_async
async def test_requests_arriving_during_a_batch_run_right_after_it(runner: FakeRunner) -> None:
    b = _batcher(runner, FakeClock(), max_queue_delay_s=0.0)
    b.start()
    runner.gate.clear()
    first = b.submit(_x([1, 1]), 1)
    await settle()
    later = [b.submit(_x([i, i]), 1) for i in range(2, 5)]
    await settle()
    assert not first.done()
    runner.gate.set()
    await settle()
    assert [len(batch["x"]) for batch in runner.batches] == [1, 3]
    assert [f.result()["y"][0, 0] for f in (first, *later)] == [2, 4, 6, 8]
    await b.close()


@run_async
async def test_a_batch_failing_outside_the_model_fails_alone(runner: FakeRunner) -> None:
    """A fault of ours while a batch is handled fails that batch's requests (500), and the
    batcher goes on serving the next ones."""
    b = _batcher(runner, FakeClock(), max_queue_delay_s=0.0)
    b.start()
    compute = b._compute
    calls = 0

    def broken_once(batch: list[Pending]) -> _Outcome:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise KeyError("a bug")
        return compute(batch)

    b._compute = broken_once  # type: ignore[method-assign]
    doomed = b.submit(_x([1, 1]), 1)
    await settle()
    with pytest.raises(ModelExecutionError, match="a bug"):
        doomed.result()
    fine = b.submit(_x([2, 2]), 1)
    await settle()
    assert fine.result()["y"].tolist() == [[4, 4]]
    await b.close()


@run_async
async def test_close_waits_for_the_batch_in_flight(runner: FakeRunner) -> None:
    b = _batcher(runner, FakeClock(), max_queue_delay_s=0.0)
    b.start()
    runner.gate.clear()
    first = b.submit(_x([1, 1]), 1)
    await settle()
    queued = b.submit(_x([2, 2]), 1)
    closers = [asyncio.ensure_future(b.close()) for _ in range(2)]
    await settle()
    assert not any(c.done() for c in closers)
    runner.gate.set()
    await asyncio.wait_for(asyncio.gather(*closers), 5)
    assert first.result()["y"].tolist() == [[2, 2]]
    assert queued.result()["y"].tolist() == [[4, 4]]
    assert b.idle


class EarlyClock(FakeClock):
    """Timers fire up to 1 ms early, as the event loop's own (cached, whole-ms) clock lets them."""

    def call_later(self, delay: float, callback: Callable[[], None]) -> FakeTimer:
        return super().call_later(max(delay - 0.001, 0.0), callback)


@run_async
async def test_a_window_timer_firing_early_is_armed_again(runner: FakeRunner) -> None:
    clock = EarlyClock()
    b = _batcher(runner, clock)  # a 10 ms window
    b.start()
    request = b.submit(_x([1, 1]), 1)
    await settle()
    await clock.advance(0.0095)  # the timer fires, the window has not ended
    assert runner.batches == []
    await clock.advance(0.0006)  # the timer armed for the rest fires
    assert request.result()["y"].tolist() == [[2, 2]]
    await b.close()


@run_async
async def test_a_request_with_a_priority_level_is_dequeued_first(runner: FakeRunner) -> None:
    """While a batch computes: requests without a level keep their arrival order; one with a
    level goes ahead of them, 1 ahead of 2, equal levels in arrival order (Triton's priority)."""
    clock = FakeClock()
    b = _batcher(runner, clock, max_batch_size=1, max_queue_delay_s=0.0)
    b.start()
    runner.gate.clear()
    first = b.submit(_x([0, 0]), 1)
    await settle()  # the first batch holds the worker
    order = [(10, 0), (11, 0), (12, 2), (13, 1), (14, 2), (15, 0), (16, 1)]
    tickets = {value: b.submit(_x([value, value]), 1, priority=level) for value, level in order}
    runner.gate.set()
    await settle()
    assert first.done()
    assert all(t.done() for t in tickets.values())
    served = [int(batch["x"][0, 0]) for batch in runner.batches[1:]]
    assert served == [13, 16, 12, 14, 10, 11, 15]
    await b.close()


@run_async
async def test_a_priority_request_joins_the_next_batch_with_the_compatible_ones(
    runner: FakeRunner,
) -> None:
    clock = FakeClock()
    b = _batcher(runner, clock, max_batch_size=3, max_queue_delay_s=0.0)
    b.start()
    runner.gate.clear()
    b.submit(_x([0, 0]), 1)
    await settle()
    for value in (1, 2, 3, 4):
        b.submit(_x([value, value]), 1)
    b.submit(_x([9, 9]), 1, priority=1)
    assert b.depth == 5
    runner.gate.set()
    await settle()
    assert [batch["x"][:, 0].tolist() for batch in runner.batches[1:]] == [[9, 1, 2], [3, 4]]
    await b.close()
