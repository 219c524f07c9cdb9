"""The batcher's ticket: callbacks at once, awaitable, cancellation both ways."""

from __future__ import annotations

import asyncio

import pytest

from service.batching.ticket import Ticket


def test_callbacks_run_when_it_resolves_and_at_once_after() -> None:
    ticket: Ticket[int] = Ticket()
    seen: list[int] = []
    ticket.add_done_callback(lambda t: seen.append(t.result()))
    assert not ticket.done()
    assert seen == []
    ticket.set_result(7)
    assert seen == [7]  # in the same call, not a loop iteration later
    ticket.add_done_callback(lambda t: seen.append(t.result() + 1))
    assert seen == [7, 8]


def test_it_resolves_once() -> None:
    ticket: Ticket[int] = Ticket()
    ticket.set_exception(ValueError("bad"))
    with pytest.raises(ValueError, match="bad"):
        ticket.result()
    with pytest.raises(asyncio.InvalidStateError):
        ticket.set_result(1)
    assert not ticket.cancel()
    assert not ticket.cancelled()


def test_a_failing_callback_does_not_starve_the_others(caplog: pytest.LogCaptureFixture) -> None:
    ticket: Ticket[int] = Ticket()
    seen: list[int] = []
    ticket.add_done_callback(lambda t: 1 / 0)  # type: ignore[arg-type]
    ticket.add_done_callback(lambda t: seen.append(t.result()))
    ticket.set_result(3)
    assert seen == [3]
    assert "a callback of a ticket failed" in caplog.text


def test_result_before_an_answer_and_after_cancel() -> None:
    ticket: Ticket[int] = Ticket()
    with pytest.raises(asyncio.InvalidStateError):
        ticket.result()
    assert ticket.cancel()
    assert ticket.cancelled()
    assert ticket.done()
    with pytest.raises(asyncio.CancelledError):
        ticket.result()


def test_awaiting_gets_the_answer_or_the_error() -> None:
    async def main() -> None:
        ok: Ticket[int] = Ticket()
        failed: Ticket[int] = Ticket()
        asyncio.get_running_loop().call_later(0.01, ok.set_result, 5)
        asyncio.get_running_loop().call_later(0.01, failed.set_exception, KeyError("k"))
        assert await ok == 5
        with pytest.raises(KeyError):
            await failed
        done: Ticket[int] = Ticket()
        done.set_result(6)
        assert await done == 6

    asyncio.run(main())


def test_cancelling_the_ticket_cancels_its_awaiter_and_the_reverse() -> None:
    async def main() -> None:
        dropped: Ticket[int] = Ticket()
        waiting = asyncio.ensure_future(_await(dropped))
        await asyncio.sleep(0.01)
        dropped.cancel()  # the client went away
        with pytest.raises(asyncio.CancelledError):
            await waiting

        abandoned: Ticket[int] = Ticket()
        task = asyncio.ensure_future(_await(abandoned))
        await asyncio.sleep(0.01)
        task.cancel()  # the awaiting task is cancelled: nobody takes the answer any more
        with pytest.raises(asyncio.CancelledError):
            await task
        assert abandoned.cancelled()

    asyncio.run(main())


async def _await(ticket: Ticket[int]) -> int:
    return await ticket
