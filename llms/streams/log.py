"""The event log of one stream: what every reader replays, in order, by sequence number.

Events carry their wire bytes, ready to write in resumable mode (`id: <seq>` included), so a
replay costs no re-encoding. Kinds: `chunk`, `status`, `error` (an in-stream error event),
`done` (the `[DONE]` event, terminal) and `fail` (the stream failed before any output: the
payload is the HTTP status, headers and error body a reader should answer with; terminal).

A background response (the Responses API) logs its own events: the kind is the event's type
(`response.output_text.delta`…), written as `event: <type>` + `data:` with no `id:` (its
`sequence_number` is the position: event N of the log is sequence number N - 1). It ends with
`response.completed`, `.incomplete` or `.failed`, or, cancelled, with `end`, which writes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from llms.errors import GatewayError

TERMINAL = frozenset(
    ("done", "fail", "response.completed", "response.incomplete", "response.failed", "end")
)


@dataclass(frozen=True, slots=True)
class Event:
    """One event; `wire` is its resumable-mode SSE bytes, built once."""

    seq: int
    kind: str
    wire: bytes

    @classmethod
    def of(cls, seq: int, kind: str, data: bytes) -> Event:
        # A new exact-size object: orjson's own output pins a 4 KiB buffer, too much to keep
        # for every event of every stream for its whole TTL.
        if kind == "status":
            return cls(seq, kind, b"id: %d\nevent: status\ndata: %b\n\n" % (seq, data))
        if kind.startswith("response."):
            return cls(seq, kind, b"event: %b\ndata: %b\n\n" % (kind.encode(), data))
        if kind == "end":
            return cls(seq, kind, b"")
        return cls(seq, kind, b"id: %d\ndata: %b\n\n" % (seq, data))

    @property
    def data(self) -> bytes:
        """The SSE `data:` payload (one line of JSON, or b"[DONE]")."""
        start = self.wire.index(b"data: ") + 6
        return self.wire[start:-2]

    def to_wire(self) -> bytes:
        return self.wire


class StreamGone(GatewayError):
    """The events a reader asked for were dropped (byte cap): resuming would skip some."""

    status = 410
    type = "invalid_request_error"
    default_code = "stream_events_expired"


class EventLog(Protocol):
    """Append-only, replayable, followable."""

    async def append(self, events: list[tuple[str, bytes]]) -> None:
        """Append events in order; the log assigns their sequence numbers."""
        ...

    async def read(self, after: int, *, wait: bool = True, cursor: object = None) -> list[Event]:
        """Events with `seq > after`; waits for at least one unless the log is finished.

        Raises StreamGone if some of them were dropped. Returns [] only when finished.
        `cursor` names a reader whose position holds old events back from trimming.
        """
        ...

    def forget(self, cursor: object) -> None:
        """The reader `cursor` left."""
        ...

    @property
    def finished(self) -> bool: ...
