"""The pool of threads every batcher computes in (service/batching/worker.py): bounded by its
size however many model versions are served, one busy model on one thread, answers delivered on
the submitting loop, and on the real server at most INDUCTIVE_BATCH_THREADS threads computing."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import tritonclient.http as httpclient

from model_store.schema import BatchingConfig, ModelConfig
from service.batching.worker import WorkerPool
from tests.service import models
from tests.service.helpers import publish, running_server


def _thread_names() -> set[str]:
    return {t.name for t in threading.enumerate() if t.name.startswith("test-pool_")}


async def _run(pool: WorkerPool, jobs: list[object]) -> list[tuple[object, object]]:
    loop = asyncio.get_running_loop()
    answers: list[asyncio.Future[tuple[object, object]]] = []
    for job in jobs:
        future: asyncio.Future[tuple[object, object]] = loop.create_future()
        pool.submit(job, lambda out, err, f=future: f.set_result((out, err)))  # type: ignore[arg-type, misc]
        answers.append(future)
    return list(await asyncio.gather(*answers))


def test_jobs_one_after_another_use_one_thread() -> None:
    pool = WorkerPool(4, "test-pool")

    async def main() -> None:
        for i in range(20):  # one model's batches: each submitted once the last one answered
            assert await _run(pool, [lambda i=i: i * 2]) == [(i * 2, None)]

    asyncio.run(main())
    assert _thread_names() == {"test-pool_0"}
    pool.stop()
    assert _thread_names() == set()


def test_concurrent_jobs_grow_the_pool_to_its_size_and_no_further() -> None:
    pool = WorkerPool(3, "test-pool")
    release = threading.Event()
    running: list[str] = []

    def hold(i: int) -> int:
        running.append(threading.current_thread().name)
        release.wait(10)
        return i

    async def main() -> list[tuple[object, object]]:
        answers = asyncio.ensure_future(_run(pool, [lambda i=i: hold(i) for i in range(8)]))
        deadline = time.monotonic() + 10
        while len(running) < 3:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)
        assert len(running) == 3  # the other five wait for a thread, none is started for them
        release.set()
        return await answers

    assert asyncio.run(main()) == [(i, None) for i in range(8)]
    assert len(_thread_names()) == 3
    pool.stop()


def test_an_exception_reaches_the_loop_and_the_thread_goes_on() -> None:
    pool = WorkerPool(1, "test-pool")

    def fail() -> None:
        raise ValueError("bad batch")

    async def main() -> None:
        (out, err), (after, none) = await _run(pool, [fail, lambda: "next"])
        assert out is None
        assert isinstance(err, ValueError)
        assert str(err) == "bad batch"
        assert (after, none) == ("next", None)

    asyncio.run(main())
    pool.stop()


def test_a_pool_needs_a_thread() -> None:
    with pytest.raises(ValueError, match="at least one thread"):
        WorkerPool(0, "test-pool")


def _niced_threads(pid: int) -> int:
    """Threads of `pid` running at a nice value above 0: the pool's (INDUCTIVE_WORKER_NICE, 5 by
    default; Python 3.11 gives threads no OS-visible names to count them by)."""
    count = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # the thread ended meanwhile
            continue
        count += int(fields[16]) > 0  # field 19 of stat, counted after the comm
    return count


def test_the_server_computes_many_models_on_its_pool(tmp_path: Path) -> None:
    """Six slow models, each asked at once: all answer correctly, and no more than
    INDUCTIVE_BATCH_THREADS threads ever compute (a thread per version before)."""
    store = tmp_path / "store"
    config = ModelConfig(batching=BatchingConfig(max_batch_size=8, max_queue_delay_ms=0))
    path = models.slow_model(tmp_path, width=512, depth=128)
    names = [f"slow{i}" for i in range(6)]
    for name in names:
        publish(store, name, path, config=config)
    x = np.random.default_rng(0).standard_normal((8, 512)).astype(np.float32)
    with running_server(store, tmp_path, {"INDUCTIVE_BATCH_THREADS": "2"}) as server:

        def ask(name: str) -> np.ndarray:
            # A client per call: tritonclient.http's (gevent) cannot be shared between threads.
            client = httpclient.InferenceServerClient(
                server.url.removeprefix("http://"), network_timeout=120
            )
            tensor = httpclient.InferInput("x", list(x.shape), "FP32")
            tensor.set_data_from_numpy(x, binary_data=True)
            try:
                return client.infer(name, [tensor]).as_numpy("y")
            finally:
                client.close()

        with ThreadPoolExecutor(12) as clients:
            answers = list(clients.map(ask, names * 2))
        first = answers[0]
        assert all(np.array_equal(a, first) for a in answers)  # one model six times over
        # Pool threads stay once started: two, though six versions computed at once.
        assert _niced_threads(server.pid) == 2
