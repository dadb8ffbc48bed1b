"""framing.EventStreamDecoder: AWS's binary event stream, fed in pieces cut anywhere.

The messages are built by the fake Bedrock's encoder (tests/upstreams/bedrock.py), written
independently of the decoder; the minimal message is checked byte for byte against the 16 bytes
of AWS's event-stream test vectors (no headers, no payload).
"""

from __future__ import annotations

import struct
import uuid
import zlib

import pytest

from llms.errors import UpstreamMalformed
from llms.framing import EventStreamDecoder, EventStreamMessage
from tests.upstreams.bedrock import event, exception, message, pieces


def stream() -> bytes:
    return b"".join(
        [
            event("messageStart", {"role": "assistant"}),
            event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Grüße 👋"}}),
            message({":message-type": "event", ":event-type": "ping"}, b""),
            exception("throttlingException", "Too many requests"),
        ]
    )


def decode_all(data: bytes, size: int) -> list[EventStreamMessage]:
    decoder = EventStreamDecoder()
    out: list[EventStreamMessage] = []
    for piece in pieces(data, (size,)):
        out += decoder.feed(piece)
    assert not decoder.pending
    assert decoder.flush() == []
    return out


def test_whole_messages_in_one_piece() -> None:
    got = decode_all(stream(), len(stream()))
    assert [m.headers.get(":event-type") for m in got] == [
        "messageStart",
        "contentBlockDelta",
        "ping",
        None,
    ]
    assert got[1].headers[":content-type"] == "application/json"
    assert got[1].payload.startswith(b'{"contentBlockIndex":0,"delta":{"text":"Gr\xc3\xbc\xc3\x9fe')
    assert got[2].payload == b""
    assert got[3].headers == {
        ":exception-type": "throttlingException",
        ":content-type": "application/json",
        ":message-type": "exception",
    }
    assert got[3].payload == b'{"message":"Too many requests"}'


@pytest.mark.parametrize("size", [1, 2, 3, 5, 11, 12, 13, 16, 97])
def test_split_anywhere_gives_the_same_messages(size: int) -> None:
    assert decode_all(stream(), size) == decode_all(stream(), len(stream()))


def test_every_split_point_of_one_message() -> None:
    data = event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "ok"}})
    whole = EventStreamDecoder().feed(data)
    for cut in range(len(data) + 1):
        decoder = EventStreamDecoder()
        first = decoder.feed(data[:cut])
        assert decoder.pending == (0 < cut < len(data))
        assert first + decoder.feed(data[cut:]) == whole


def test_a_cut_message_stays_pending() -> None:
    decoder = EventStreamDecoder()
    data = stream()
    assert len(decoder.feed(data[:-5])) == 3
    assert decoder.pending
    assert decoder.flush() == []


def test_every_header_type() -> None:
    # bool true/false, byte, short, int, long, bytes, string, timestamp, uuid (AWS's types 0-9).
    ident = uuid.UUID("12345678-1234-5678-1234-567812345678")
    values = [
        (b"t", b"\x00"),
        (b"f", b"\x01"),
        (b"b", b"\x02" + struct.pack(">b", -3)),
        (b"s", b"\x03" + struct.pack(">h", -300)),
        (b"i", b"\x04" + struct.pack(">i", 70000)),
        (b"l", b"\x05" + struct.pack(">q", -(2**40))),
        (b"y", b"\x06" + struct.pack(">H", 3) + b"\x00\x01\x02"),
        (b"z", b"\x07" + struct.pack(">H", 2) + b"hi"),
        (b"ts", b"\x08" + struct.pack(">q", 1700000000000)),
        (b"u", b"\x09" + ident.bytes),
    ]
    head = b"".join(bytes([len(name)]) + name + value for name, value in values)
    prelude = struct.pack(">II", 12 + len(head) + 4, len(head))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    body = prelude + head
    data = body + struct.pack(">I", zlib.crc32(body))
    (got,) = EventStreamDecoder().feed(data)
    assert got.headers == {
        "t": True,
        "f": False,
        "b": -3,
        "s": -300,
        "i": 70000,
        "l": -(2**40),
        "y": b"\x00\x01\x02",
        "z": "hi",
        "ts": 1700000000000,
        "u": ident,
    }
    assert got.payload == b""


def test_the_minimal_message() -> None:
    # Sixteen bytes: no headers, no payload (AWS's smallest frame).
    prelude = struct.pack(">II", 16, 0)
    prelude += struct.pack(">I", zlib.crc32(prelude))
    data = prelude + struct.pack(">I", zlib.crc32(prelude))
    assert data.hex() == "000000100000000005c248eb7d98c8ff"
    assert EventStreamDecoder().feed(data) == [EventStreamMessage({}, b"")]


def test_a_bad_prelude_crc_is_malformed() -> None:
    data = bytearray(stream())
    data[9] ^= 0x01
    with pytest.raises(UpstreamMalformed, match="prelude CRC"):
        EventStreamDecoder().feed(bytes(data))


def test_a_bad_message_crc_is_malformed_even_split() -> None:
    data = bytearray(event("messageStart", {"role": "assistant"}))
    data[-1] ^= 0x80
    decoder = EventStreamDecoder()
    *head, last = pieces(bytes(data), (3,))
    for piece in head:
        assert decoder.feed(piece) == []
    with pytest.raises(UpstreamMalformed, match="message CRC"):
        decoder.feed(last)


def test_a_corrupted_payload_is_caught_by_the_message_crc() -> None:
    data = bytearray(event("messageStart", {"role": "assistant"}))
    data[-8] ^= 0x20
    with pytest.raises(UpstreamMalformed, match="message CRC"):
        EventStreamDecoder().feed(bytes(data))


def test_impossible_lengths_are_malformed() -> None:
    for total, headers in ((8, 0), (20, 5)):
        prelude = struct.pack(">II", total, headers)
        data = prelude + struct.pack(">I", zlib.crc32(prelude)) + b"\x00" * 8
        with pytest.raises(UpstreamMalformed, match="impossible length"):
            EventStreamDecoder().feed(data)


def test_a_header_that_does_not_parse_is_malformed() -> None:
    head = b"\x03abc\x07\x00\x09hi"  # a string header that says 9 bytes and has 2
    prelude = struct.pack(">II", 12 + len(head) + 4, len(head))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    body = prelude + head
    with pytest.raises(UpstreamMalformed, match="header"):
        EventStreamDecoder().feed(body + struct.pack(">I", zlib.crc32(body)))
    head = b"\x01x\x0a"  # an unknown value type
    prelude = struct.pack(">II", 12 + len(head) + 4, len(head))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    body = prelude + head
    with pytest.raises(UpstreamMalformed, match="header"):
        EventStreamDecoder().feed(body + struct.pack(">I", zlib.crc32(body)))


def test_a_message_over_the_limit_is_refused_from_its_prelude() -> None:
    decoder = EventStreamDecoder(max_event_bytes=1024)
    prelude = struct.pack(">II", 4096, 0)
    with pytest.raises(UpstreamMalformed, match="exceeds 1024 bytes"):
        decoder.feed(prelude + struct.pack(">I", zlib.crc32(prelude)))
