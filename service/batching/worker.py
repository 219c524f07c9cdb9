"""The thread a batcher computes its batches in, handed work with as little machinery as possible.

`loop.run_in_executor` costs, per batch, a `concurrent.futures.Future` (a Condition and its
locks), the executor's work queue and semaphore, and an asyncio future chained to it through two
callbacks, and the coroutine awaiting it resumes one loop iteration after the result lands. Here
a batch is one `SimpleQueue.put` (C) to a thread that runs it and one `call_soon_threadsafe` that
calls the caller's completion callback on its loop: the handoff that every batch pays, and at
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
# Called on the event loop with the job's result, or with None and the exception it raised.
Done = Callable[[T | None, BaseException | None], None]
_Job = tuple[Callable[[], Any], Callable[[Any, BaseException | None], None]]


class Worker:
    """One thread running jobs in order for the event loop it was created on."""

    def __init__(self, name: str, on_start: Callable[[], None] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        self._jobs: SimpleQueue[_Job | None] = SimpleQueue()
        self._on_start = on_start
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    def submit(self, job: Callable[[], T], done: Done[T]) -> None:
        """Queues `job`; `done` is called on the loop when it has run."""
        self._jobs.put((job, done))

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
                error: BaseException | None = None
            except BaseException as exc:  # handed to the loop, like an executor would
                outcome, error = None, exc
            try:
                self._loop.call_soon_threadsafe(done, outcome, error)
            except RuntimeError:  # the loop closed meanwhile: nobody is waiting any more
                log.debug("a job finished after its event loop closed")
