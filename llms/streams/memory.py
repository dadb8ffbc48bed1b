"""The in-process event log (the default; one replica)."""

from __future__ import annotations

import asyncio

from llms.streams.log import TERMINAL, Event, StreamGone

HARD_CAP_FACTOR = 4


class MemoryLog:
    """Events in a list; readers wait on one future.

    Past `max_bytes` the oldest events go, but not before every attached reader has read them,
    unless the log grows past `HARD_CAP_FACTOR * max_bytes`: a reader that slow loses them (410).
    """

    __slots__ = (
        "_changed",
        "_cursors",
        "_events",
        "_first",
        "_loop",
        "_max_bytes",
        "_size",
        "finished",
    )

    def __init__(self, max_bytes: int) -> None:
        self._loop = asyncio.get_running_loop()
        self._events: list[Event] = []
        self._first = 1  # the seq of _events[0]
        self._size = 0
        self._max_bytes = max_bytes
        self._changed: asyncio.Future[None] | None = None
        self._cursors: dict[object, int] = {}
        self.finished = False

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

    async def read(self, after: int, *, wait: bool = True, cursor: object = None) -> list[Event]:
        if cursor is not None:
            self._cursors[cursor] = after
        while True:
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
