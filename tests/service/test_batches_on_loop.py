"""Batches on the event loop's own thread when the server has one CPU (batching/placement.py):
which batches run there, that what arrives meanwhile joins the next batch, that failures stay
per request, how the CPU count is read, and a real server pinned to one core serving with it."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import tritonclient.http as httpclient

from benchmarks.harness.servers import serve, service_launch
from model_store.schema import BatchingConfig, ModelConfig
from service.batching import Batcher, BatchPolicy
from service.batching.assemble import Layout
from service.batching.placement import batches_on_loop
from service.errors import ModelExecutionError
from service.metrics import Metrics
from service.runtime.cpus import UsableCpus, usable_cpus
from service.runtime.providers import ProviderChoice
from service.settings import Settings
from tests.service import models
from tests.service.grpc import clients as grpc_clients
from tests.service.helpers import publish
from tests.service.test_batcher import FakeClock, FakeRunner, _signature, _x, run_async, settle

CPU = ProviderChoice("cpu", ["CPUExecutionProvider"], on_gpu=False)
CUDA = ProviderChoice("cuda", ["CUDAExecutionProvider"], on_gpu=True)


class ThreadNoting(FakeRunner):
    """FakeRunner that notes which thread ran each batch, and burns `cpu_per_sample_s` of CPU
    per sample (the batcher measures CPU with the thread's own clock)."""

    def __init__(self, cpu_per_sample_s: float = 0.0) -> None:
        super().__init__()
        self.threads: list[int] = []
        self.cpu_per_sample_s = cpu_per_sample_s
        self.during: list[object] = []  # called while a batch computes (the test's arrivals)

    def __call__(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.threads.append(threading.get_ident())
        end = time.thread_time() + self.cpu_per_sample_s * len(inputs["x"])
        while time.thread_time() < end:
            pass
        for arrive in self.during:
            arrive()  # type: ignore[operator]
        self.during = []
        return super().__call__(inputs)


@pytest.fixture
def noting() -> Iterator[ThreadNoting]:
    r = ThreadNoting()
    yield r
    r.gate.set()


def _on_loop_batcher(runner: FakeRunner, limit_s: float, **policy: object) -> Batcher:
    defaults: dict[str, object] = {"max_batch_size": 8, "max_queue_delay_s": 0.0}
    return Batcher(
        "m:1",
        runner,
        Layout(_signature(), ()),
        BatchPolicy(**(defaults | policy)),  # type: ignore[arg-type]
        Metrics().for_version("m", 1),
        FakeClock(),
        loop_batch_max_s=limit_s,
    )


@run_async
async def test_after_its_first_batch_a_model_computes_on_the_loops_thread(
    noting: ThreadNoting,
) -> None:
    b = _on_loop_batcher(noting, limit_s=1.0)
    b.start()
    loop_thread = threading.get_ident()
    first = b.submit(_x([1, 1]), 1)
    await settle()
    # Nothing measured yet: the first batch goes to the worker thread.
    assert noting.threads[0] != loop_thread
    later = [b.submit(_x([i, i]), 1) for i in range(3)]
    await settle()
    assert noting.threads[1:] == [loop_thread]  # one batch of three, on the loop
    np.testing.assert_array_equal(first.result()["y"], [[2, 2]])
    for i, ticket in enumerate(later):
        np.testing.assert_array_equal(ticket.result()["y"], [[2 * i, 2 * i]])
    await b.close()


@run_async
async def test_a_batch_expected_above_the_limit_computes_on_the_worker_thread() -> None:
    runner = ThreadNoting(cpu_per_sample_s=0.004)
    b = _on_loop_batcher(runner, limit_s=0.010)
    b.start()
    loop_thread = threading.get_ident()
    b.submit(_x([1, 1]), 1)  # measures ≈ 4 ms of CPU per sample, on the worker thread
    await settle()
    b.submit(_x([1, 1], [2, 2]), 2)  # ≈ 8 ms expected: within 10, on the loop
    await settle()
    tickets = [b.submit(_x([i, i]), 1) for i in range(4)]  # ≈ 16 ms expected: the worker
    await settle()
    assert [t == loop_thread for t in runner.threads] == [False, True, False]
    assert all(t.done() for t in tickets)
    await b.close()


class Sleeping(ThreadNoting):
    """Holds its thread `per_sample_s` per sample without using CPU (as a model whose work is
    on ONNX Runtime's own threads, or a device, would)."""

    def __init__(self, per_sample_s: float) -> None:
        super().__init__()
        self.per_sample_s = per_sample_s

    def __call__(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        time.sleep(self.per_sample_s * len(inputs["x"]))
        return super().__call__(inputs)


@run_async
async def test_a_batch_on_the_loop_is_measured_by_how_long_it_held_it() -> None:
    """The worker thread's CPU time says ~0 for a batch that waits; once a batch has held the
    loop, the time it held it is what the next batch is judged by."""
    runner = Sleeping(per_sample_s=0.004)
    b = _on_loop_batcher(runner, limit_s=0.010)
    b.start()
    loop_thread = threading.get_ident()
    for rows in ([[1.0, 1.0]], [[1.0, 1.0]], [[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]]):
        b.submit(_x(*rows), len(rows))
        await settle()
    # Worker (nothing measured), loop (~0 s of CPU per sample), then 3 × 4 ms > 10 ms: worker.
    assert [t == loop_thread for t in runner.threads] == [False, True, False]
    await b.close()


@run_async
async def test_what_arrives_while_the_loop_computes_joins_the_queued_requests_next_batch(
    noting: ThreadNoting,
) -> None:
    """Six requests for batches of four: after the first four compute on the loop, the two left
    wait one loop iteration, so the two that arrived during that batch join them in one batch
    rather than computing in a batch of their own."""
    b = _on_loop_batcher(noting, limit_s=1.0, max_batch_size=4)
    b.start()
    loop = asyncio.get_running_loop()
    b.submit(_x([0, 0]), 1)  # the measured first batch, on the worker thread
    await settle()
    late: list[object] = []

    def arrive_from_another_thread() -> None:
        def submit() -> None:
            late.append(b.submit(_x([9, 9]), 1))

        def send_two() -> None:
            for _ in range(2):
                loop.call_soon_threadsafe(submit)

        helper = threading.Thread(target=send_two)
        helper.start()
        helper.join()  # queued on the loop before this batch ends, as a socket's data would be

    noting.during = [arrive_from_another_thread]
    early = [b.submit(_x([i, i]), 1) for i in range(6)]
    await settle()
    assert [len(batch["x"]) for batch in noting.batches] == [1, 4, 4]
    assert all(t.done() for t in early)
    assert len(late) == 2
    await b.close()


@run_async
async def test_a_batch_holding_a_call_that_needs_the_loop_computes_on_the_worker_thread(
    noting: ThreadNoting,
) -> None:
    """gRPC's calls (`needs_loop`) take several loop steps each: their batches leave the loop
    free, whoever else is in them; batches without one still compute on the loop."""
    b = _on_loop_batcher(noting, limit_s=1.0)
    b.start()
    loop_thread = threading.get_ident()
    b.submit(_x([1, 1]), 1)
    await settle()
    b.submit(_x([2, 2]), 1)
    grpc_call = b.submit(_x([3, 3]), 1, needs_loop=True)
    await settle()
    b.submit(_x([4, 4]), 1)
    await settle()
    assert [t == loop_thread for t in noting.threads] == [False, False, True]
    assert [len(batch["x"]) for batch in noting.batches] == [1, 2, 1]
    np.testing.assert_array_equal(grpc_call.result()["y"], [[6, 6]])
    await b.close()


@run_async
async def test_a_request_the_model_fails_on_fails_alone_on_the_loop(noting: ThreadNoting) -> None:
    b = _on_loop_batcher(noting, limit_s=1.0)
    b.start()
    loop_thread = threading.get_ident()
    b.submit(_x([1, 1]), 1)
    await settle()
    good, bad, other = b.submit(_x([2, 2]), 1), b.submit(_x([-1, -1]), 1), b.submit(_x([3, 3]), 1)
    await settle()
    assert set(noting.threads[1:]) == {loop_thread}  # the batch, then each request alone
    np.testing.assert_array_equal(good.result()["y"], [[4, 4]])
    np.testing.assert_array_equal(other.result()["y"], [[6, 6]])
    with pytest.raises(ModelExecutionError, match="out of this model's domain"):
        bad.result()
    await b.close()


def test_batches_go_on_the_loop_only_with_one_usable_cpu_on_cpu() -> None:
    auto = Settings()
    one, two = UsableCpus(affinity=1, quota=None), UsableCpus(affinity=2, quota=None)
    assert batches_on_loop(auto, CPU, one) == pytest.approx(0.020)
    assert batches_on_loop(auto, CPU, two) is None
    assert batches_on_loop(auto, CUDA, one) is None  # the GPU computes; the loop keeps reading
    # A container's quota counts, not the node's cores in its affinity.
    assert batches_on_loop(auto, CPU, UsableCpus(affinity=16, quota=1.0)) is not None
    assert batches_on_loop(auto, CPU, UsableCpus(affinity=16, quota=1.5)) is None
    assert batches_on_loop(Settings(batches_on_loop="off"), CPU, one) is None
    forced = Settings(batches_on_loop="on", loop_batch_max_ms=5)
    assert batches_on_loop(forced, CPU, two) == pytest.approx(0.005)


def test_the_cpu_quota_is_read_from_cgroup_v2_then_v1(tmp_path: Path) -> None:
    v2 = tmp_path / "cpu.max"
    v1 = tmp_path / "v1"
    v1.mkdir()
    assert usable_cpus(v2, v1).quota is None  # neither file: no quota
    (v1 / "cpu.cfs_quota_us").write_text("-1\n")
    (v1 / "cpu.cfs_period_us").write_text("100000\n")
    assert usable_cpus(v2, v1).quota is None  # v1's "no limit"
    (v1 / "cpu.cfs_quota_us").write_text("250000\n")
    assert usable_cpus(v2, v1).quota == 2.5
    v2.write_text("max 100000\n")
    assert usable_cpus(v2, v1).quota == 2.5  # v2 without a limit: v1 still read
    v2.write_text("50000 100000\n")
    cpus = usable_cpus(v2, v1)
    assert cpus.quota == 0.5
    assert cpus.count == 1  # half a CPU still runs one thread
    assert UsableCpus(affinity=4, quota=2.5).count == 3
    assert UsableCpus(affinity=2, quota=8.0).count == 2


def test_a_server_pinned_to_one_core_computes_on_its_loop_and_answers_every_client(
    tmp_path: Path,
) -> None:
    store = tmp_path / "store"
    config = ModelConfig(batching=BatchingConfig(max_batch_size=8, max_queue_delay_ms=0))
    publish(store, "add", models.add_model(tmp_path), config=config)
    launch = service_launch({"INDUCTIVE_STORE": str(store), "INDUCTIVE_LOG_LEVEL": "info"})
    log_path = tmp_path / "server.log"
    with serve(launch, core=0, log_path=log_path, ready_timeout_s=60) as server:

        def ask(i: int) -> None:
            """Every fourth client speaks gRPC, whose batches keep to the worker thread."""
            grpc = i % 4 == 0
            client = grpc_clients.client(server) if grpc else grpc_clients.http_client(server)
            rng = np.random.default_rng(i)
            try:
                for _ in range(25):
                    x, y = (rng.standard_normal((1 + i % 3, 4)).astype(np.float32) for _ in "xy")
                    arrays = {"x": x, "y": y}
                    tensors = (
                        grpc_clients.inputs(arrays) if grpc else grpc_clients.http_inputs(arrays)
                    )
                    got = client.infer("add", tensors).as_numpy("sum")
                    np.testing.assert_allclose(got, models.add_reference(x, y), rtol=1e-6)
            finally:
                client.close()

        with ThreadPoolExecutor(16) as clients:
            list(clients.map(ask, range(16)))
        stats = httpclient.InferenceServerClient(server.url.removeprefix("http://"))
        try:
            model = stats.get_inference_statistics("add")["model_stats"][0]
        finally:
            stats.close()
    log = log_path.read_text()
    assert "compute on the event loop" in log
    assert "one usable CPU: affinity 1 CPU" in log
    assert model["inference_stats"]["success"]["count"] == 16 * 25
    # Requests that arrived together shared batches on the loop.
    assert model["execution_count"] < 16 * 25
