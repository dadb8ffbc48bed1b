"""Incremental decoding of upstream bytes into events: the only place framing is decoded.

`SSEDecoder` follows the WHATWG "Server-sent events" parsing rules; `NDJSONDecoder` splits
newline-delimited JSON (Ollama's native API) into lines; `EventStreamDecoder` reads AWS's binary
`application/vnd.amazon.eventstream` messages (Bedrock's ConverseStream). Each takes bytes exactly
as they arrive from the network, in pieces of any size, and bounds how much one unfinished event
may buffer. `encode_sse` frames the gateway's own output.
"""

from __future__ import annotations

import struct
import uuid
import zlib
from itertools import repeat
from typing import Any, Generic, NamedTuple, TypeVar

from llms.chunks import DEFAULT_MAX_ANSWER_BYTES, answer_too_large
from llms.errors import UpstreamMalformed

__all__ = [
    "BodyDecoder",
    "Decoder",
    "EventStreamDecoder",
    "EventStreamMessage",
    "NDJSONDecoder",
    "SSEBytesDecoder",
    "SSEBytesEvent",
    "SSEDecoder",
    "SSEEvent",
    "encode_sse",
]

_BOM = b"\xef\xbb\xbf"
# One byte sought by its value: `b"\n" in data` first tries the needle as an int, raises and
# clears a TypeError, then searches (~2k instructions, once per event); `10 in data` does not.
_LF = 0x0A
_CR = 0x0D
DEFAULT_MAX_EVENT_BYTES = 16 * 1024 * 1024


class SSEEvent(NamedTuple):
    """One dispatched server-sent event."""

    event: str
    """The event type: the last `event:` value of the block, or "message" when none (or empty)."""
    data: str
    """The `data:` values of the block joined with "\\n"."""
    id: str
    """The last-event-ID string in force after this block (it persists across events)."""


class SSEBytesEvent(NamedTuple):
    """One dispatched server-sent event whose data is left undecoded (`SSEBytesDecoder`)."""

    event: str
    """The event type, as in `SSEEvent`."""
    data: bytes
    """The `data:` values of the block joined with b"\\n", as UTF-8 bytes, not checked: a
    consumer that parses them as JSON (orjson takes bytes) skips a decode to `str` and, for a
    non-ASCII `str`, orjson's encoding of it back to UTF-8; invalid UTF-8 is its to handle."""
    id: str
    """The last-event-ID string, as in `SSEEvent`."""


E = TypeVar("E", SSEEvent, SSEBytesEvent)
# Events are built without the Python-level `__new__` of a NamedTuple (hot path).
_new = tuple.__new__


def _too_big(limit: int) -> UpstreamMalformed:
    return UpstreamMalformed(f"upstream event exceeds {limit} bytes")


class _SSEParser(Generic[E]):
    """Decode a `text/event-stream` body fed in arbitrary pieces, by the WHATWG rules.

    Lines end at CRLF, LF or a lone CR (also when CR and LF arrive in different pieces); one
    leading UTF-8 BOM is stripped; invalid UTF-8 becomes U+FFFD. An event is dispatched at a
    blank line when its data buffer is non-empty. `last_event_id` and `retry` hold the stream's
    state as the spec defines it. `SSEDecoder` gives each event's data decoded (`SSEEvent`),
    `SSEBytesDecoder` as the bytes it came as (`SSEBytesEvent`); the parsing is the same.
    """

    # The event type built, and whether its data stays bytes (set by each subclass).
    _kind: Any = SSEEvent
    _raw = False

    __slots__ = (
        "_bom_done",
        "_cr",
        "_data",
        "_event",
        "_id",
        "_max",
        "_partial",
        "_partial_len",
        "_size",
        "last_event_id",
        "retry",
    )

    last_event_id: str
    """The last-event-ID string, as set by the most recent blank line."""
    retry: int | None
    """The reconnection time in ms from the last valid `retry:` field, or None."""

    def __init__(self, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        self._max = max_event_bytes
        self._bom_done = False
        # A CR ended the previous piece: an LF opening the next one completes the same CRLF.
        self._cr = False
        # The unfinished last line, kept as pieces so that a long line costs linear time.
        self._partial: list[bytes] = []
        self._partial_len = 0
        self._data: list[bytes] = []
        self._event = b""
        self._id = ""
        # Bytes of the field lines of the event being received (comments excluded).
        self._size = 0
        self.last_event_id = ""
        self.retry = None

    @property
    def pending(self) -> bool:
        """True while part of an event or of a line is buffered: EOF now would cut it off."""
        return self._partial_len > 0 or self._size > 0

    def feed(self, chunk: bytes) -> list[E]:
        """Consume the next piece of the body; return the events it completed, in order.

        Raises UpstreamMalformed when one event (or one line) exceeds `max_event_bytes`.
        """
        if self._cr or not self._bom_done or _CR in chunk:
            chunk = self._normalize(chunk)
        if not (self._partial_len or self._size or self._event):
            # At an event boundary, a read with a blank line goes the fast way: one that ends
            # with it (nearly every read) needs no search for one.
            if chunk[-2:] == b"\n\n":
                data = chunk[6:-2]
                if chunk[:6] == b"data: " and _LF not in data and len(chunk) <= self._max:
                    # One block of one `data: ` line (a paced upstream's read): its event.
                    value = data if self._raw else data.decode("utf-8", "replace")
                    event_id = self.last_event_id = self._id
                    return [_new(self._kind, ("message", value, event_id))]
                return self._feed_blocks(chunk)
            if b"\n\n" in chunk:
                return self._feed_blocks(chunk)
        return self._feed_lines(chunk)

    def _feed_blocks(self, chunk: bytes) -> list[E]:
        """The fast path, at an event boundary: whole `data: …` blocks become events directly.

        Nearly every upstream event is one `data: ` line and a blank line. Any other block, and
        the unfinished tail, go through the general line parser, which is correct from an event
        boundary on.
        """
        if chunk[:6] == b"data: " and chunk[-2:] == b"\n\n" and len(chunk) <= self._max:
            # (A read of one such block and one line is `feed`'s.) Quicker when every block
            # is one `data: ` line: splitting at "\n\ndata: " gives each event's data, and the
            # line feeds counted show that no piece holds another line (two per block, none
            # inside), so nothing else was in the read.
            datas = chunk[6:-2].split(b"\n\ndata: ")
            if chunk.count(b"\n") == 2 * len(datas):
                event_id = self.last_event_id = self._id
                values: list[bytes] | list[str] = (
                    datas if self._raw else [data.decode("utf-8", "replace") for data in datas]
                )
                # Built in C: zip's tuples, each copied into the event type by tuple.__new__.
                fields = zip(repeat("message"), values, repeat(event_id))
                return list(map(_new, repeat(self._kind), fields))
        blocks = chunk.split(b"\n\n")
        tail = blocks.pop()
        events: list[E] = []
        event_id = self._id
        limit = self._max
        kind = self._kind
        raw = self._raw
        for block in blocks:
            if block[:6] == b"data: " and _LF not in block and len(block) <= limit:
                data = block[6:]
                events.append(
                    _new(
                        kind,
                        ("message", data if raw else data.decode("utf-8", "replace"), event_id),
                    )
                )
            else:
                events += self._feed_lines(block + b"\n\n")
                event_id = self._id
        self.last_event_id = event_id
        if tail:
            events += self._feed_lines(tail)
        return events

    def _feed_lines(self, chunk: bytes) -> list[E]:
        """The general path: split into lines and apply every field rule."""
        if _LF not in chunk:
            if chunk:
                self._partial.append(chunk)
                self._partial_len += len(chunk)
                if self._partial_len + self._size > self._max:
                    raise _too_big(self._max)
            return []

        lines = chunk.split(b"\n")
        rest = lines.pop()
        partial = self._partial
        if partial:
            partial.append(lines[0])
            lines[0] = b"".join(partial)
            partial.clear()
        if rest:
            partial.append(rest)
        self._partial_len = len(rest)

        events: list[E] = []
        data = self._data
        size = self._size
        for line in lines:
            if not line:
                self.last_event_id = self._id
                if data:
                    if size > self._max:
                        raise _too_big(self._max)
                    payload = data[0] if len(data) == 1 else b"\n".join(data)
                    data.clear()
                    etype = self._event
                    events.append(
                        _new(
                            self._kind,
                            (
                                etype.decode("utf-8", "replace") if etype else "message",
                                payload if self._raw else payload.decode("utf-8", "replace"),
                                self._id,
                            ),
                        )
                    )
                self._event = b""
                size = 0
                continue
            # Nearly every line is `data: …`; test for it before the general field split.
            if line.startswith(b"data: "):
                data.append(line[6:])
                size += len(line)
                continue
            colon = line.find(b":")
            if colon == 0:
                continue
            size += len(line)
            if colon < 0:
                name, value = line, b""
            else:
                name = line[:colon]
                value = (
                    line[colon + 2 :] if line[colon + 1 : colon + 2] == b" " else line[colon + 1 :]
                )
            if name == b"data":
                data.append(value)
            elif name == b"event":
                self._event = value
            elif name == b"id":
                if b"\x00" not in value:
                    self._id = value.decode("utf-8", "replace")
            elif name == b"retry" and value.isdigit():
                self.retry = int(value)
        self._size = size
        if self._partial_len + size > self._max:
            raise _too_big(self._max)
        return events

    def flush(self) -> list[E]:
        """Signal the end of the body; always [] since WHATWG discards an unfinished event.

        The buffers are left as they are, so `pending` still tells whether an event was cut off.
        """
        return []

    def _normalize(self, chunk: bytes) -> bytes:
        """Strip the stream's BOM and the second half of a split CRLF; turn CRLF and CR into LF."""
        if not self._bom_done:
            # Until three bytes arrived, the held bytes (no line ending among them) may be a BOM.
            head = b"".join(self._partial) + chunk
            self._partial.clear()
            self._partial_len = 0
            if len(head) < len(_BOM) and _BOM.startswith(head):
                if head:
                    self._partial.append(head)
                    self._partial_len = len(head)
                return b""
            self._bom_done = True
            chunk = head[len(_BOM) :] if head.startswith(_BOM) else head
        if self._cr and chunk:
            self._cr = False
            if chunk[0] == 0x0A:
                chunk = chunk[1:]
        if _CR in chunk:
            self._cr = chunk[-1] == 0x0D
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        return chunk


class SSEDecoder(_SSEParser[SSEEvent]):
    """A `text/event-stream` body's events, their data decoded to `str` (U+FFFD for invalid
    UTF-8); see `_SSEParser` for the rules."""

    __slots__ = ()


class SSEBytesDecoder(_SSEParser[SSEBytesEvent]):
    """A `text/event-stream` body's events, their data left as bytes: for a converter that
    parses it as JSON (the OpenAI one), which then costs no UTF-8 decode and re-encode."""

    __slots__ = ()
    _kind = SSEBytesEvent
    _raw = True


class NDJSONDecoder:
    """Split a newline-delimited JSON body fed in arbitrary pieces into its lines.

    Lines end at LF, with one trailing CR removed; blank lines are skipped. Lines are returned
    as bytes, undecoded, so a multi-byte character split between pieces stays whole.
    """

    __slots__ = ("_max", "_partial", "_partial_len")

    def __init__(self, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        self._max = max_event_bytes
        self._partial: list[bytes] = []
        self._partial_len = 0

    @property
    def pending(self) -> bool:
        """True while a non-blank line without its newline is buffered."""
        return any(not piece.isspace() for piece in self._partial)

    def feed(self, chunk: bytes) -> list[bytes]:
        """Consume the next piece of the body; return the complete non-blank lines, in order.

        Raises UpstreamMalformed when one line exceeds `max_event_bytes`.
        """
        if _LF not in chunk:
            if chunk:
                self._partial.append(chunk)
                self._partial_len += len(chunk)
                if self._partial_len > self._max:
                    raise _too_big(self._max)
            return []
        received = self._partial_len + len(chunk)
        lines = chunk.split(b"\n")
        rest = lines.pop()
        partial = self._partial
        if partial:
            partial.append(lines[0])
            lines[0] = b"".join(partial)
            partial.clear()
        if rest:
            partial.append(rest)
        self._partial_len = len(rest)
        # Only when this much arrived at once can a line be over the limit.
        if received > self._max and (
            self._partial_len > self._max or max(map(len, lines)) > self._max
        ):
            raise _too_big(self._max)
        return [_strip_cr(line) for line in lines if line and not line.isspace()]

    def flush(self) -> list[bytes]:
        """Signal the end of the body; return the last line if it had no newline."""
        line = b"".join(self._partial)
        self._partial.clear()
        self._partial_len = 0
        return [_strip_cr(line)] if line and not line.isspace() else []


def _strip_cr(line: bytes) -> bytes:
    return line[:-1] if line.endswith(b"\r") else line


def encode_sse(data: bytes | str, *, id: str | None = None, event: str | None = None) -> bytes:
    """Frame one server-sent event: optional `id:` and `event:` lines, then one `data:` line
    per line of `data` (split at CRLF, CR and LF), then the blank line that dispatches it.

    Decoding the result gives back `data` with its line endings as LF. Raises ValueError when
    `id` or `event` contains CR, LF or NUL, which would break the framing.
    """
    if isinstance(data, str):
        data = data.encode()
    if id is None and event is None and _LF not in data and _CR not in data:
        return b"data: " + data + b"\n\n"
    head = b""
    for name, value in ((b"id", id), (b"event", event)):
        if value is None:
            continue
        if "\r" in value or "\n" in value or "\x00" in value:
            raise ValueError(f"SSE {name.decode()} must not contain CR, LF or NUL: {value!r}")
        head += name + b": " + value.encode() + b"\n"
    lines = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
    return head + b"".join([b"data: " + line + b"\n" for line in lines]) + b"\n"


class BodyDecoder:
    """A whole (non-streamed) body: kept until the end, then one event, the body's bytes.

    Used when a non-stream request is answered non-stream by the upstream: the answer is one
    JSON document, converted once instead of chunk by chunk.
    """

    __slots__ = ("_max", "_parts", "_size")

    def __init__(self, max_event_bytes: int = DEFAULT_MAX_ANSWER_BYTES) -> None:
        self._max = max_event_bytes
        self._parts: list[bytes] = []
        self._size = 0

    @property
    def pending(self) -> bool:
        """True once part of the body arrived (EOF is expected after it)."""
        return self._size > 0

    def feed(self, chunk: bytes) -> list[bytes]:
        """Keep the next piece; the body is one event, complete only at the end."""
        self._size += len(chunk)
        if self._size > self._max:
            raise answer_too_large(self._max)
        self._parts.append(chunk)
        return []

    def flush(self) -> list[bytes]:
        """The end of the body: the whole of it, as the one event (none if it was empty)."""
        body = b"".join(self._parts)
        self._parts.clear()
        self._size = 0
        return [body] if body else []


# --- AWS event stream ---------------------------------------------------------------------------

HeaderValue = bool | int | bytes | str | uuid.UUID
_PRELUDE = 12  # total length, headers length, prelude CRC
_MIN_MESSAGE = 16  # the prelude and the message CRC
_FIXED = {2: ">b", 3: ">h", 4: ">i", 5: ">q", 8: ">q"}


class EventStreamMessage(NamedTuple):
    """One `application/vnd.amazon.eventstream` message: its headers and its payload."""

    headers: dict[str, HeaderValue]
    """`:message-type`, `:event-type`, `:exception-type`, `:content-type`… by name."""
    payload: bytes


class EventStreamDecoder:
    """Decode AWS event-stream messages fed in arbitrary pieces.

    Each message is a prelude (total length and headers length, big-endian uint32, and the
    CRC32 of those 8 bytes), its headers (name length, name, value type, value), the payload and
    the CRC32 of everything before it. Both CRCs are checked: a mismatch, a length that cannot
    be, or a header that does not parse is UpstreamMalformed. A message longer than
    `max_event_bytes` is refused as soon as its prelude says so.
    """

    __slots__ = ("_buffer", "_max")

    def __init__(self, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        self._max = max_event_bytes
        self._buffer = bytearray()

    @property
    def pending(self) -> bool:
        """True while part of a message is buffered: EOF now would cut it off."""
        return bool(self._buffer)

    def feed(self, chunk: bytes) -> list[EventStreamMessage]:
        """Consume the next piece of the body; return the messages it completed, in order."""
        buffer = self._buffer
        buffer += chunk
        messages: list[EventStreamMessage] = []
        start = 0
        while len(buffer) - start >= _PRELUDE:
            total, headers_length, prelude_crc = struct.unpack_from(">III", buffer, start)
            if zlib.crc32(buffer[start : start + 8]) != prelude_crc:
                raise UpstreamMalformed("The upstream's event stream has a bad prelude CRC.")
            if total < _MIN_MESSAGE or headers_length > total - _MIN_MESSAGE:
                raise UpstreamMalformed("The upstream's event stream has an impossible length.")
            if total > self._max:
                raise _too_big(self._max)
            if len(buffer) - start < total:
                break
            end = start + total
            (message_crc,) = struct.unpack_from(">I", buffer, end - 4)
            if zlib.crc32(buffer[start : end - 4]) != message_crc:
                raise UpstreamMalformed("The upstream's event stream has a bad message CRC.")
            headers_end = start + _PRELUDE + headers_length
            headers = _headers(bytes(buffer[start + _PRELUDE : headers_end]))
            messages.append(EventStreamMessage(headers, bytes(buffer[headers_end : end - 4])))
            start = end
        if start:
            del buffer[:start]
        return messages

    def flush(self) -> list[EventStreamMessage]:
        """Signal the end of the body; a message cut off stays `pending` and is not returned."""
        return []


def _headers(data: bytes) -> dict[str, HeaderValue]:
    """The headers section of one message; UpstreamMalformed if it does not parse."""
    headers: dict[str, HeaderValue] = {}
    at = 0
    try:
        while at < len(data):
            size = data[at]
            name = data[at + 1 : at + 1 + size].decode()
            at += 1 + size
            kind = data[at]
            at += 1
            value: HeaderValue
            if kind in (0, 1):
                value = kind == 0
            elif kind in _FIXED:
                fmt = _FIXED[kind]
                (value,) = struct.unpack_from(fmt, data, at)
                at += struct.calcsize(fmt)
            elif kind in (6, 7):
                (length,) = struct.unpack_from(">H", data, at)
                raw = data[at + 2 : at + 2 + length]
                if len(raw) != length:
                    raise ValueError("short header value")
                value = raw.decode() if kind == 7 else raw
                at += 2 + length
            elif kind == 9:
                if at + 16 > len(data):
                    raise ValueError("short uuid")
                value = uuid.UUID(bytes=data[at : at + 16])
                at += 16
            else:
                raise ValueError(f"unknown header type {kind}")
            headers[name] = value
    except (IndexError, ValueError, struct.error):
        raise UpstreamMalformed(
            "The upstream's event stream has a header that does not parse."
        ) from None
    return headers


# What an attempt reads its upstream's body with (routing picks it by the adapter's FRAMING).
Decoder = SSEDecoder | SSEBytesDecoder | NDJSONDecoder | BodyDecoder | EventStreamDecoder
