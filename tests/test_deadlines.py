"""llms/deadlines.py: many deadlines on one loop timer; order, cancelling, re-arming, compaction.

Real event loops; no timing is asserted, only the order entries come due in and which do.
"""

from __future__ import annotations

import asyncio
import logging
import weakref

import pytest

from llms import deadlines as module
from llms.deadlines import Deadlines, Entry, deadlines


class Owner:
    """A Timed owner recording when it came due; `then` runs inside `due`."""

    def __init__(self, name: str, seen: list[str], then: object = None) -> None:
        self.deadline: Entry | None = None
        self.name = name
        self.seen = seen
        self.then = then

    def due(self) -> None:
        self.seen.append(self.name)
        if callable(self.then):
            self.then()


async def _until(seen: list[str], count: int) -> None:
    while len(seen) < count:
        await asyncio.sleep(0.005)


async def test_entries_come_due_in_order_and_cancelled_ones_never() -> None:
    clock = deadlines()
    now = clock.loop.time()
    seen: list[str] = []
    owners = {name: Owner(name, seen) for name in "abcd"}
    clock.at(now + 0.06, owners["c"])
    clock.at(now + 0.02, owners["a"])  # earlier than the armed timer: re-armed for it
    clock.at(now + 0.04, owners["b"])
    clock.at(now + 0.03, owners["d"])
    clock.cancel(owners["d"])
    assert owners["d"].deadline is None and len(clock) == 3
    await _until(seen, 3)
    await asyncio.sleep(0.05)
    assert seen == ["a", "b", "c"]
    assert all(owner.deadline is None for owner in owners.values())
    assert len(clock) == 0


async def test_a_new_entry_replaces_the_owners_previous_one() -> None:
    clock = deadlines()
    now = clock.loop.time()
    seen: list[str] = []
    owner = Owner("x", seen)
    clock.at(now + 0.01, owner)
    clock.at(now + 0.05, owner)  # later: the earlier entry is stale and does not fire
    marker = Owner("marker", seen)
    clock.at(now + 0.03, marker)
    await _until(seen, 2)
    assert seen == ["marker", "x"]


async def test_an_owner_rearming_in_due_keeps_earlier_entries_on_time() -> None:
    """An owner that takes a later entry from `due` must not delay one due before it."""
    clock = deadlines()
    now = clock.loop.time()
    seen: list[str] = []
    late = Owner("late", seen)
    early = Owner("early", seen)
    first = Owner("first", seen, then=lambda: clock.at(now + 3600, late))
    clock.at(now + 0.01, first)
    clock.at(now + 0.05, early)
    async with asyncio.timeout(30):  # not an hour: the timer is armed for `early` again
        await _until(seen, 2)
    assert seen == ["first", "early"] and late.deadline is not None
    clock.cancel(late)


async def test_a_failing_owner_is_logged_and_the_others_still_come_due(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = deadlines()
    now = clock.loop.time()
    seen: list[str] = []

    def boom() -> None:
        raise RuntimeError("owner bug")

    clock.at(now + 0.01, Owner("bad", seen, then=boom))
    clock.at(now + 0.01, Owner("good", seen))
    clock.at(now + 0.03, Owner("later", seen))
    with caplog.at_level(logging.ERROR, logger="llms.deadlines"):
        await _until(seen, 3)
    assert seen == ["bad", "good", "later"]
    assert "a deadline's owner failed" in caplog.text


async def test_cancelled_entries_are_compacted_away() -> None:
    """Streams that end long before their deadline do not pile up in the heap."""
    clock = Deadlines(asyncio.get_running_loop())
    far = clock.loop.time() + 3600
    seen: list[str] = []
    owners = [Owner(str(i), seen) for i in range(module._COMPACT_AT * 4)]
    for owner in owners:
        clock.at(far, owner)
    for owner in owners:
        clock.cancel(owner)
    assert len(clock) == 0
    assert len(clock._heap) <= module._COMPACT_AT + 1
    keep = Owner("kept", seen)
    clock.at(clock.loop.time() + 0.01, keep)
    await _until(seen, 1)
    assert seen == ["kept"]


async def test_each_loop_has_its_own() -> None:
    mine = deadlines()
    assert deadlines() is mine and mine.loop is asyncio.get_running_loop()

    def other() -> Deadlines:
        async def get() -> Deadlines:
            return deadlines()

        return asyncio.run(get())

    theirs = await asyncio.to_thread(other)
    assert theirs is not mine and theirs.loop is not mine.loop


async def test_a_cancelled_entry_lets_go_of_its_owner() -> None:
    """A stream that ended is not kept alive by its deadline's entry until that comes due."""
    clock = deadlines()
    owner = Owner("gone", [])
    gone = weakref.ref(owner)
    clock.at(clock.loop.time() + 3600, owner)
    clock.cancel(owner)
    del owner
    assert gone() is None
