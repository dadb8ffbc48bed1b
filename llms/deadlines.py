"""Deadlines of many open streams on one timer per event loop.

Each open stream waits on two deadlines: its keep-alive (llms/server/relay.py `ClientStream`)
and its upstream's (llms/upstream.py `Watchdog`: first token, idle, total). A loop timer each
(`loop.call_at`) cost an idle stream ~1 KiB of heap under uvloop (the handle, its libuv timer,
the bound callback); an entry in this heap costs ~60 B, and the loop holds one timer for all of
them, armed at the earliest. Owners re-arm lazily as before: a deadline that moves later is one
attribute store, and when the entry comes due its owner decides (`due`) whether it really is,
or takes a new entry.

A cancelled or replaced entry lets go of its owner at once but stays in the heap (48 B) until it
comes due or the heap is compacted (when more than half of it is stale): cancelling is O(1).
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import threading
from typing import Protocol

log = logging.getLogger("llms.deadlines")

_COMPACT_AT = 256


class Timed(Protocol):
    """An owner of at most one live entry (`deadline`), told when it comes due."""

    deadline: Entry | None

    def due(self) -> None:
        """The entry came due (`deadline` is None again); never raises."""


class Entry:
    """One deadline in the heap; a cancelled one no longer holds its owner."""

    __slots__ = ("owner", "when")

    def __init__(self, when: float, owner: Timed) -> None:
        self.when = when
        self.owner: Timed | None = owner

    def __lt__(self, other: Entry) -> bool:
        return self.when < other.when


class Deadlines:
    """The entries of one event loop, and its one timer."""

    __slots__ = ("_armed", "_handle", "_heap", "_stale", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._heap: list[Entry] = []
        self._handle: asyncio.TimerHandle | None = None
        self._armed = 0.0
        self._stale = 0

    def at(self, when: float, owner: Timed) -> None:
        """`owner.due()` at `when` (loop time); its previous entry, if any, is cancelled."""
        if owner.deadline is not None:
            self.cancel(owner)
        entry = Entry(when, owner)
        owner.deadline = entry
        heapq.heappush(self._heap, entry)
        if self._handle is None or when < self._armed:
            self._arm(when)

    def cancel(self, owner: Timed) -> None:
        """Forget `owner`'s entry (a no-op without one)."""
        entry = owner.deadline
        if entry is None:
            return
        owner.deadline = None
        entry.owner = None  # what a finished stream held is not kept until its deadline
        self._stale += 1
        heap = self._heap
        if self._stale > _COMPACT_AT and self._stale * 2 > len(heap):
            heap[:] = [entry for entry in heap if entry.owner is not None]
            heapq.heapify(heap)
            self._stale = 0

    def __len__(self) -> int:
        """Live entries."""
        return len(self._heap) - self._stale

    def _arm(self, when: float) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._armed = when
        self._handle = self.loop.call_at(when, self._fire)

    def _fire(self) -> None:
        self._handle = None
        heap = self._heap
        now = self.loop.time()
        try:
            while heap and heap[0].when <= now:
                entry = heapq.heappop(heap)
                owner = entry.owner
                if owner is None:
                    self._stale -= 1
                    continue
                entry.owner = owner.deadline = None
                try:
                    owner.due()
                except Exception:
                    log.exception("a deadline's owner failed")
        finally:
            # An owner that took a new entry armed the timer for it; an earlier one may wait.
            if heap and (self._handle is None or heap[0].when < self._armed):
                self._arm(heap[0].when)


_local = threading.local()


def deadlines() -> Deadlines:
    """The running loop's deadlines (made on first use)."""
    loop = asyncio.get_running_loop()
    current: Deadlines | None = getattr(_local, "deadlines", None)
    if current is None or current.loop is not loop:
        current = _local.deadlines = Deadlines(loop)
    return current
