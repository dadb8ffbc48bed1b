"""The benchmark's own Server-Sent Events parser (WHATWG rules), strict about the wire contract.

It is written for the benchmark alone (not shared with the gateway) so that a framing bug in the
gateway cannot hide behind the same bug in its checker.
"""

from __future__ import annotations

from typing import NamedTuple

_SPEC_FIELDS = frozenset({b"data", b"event", b"id", b"retry"})
# A named tuple made without its generated `__new__` (a Python call per event).
_new_event = tuple.__new__
_STATUS = b"status"


class SSEEvent(NamedTuple):
    """One dispatched event: its data, and the ``id:``/``event:`` fields it carried (or None)."""

    data: bytes
    id: bytes | None = None
    event: bytes | None = None


class SSEParser:
    """Incremental SSE parser that also notes what the gateway's wire contract forbids.

    ``feed`` takes bytes as they arrive, split anywhere, and returns every event completed by
    them. Lines end in CR, LF or CRLF. ``problems`` lists contract breaks: a BOM, unknown fields,
    ``retry:``, and ``event:``/``id:`` in default mode. In resumable mode (``resumable=True``)
    every event may carry ``id:`` and status events may carry ``event: status``; any other event
    type is still a problem. With ``named=True`` (the Responses API: ``event: response.*``)
    every event may carry an ``event:`` field of any name.
    """

    def __init__(self, resumable: bool = False, *, named: bool = False) -> None:
        self._resumable = resumable
        self._named = named
        self._buf = b""
        self._data: list[bytes] = []
        self._id: bytes | None = None
        self._event: bytes | None = None
        self._pending_cr = False
        self._started = False
        self.comments = 0
        self.problems: list[str] = []

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Consume bytes; return every event they complete."""
        if self._pending_cr and chunk.startswith(b"\n"):
            # The CR that ended the previous read and this LF are one line ending.
            chunk = chunk[1:]
        self._pending_cr = False
        buf = self._buf + chunk
        if not self._started and buf:
            if len(buf) < 3 and b"\xef\xbb\xbf".startswith(buf):
                self._buf = buf
                return []
            self._started = True
            if buf.startswith(b"\xef\xbb\xbf"):
                self.problems.append("byte order mark at start of stream")
                buf = buf[3:]
        if b"\r" in buf:
            self._pending_cr = buf.endswith(b"\r")
            buf = buf.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        lines = buf.split(b"\n")
        self._buf = lines.pop()
        events: list[SSEEvent] = []
        # The lines of a well-formed stream are taken here (`data: `, `event: ` where any name
        # may come, the blank line that dispatches), every other one by `_line`: the load
        # generator's parsing was its largest cost, and it shares the machine's two cores
        # with the gateway it measures.
        data = self._data
        named = self._named
        for line in lines:
            if line.startswith(b"data: "):
                data.append(line[6:])
            elif not line:
                if data:
                    events.append(_new_event(SSEEvent, (b"\n".join(data), self._id, self._event)))
                    data = self._data = []
                self._id = self._event = None
            elif named and line.startswith(b"event: "):
                self._event = line[7:]
            else:
                self._line(line, events)
                data = self._data
        return events

    def _line(self, line: bytes, events: list[SSEEvent]) -> None:
        """Apply one line (without its ending) to the event being built."""
        if not line:
            if self._data:
                events.append(SSEEvent(b"\n".join(self._data), self._id, self._event))
                self._data = []
            self._id = self._event = None
            return
        if line.startswith(b":"):
            self.comments += 1
            return
        name, colon, value = line.partition(b":")
        if colon and value.startswith(b" "):
            value = value[1:]
        if name == b"data":
            self._data.append(value)
        elif self._resumable and name == b"id":
            self._id = value
        elif name == b"event" and (self._named or (self._resumable and value == _STATUS)):
            self._event = value
        elif name in _SPEC_FIELDS:
            self.problems.append(f"forbidden field {name.decode()!r}: {line[:80]!r}")
        else:
            self.problems.append(f"unknown field: {line[:80]!r}")

    def close(self) -> None:
        """Note an event left unterminated when the stream ended (WHATWG discards it)."""
        if self._buf or self._data:
            self.problems.append(f"stream ended inside an event: {self._buf[:80]!r}")
