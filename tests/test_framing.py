"""llms.framing: SSE by the WHATWG rules (protocol.md §2.5), NDJSON, and encode_sse."""

from __future__ import annotations

import random

import pytest

from llms.errors import UpstreamMalformed
from llms.framing import (
    BodyDecoder,
    NDJSONDecoder,
    SSEBytesDecoder,
    SSEBytesEvent,
    SSEDecoder,
    SSEEvent,
    encode_sse,
)

# protocol.md §2.5: (input pieces as the network delivered them, expected events, expected retry).
# Events are (type, data, lastEventId). A single-element list means the vector gives no boundary.
VECTORS: list[tuple[list[bytes], list[tuple[str, str, str]], int | None]] = [
    ([b"data: a\n\n"], [("message", "a", "")], None),
    ([b"data: a\r\ndata: b\rdata: c\n\r\n"], [("message", "a\nb\nc", "")], None),
    ([b"data: x\r", b"\ndata: y\r", b"\n\r", b"\n"], [("message", "x\ny", "")], None),
    ([b"\xef\xbb\xbfdata: a\n\n\xef\xbb\xbfdata: b\n\n"], [("message", "a", "")], None),
    ([b": ping\n\ndata: a\n:c\ndata: b\n\n"], [("message", "a\nb", "")], None),
    ([b"data\n\ndata\ndata\n\n"], [("message", "", ""), ("message", "\n", "")], None),
    ([b"data:\n\nevent: x\n\n"], [("message", "", "")], None),
    (
        [b"data:a\n\ndata:  a\n\ndata:\ta\n\ndata: a \n\n"],
        [
            ("message", "a", ""),
            ("message", " a", ""),
            ("message", "\ta", ""),
            ("message", "a ", ""),
        ],
        None,
    ),
    ([b"data : a\n\n"], [], None),
    ([b'data: {"a":"b:c"}\n\n'], [("message", '{"a":"b:c"}', "")], None),
    (
        [b"id: 1\ndata: a\n\ndata: b\n\nid\ndata: c\n\n"],
        [("message", "a", "1"), ("message", "b", "1"), ("message", "c", "")],
        None,
    ),
    (
        [b"id: 1\ndata: a\n\nid: 2\x003\ndata: b\n\n"],
        [("message", "a", "1"), ("message", "b", "1")],
        None,
    ),
    ([b"retry: 1000\n\nretry: 10x\nretry: -5\ndata: a\n\n"], [("message", "a", "")], 1000),
    ([b"data: a\n\ndata: b\n"], [("message", "a", "")], None),
    (
        [b"event: add\ndata: 1\n\ndata: 2\n\nevent:\ndata: 3\n\n"],
        [("add", "1", ""), ("message", "2", ""), ("message", "3", "")],
        None,
    ),
    ([b"Data: x\nDATA: y\nfoo: bar\ndata: z\n\n"], [("message", "z", "")], None),
    ([b'data: {"a":\ndata: 1}\n\n'], [("message", '{"a":\n1}', "")], None),
    (["data: a\u2028b\x00c\n\n".encode()], [("message", "a\u2028b\x00c", "")], None),
    ([b"data: \xe2\x82", b"\xac\n\n"], [("message", "\u20ac", "")], None),
    ([b"id: 5\n\ndata: a\n\n"], [("message", "a", "5")], None),
]


def split(pieces: list[bytes], size: int | None) -> list[bytes]:
    """The vector's pieces as given (size None), or re-cut into `size`-byte fragments that
    also break at every given boundary."""
    if size is None:
        return pieces
    return [piece[i : i + size] for piece in pieces for i in range(0, len(piece), size)]


def decode(pieces: list[bytes], decoder: SSEDecoder | None = None) -> list[SSEEvent]:
    decoder = decoder if decoder is not None else SSEDecoder()
    events = [event for piece in pieces for event in decoder.feed(piece)]
    return events + decoder.flush()


@pytest.mark.parametrize("size", [None, 7, 1], ids=["whole", "7-byte", "1-byte"])
@pytest.mark.parametrize(
    ("pieces", "expected", "retry"), VECTORS, ids=[f"v{n}" for n in range(1, len(VECTORS) + 1)]
)
def test_protocol_vectors(
    pieces: list[bytes], expected: list[tuple[str, str, str]], retry: int | None, size: int | None
) -> None:
    decoder = SSEDecoder()
    assert decode(split(pieces, size), decoder) == expected
    assert decoder.retry == retry


@pytest.mark.parametrize("size", [None, 7, 1], ids=["whole", "7-byte", "1-byte"])
def test_vectors_joined_into_one_piece(size: int | None) -> None:
    """Vectors given with boundaries (3, 19) decode the same when the bytes arrive otherwise."""
    for pieces, expected, _ in VECTORS:
        whole = [b"".join(pieces)]
        assert decode(split(whole, size)) == expected


def test_last_event_id_persists_and_resets() -> None:
    decoder = SSEDecoder()
    decoder.feed(b"id: 5\n\n")
    assert decoder.last_event_id == "5"
    decoder.feed(b"id: 7\ndata: a\n")
    assert decoder.last_event_id == "5", "set only when the block ends"
    decoder.feed(b"\nid\n\n")
    assert decoder.last_event_id == ""


def test_crlf_split_across_reads_is_one_line_ending() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r") == []
    assert decoder.feed(b"\n") == []
    assert decoder.feed(b"data: b\r\n\r") == [("message", "a\nb", "")]
    # The LF completing the CRLF above must not count as another (blank) line.
    assert decoder.feed(b"\ndata: c\r\n\r\n") == [("message", "c", "")]


def test_lone_cr_then_data_in_next_read() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r") == []
    assert decoder.feed(b"\r") == [("message", "a", "")]
    assert decoder.feed(b"data: b\r") == []
    assert decoder.feed(b"\r") == [("message", "b", "")]


def test_empty_reads_change_nothing() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"") == []
    assert decoder.feed(b"data: a\r") == []
    assert decoder.feed(b"") == []
    assert decoder.feed(b"\n") == []
    assert decoder.feed(b"\n") == [("message", "a", "")]


def test_bom_split_across_reads_is_stripped() -> None:
    assert decode([b"\xef", b"\xbb", b"\xbfdata: a\n\n"]) == [("message", "a", "")]


def test_bom_prefix_that_is_not_a_bom_is_data() -> None:
    assert decode([b"\xef", b"\xbbdata: a\n\ndata: b\n\n"]) == [("message", "b", "")]


def test_invalid_utf8_becomes_replacement_character() -> None:
    assert decode([b"data: a\xffb\xe2\x82\n\n"]) == [("message", "a\ufffdb\ufffd", "")]


def test_event_type_and_id_are_decoded_as_utf8() -> None:
    events = decode(["event: caf\u00e9\nid: \u20ac\ndata: x\n\n".encode()])
    assert events == [("caf\u00e9", "x", "\u20ac")]


def test_large_event_in_64k_pieces() -> None:
    payload = b"x" * (1024 * 1024)
    body = b"data: " + payload + b"\n\ndata: end\n\n"
    decoder = SSEDecoder()
    events: list[SSEEvent] = []
    piece = 64 * 1024
    for i in range(0, len(body), piece):
        events += decoder.feed(body[i : i + piece])
    assert [len(e.data) for e in events] == [len(payload), 3]
    assert events[0].data == payload.decode()
    assert not decoder.pending


def test_pending_tracks_unfinished_events() -> None:
    decoder = SSEDecoder()
    assert not decoder.pending
    decoder.feed(b"data: a")
    assert decoder.pending, "an unfinished line"
    decoder.feed(b"bc\n")
    assert decoder.pending, "a complete line, but the event has not ended"
    assert decoder.feed(b"\n") == [("message", "abc", "")]
    assert not decoder.pending
    decoder.feed(b": keep-alive\n")
    assert not decoder.pending, "a comment is not part of an event"
    decoder.feed(b"event: x\n")
    assert decoder.pending
    assert decoder.flush() == []
    assert decoder.pending, "flush leaves the evidence of a truncated stream"


def test_pending_false_after_crlf_dispatch_split() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r\n\r") == [("message", "a", "")]
    assert not decoder.pending


def test_truncated_event_is_discarded_at_eof() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\n\ndata: b") == [("message", "a", "")]
    assert decoder.flush() == []
    assert decoder.pending


def test_unfinished_line_over_limit_raises() -> None:
    decoder = SSEDecoder(max_event_bytes=100)
    decoder.feed(b"data: " + b"x" * 90)
    with pytest.raises(UpstreamMalformed, match="exceeds 100 bytes"):
        decoder.feed(b"x" * 20)


def test_event_of_many_lines_over_limit_raises() -> None:
    decoder = SSEDecoder(max_event_bytes=100)
    for _ in range(9):
        decoder.feed(b"data: 0123\n")
    with pytest.raises(UpstreamMalformed) as caught:
        decoder.feed(b"data: 0123\n" * 3)
    assert caught.value.code == "upstream_malformed"


def test_complete_event_over_limit_in_one_read_raises() -> None:
    decoder = SSEDecoder(max_event_bytes=100)
    with pytest.raises(UpstreamMalformed):
        decoder.feed(b"data: " + b"x" * 200 + b"\n\n")


def test_events_under_limit_pass() -> None:
    decoder = SSEDecoder(max_event_bytes=100)
    body = (b"data: " + b"x" * 80 + b"\n\n") * 50
    assert len(decode([body], decoder)) == 50


# --- SSEBytesDecoder: the same parsing, the data left as bytes ---------------------------------

# Bodies that take both the fast path (whole `data:` blocks at a boundary) and the line parser:
# multi-byte text, invalid UTF-8, CRLF and lone CR, a BOM, comments, event types, ids, multi-line
# data, `retry`, an unfinished tail.
BYTES_BODIES = [
    b"".join(piece for pieces, _, _ in VECTORS for piece in pieces),
    "data: caf\u00e9 \u65e5\u672c \U0001f642\n\ndata: \u2014\n\n".encode(),
    b"data: a\xffb\xe2\x82\n\ndata: \xed\xa0\x80\xc0\x80\n\n"
    b"event: e\xff\ndata: x\xf4\x90\x80\x80\n\n",
    b'\xef\xbb\xbfdata: {"a":1}\r\n\r\nid: 7\rdata: \xe2\x82\xac\r\r'
    b": c\ndata: 1\ndata: 2\n\ndata: tail",
]


@pytest.mark.parametrize("body", BYTES_BODIES, ids=["vectors", "utf8", "invalid-utf8", "crlf-bom"])
def test_bytes_decoder_gives_the_text_decoders_events_undecoded(body: bytes) -> None:
    """Cut at every size from whole to one byte: the same events, types, ids, retry and pending
    state as SSEDecoder, with each event's data the bytes that SSEDecoder decodes."""
    for size in [None, *range(1, 12), 64]:
        text, raw = SSEDecoder(), SSEBytesDecoder()
        pieces = split([body], size)
        expected = decode(pieces, text)
        got = [event for piece in pieces for event in raw.feed(piece)] + raw.flush()
        assert all(type(event) is SSEBytesEvent and type(event.data) is bytes for event in got)
        assert [(e.event, e.data.decode("utf-8", "replace"), e.id) for e in got] == expected
        assert (raw.retry, raw.last_event_id, raw.pending) == (
            text.retry,
            text.last_event_id,
            text.pending,
        )


def test_bytes_decoder_keeps_the_bytes_as_sent() -> None:
    body = b"data: a\xffb\n\nevent: x\ndata: \xe2\x82\ndata: \xac\n\n"
    assert SSEBytesDecoder().feed(body) == [
        ("message", b"a\xffb", ""),
        ("x", b"\xe2\x82\n\xac", ""),
    ]


def test_bytes_decoder_bounds_an_event() -> None:
    with pytest.raises(UpstreamMalformed, match="exceeds 100 bytes"):
        SSEBytesDecoder(max_event_bytes=100).feed(b"data: " + b"x" * 200 + b"\n\n")


# Blocks a body is made of, for the fast paths' test: mostly single `data: ` lines (the case
# read whole), and every kind that must leave them to the line parser.
BLOCKS = [
    b"data: plain",
    b"data: ",
    "data: caf\u00e9 \U0001f642".encode(),
    b"data: bad \xff\xe2\x82",
    b'data: {"a":"data: b"}',
    b"data: a\ndata: b",
    b": comment",
    b"event: kind\ndata: e",
    b"id: 9\ndata: i",
    b"id",
    b"retry: 250",
    b"data:nospace",
    b"data : not data",
    b"",
    b"\n",
]


@pytest.mark.parametrize("decoder_type", [SSEDecoder, SSEBytesDecoder])
def test_reads_of_whole_blocks_decode_as_the_line_parser_does(
    decoder_type: type[SSEDecoder] | type[SSEBytesDecoder],
) -> None:
    """A read of whole blocks takes the fast paths (every block one `data: ` line; or block by
    block); one byte at a time only the line parser runs. Both give the same events and state,
    read after read, whatever the blocks and whatever unfinished tail follows them."""
    rng = random.Random(18)
    for _ in range(400):
        weights = [30, 3, 5, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1]
        reads = []
        for _ in range(rng.randint(1, 4)):
            blocks = rng.choices(BLOCKS, weights, k=rng.randint(1, 6))
            tail = rng.choice([b"", b"", b"", b"data: cut", b"data: x\n", b"\n"])
            reads.append(b"".join(block + b"\n\n" for block in blocks) + tail)
        whole, bytewise = decoder_type(), decoder_type()
        for data in reads:
            expected = [e for i in range(len(data)) for e in bytewise.feed(data[i : i + 1])]
            assert whole.feed(data) == expected, reads
            state = (whole.last_event_id, whole.retry, whole.pending)
            assert state == (bytewise.last_event_id, bytewise.retry, bytewise.pending), reads


# --- NDJSON -----------------------------------------------------------------------------------


def feed_ndjson(pieces: list[bytes], decoder: NDJSONDecoder | None = None) -> list[bytes]:
    decoder = decoder if decoder is not None else NDJSONDecoder()
    lines = [line for piece in pieces for line in decoder.feed(piece)]
    return lines + decoder.flush()


@pytest.mark.parametrize("size", [None, 7, 1], ids=["whole", "7-byte", "1-byte"])
def test_ndjson_lines(size: int | None) -> None:
    body = b'{"a":1}\n{"b":2}\r\n\n  \r\n\t\n{"c":"\xe2\x82\xac"}\n{"done":true}'
    expected = [b'{"a":1}', b'{"b":2}', b'{"c":"\xe2\x82\xac"}', b'{"done":true}']
    assert feed_ndjson(split([body], size)) == expected


def test_ndjson_line_split_across_reads() -> None:
    decoder = NDJSONDecoder()
    assert decoder.feed(b'{"message":{"content":"\xe2') == []
    assert decoder.pending
    assert decoder.feed(b'\x82\xac"}}\r') == []
    assert decoder.feed(b'\n{"done":') == [b'{"message":{"content":"\xe2\x82\xac"}}']
    assert decoder.feed(b"true}\n") == [b'{"done":true}']
    assert not decoder.pending
    assert decoder.flush() == []


def test_ndjson_final_line_without_newline() -> None:
    decoder = NDJSONDecoder()
    assert decoder.feed(b'{"a":1}\n{"done":true}') == [b'{"a":1}']
    assert decoder.pending
    assert decoder.flush() == [b'{"done":true}']
    assert not decoder.pending


def test_ndjson_trailing_whitespace_is_not_pending() -> None:
    decoder = NDJSONDecoder()
    decoder.feed(b'{"a":1}\n  ')
    assert not decoder.pending
    assert decoder.flush() == []


def test_ndjson_limit() -> None:
    decoder = NDJSONDecoder(max_event_bytes=50)
    assert decoder.feed(b"x" * 40 + b"\n" + b"y" * 40) == [b"x" * 40]
    with pytest.raises(UpstreamMalformed, match="exceeds 50 bytes"):
        decoder.feed(b"y" * 20)
    with pytest.raises(UpstreamMalformed):
        NDJSONDecoder(max_event_bytes=50).feed(b"z" * 60 + b"\n")


# --- encode_sse -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        '{"choices":[]}',
        "",
        "two\nlines",
        "cr\rand\r\ncrlf",
        "trailing newline\n",
        "  leading spaces",
        ": looks like a comment",
        "data: nested",
        "unicode \u20ac \U0001f600 \u2028 \x00",
    ],
)
@pytest.mark.parametrize(
    ("id", "event"), [(None, None), ("42", None), (None, "status"), ("7", "x")]
)
def test_encode_sse_round_trips(data: str, id: str | None, event: str | None) -> None:
    expected = SSEEvent(
        event or "message", data.replace("\r\n", "\n").replace("\r", "\n"), id or ""
    )
    for payload in (data, data.encode()):
        framed = encode_sse(payload, id=id, event=event)
        for size in (None, 1):
            assert decode(split([framed], size)) == [expected]


def test_encode_sse_default_shape_is_what_openai_sdks_accept() -> None:
    assert encode_sse(b'{"a":1}') == b'data: {"a":1}\n\n'
    assert encode_sse("[DONE]") == b"data: [DONE]\n\n"
    assert encode_sse("a\nb") == b"data: a\ndata: b\n\n"
    assert encode_sse("a", id="3", event="status") == b"id: 3\nevent: status\ndata: a\n\n"


@pytest.mark.parametrize("bad", ["1\n2", "1\r", "\x00", "a\r\nb"])
def test_encode_sse_rejects_bad_id_and_event(bad: str) -> None:
    with pytest.raises(ValueError, match="must not contain"):
        encode_sse("x", id=bad)
    with pytest.raises(ValueError, match="must not contain"):
        encode_sse("x", event=bad)


# --- a whole body ---------------------------------------------------------------------------------


def test_body_decoder_gives_the_whole_body_once_at_the_end() -> None:
    decoder = BodyDecoder()
    assert not decoder.pending
    assert decoder.feed(b'{"a": ') == []
    assert decoder.feed(b"1}") == []
    assert decoder.pending
    assert decoder.flush() == [b'{"a": 1}']
    assert not decoder.pending
    assert BodyDecoder().flush() == []


def test_body_decoder_bounds_the_body() -> None:
    decoder = BodyDecoder(max_event_bytes=8)
    decoder.feed(b"12345678")
    with pytest.raises(UpstreamMalformed):
        decoder.feed(b"9")
