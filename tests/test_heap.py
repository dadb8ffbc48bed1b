"""llms/server/heap.py: what start-up made is out of the collector's sight, cycles made later are
still collected, and collections are rarer."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from llms.server.heap import FULL_EVERY, MIDDLE_EVERY, YOUNG_EVERY, settle


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


@pytest.fixture(name="unfrozen")
def unfrozen_fixture() -> Iterator[None]:
    threshold = gc.get_threshold()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)


@pytest.mark.usefixtures("unfrozen")
def test_settle_freezes_what_exists_and_still_collects_later_cycles() -> None:
    before = Node()
    settle()
    assert gc.get_freeze_count() > 0
    assert not any(obj is before for obj in gc.get_objects())  # no collection walks it
    assert gc.get_threshold() == (YOUNG_EVERY, MIDDLE_EVERY, FULL_EVERY)
    a, b = Node(), Node()
    a.other, b.other = b, a
    gone = weakref.ref(a)
    del a, b
    gc.collect()
    assert gone() is None  # a cycle made after start-up is not leaked


@pytest.mark.usefixtures("unfrozen")
def test_a_later_cycle_is_collected_unasked_once_enough_objects_are_made() -> None:
    settle()
    a, b = Node(), Node()
    a.other, b.other = b, a
    gone = weakref.ref(a)
    del a, b
    kept: list[list[int]] = [[] for _ in range(YOUNG_EVERY // 2)]
    assert gone() is not None  # fewer than YOUNG_EVERY new objects: no collection yet
    kept += [[] for _ in range(YOUNG_EVERY)]
    assert gone() is None  # the young collection found it, nobody called gc.collect
    assert len(kept) == YOUNG_EVERY * 3 // 2
