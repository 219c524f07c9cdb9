"""The threads batches compute in, handed work with as little machinery as possible.

`loop.run_in_executor` costs, per batch, a `concurrent.futures.Future` (a Condition and its
locks), the executor's work queue and semaphore, and an asyncio future chained to it through two
callbacks, and the coroutine awaiting it resumes one loop iteration after the result lands. Here
a batch is one `SimpleQueue.put` (C) to a thread that runs it and one `call_soon_threadsafe` that
calls the caller's completion callback on its loop: the handoff that every batch pays, and at
concurrency 1 every request.

One pool serves every batcher of the server rather than a thread per model version: a thread's
first large batch leaves memory resident that batches on other threads do not reuse (about 15 MB
for the demo cnn at batch 64, whatever glibc's arena count), paid once per thread, so with a
thread per version it grew with the number of models served (benchmarks/results/model-memory/).
A batcher keeps at most one batch in flight, so a model never computes on two threads at once,
and the FIFO queue takes the busy models' batches in turn.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Callable
from queue import SimpleQueue
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
# Called on the event loop with the job's result, or with None and the exception it raised.
Done = Callable[[T | None, BaseException | None], None]
_Job = tuple[Callable[[], Any], Done[Any], asyncio.AbstractEventLoop]


class WorkerPool:
    """`size` threads running jobs in the order they were submitted, each job's completion
    called back on the event loop that submitted it. A thread starts when a job finds every
    existing one busy."""

    def __init__(self, size: int, name: str, on_start: Callable[[], None] | None = None) -> None:
        if size < 1:
            raise ValueError(f"a worker pool needs at least one thread, not {size}")
        self.size = size
        self._name = name
        self._on_start = on_start
        self._jobs: SimpleQueue[_Job | None] = SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._unfinished = 0  # jobs queued or running, under _lock

    def submit(self, job: Callable[[], T], done: Done[T]) -> None:
        """Queues `job`; `done` is called on the caller's loop when it has run."""
        with self._lock:
            self._unfinished += 1
            # A thread more only when every thread has a job: one busy model uses one thread.
            grow = len(self._threads) < min(self._unfinished, self.size)
            if grow:
                thread = threading.Thread(
                    target=self._serve, name=f"{self._name}_{len(self._threads)}", daemon=True
                )
                self._threads.append(thread)
        if grow:
            thread.start()
        self._jobs.put((job, done, asyncio.get_running_loop()))

    def stop(self, wait: bool = True) -> None:
        """Lets queued jobs finish, then ends the threads; `wait=False` does not wait for them
        (they are daemons: a server shutting down does not block its loop on a batch)."""
        with self._lock:
            threads, self._threads = self._threads, []
        for _ in threads:
            self._jobs.put(None)
        for thread in threads if wait else ():
            thread.join()

    def _serve(self) -> None:
        if self._on_start is not None:
            self._on_start()
        while (item := self._jobs.get()) is not None:
            job, done, loop = item
            try:
                outcome: Any = job()
                error: BaseException | None = None
            except BaseException as exc:  # handed to the loop, like an executor would
                outcome, error = None, exc
            with self._lock:
                self._unfinished -= 1
            try:
                loop.call_soon_threadsafe(done, outcome, error)
            except RuntimeError:  # the loop closed meanwhile: nobody is waiting any more
                log.debug("a job finished after its event loop closed")


def lower_priority(nice: int) -> None:
    """Run by each worker thread as it starts: on Linux a thread has its own nice value. When
    the event loop and a batch share a core, the loop then wins it as soon as a request
    arrives, so a refusal or a reply is not held up by the rest of the scheduler slice of a
    batch (≈ 4 ms)."""
    if nice <= 0 or not hasattr(os, "setpriority"):
        return
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
    except OSError as exc:
        log.warning("cannot lower the priority of a batch worker thread: %s", exc)
