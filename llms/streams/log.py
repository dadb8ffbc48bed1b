"""The event log of one stream: what every reader replays, in order, by sequence number.

Events carry their wire bytes, ready to write in resumable mode (`id: <seq>` included), so a
replay costs no re-encoding. Kinds: `chunk`, `status`, `error` (an in-stream error event),
`done` (the `[DONE]` event, terminal) and `fail` (the stream failed before any output: the
payload is the HTTP status, headers and error body a reader should answer with; terminal).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from llms.errors import GatewayError

TERMINAL = frozenset(("done", "fail"))


@dataclass(frozen=True, slots=True)
class Event:
    seq: int
    kind: str
    data: bytes  # the SSE `data:` payload (JSON, or b"[DONE]")

    def to_wire(self) -> bytes:
        """The event as resumable-mode SSE bytes."""
        if self.kind == "status":
            return b"id: %d\nevent: status\ndata: %b\n\n" % (self.seq, self.data)
        return b"id: %d\ndata: %b\n\n" % (self.seq, self.data)


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
