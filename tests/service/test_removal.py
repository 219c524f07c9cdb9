"""The removal grace period on its own (a fake clock); the server test is in test_lifecycle.py."""

from __future__ import annotations

from service.lifecycle.removal import RemovalWatch


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_model_is_due_only_after_staying_gone_for_the_grace() -> None:
    clock = FakeClock()
    watch = RemovalWatch(10.0, clock)
    assert watch.update({"a", "b"}, {"a", "b"}) == []
    assert watch.update({"a"}, {"a", "b"}) == []  # b gone: the clock starts
    clock.now = 9.9
    assert watch.update({"a"}, {"a", "b"}) == []
    assert watch.missing_for("b") == 9.9
    clock.now = 10.0
    assert watch.update({"a"}, {"a", "b"}) == ["b"]
    watch.forget("b")
    assert watch.missing_for("b") is None


def test_a_model_listed_again_or_unloaded_meanwhile_is_forgotten() -> None:
    clock = FakeClock()
    watch = RemovalWatch(5.0, clock)
    watch.update(set(), {"a", "b"})
    clock.now = 4.0
    assert watch.update({"a"}, {"a", "b"}) == []  # a is back
    clock.now = 6.0
    assert watch.update(set(), {"a"}) == []  # b unloaded by other means; a's clock restarts
    assert watch.missing_for("b") is None
    assert watch.missing_for("a") == 0.0
    clock.now = 11.0
    assert watch.update(set(), {"a"}) == ["a"]


def test_zero_grace_removes_at_the_first_listing_without_it() -> None:
    assert RemovalWatch(0.0, FakeClock()).update({"a"}, {"a", "b"}) == ["b"]


def test_polls_keep_listing_while_a_grace_runs() -> None:
    """The change marker cannot end a grace: a deletion by hand writes no marker, so the
    manager lists the store at every poll while any model's clock is running."""
    watch = RemovalWatch(5.0, FakeClock())
    assert not watch.counting
    watch.update([], ["a"])
    assert watch.counting
    watch.update(["a"], ["a"])
    assert not watch.counting
