"""The benchmark's load generator checks: its SSE parser, the chat client's stream checks (plain
and resumable), the resume rounds, Redis command counts and the wall-clock cap.

Loopback servers in this process only: no program is started. The Responses and Messages clients'
checks are in tests/test_bench_checks_apis.py; the end-to-end runs in tests/test_bench.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bench.load import LoadClient, LoadSpec
from bench.redis_server import command_figures, parse_commandstats
from bench.resume import ResumeSpec, run_resumes
from bench.shape import Shape, content_pieces
from bench.sse import SSEParser

SHAPE = Shape(chunks=6, delay_ms=0, first_ms=0, size=8)
ServerFactory = Callable[[web.Application], Awaitable[TestServer]]

SSE_SAMPLE = (
    "\ufeffdata: first\r\n\r\n"
    ": a comment\n"
    "data: multi\rdata: line\r\r"
    "data:no-space\n\n"
    "data: café 日本 🙂\r\n\r\n"
    "data\n\n"
).encode()
SSE_EVENTS = (b"first", b"multi\nline", b"no-space", "café 日本 🙂".encode(), b"")


@pytest.mark.parametrize("size", [1, 2, 7, len(SSE_SAMPLE)])
def test_sse_parser_gives_same_events_whatever_the_split(size: int) -> None:
    """CR, LF and CRLF endings, comments, multi-line data and UTF-8 survive any split."""
    parser = SSEParser()
    events = []
    for start in range(0, len(SSE_SAMPLE), size):
        events += parser.feed(SSE_SAMPLE[start : start + size])
    parser.close()
    assert tuple(event.data for event in events) == SSE_EVENTS
    assert all(event.id is None and event.event is None for event in events)
    assert parser.comments == 1
    assert parser.problems == ["byte order mark at start of stream"]


@pytest.mark.parametrize("size", [1, 5, 1000])
def test_sse_parser_in_named_mode_keeps_each_events_name(size: int) -> None:
    """Responses' and Messages' `event:` lines, with or without the space, name only the event
    they are in; an event without one has none, and id: is still forbidden."""
    stream = (
        b"event: response.created\ndata: {}\n\n"
        b"data: unnamed\n\n"
        b"event:response.output_text.delta\r\ndata: a\r\ndata: b\r\n\r\n"
        b"event: ping\n\n"  # a name and no data: no event, and the name does not carry over
        b"data: last\n\nid: 3\ndata: x\n\n"
    )
    parser = SSEParser(named=True)
    events = []
    for start in range(0, len(stream), size):
        events += parser.feed(stream[start : start + size])
    parser.close()
    assert [(e.data, e.event) for e in events] == [
        (b"{}", b"response.created"),
        (b"unnamed", None),
        (b"a\nb", b"response.output_text.delta"),
        (b"last", None),
        (b"x", None),
    ]
    assert len(parser.problems) == 1 and "'id'" in parser.problems[0]


def test_sse_parser_flags_fields_the_contract_forbids() -> None:
    """id:, event:, retry:, unknown fields and an unterminated event are all reported."""
    parser = SSEParser()
    events = parser.feed(b"id: 1\nevent: status\nretry: 10\nfoo: bar\ndata: x\n\ndata: cut")
    parser.close()
    assert [event.data for event in events] == [b"x"]
    assert len(parser.problems) == 5
    assert "'id'" in parser.problems[0]
    assert "'event'" in parser.problems[1]
    assert "ended inside an event" in parser.problems[-1]


def test_sse_parser_in_resumable_mode_keeps_ids_and_status_events_only() -> None:
    """Resumable mode allows id: on every event and event: status; nothing else changes."""
    parser = SSEParser(resumable=True)
    events = parser.feed(
        b"id: 1\ndata: a\n\nid: 2\nevent: status\ndata: {}\n\ndata: no-id\n\n"
        b"id: 4\nevent: message\nretry: 10\ndata: b\n\n"
    )
    parser.close()
    assert [(e.data, e.id, e.event) for e in events] == [
        (b"a", b"1", None),
        (b"{}", b"2", b"status"),
        (b"no-id", None, None),
        (b"b", b"4", None),
    ]
    assert len(parser.problems) == 2
    assert "'event'" in parser.problems[0]
    assert "'retry'" in parser.problems[1]


def _chunk(delta: dict[str, Any], finish: str | None = None, model: str = "") -> bytes:
    """One chat.completion.chunk event for SHAPE (or another model)."""
    body = {
        "id": "chatcmpl-test",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": model or SHAPE.model,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }
    return b"data: " + orjson.dumps(body) + b"\n\n"


def good_events() -> list[bytes]:
    """A correct stream for SHAPE, built here independently of the fake upstream's encoder."""
    pieces = content_pieces(SHAPE)
    return [
        _chunk({"role": "assistant", "content": ""}),
        *(_chunk({"content": piece}) for piece in pieces),
        _chunk({}, "stop"),
        b"data: [DONE]\n\n",
    ]


def _swap(events: list[bytes]) -> list[bytes]:
    """Swap the first two content chunks."""
    return [events[0], events[2], events[1], *events[3:]]


def _usage(events: list[bytes]) -> list[bytes]:
    """Add the usage chunk, which this client never asks for."""
    usage = {"object": "chat.completion.chunk", "model": SHAPE.model, "choices": [], "usage": {}}
    return [*events[:-1], b"data: " + orjson.dumps(usage) + b"\n\n", events[-1]]


BROKEN = (
    pytest.param(lambda e: e[:3] + e[4:], "chunk_count", id="missing chunk"),
    pytest.param(lambda e: e[:3] + e[2:], "chunk_count", id="extra chunk"),
    pytest.param(_swap, "content", id="reordered"),
    pytest.param(lambda e: e[:-1], "no_done", id="no done"),
    pytest.param(lambda e: [b"id: 1\n" + e[0], *e[1:]], "sse_framing", id="id line"),
    pytest.param(lambda e: [b"event: status\n" + e[0], *e[1:]], "sse_framing", id="event line"),
    pytest.param(
        lambda e: [*e[:3], b'data: {"error": {"message": "boom"}}\n\n', e[-1]],
        "error_event",
        id="error event",
    ),
    pytest.param(_usage, "unexpected_usage", id="usage to a client that did not ask"),
    pytest.param(lambda e: [*e, e[1]], "after_done", id="event after done"),
    pytest.param(lambda e: [e[0], b"data: {nope\n\n", *e[1:]], "bad_json", id="bad json"),
    pytest.param(
        lambda e: [_chunk({"role": "assistant"}, model="other"), *e[1:]],
        "wrong_model",
        id="wrong model",
    ),
    pytest.param(lambda e: [*e[:-2], e[-1]], "shape", id="no finish"),
)


async def _serve(
    events: list[bytes], piece: int, server: ServerFactory, resumable: bool = False
) -> TestServer:
    """A loopback server answering every chat request with ``events`` in ``piece``-byte writes."""
    body = b"".join(events)
    headers = {"Content-Type": "text/event-stream"}
    if resumable:
        headers["X-Stream-Id"] = "chatcmpl-test"

    async def chat(request: web.Request) -> web.StreamResponse:
        """Stream the events in small writes."""
        resp = web.StreamResponse(headers=headers)
        await resp.prepare(request)
        for start in range(0, len(body), piece):
            await resp.write(body[start : start + piece])
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_post("/v1/responses", chat)
    app.router.add_post("/v1/messages", chat)
    return await server(app)


def _spec(srv: TestServer, requests: int = 3, resumable: bool = False) -> LoadSpec:
    """Streamed requests for SHAPE against the test server."""
    url = str(srv.make_url("/v1/chat/completions"))
    return LoadSpec(
        url, SHAPE.model, True, requests, concurrency=2, max_seconds=20, resumable=resumable
    )


@pytest.mark.parametrize("piece", [7, 100_000])
async def test_load_client_accepts_a_correct_stream(
    piece: int, aiohttp_server: ServerFactory
) -> None:
    """A correct stream passes whether it arrives in 7-byte writes or all at once."""
    srv = await _serve(good_events(), piece, aiohttp_server)
    async with LoadClient(_spec(srv), content_pieces(SHAPE)) as client:
        result = await client.run()
    assert result.errors == {}
    assert result.ok == 3
    assert result.content_chunks == 3 * SHAPE.chunks
    assert len(result.ttft) == 3
    assert len(result.gaps) == 3 * (SHAPE.chunks - 1)


@pytest.mark.parametrize(("transform", "kind"), BROKEN)
async def test_load_client_counts_every_broken_stream(
    transform: Callable[[list[bytes]], list[bytes]], kind: str, aiohttp_server: ServerFactory
) -> None:
    """A missing, extra or mangled chunk fails the request, under the check that caught it."""
    srv = await _serve(transform(good_events()), 7, aiohttp_server)
    async with LoadClient(_spec(srv), content_pieces(SHAPE)) as client:
        result = await client.run()
    assert result.ok == 0
    assert result.errors == {kind: 3}, result.samples


def with_ids(events: list[bytes], first: int = 1) -> list[bytes]:
    """The events as resumable mode sends them: each with `id: <seq>`."""
    return [b"id: %d\n" % (first + i) + event for i, event in enumerate(events)]


def _status(events: list[bytes]) -> list[bytes]:
    """A status event (as `event: status`) before the first chunk, ids renumbered."""
    status = b'event: status\ndata: {"status": "retrying"}\n\n'
    return with_ids([status, *events])


RESUMABLE_BROKEN = (
    pytest.param(lambda e: [*with_ids(e[:2]), *with_ids(e[3:], 4)], "event_id", id="gap"),
    pytest.param(lambda e: [*with_ids(e[:3]), *with_ids(e[2:], 3)], "event_id", id="repeat"),
    pytest.param(lambda e: with_ids(e, 2), "event_id", id="not from 1"),
    pytest.param(lambda e: [*with_ids(e[:2]), e[2], *with_ids(e[3:], 4)], "event_id", id="no id"),
    pytest.param(
        lambda e: [*with_ids(e[:2]), b"id: 3\nevent: other\n" + e[2], *with_ids(e[3:], 4)],
        "sse_framing",
        id="other event type",
    ),
    pytest.param(lambda e: with_ids(e[:-1]), "no_done", id="no done"),
    pytest.param(lambda e: with_ids(_swap(e)), "content", id="reordered"),
)


async def test_load_client_in_resumable_mode_accepts_ids_and_status_events(
    aiohttp_server: ServerFactory,
) -> None:
    """Contiguous ids from 1 and an `event: status` pass; the status event is not a chunk."""
    srv = await _serve(_status(good_events()), 7, aiohttp_server, resumable=True)
    async with LoadClient(_spec(srv, resumable=True), content_pieces(SHAPE)) as client:
        result = await client.run()
    assert result.errors == {}, result.samples
    assert result.ok == 3
    assert result.content_chunks == 3 * SHAPE.chunks
    assert result.status_events == 3
    assert result.events == 3 * (len(good_events()) + 1)
    # Resumable client got what it asked for; a default-mode client must still refuse it.
    async with LoadClient(_spec(srv), content_pieces(SHAPE)) as client:
        result = await client.run()
    assert result.errors == {"sse_framing": 3}, result.samples


@pytest.mark.parametrize(("transform", "kind"), RESUMABLE_BROKEN)
async def test_load_client_in_resumable_mode_counts_broken_ids(
    transform: Callable[[list[bytes]], list[bytes]], kind: str, aiohttp_server: ServerFactory
) -> None:
    """A gap, a repeat, a missing id or an unknown event type fails the request."""
    srv = await _serve(transform(good_events()), 7, aiohttp_server, resumable=True)
    async with LoadClient(_spec(srv, 3, resumable=True), content_pieces(SHAPE)) as client:
        result = await client.run()
    assert result.ok == 0
    assert result.errors == {kind: 3}, result.samples


async def test_load_client_in_resumable_mode_needs_a_stream_id(
    aiohttp_server: ServerFactory,
) -> None:
    """Without X-Stream-Id a resumable stream could never be resumed."""
    srv = await _serve(with_ids(good_events()), 7, aiohttp_server)
    async with LoadClient(_spec(srv, 2, resumable=True), content_pieces(SHAPE)) as client:
        result = await client.run()
    assert result.errors == {"no_stream_id": 2}


def _resumer(events: list[bytes], skew: int) -> web.Application:
    """A fake resumable gateway: POST streams ``events``; GET replays from ``Last-Event-ID``.

    ``skew`` shifts where the replay starts, to break it on purpose.
    """
    body = b"".join(events)
    headers = {"Content-Type": "text/event-stream", "X-Stream-Id": "s1"}

    async def chat(request: web.Request) -> web.Response:
        """The whole stream, with a replica name."""
        return web.Response(body=body, headers={**headers, "X-Replica": "a"})

    async def resume(request: web.Request) -> web.Response:
        """The events after Last-Event-ID (plus ``skew``), from another replica."""
        after = int(request.headers["Last-Event-ID"]) + skew
        return web.Response(body=b"".join(events[after:]), headers={**headers, "X-Replica": "b"})

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_get("/v1/streams/{id}", resume)
    return app


@pytest.mark.parametrize(
    ("skew", "replica", "errors"),
    [
        (0, "other", {}),
        (1, "other", {"replay": 4}),
        (-1, "other", {"replay": 4}),
        (0, "same", {"wrong_replica": 4}),
    ],
)
async def test_resume_rounds_check_the_replay_and_the_replica(
    skew: int, replica: Any, errors: dict[str, int], aiohttp_server: ServerFactory
) -> None:
    """A replay that starts one event late or early, or on the wrong replica, fails the round."""
    srv = await aiohttp_server(_resumer(with_ids(good_events()), skew))
    base = str(srv.make_url("")).rstrip("/")
    spec = ResumeSpec(base, base, SHAPE.model, rounds=4, warmup=0, max_seconds=20, replica=replica)
    result = await run_resumes(spec, content_pieces(SHAPE))
    assert dict(result.errors) == errors, result.samples
    if not errors:
        assert result.ok == 4
        assert len(result.first_byte) == 4
        assert result.replayed > 0
    else:
        assert result.ok == 0, result.samples


def test_commandstats_are_counted_per_event() -> None:
    """Calls between two INFO samples, without the benchmark's own INFO and PING."""
    before = parse_commandstats("# Commandstats\r\ncmdstat_xadd:calls=10,usec=20,x=1\r\n")
    after = parse_commandstats(
        "cmdstat_xadd:calls=30,usec=60\r\ncmdstat_info:calls=2,usec=9\r\n"
        "cmdstat_xread:calls=10,usec=10\r\ncmdstat_ping:calls=1,usec=1\r\n"
    )
    figures = command_figures(before, after, events=20)
    assert figures["calls"] == {"xadd": 20, "xread": 10}
    assert figures["commands_per_event"] == 1.5
    assert figures["per_event"] == {"xadd": 1.0, "xread": 0.5}
    assert figures["command_us_per_event"] == 2.5


async def test_load_client_stops_at_the_wall_clock_cap(aiohttp_server: ServerFactory) -> None:
    """Requests still running or never started at the cap are counted as errors, not dropped."""

    async def stall(request: web.Request) -> web.StreamResponse:
        """Start a stream and never finish it."""
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        await asyncio.sleep(30)
        return resp

    app = web.Application()
    app.router.add_post("/v1/chat/completions", stall)
    srv = await aiohttp_server(app)
    spec = LoadSpec(str(srv.make_url("/v1/chat/completions")), SHAPE.model, True, 5, 2, 0.3)
    async with LoadClient(spec, content_pieces(SHAPE)) as client:
        result = await client.run()
    assert result.capped
    assert result.ok == 0
    assert result.errors == {"cap_in_flight": 2, "cap_not_started": 3}
    assert result.wall_s < 5


async def test_load_client_gives_up_on_a_stream_kept_open_by_heartbeats(
    aiohttp_server: ServerFactory,
) -> None:
    """A stream that only sends keep-alive comments fails on its own timeout, not the cap."""

    async def heartbeats(request: web.Request) -> web.StreamResponse:
        """Start a stream and send nothing but comments."""
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for _ in range(300):
            await resp.write(b": keep-alive\n\n")
            await asyncio.sleep(0.1)
        return resp

    app = web.Application()
    app.router.add_post("/v1/chat/completions", heartbeats)
    srv = await aiohttp_server(app)
    url = str(srv.make_url("/v1/chat/completions"))
    spec = LoadSpec(url, SHAPE.model, True, 2, 2, max_seconds=20, request_timeout_s=0.5)
    async with LoadClient(spec, content_pieces(SHAPE)) as client:
        result = await client.run()
    assert not result.capped
    assert result.errors == {"request_timeout": 2}
    assert result.wall_s < 5
