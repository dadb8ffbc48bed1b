"""The in-process event log (the default; one replica)."""

from __future__ import annotations

import asyncio
import weakref
from collections import OrderedDict

from llms.streams.log import TERMINAL, Event, StreamGone

HARD_CAP_FACTOR = 4


class FinishedBudget:
    """The bytes the finished logs of this process hold, together (`state.finished_streams_mb`).

    A finished log stays replayable for `state.stream_ttl_s`; past `max_bytes` the oldest
    finished logs are evicted first (never the newest one): their events go, and a reader asking
    for any of them gets a 410, never a silently short answer. A log that expires or is
    collected leaves the budget.
    """

    __slots__ = ("_logs", "max_bytes", "size")

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.size = 0
        # Oldest first; weak: the stream registry decides how long a log lives, not the budget.
        self._logs: OrderedDict[weakref.ref[MemoryLog], int] = OrderedDict()

    def __len__(self) -> int:
        return len(self._logs)

    def add(self, log: MemoryLog, size: int) -> None:
        """`log` finished holding `size` bytes; evict the oldest while over the budget."""
        self._logs[weakref.ref(log, self._collected)] = size
        self.size += size
        # The newest stays, so readers following it to its end just now are not cut short.
        while self.size > self.max_bytes and len(self._logs) > 1:
            oldest, held = self._logs.popitem(last=False)
            self.size -= held
            evicted = oldest()
            if evicted is not None:
                evicted.evict()

    def _collected(self, ref: weakref.ref[MemoryLog]) -> None:
        # The ref was hashed while its log lived: a dead ref still finds its own entry.
        self.size -= self._logs.pop(ref, 0)


class MemoryLog:
    """Events in a list; readers wait on one future.

    Past `max_bytes` the oldest events go, but not before every attached reader has read them,
    unless the log grows past `HARD_CAP_FACTOR * max_bytes`: a reader that slow loses them (410).
    """

    __slots__ = (
        "__weakref__",
        "_budget",
        "_changed",
        "_cursors",
        "_events",
        "_first",
        "_loop",
        "_max_bytes",
        "_size",
        "evicted",
        "finished",
    )

    def __init__(self, max_bytes: int, budget: FinishedBudget | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        self._events: list[Event] = []
        self._first = 1  # the seq of _events[0]
        self._size = 0
        self._max_bytes = max_bytes
        self._changed: asyncio.Future[None] | None = None
        self._cursors: dict[object, int] = {}
        self._budget = budget
        self.finished = False
        self.evicted = False  # finished, then emptied by the budget

    @property
    def last_seq(self) -> int:
        return self._first + len(self._events) - 1

    async def append(self, events: list[tuple[str, bytes]]) -> None:
        if self.finished:
            return
        seq = self.last_seq
        for kind, data in events:
            seq += 1
            event = Event.of(seq, kind, data)
            self._events.append(event)
            self._size += len(event.wire)
            if kind in TERMINAL:
                self.finished = True
                break
        self._trim()
        if self.finished and self._budget is not None:
            self._budget.add(self, self._size)
        changed = self._changed
        if changed is not None:
            self._changed = None
            changed.set_result(None)

    def _trim(self) -> None:
        if self._size <= self._max_bytes:
            return
        read_by_all = min(self._cursors.values(), default=self.last_seq)
        hard_cap = self._max_bytes * HARD_CAP_FACTOR
        drop = 0
        # The newest event always stays, so a stream can always be followed from its end.
        while self._size > self._max_bytes and drop < len(self._events) - 1:
            event = self._events[drop]
            if event.seq > read_by_all and self._size <= hard_cap:
                break
            self._size -= len(event.wire)
            drop += 1
        if drop:
            del self._events[:drop]
            self._first += drop

    def evict(self) -> None:
        """Drop every event of this finished log (the budget of finished logs is spent)."""
        self._first = self.last_seq + 1
        self._events = []
        self._size = 0
        self.evicted = True

    async def read(self, after: int, *, wait: bool = True, cursor: object = None) -> list[Event]:
        if cursor is not None:
            self._cursors[cursor] = after
        while True:
            if self.evicted and after < self._first - 1:
                raise StreamGone(
                    "The stream ended and its events were dropped to bound the gateway's memory "
                    "(newer finished streams took their place); it can no longer be replayed.",
                    param="Last-Event-ID",
                    code="stream_evicted",
                )
            if after < self._first - 1:
                raise StreamGone(
                    f"The events after {after} were dropped to bound memory; the stream can only "
                    f"be resumed from event {self._first - 1} on.",
                    param="Last-Event-ID",
                )
            start = after - self._first + 1
            if start < len(self._events):
                return self._events[start:]
            if self.finished or not wait:
                return []
            if self._changed is None:
                self._changed = self._loop.create_future()
            await asyncio.shield(self._changed)

    def forget(self, cursor: object) -> None:
        """A reader left: its position no longer holds events back."""
        self._cursors.pop(cursor, None)
