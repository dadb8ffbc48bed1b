"""The benchmark's native protocols: the fake upstream's encoders and the load generator's parsers.

Fast and timing-free; the end-to-end adapter scenarios run in tests/test_bench.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bench.fleet import gateway_config
from bench.load import Failure, LoadSpec
from bench.native import (
    NATIVE,
    PROMPT_TOKENS,
    Protocol,
    completion_tokens,
    encode_native,
    native_url,
    public_model,
    request_problem,
    route,
)
from bench.native_load import (
    LineSplitter,
    NativeLoadClient,
    NativeSSE,
    NativeStream,
    check_anthropic,
    check_gemini,
    check_ollama,
    finish_native,
    load_client,
)
from bench.shape import Shape, content_pieces
from bench.upstream import Upstream, UpstreamProtocol
from llms.config import parse_config

SHAPE = Shape(chunks=6, delay_ms=0, first_ms=0, size=8)
USAGE = (PROMPT_TOKENS, completion_tokens(SHAPE))
ServerFactory = Callable[[web.Application], Awaitable[TestServer]]


def _dechunk(body: bytes) -> bytes:
    """The payload of an HTTP/1.1 chunked body that ends with its zero-size chunk."""
    out = b""
    while True:
        size_line, _, body = body.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            assert body == b"\r\n"
            return out
        out += body[:size]
        assert body[size : size + 2] == b"\r\n"
        body = body[size + 2 :]


def _payload(protocol: Protocol, shape: Shape = SHAPE) -> tuple[bytes, bytes]:
    """(head, payload) of the stored answer."""
    encoded = encode_native(protocol, shape)
    head, _, body = encoded.whole.partition(b"\r\n\r\n")
    assert encoded.head == head + b"\r\n\r\n"
    return head, _dechunk(body)


def _parse(protocol: Protocol, payload: bytes, piece: int) -> NativeStream:
    """Feed ``payload`` to the protocol's parser and checks in ``piece``-byte reads."""
    state = NativeStream()
    if protocol == "ollama":
        lines = LineSplitter()
        for start in range(0, len(payload), piece):
            for line in lines.feed(payload[start : start + piece]):
                check_ollama(line, 0.0, SHAPE.model, state)
                state.events += 1
        for line in lines.close():
            check_ollama(line, 0.0, SHAPE.model, state)
            state.events += 1
    else:
        check = check_anthropic if protocol == "anthropic" else check_gemini
        parser = NativeSSE()
        for start in range(0, len(payload), piece):
            for event, data in parser.feed(payload[start : start + piece]):
                check(event, data, 0.0, SHAPE.model, state)
                state.events += 1
        parser.close()
        if parser.problems:
            raise Failure("sse_framing", "; ".join(parser.problems))
    finish_native(state, content_pieces(SHAPE), USAGE)
    return state


@pytest.mark.parametrize("protocol", NATIVE)
@pytest.mark.parametrize("piece", [1, 7, 1_000_000])
def test_native_answers_carry_the_pieces_and_the_usage(protocol: Protocol, piece: int) -> None:
    """Each encoder's answer parses, whatever the split, into exactly the shape's pieces."""
    _, payload = _payload(protocol)
    state = _parse(protocol, payload, piece)
    assert state.pieces == list(content_pieces(SHAPE))
    assert state.usage == USAGE
    assert state.chunks == SHAPE.chunks + 2
    native_events = {"ollama": 7, "anthropic": 12, "gemini": 6}
    assert state.events == native_events[protocol]


def test_native_answers_are_framed_as_each_provider_frames_them() -> None:
    """Content types, Ollama's final line, Anthropic's named events, Gemini's CRLF events."""
    head, payload = _payload("ollama")
    assert b"Content-Type: application/x-ndjson" in head
    assert b"Transfer-Encoding: chunked" in head
    last = orjson.loads(payload.splitlines()[-1])
    assert last["done"] is True and last["done_reason"] == "stop"
    assert (last["prompt_eval_count"], last["eval_count"]) == USAGE

    head, payload = _payload("anthropic")
    assert b"Content-Type: text/event-stream" in head
    names = [line[7:] for line in payload.split(b"\n") if line.startswith(b"event: ")]
    assert names == [
        b"message_start",
        b"content_block_start",
        b"ping",
        *[b"content_block_delta"] * SHAPE.chunks,
        b"content_block_stop",
        b"message_delta",
        b"message_stop",
    ]

    head, payload = _payload("gemini")
    assert b"Content-Type: text/event-stream" in head
    events = payload.split(b"\r\n\r\n")
    assert events.pop() == b""
    assert all(event.startswith(b"data: ") and b"\n" not in event for event in events)
    last = orjson.loads(events[-1][6:])
    assert last["candidates"][0]["finishReason"] == "STOP"
    assert last["usageMetadata"]["candidatesTokenCount"] == USAGE[1]
    assert b"[DONE]" not in payload


def _drop_piece(protocol: Protocol, payload: bytes) -> bytes:
    """The answer without its second piece."""
    second = orjson.dumps(content_pieces(SHAPE)[1])
    sep = b"\n" if protocol == "ollama" else b"\n\n" if protocol == "anthropic" else b"\r\n\r\n"
    return sep.join(part for part in payload.split(sep) if second not in part)


def _cut(protocol: Protocol, payload: bytes) -> bytes:
    """The answer without its terminator (Gemini: without its finishReason)."""
    if protocol == "gemini":
        return payload.replace(b',"finishReason":"STOP"', b"")
    if protocol == "ollama":
        return payload[: payload.rindex(b"\n", 0, -1) + 1]
    return payload[: payload.rindex(b"event: message_stop")]


def _usage(protocol: Protocol, payload: bytes) -> bytes:
    """The answer with the wrong completion count."""
    count = str(USAGE[1]).encode()
    field = {"ollama": b'"eval_count":', "anthropic": b'"output_tokens":'}
    if protocol == "gemini":
        return payload.replace(b'"candidatesTokenCount":' + count, b'"candidatesTokenCount":1')
    return payload.replace(field[protocol] + count, field[protocol] + b"1")


def _error(protocol: Protocol, payload: bytes) -> bytes:
    """The answer interrupted by the provider's own mid-stream error."""
    error = {
        "ollama": b'{"error":"an error was encountered while running the model"}\n',
        "anthropic": b"event: error\ndata: "
        b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n',
        "gemini": b'data: {"error":{"code":500,"message":"boom","status":"INTERNAL"}}\r\n\r\n',
    }[protocol]
    return error + payload


BROKEN = (
    pytest.param(_drop_piece, "chunk_count", id="missing piece"),
    pytest.param(_cut, "no_done", id="no terminator"),
    pytest.param(_usage, "usage", id="wrong usage"),
    pytest.param(_error, "error_event", id="error"),
    pytest.param(lambda p, b: b.replace(b"bench-c6", b"other-c6"), "wrong_model", id="wrong model"),
    pytest.param(lambda p, b: b + b"x", "trailing", id="trailing junk"),
)
# Junk after the end: a line after Ollama's done line; an event cut off by the end of SSE.
TRAILING = {"ollama": "after_done", "anthropic": "sse_framing", "gemini": "sse_framing"}


@pytest.mark.parametrize("protocol", NATIVE)
@pytest.mark.parametrize(("transform", "kind"), BROKEN)
def test_native_checks_catch_every_broken_answer(
    protocol: Protocol, transform: Callable[[Protocol, bytes], bytes], kind: str
) -> None:
    """A missing piece, a missing end, wrong usage, an error, another model: each is caught."""
    _, payload = _payload(protocol)
    broken = transform(protocol, payload)
    assert broken != payload
    with pytest.raises(Failure) as caught:
        _parse(protocol, broken, 5)
    assert caught.value.kind == TRAILING[protocol] if kind == "trailing" else kind, caught.value


def test_anthropic_events_must_be_named_after_their_type() -> None:
    """Anthropic names every event; an unnamed or misnamed one is a framing failure."""
    _, payload = _payload("anthropic")
    with pytest.raises(Failure, match="carries type") as caught:
        _parse("anthropic", payload.replace(b"event: ping\n", b""), 9)
    assert caught.value.kind == "sse_framing"


def test_native_sse_and_lines_handle_crlf_comments_and_a_last_line_without_newline() -> None:
    """What real providers send at the edges: CRLF, comments, no final newline."""
    parser = NativeSSE()
    events = parser.feed(b": hi\r\nevent: a\r\ndata: 1\r\n\r\ndata:2\n\n")
    assert events == [(b"a", b"1"), (None, b"2")]
    events = parser.feed(b"data: 3\r")
    events += parser.feed(b"\n\r\n")
    assert events == [(None, b"3")]
    parser.close()
    assert parser.problems == []
    parser.feed(b"retry: 5\n\ndata: cut")
    parser.close()
    assert len(parser.problems) == 2

    lines = LineSplitter()
    assert lines.feed(b'{"a":1}\n\n{"b"') == [b'{"a":1}']
    assert lines.feed(b":2}") == []
    assert lines.close() == [b'{"b":2}']


def test_fake_upstream_routes_each_protocol() -> None:
    """The paths the gateway's adapters use, and what the fake refuses to answer."""
    assert route("POST", "/api/chat") == ("ollama", None, True)
    assert route("POST", "/v1/messages") == ("anthropic", None, True)
    path = f"/v1beta/models/{SHAPE.model}:streamGenerateContent"
    assert route("POST", path) == ("gemini", SHAPE.model, True)
    plain = f"/v1beta/models/{SHAPE.model}:generateContent"
    assert route("POST", plain) == ("gemini", SHAPE.model, False)
    assert route("GET", "/api/chat") is None
    assert route("POST", "/v1/chat/completions") is None
    contents = {"contents": [{"role": "user", "parts": [{"text": "x"}]}]}
    assert request_problem("gemini", contents, "alt=sse", True) is None
    assert request_problem("gemini", contents, "", True) is not None
    messages = {"messages": [{"role": "user", "content": "x"}]}
    assert request_problem("ollama", messages, "", True) is None
    assert request_problem("ollama", {**messages, "stream": False}, "", True) is not None
    assert request_problem("anthropic", {**messages, "stream": True}, "", True) is not None
    assert (
        request_problem("anthropic", {**messages, "stream": True, "max_tokens": 9}, "", True)
        is None
    )


def test_gateway_config_routes_each_adapter_to_the_fake_upstream() -> None:
    """`<type>-<model>` reaches a provider of that type asking the upstream for `<model>`."""
    config = parse_config(gateway_config("http://127.0.0.1:9", [SHAPE.model]), env={})
    routes = config.routes()
    assert [p.type for p in routes[SHAPE.model]] == ["openai"]
    for protocol in NATIVE:
        (provider,) = routes[public_model(protocol, SHAPE.model)]
        assert provider.type == protocol
        assert provider.models[public_model(protocol, SHAPE.model)] == SHAPE.model
        assert provider.base_url.startswith("http://127.0.0.1:9")


@pytest.fixture
async def fake_upstream() -> AsyncIterator[str]:
    """The benchmark's fake upstream, in this process, on a free port; yields its base URL."""
    loop = asyncio.get_running_loop()
    upstream = Upstream([SHAPE.model])
    server = await loop.create_server(lambda: UpstreamProtocol(upstream), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    server.close()
    await server.wait_closed()


@pytest.mark.parametrize("protocol", NATIVE)
async def test_native_client_against_the_fake_upstream(
    protocol: Protocol, fake_upstream: str
) -> None:
    """The direct run of an adapter scenario: native requests, native answers, all checked."""
    spec = LoadSpec(f"{fake_upstream}/v1/chat/completions", SHAPE.model, True, 6, 3, max_seconds=20)
    client = load_client(protocol, spec, content_pieces(SHAPE), direct=True)
    assert isinstance(client, NativeLoadClient)
    assert client.spec.url == native_url(protocol, fake_upstream, SHAPE.model)
    async with client:
        result = await client.run()
    assert result.errors == {}, result.samples
    assert result.ok == 6
    assert result.content_chunks == 6 * SHAPE.chunks
    assert result.chunks == 6 * (SHAPE.chunks + 2)
    # Through the gateway the same scenario is an OpenAI request for the public model.
    gateway = load_client(protocol, spec, content_pieces(SHAPE), direct=False)
    assert not isinstance(gateway, NativeLoadClient)
    assert gateway.spec.model == public_model(protocol, SHAPE.model)


async def test_native_client_counts_an_answer_in_another_protocol(
    aiohttp_server: ServerFactory,
) -> None:
    """An Anthropic client given Ollama's answer fails every request, it does not hang."""
    _, payload = _payload("ollama")

    async def messages(request: web.Request) -> web.Response:
        return web.Response(body=payload, content_type="text/event-stream")

    app = web.Application()
    app.router.add_post("/v1/messages", messages)
    srv = await aiohttp_server(app)
    spec = LoadSpec(str(srv.make_url("/v1/chat/completions")), SHAPE.model, True, 2, 2, 20)
    async with load_client("anthropic", spec, content_pieces(SHAPE), direct=True) as client:
        result = await client.run()
    assert result.ok == 0
    assert sum(result.errors.values()) == 2, result.errors


def test_native_encoders_refuse_openai() -> None:
    with pytest.raises(ValueError, match="not a native protocol"):
        encode_native("openai", SHAPE)
