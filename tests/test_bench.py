"""The benchmark harness: its SSE parser, its checks, and one tiny end-to-end run.

No timing is asserted anywhere: the figures must exist and make sense, not be fast.
"""

from __future__ import annotations

import asyncio
import math
import shutil
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bench.load import LoadClient, LoadSpec
from bench.messages_load import MessagesLoadClient
from bench.redis_server import command_figures, parse_commandstats
from bench.responses_load import ResponsesLoadClient
from bench.resume import ResumeSpec, run_resumes
from bench.shape import Shape, content_pieces
from bench.sse import SSEParser

ROOT = Path(__file__).resolve().parent.parent
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


Event = tuple[str, dict[str, Any]]


def responses_events(background: bool = False) -> list[Event]:
    """A correct Responses stream for SHAPE (event name, data without its sequence number),
    built here independently of the gateway's builder."""
    pieces = content_pieces(SHAPE)
    text = "".join(pieces)

    def response(status: str, **fields: Any) -> dict[str, Any]:
        body = {"id": "resp_t", "object": "response", "model": SHAPE.model, "status": status}
        return {**body, "background": background, "store": True, "output": [], **fields}

    where = {"item_id": "msg_t", "output_index": 0, "content_index": 0}
    part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
    item = {"id": "msg_t", "type": "message", "role": "assistant", "status": "in_progress"}
    done = {**item, "status": "completed", "content": [part]}
    usage = {"input_tokens": 12, "output_tokens": SHAPE.chunks * SHAPE.size}
    events: list[Event] = [
        ("response.created", {"response": response("queued" if background else "in_progress")})
    ]
    if background:
        events.append(("response.queued", {"response": response("queued")}))
    events += [
        ("response.in_progress", {"response": response("in_progress")}),
        ("response.output_item.added", {"output_index": 0, "item": {**item, "content": []}}),
        ("response.content_part.added", {**where, "part": {**part, "text": ""}}),
        *(("response.output_text.delta", {**where, "delta": p, "logprobs": []}) for p in pieces),
        ("response.output_text.done", {**where, "text": text, "logprobs": []}),
        ("response.content_part.done", {**where, "part": part}),
        ("response.output_item.done", {"output_index": 0, "item": done}),
        ("response.completed", {"response": response("completed", output=[done], usage=usage)}),
    ]
    return events


def frames(events: list[Event]) -> list[bytes]:
    """The events on the wire, numbered 0, 1, 2... in order."""
    return [
        b"event: %s\ndata: %s\n\n"
        % (name.encode(), orjson.dumps({"type": name, **data, "sequence_number": seq}))
        for seq, (name, data) in enumerate(events)
    ]


def _responses_spec(srv: TestServer) -> LoadSpec:
    return LoadSpec(str(srv.make_url("/v1/responses")), SHAPE.model, True, 3, 2, 20)


@pytest.mark.parametrize("background", [False, True])
@pytest.mark.parametrize("piece", [7, 100_000])
async def test_responses_client_accepts_a_correct_stream(
    background: bool, piece: int, aiohttp_server: ServerFactory
) -> None:
    """A complete Responses stream passes; its output_text deltas are the relayed chunks."""
    srv = await _serve(frames(responses_events(background)), piece, aiohttp_server)
    spec = _responses_spec(srv)
    async with ResponsesLoadClient(spec, content_pieces(SHAPE), background=background) as client:
        result = await client.run()
    assert result.errors == {}, result.samples
    assert result.ok == 3
    assert result.chunks == result.content_chunks == 3 * SHAPE.chunks
    assert result.events == 3 * (SHAPE.chunks + (9 if background else 8))


def _renamed(events: list[Event]) -> list[bytes]:
    """The first delta framed under another event name than its type."""
    wire = frames(events)
    wire[4] = wire[4].replace(b"event: response.output_text.delta", b"event: response.delta")
    return wire


def _text(events: list[Event], text: str) -> list[Event]:
    """The completed response's text changed."""
    name, data = events[-1]
    response = orjson.loads(orjson.dumps(data["response"]))
    response["output"][0]["content"][0]["text"] = text
    return [*events[:-1], (name, {"response": response})]


RESPONSES_BROKEN = (
    pytest.param(lambda e: frames(e)[:5] + frames(e)[6:], "sequence", id="sequence gap"),
    pytest.param(lambda e: frames(e[:5] + e[6:]), "content", id="missing delta"),
    pytest.param(lambda e: frames([*e[:4], e[5], e[4], *e[6:]]), "content", id="reordered"),
    pytest.param(lambda e: frames(e[:-1]), "no_done", id="no completed"),
    pytest.param(lambda e: frames(e) + frames(e)[-1:], "after_done", id="event after completed"),
    pytest.param(lambda e: frames(e[1:]), "sequence", id="no created"),
    pytest.param(lambda e: frames([*e[:-1], ("response.failed", {})]), "error_event", id="failed"),
    pytest.param(_renamed, "sse_framing", id="event name differs from type"),
    pytest.param(lambda e: frames(_text(e, "other")), "content", id="completed text differs"),
    pytest.param(lambda e: [*frames(e)[:-1], b"data: {}\n\n"], "sse_framing", id="unnamed"),
)


@pytest.mark.parametrize(("breaker", "kind"), RESPONSES_BROKEN)
async def test_responses_client_counts_every_broken_stream(
    breaker: Callable[[list[Event]], list[bytes]], kind: str, aiohttp_server: ServerFactory
) -> None:
    """Each way a Responses stream can be incomplete or wrong fails every request as its kind."""
    srv = await _serve(breaker(responses_events()), 7, aiohttp_server)
    async with ResponsesLoadClient(
        _responses_spec(srv), content_pieces(SHAPE), background=False
    ) as client:
        result = await client.run()
    assert result.ok == 0, result.samples
    assert result.errors == {kind: 3}, result.samples


def messages_events() -> list[Event]:
    """A correct Messages stream for SHAPE (Anthropic's event types and data), built here
    independently of the gateway's builder; a ping after message_start, as Anthropic sends."""
    pieces = content_pieces(SHAPE)
    message = {"id": "msg_t", "type": "message", "role": "assistant", "model": SHAPE.model}
    message |= {"content": [], "stop_reason": None, "stop_sequence": None}
    message["usage"] = {"input_tokens": 12, "output_tokens": 0}
    usage = {"input_tokens": 12, "output_tokens": SHAPE.chunks * SHAPE.size}
    block = {"type": "text", "text": ""}
    return [
        ("message_start", {"message": message}),
        ("ping", {}),
        ("content_block_start", {"index": 0, "content_block": block}),
        *(
            ("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": p}})
            for p in pieces
        ),
        ("content_block_stop", {"index": 0}),
        ("message_delta", {"delta": {"stop_reason": "end_turn"}, "usage": usage}),
        ("message_stop", {}),
    ]


def messages_frames(events: list[Event]) -> list[bytes]:
    """Anthropic's frames: ``event: <type>`` and the data with its type, no id."""
    return [
        b"event: %s\ndata: %s\n\n" % (name.encode(), orjson.dumps({"type": name, **data}))
        for name, data in events
    ]


def _messages_spec(srv: TestServer) -> LoadSpec:
    return LoadSpec(str(srv.make_url("/v1/messages")), SHAPE.model, True, 3, 2, 20)


@pytest.mark.parametrize("piece", [7, 100_000])
async def test_messages_client_accepts_a_correct_stream(
    piece: int, aiohttp_server: ServerFactory
) -> None:
    """A complete Messages stream passes; its text_delta events are the relayed chunks, pings
    are not counted."""
    srv = await _serve(messages_frames(messages_events()), piece, aiohttp_server)
    async with MessagesLoadClient(_messages_spec(srv), content_pieces(SHAPE)) as client:
        result = await client.run()
    assert result.errors == {}, result.samples
    assert result.ok == 3
    assert result.chunks == result.content_chunks == 3 * SHAPE.chunks
    assert result.events == 3 * (SHAPE.chunks + 5)


def _delta(index: int, text: str) -> Event:
    return ("content_block_delta", {"index": index, "delta": {"type": "text_delta", "text": text}})


def _usage(events: list[Event], output_tokens: int | None) -> list[Event]:
    """message_delta's usage changed (None: absent)."""
    name, data = events[-2]
    usage = {**data["usage"], "output_tokens": output_tokens}
    changed = {**data, "usage": usage} if output_tokens is not None else {"delta": data["delta"]}
    return [*events[:-2], (name, changed), events[-1]]


def _second_block(events: list[Event]) -> list[Event]:
    """The last delta in a second text block opened before the first was stopped."""
    start = ("content_block_start", {"index": 1, "content_block": {"type": "text", "text": ""}})
    return [*events[:-5], start, _delta(1, events[-4][1]["delta"]["text"]), *events[-3:]]


MESSAGES_BROKEN = (
    pytest.param(lambda e: messages_frames(e[:4] + e[5:]), "chunk_count", id="missing delta"),
    pytest.param(lambda e: messages_frames([*e[:3], e[4], e[3], *e[5:]]), "content", id="reorder"),
    pytest.param(lambda e: messages_frames(e[:-1]), "no_done", id="no message_stop"),
    pytest.param(lambda e: messages_frames(e + e[-1:]), "after_done", id="event after stop"),
    pytest.param(lambda e: messages_frames(e[1:]), "sequence", id="no message_start"),
    pytest.param(lambda e: messages_frames(e[:-3] + e[-2:]), "sequence", id="block not stopped"),
    pytest.param(lambda e: messages_frames(_second_block(e)), "sequence", id="blocks overlap"),
    pytest.param(
        lambda e: messages_frames([*e[:3], _delta(1, e[3][1]["delta"]["text"]), *e[4:]]),
        "block",
        id="delta of another block",
    ),
    pytest.param(lambda e: messages_frames(_usage(e, 1)), "usage", id="wrong usage"),
    pytest.param(lambda e: messages_frames(_usage(e, None)), "usage", id="no usage"),
    pytest.param(
        lambda e: messages_frames([*e[:-1], ("error", {"error": {}})]), "error_event", id="error"
    ),
    pytest.param(
        lambda e: [*messages_frames(e)[:-1], b"data: {}\n\n"], "sse_framing", id="unnamed"
    ),
)


@pytest.mark.parametrize(("breaker", "kind"), MESSAGES_BROKEN)
async def test_messages_client_counts_every_broken_stream(
    breaker: Callable[[list[Event]], list[bytes]], kind: str, aiohttp_server: ServerFactory
) -> None:
    """Each way a Messages stream can be incomplete or wrong fails every request as its kind."""
    srv = await _serve(breaker(messages_events()), 7, aiohttp_server)
    async with MessagesLoadClient(_messages_spec(srv), content_pieces(SHAPE)) as client:
        result = await client.run()
    assert result.ok == 0, result.samples
    assert result.errors == {kind: 3}, result.samples


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


def _run_bench(tmp_path: Path, *flags: str) -> dict[str, Any]:
    """Run ``python -m bench --quick`` as the user would; return its saved report."""
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--results-dir", str(tmp_path), *flags],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert (tmp_path / "latest.md").read_text().startswith("# llms gateway benchmark")
    report: dict[str, Any] = orjson.loads((tmp_path / "latest.json").read_bytes())
    return report


def _positive(value: Any) -> bool:
    """A finite number above zero."""
    return isinstance(value, int | float) and math.isfinite(value) and value > 0


ADAPTERS = {"adapter_ollama", "adapter_anthropic", "adapter_gemini"}
RESPONSES = {"responses", "responses_nostore", "responses_background"}
MESSAGES = {"messages"}
BASIC = {"latency", "throughput", "nonstream", *ADAPTERS, *RESPONSES, *MESSAGES}
CLEAN_STOP = "stopped on SIGTERM with exit code 0"
SCENARIO_CHUNKS = 50  # bench.scenarios.THROUGHPUT, the Responses and Messages scenarios' shape
HAS_REDIS = shutil.which("redis-server") is not None


def _check_runs(report: dict[str, Any], runs: tuple[str, ...], scenarios: set[str]) -> None:
    """Every run finished every request, error-free, with positive figures."""
    assert set(report["scenarios"]) == scenarios
    for name, scenario in report["scenarios"].items():
        for run in runs:
            r = scenario[run]
            where = f"{name}/{run}"
            assert r["errors"] == 0, (where, r["error_samples"])
            assert not r["capped"], where
            assert r["requests_ok"] == scenario["settings"]["requests"], where
            assert _positive(r["rps"]), where
            assert _positive(r["total_ms"]["p99"]), where
            assert _positive(r["cpu"]["upstream"]["seconds"]), where
            assert _positive(r["cpu"]["client"]["seconds"]), where
            if scenario["settings"]["stream"]:
                assert _positive(r["ttft_ms"]["p50"]), where
                assert _positive(r["ttft_ms"]["p99"]), where
                # Unpaced chunks can all arrive in one read, so their gaps may all be zero.
                paced = "-d0-" not in scenario["settings"]["model"]
                assert _positive(r["gap_ms"]["p99"]) if paced else r["gap_ms"]["p99"] >= 0, where
                assert _positive(r["cpu"]["upstream"]["us_per_chunk"]), where
    machine = report["machine"]
    for key in ("cpu_model", "cores", "python", "aiohttp"):
        assert machine[key], key
    assert "bench" in report["command"]


def test_bench_direct_only(tmp_path: Path) -> None:
    """The harness alone: fake upstream and load generator, no gateway."""
    report = _run_bench(tmp_path, "--direct-only")
    _check_open_streams(report, ("direct",))
    assert report["scaling"] == {"skipped": "direct-only run"}
    _check_runs(report, ("direct",), BASIC)
    assert report["resume"] == {}
    assert report["redis"] == {"skipped": "direct-only run"}
    fig = report["figures"]
    assert fig["errors"] == 0
    assert _positive(fig["upstream_cpu_us_per_chunk"])
    assert _positive(fig["client_cpu_us_per_chunk"])
    assert all(_positive(rps["direct"]) for rps in fig["rps"].values())
    for protocol, adapter in fig["adapters"].items():
        assert _positive(adapter["upstream_cpu_us_per_chunk_direct"]), protocol
        assert adapter["gateway_cpu_us_per_chunk"] is None, protocol
    assert set(fig["responses"]) == RESPONSES
    assert set(fig["messages"]) == MESSAGES
    for name, responses in [*fig["responses"].items(), *fig["messages"].items()]:
        assert _positive(responses["rps_direct"]), name
        assert responses["gateway_cpu_us_per_chunk"] is None, name
        assert responses["ratio_to_chat"] is None, name
        assert responses["chat_before_after_us_per_chunk"] == [None, None], name


def _check_gateway_figures(fig: dict[str, Any]) -> None:
    """The figures every gateway run has, Redis or not."""
    assert fig["errors"] == 0
    for name in (
        "gateway_cpu_us_per_chunk",
        "gateway_cpu_us_per_request_stream",
        "gateway_cpu_us_per_request_nonstream",
        "upstream_cpu_us_per_chunk",
        "client_cpu_us_per_chunk",
        # A gateway hop cannot be free, so even five requests show a positive median.
        "added_ttft_p50_ms",
        "resumable_cpu_us_per_chunk",
        "resumable_cpu_ratio",
    ):
        assert _positive(fig[name]), name
    for name in ("added_ttft_p99_ms", "added_gap_p99_ms"):
        # Differences of two tails: present and finite, but at five requests noise can make
        # them zero or negative, so their sign is not asserted.
        assert isinstance(fig[name], float), name
        assert math.isfinite(fig[name]), name
    for name, rps in fig["rps"].items():
        for way in ("direct", "gateway", "ratio"):
            assert _positive(rps[way]), (name, way)
    # Each adapter relayed its native stream error-free, with its CPU measured both ways.
    assert set(fig["adapters"]) == {name.removeprefix("adapter_") for name in ADAPTERS}
    for protocol, adapter in fig["adapters"].items():
        assert adapter["errors"] == 0, protocol
        for name in (
            "gateway_cpu_us_per_chunk",
            "ratio_to_openai",
            "upstream_cpu_us_per_chunk_direct",
            "client_cpu_us_per_chunk_direct",
            "rps_direct",
            "rps_gateway",
        ):
            assert _positive(adapter[name]), (protocol, name)
    _check_responses_figures(fig)
    _check_messages_figures(fig)


def _check_messages_figures(fig: dict[str, Any]) -> None:
    """The Messages scenario relayed complete event sequences error-free, its CPU per chunk
    next to chat's of the same run, as a ratio (issue 13)."""
    assert set(fig["messages"]) == MESSAGES
    messages = fig["messages"]["messages"]
    assert messages["errors"] == 0
    for figure in (
        "gateway_cpu_us_per_chunk",
        "gateway_cpu_us_per_request",
        "chat_gateway_cpu_us_per_chunk",
        "ratio_to_chat",
        "ratio_to_throughput",
        "rps_direct",
        "rps_gateway",
    ):
        assert _positive(messages[figure]), figure
    assert all(_positive(chat) for chat in messages["chat_before_after_us_per_chunk"])
    assert messages["throughput_gateway_cpu_us_per_chunk"] == fig["gateway_cpu_us_per_chunk"]
    # One relayed chunk per text_delta; 5 events around them (start, block start/stop, the
    # message_delta and message_stop; pings are not counted).
    assert messages["chunks_per_answer"] == SCENARIO_CHUNKS
    assert messages["events_per_answer"] == SCENARIO_CHUNKS + 5


def _check_responses_figures(fig: dict[str, Any]) -> None:
    """Each Responses scenario relayed complete event sequences error-free, its CPU per chunk
    next to chat's of the same run, as a ratio."""
    assert set(fig["responses"]) == RESPONSES
    chunks = SCENARIO_CHUNKS
    for name, responses in fig["responses"].items():
        assert responses["errors"] == 0, name
        for figure in (
            "gateway_cpu_us_per_chunk",
            "gateway_cpu_us_per_request",
            "chat_gateway_cpu_us_per_chunk",
            "ratio_to_chat",
            "ratio_to_throughput",
            "rps_direct",
            "rps_gateway",
        ):
            assert _positive(responses[figure]), (name, figure)
        # Chat just before and just after, on the same gateway; and the throughput scenario.
        assert all(_positive(chat) for chat in responses["chat_before_after_us_per_chunk"])
        assert responses["throughput_gateway_cpu_us_per_chunk"] == fig["gateway_cpu_us_per_chunk"]
        # One relayed chunk per output_text delta; 8 events around them (9 with queued).
        assert responses["chunks_per_answer"] == chunks, name
        extra = 9 if name == "responses_background" else 8
        assert responses["events_per_answer"] == chunks + extra, name


def _check_resume(report: dict[str, Any], runs: tuple[str, ...]) -> None:
    """Every resume round replayed exactly the events after its Last-Event-ID, error-free."""
    resume = report["resume"]
    assert set(resume) == {"settings", *runs}
    rounds = resume["settings"]["rounds"]
    for run in runs:
        r = resume[run]
        assert r["errors"] == 0, (run, r["error_samples"])
        assert not r["capped"], run
        assert r["requests_ok"] == rounds, run
        for q in ("p50", "p99"):
            assert _positive(r["first_byte_ms"][q]), (run, q)
            assert _positive(report["figures"]["resume_first_byte_ms"][run][q]), (run, q)
        assert _positive(r["total_ms"]["p99"]), run
        if run != "direct":
            assert _positive(r["events_replayed"]), run


def _check_open_streams(report: dict[str, Any], runs: tuple[str, ...]) -> None:
    """Many open streams: every stream of every size complete and intact, figures present."""
    section = report["open_streams"]
    assert section["figures"]["errors"] == 0
    assert section["memory_source"].startswith("Rss from /proc/<pid>/smaps_rollup")
    for n, entry in section["sizes"].items():
        for run in runs:
            if run == "gateway" and section["has_workers"] is False and "gateway" not in entry:
                assert "has no --workers" in entry["gateway_skipped"]
                continue
            r = entry[run]
            where = f"open {n}/{run}"
            assert r["errors"] == 0, (where, r["error_samples"])
            assert not r["capped"], where
            assert r["requests_ok"] == int(n), where
            assert r["content_chunks"] == int(n) * entry["settings"]["chunks"], where
            for name in ("upstream", "client"):
                assert _positive(r["cpu_cores"][name]), (where, name)
            assert _positive(r["gap_ms"]["p99"]), where
            assert _positive(r["ttft_ms"]["p99"]), where
            memory = r["memory"]
            assert memory["most_open_at_once"] > 0, where
            assert isinstance(memory["rss_per_stream_kib"], int | float), where
            assert memory["peak_fds_per_process"] > 0, where
    if "gateway" not in runs:
        assert all(entry["gateway_skipped"] for entry in section["sizes"].values())
        return
    if section["has_workers"] is False:
        return
    assert {t["verdict"] for t in section["figures"]["targets"]} <= {"meets", "misses"}
    # The second size runs through --workers 2 (forced in --quick).
    last = list(section["sizes"].values())[-1]
    assert last["fds"]["workers"] == 2
    assert last["gateway"]["memory"]["process"] == "gateway --workers 2"


def _check_scaling(report: dict[str, Any]) -> None:
    """Scaling with workers: both worker counts served every request; the ratio is there."""
    scaling = report["scaling"]
    if report["open_streams"]["has_workers"] is False:
        # A build of `llms serve` without --workers: reported, not failed.
        assert scaling == {"skipped": "skipped: llms serve has no --workers"}
        return
    assert set(scaling["workers"]) == {"1", "2"}
    for workers, runs in scaling["workers"].items():
        for name, r in runs.items():
            assert r["errors"] == 0, (workers, name, r["error_samples"])
            assert _positive(r["rps"]), (workers, name)
            assert _positive(r["cpu_cores"]["gateway"]), (workers, name)
    for name in scaling["settings"]:
        assert _positive(scaling["figures"][name]["ratio"]), name
    for workers, gateway in report["dedicated_gateways"].items():
        assert gateway["stop"] == CLEAN_STOP, workers
        assert gateway["warmup"]["errors"] == 0, workers


def test_bench_through_the_gateway(tmp_path: Path) -> None:
    """The whole benchmark at its tiny size: zero errors and every figure present."""
    report = _run_bench(tmp_path)
    _check_open_streams(report, ("direct", "gateway"))
    _check_scaling(report)
    markdown = (tmp_path / "latest.md").read_text()
    assert "## Many open streams" in markdown
    for name in RESPONSES | MESSAGES:
        assert f"| {name} (" in markdown, name
    scenarios = BASIC | {"resumable", "resumable_redis"} if HAS_REDIS else BASIC | {"resumable"}
    _check_runs(report, ("direct", "gateway"), scenarios)
    fig = report["figures"]
    _check_gateway_figures(fig)
    assert report["gateway"]["stop"] == CLEAN_STOP
    resumable = report["scenarios"]["resumable"]["gateway"]
    assert resumable["events"] > resumable["chunks"] > 0  # [DONE] carries an id too
    if not HAS_REDIS:
        assert "skipped" in report["redis"]
        _check_resume(report, ("direct", "memory"))
        return
    _check_resume(report, ("direct", "memory", "redis_same", "redis_across"))
    for name in (
        "redis_gateway_cpu_us_per_chunk",
        "redis_gateway_cpu_ratio",
        "redis_server_cpu_us_per_chunk",
        "redis_commands_per_event",
    ):
        assert _positive(fig[name]), name
    redis_run = report["scenarios"]["resumable_redis"]["gateway"]
    assert redis_run["redis"]["events"] == redis_run["events"]
    assert _positive(redis_run["cpu"]["redis"]["seconds"])
    assert _positive(fig["redis_commands_by_name_per_event"]["xadd"])
    assert report["redis"]["server"]["stop"] == CLEAN_STOP
    assert {r["stop"] for r in report["redis"]["replicas"].values()} == {CLEAN_STOP}
    # Across replicas means what it says: the resume was answered by the other replica.
    (pair,) = report["resume"]["redis_across"]["replicas_seen"]
    started, resumed = pair.split("->")
    assert started != resumed
    (pair,) = report["resume"]["redis_same"]["replicas_seen"]
    assert pair.split("->")[0] == pair.split("->")[1]


def test_bench_without_redis_skips_the_redis_scenarios(tmp_path: Path) -> None:
    """No redis-server: the Redis scenarios are reported as skipped and the run still passes."""
    # Every scenario but the open-streams and scaling ones, which use no Redis (and take time).
    only = ",".join(sorted(BASIC | {"resumable", "resumable_redis", "resume"}))
    no_redis = str(tmp_path / "no-such-redis-server")
    report = _run_bench(tmp_path, "--redis-server", no_redis, "--only", only)
    assert "open_streams" not in report
    _check_runs(report, ("direct", "gateway"), BASIC | {"resumable"})
    _check_gateway_figures(report["figures"])
    _check_resume(report, ("direct", "memory"))
    assert "not found" in report["redis"]["skipped"]
    assert report["figures"]["redis_commands_per_event"] is None
    assert "skipped" in (tmp_path / "latest.md").read_text()
