"""The Responses API's side of the relay: a `StreamEncoder` over a `ResponseBuilder`, and a
folded chat completion as the one chunk a non-stream Response is built from.

Pure: the caller passes the clock (`now`) that stamps `completed_at`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from llms.api.responses import ResponseBuilder
from llms.api.responses_object import ResponseEvent
from llms.errors import GatewayError
from llms.wire import Chunk


def _wire(events: Iterable[ResponseEvent]) -> bytes:
    return b"".join([event.sse for event in events])


class ResponsesEncoder:
    """`event: response.*` frames for a stream: `response.created` and `response.in_progress`
    with the first output (or with the failure, when nothing came), then the builder's events,
    and exactly one terminal event: completed, incomplete or failed. No `[DONE]`: OpenAI sends
    none."""

    __slots__ = ("_now", "_started", "builder")

    def __init__(self, builder: ResponseBuilder, now: Callable[[], int]) -> None:
        self.builder = builder
        self._now = now
        self._started = False

    def _head(self) -> list[ResponseEvent]:
        if self._started:
            return []
        self._started = True
        return self.builder.start()

    def chunks(self, batch: list[Chunk]) -> bytes:
        if self._started:
            return self.builder.frames(batch)
        head = _wire(self._head())
        return head + self.builder.frames(batch)

    def done(self) -> bytes:
        return _wire(self._head() + self.builder.finish(completed_at=self._now()))

    def failed(self, error: GatewayError) -> bytes:
        return _wire(self._head() + self.builder.fail(error))


class ResponsesLog:
    """A background response's events for its stream log (streams/pump.py's `LogEncoder`):
    the kind of each is its type. `response.created` and `response.queued` open the log,
    `response.in_progress` comes with the first output; a cancel ends it with `end` (no event:
    neither OpenAI nor Open Responses has one for it)."""

    __slots__ = ("_now", "builder")

    def __init__(self, builder: ResponseBuilder, now: Callable[[], int]) -> None:
        self.builder = builder
        self._now = now

    def opening(self) -> list[tuple[str, bytes]]:
        return _items(self.builder.start(in_progress=False))

    def chunks(self, batch: list[Chunk]) -> tuple[list[tuple[str, bytes]], GatewayError | None]:
        builder = self.builder
        return _items(builder.in_progress() + builder.feed(batch)), builder.failure

    def status(self, status: dict[str, Any]) -> list[tuple[str, bytes]]:
        return []

    def done(self) -> list[tuple[str, bytes]]:
        return _items(self.builder.finish(completed_at=self._now()))

    def failed(self, error: GatewayError) -> list[tuple[str, bytes]]:
        return _items(self.builder.fail(error))

    def refused(self, error: GatewayError) -> list[tuple[str, bytes]]:
        return self.failed(error)

    def cancelled(self, reason: GatewayError) -> list[tuple[str, bytes]]:
        self.builder.cancel()
        return [("end", b"")]


def _items(events: Iterable[ResponseEvent]) -> list[tuple[str, bytes]]:
    return [(event.type, event.data) for event in events]
