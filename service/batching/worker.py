"""The thread a batcher computes its batches in, handed work with as little machinery as possible.

`loop.run_in_executor` costs, per batch, a `concurrent.futures.Future` (a Condition and its
locks), the executor's work queue and semaphore, and an asyncio future chained to it through two
callbacks. Here a batch is one `SimpleQueue.put` (C) to a thread that runs it and one
`call_soon_threadsafe` to resolve the loop's future: the handoff that every batch pays, and at
concurrency 1 every request.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from queue import SimpleQueue
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
_Job = tuple[Callable[[], Any], asyncio.Future[Any]]


class Worker:
    """One thread running jobs in order; `run` is called from the event loop."""

    def __init__(self, name: str, on_start: Callable[[], None] | None = None) -> None:
        self._jobs: SimpleQueue[_Job | None] = SimpleQueue()
        self._on_start = on_start
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    def run(self, job: Callable[[], T]) -> asyncio.Future[T]:
        """Queues `job`; the future resolves on the calling loop with its result or exception."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[T] = loop.create_future()
        self._jobs.put((job, done))
        return done

    def stop(self) -> None:
        """Lets queued jobs finish, then ends the thread."""
        self._jobs.put(None)
        self._thread.join()

    def _serve(self) -> None:
        if self._on_start is not None:
            self._on_start()
        while (item := self._jobs.get()) is not None:
            job, done = item
            try:
                outcome: Any = job()
                failed = False
            except BaseException as exc:  # handed to the awaiting coroutine, like an executor
                outcome, failed = exc, True
            try:
                done.get_loop().call_soon_threadsafe(_resolve, done, outcome, failed)
            except RuntimeError:  # the loop closed meanwhile: nobody is waiting any more
                log.debug("a job finished after its event loop closed")


def _resolve(done: asyncio.Future[Any], outcome: Any, failed: bool) -> None:
    if done.cancelled():
        return
    if failed:
        done.set_exception(outcome)
    else:
        done.set_result(outcome)
