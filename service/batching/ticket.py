"""A queued request's claim on its answer: the part of an asyncio future the batcher needs.

An `asyncio.Future` runs its done-callbacks through `loop.call_soon`, so an answer set when a
batch comes back reaches its connection one event-loop iteration later (an epoll round trip, and
a handle per request). A ticket calls them at once, in the batcher's completion callback, which
already runs on the event loop. A coroutine can still `await` one: it then gets a real future,
resolved from the ticket, and cancelling that coroutine cancels the ticket, as awaiting a future
would.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Generator
from functools import partial
from typing import Any, Generic, TypeVar

from service.batching.run import BatchRun

log = logging.getLogger(__name__)

T = TypeVar("T")
_PENDING, _DONE, _CANCELLED = "pending", "done", "cancelled"


class Ticket(Generic[T]):
    """Resolved once, by `set_result`, `set_exception` or `cancel`; event-loop thread only."""

    __slots__ = ("_callbacks", "_error", "_result", "_state", "run")

    def __init__(self) -> None:
        self._state = _PENDING
        self.run: BatchRun | None = None  # the batch that answered it (set by the batcher)
        self._result: T | None = None
        self._error: BaseException | None = None
        self._callbacks: list[Callable[[Ticket[T]], None]] = []

    def done(self) -> bool:
        return self._state is not _PENDING

    def cancelled(self) -> bool:
        return self._state is _CANCELLED

    def result(self) -> T:
        if self._state is _CANCELLED:
            raise asyncio.CancelledError
        if self._state is _PENDING:
            raise asyncio.InvalidStateError("the ticket has no answer yet")
        if self._error is not None:
            raise self._error
        return self._result  # type: ignore[return-value]

    def set_result(self, result: T) -> None:
        self._resolve(_DONE, result, None)

    def set_exception(self, error: BaseException) -> None:
        self._resolve(_DONE, None, error)

    def cancel(self) -> bool:
        """Gives up on the answer (the client went away); False when it is already resolved."""
        if self._state is not _PENDING:
            return False
        self._resolve(_CANCELLED, None, None)
        return True

    def add_done_callback(self, callback: Callable[[Ticket[T]], None]) -> None:
        """`callback(ticket)` when it resolves; at once if it has."""
        if self._state is _PENDING:
            self._callbacks.append(callback)
        else:
            callback(self)

    def _resolve(self, state: str, result: T | None, error: BaseException | None) -> None:
        if self._state is not _PENDING:
            raise asyncio.InvalidStateError(f"the ticket is already {self._state}")
        self._state, self._result, self._error = state, result, error
        callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            try:
                callback(self)
            except Exception:  # one waiter's fault must not keep the answer from the others
                log.exception("a callback of a ticket failed")

    def __await__(self) -> Generator[Any, None, T]:
        if self._state is _PENDING:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self.add_done_callback(partial(_wake, waiter))
            try:
                yield from waiter.__await__()
            except asyncio.CancelledError:
                self.cancel()  # the awaiting task was cancelled: the answer has no taker
                raise
        return self.result()


def _wake(waiter: asyncio.Future[None], _: Ticket[Any]) -> None:
    if not waiter.done():  # not when the awaiting task was cancelled
        waiter.set_result(None)
