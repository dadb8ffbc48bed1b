"""The benchmark's Responses and Messages load clients: a correct stream passes, and every
broken one fails under the check that caught it.

Loopback servers in this process only: no program is started.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestServer

from bench.load import LoadSpec
from bench.messages_load import MessagesLoadClient
from bench.responses_load import ResponsesLoadClient
from bench.shape import content_pieces
from tests.test_bench_checks import SHAPE, ServerFactory, _serve

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
