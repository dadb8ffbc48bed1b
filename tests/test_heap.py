"""llms/server/heap.py: what start-up made is out of the collector's sight, cycles made later are
still collected, and full collections are rarer."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from llms.server.heap import FULL_EVERY, settle


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
    assert gc.get_threshold()[2] == FULL_EVERY
    a, b = Node(), Node()
    a.other, b.other = b, a
    gone = weakref.ref(a)
    del a, b
    gc.collect()
    assert gone() is None  # a cycle made after start-up is not leaked
