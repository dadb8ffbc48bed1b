"""Non-stream answers are bounded and whole (issue 11, items 1 and 11).

Item 1: a non-stream answer folded from a stream (Ollama, Anthropic, Gemini) holds at most
`server.max_answer_mb` (else 502 `upstream_too_large`, upstream closed) and must be complete within
`timeouts.answer_s` (else 504 `upstream_timeout`, upstream closed). The hostile upstream is a real
aiohttp server speaking the three protocols; the memory bound is shown with the RSS of a real
`llms serve` process.

Item 11: every field the upstream put in an answer reaches the client, streamed or not: the
legacy `function_call`, `annotations`, `audio`, `refusal`, fields the gateway does not know, and
the top-level `service_tier` and `system_fingerprint`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import openai
import orjson
import psutil
import pytest
from aiohttp import web

from llms.adapters import openai as openai_adapter
from llms.adapters.base import StreamContext
from llms.chunks import Fold, StreamMeta, delta_chunk, fold
from llms.errors import UpstreamMalformed
from llms.framing import SSEEvent
from llms.wire import Chunk
from tests.conftest import gateway_config
from tests.test_cli import start_serve, write_config
from tests.upstreams.anthropic import event, message_start, text_delta, text_start
from tests.upstreams.ollama import NDJSON, line

Gateway = Callable[..., Awaitable[str]]
PROTOCOLS = ("ollama", "anthropic", "gemini")
MSG = [{"role": "user", "content": "hi"}]
BIG = "x" * 65536


# --- a hostile upstream ------------------------------------------------------------------------


def _text_event(protocol: str, text: str) -> bytes:
    if protocol == "ollama":
        return orjson.dumps(line(text)) + b"\n"
    if protocol == "anthropic":
        return event(text_delta(text))
    part = {"candidates": [{"content": {"role": "model", "parts": [{"text": text}]}, "index": 0}]}
    return b"data: " + orjson.dumps(part) + b"\r\n\r\n"


class Hostile:
    """Answers Ollama's, Anthropic's and Gemini's chat requests with a stream that never ends.

    Upstream model `flood`: 64 KiB text events as fast as they are taken; `trickle`: a short
    text event every 50 ms. `gone` counts the answers whose reader went away.
    """

    def __init__(self) -> None:
        self.gone = 0
        self.active = 0
        self.received = 0
        self.app = web.Application()
        self.app.router.add_post("/{tail:.*}", self._chat)
        self.base_url = ""

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        if path == "/api/chat":
            protocol, model = "ollama", (await request.json())["model"]
        elif path == "/v1/messages":
            protocol, model = "anthropic", (await request.json())["model"]
        elif path.endswith(":streamGenerateContent"):
            protocol, model = "gemini", path.rsplit("/", 1)[-1].split(":")[0]
        else:  # not a chat (the gateway asks Ollama's /api/show what a model is): no answer
            raise web.HTTPNotFound()
        self.received += 1
        self.active += 1
        content_type = NDJSON if protocol == "ollama" else "text/event-stream"
        response = web.StreamResponse(headers={"Content-Type": content_type})
        try:
            await response.prepare(request)
            if protocol == "anthropic":
                await response.write(event(message_start()) + event(text_start()))
            flooding = model == "flood"
            piece = _text_event(protocol, BIG if flooding else "tick ")
            while True:
                await response.write(piece)
                if not flooding:
                    await asyncio.sleep(0.05)
        except (asyncio.CancelledError, ConnectionError):
            self.gone += 1
            raise
        finally:
            self.active -= 1


@pytest.fixture
async def hostile() -> AsyncIterator[Hostile]:
    fake = Hostile()
    runner = web.AppRunner(fake.app, shutdown_timeout=1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    fake.base_url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield fake
    await runner.cleanup()


def hostile_providers(base_url: str, **timeouts: float) -> dict[str, Any]:
    """One provider per protocol, each serving `<protocol>-flood` and `<protocol>-trickle`."""
    return {
        protocol: {
            "type": protocol,
            "base_url": base_url,
            "api_key": "k",
            "models": {f"{protocol}-{kind}": kind for kind in ("flood", "trickle")},
            "timeouts": timeouts,
        }
        for protocol in PROTOCOLS
    }


async def ask_whole(base: str, model: str) -> tuple[int, dict[str, Any]]:
    """A non-stream chat request; the status and the JSON body."""
    body = {"model": model, "messages": MSG}
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{base}/chat/completions", json=body) as response,
    ):
        return response.status, await response.json()


async def read_a_little(base: str, model: str) -> None:
    """A stream request whose first events are read, then the client leaves."""
    body = {"model": model, "messages": MSG, "stream": True}
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{base}/chat/completions", json=body) as response,
    ):
        assert response.status == 200
        for _ in range(3):
            await response.content.readline()


async def until(condition: Callable[[], bool], hostile: Hostile | None = None) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting: {vars(hostile or until)}"
        await asyncio.sleep(0.02)


# --- item 1: every fold is bounded in size and in time -----------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_flooding_upstream_is_cut_at_max_answer_mb(
    protocol: str, hostile: Hostile, make_gateway: Gateway
) -> None:
    config = gateway_config(
        hostile_providers(hostile.base_url),
        server={"max_answer_mb": 1},
        routing={"max_attempts": 1},
    )
    base = await make_gateway(config)
    # Without the bound the answer never comes: the guard turns that hang into a failure.
    async with asyncio.timeout(15):
        status, body = await ask_whole(base, f"{protocol}-flood")
    assert status == 502, body
    error = body["error"]
    assert error["code"] == "upstream_too_large"
    assert error["type"] == "server_error"
    assert "1 MiB" in error["message"] and "max_answer_mb" in error["message"]
    await until(lambda: hostile.gone == 1 and hostile.active == 0, hostile)


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_trickling_upstream_is_cut_at_answer_s(
    protocol: str, hostile: Hostile, make_gateway: Gateway
) -> None:
    # Each read comes well within idle_s; only the whole answer's deadline can end it.
    config = gateway_config(
        hostile_providers(hostile.base_url, answer_s=1, idle_s=10, first_token_s=1),
        routing={"max_attempts": 1},
    )
    base = await make_gateway(config)
    async with asyncio.timeout(15):
        status, body = await ask_whole(base, f"{protocol}-trickle")
    assert status == 504, body
    error = body["error"]
    assert error["code"] == "upstream_timeout"
    assert error["type"] == "timeout"
    assert "answer_s" in error["message"]
    await until(lambda: hostile.gone == 1 and hostile.active == 0, hostile)


async def test_a_stream_client_of_a_trickling_upstream_is_not_cut_at_answer_s(
    hostile: Hostile, make_gateway: Gateway
) -> None:
    """`answer_s` is a non-stream deadline: a stream that keeps coming is left alone."""
    config = gateway_config(
        hostile_providers(hostile.base_url, answer_s=0.3, idle_s=10, first_token_s=10),
        routing={"max_attempts": 1},
    )
    base = await make_gateway(config)
    body = {"model": "ollama-trickle", "messages": MSG, "stream": True}
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{base}/chat/completions", json=body) as response,
    ):
        assert response.status == 200
        started = time.monotonic()
        ticks = 0
        while time.monotonic() - started < 1:
            data = await response.content.readline()
            assert b'"error"' not in data
            ticks += b"tick" in data
        assert ticks > 3


def test_the_fold_itself_refuses_more_than_its_budget() -> None:
    meta = StreamMeta(model="m")
    piece: Chunk = {
        "id": "x",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "m",
        "choices": [{"index": 0, "delta": {"content": "y" * 1000}, "finish_reason": None}],
    }
    assert fold([piece] * 10, meta, max_bytes=20_000)["choices"][0]["message"]["content"]
    with pytest.raises(UpstreamMalformed) as raised:
        fold([piece] * 30, meta, max_bytes=20_000)
    assert raised.value.code == "upstream_too_large"


def test_folding_many_small_tokens_holds_about_the_text() -> None:
    """200 000 tokens of 4 characters (800 KB of text): a str per token would hold ~11 MB."""
    meta = StreamMeta(model="m")
    # One str object per token, as JSON parsing makes them.
    tokens = (delta_chunk(meta, {"content": f"{i % 10_000:04d}"}) for i in range(200_000))
    folding = Fold(meta)
    tracemalloc.start()
    try:
        folding.add(tokens)
        held, _ = tracemalloc.get_traced_memory()
        print(f"{held / 2**20:.2f} MiB held")
    finally:
        tracemalloc.stop()
    assert held < 2 * 2**20, f"{held / 2**20:.1f} MiB held"
    assert folding.size < 2 * 2**20
    expected = "".join(f"{i:04d}" for i in range(10_000)) * 20
    assert folding.completion()["choices"][0]["message"]["content"] == expected


@pytest.mark.process
@pytest.mark.timeout(60)
async def test_llms_serve_rss_stays_bounded_while_upstreams_flood_non_stream_answers(
    hostile: Hostile, tmp_path: Path
) -> None:
    """Three non-stream requests (one per protocol) to upstreams that never stop: the RSS of
    `llms serve` grows by less than 100 MiB (3 x the default 16 MiB budget, plus buffers),
    each client gets 502 upstream_too_large and every upstream connection is closed.

    Without the bound the process grew by about 90 MiB/s per request.
    """
    rss_bound_mb = 100
    config = {
        "state": {"request_log": None},
        "routing": {"max_attempts": 1},
        "providers": hostile_providers(hostile.base_url),
    }
    served = start_serve(write_config(tmp_path / "config.json", config), tmp_path)
    try:
        await asyncio.to_thread(served.wait_ready)
        process = psutil.Process(served.proc.pid)
        # Warm up (imports, first connections, each adapter) before the baseline.
        for protocol in PROTOCOLS:
            async with asyncio.timeout(10):
                await read_a_little(served.base_url, f"{protocol}-trickle")
        await until(lambda: hostile.active == 0)
        warm_ups = hostile.gone
        baseline = peak = process.memory_info().rss
        asks = [
            asyncio.create_task(ask_whole(served.base_url, f"{protocol}-flood"))
            for protocol in PROTOCOLS
        ]
        deadline = time.monotonic() + 30
        while not all(ask.done() for ask in asks):
            peak = max(peak, process.memory_info().rss)
            growth_mb = (peak - baseline) / 2**20
            assert growth_mb < rss_bound_mb, f"RSS grew by {growth_mb:.0f} MiB"
            assert time.monotonic() < deadline, "the non-stream answers never ended"
            await asyncio.sleep(0.05)
        print(f"RSS baseline {baseline / 2**20:.0f} MiB, peak growth {growth_mb:.0f} MiB")
        for ask in asks:
            status, body = ask.result()
            assert status == 502, body
            assert body["error"]["code"] == "upstream_too_large"
        await until(lambda: hostile.active == 0)
        assert hostile.gone - warm_ups == 3
        assert served.alive()
    finally:
        for ask in asks if "asks" in locals() else ():
            ask.cancel()
            with contextlib.suppress(BaseException):
                await ask
        served.kill()


# --- item 11: every field the upstream sent, streamed or not ----------------------------------

ANNOTATION = {
    "type": "url_citation",
    "url_citation": {"url": "https://example.com", "title": "Ex", "start_index": 0, "end_index": 5},
}
HEAD = {"service_tier": "default", "system_fingerprint": "fp_up", "x_vendor": {"trace": "t1"}}
WHOLE_MESSAGE = {
    "role": "assistant",
    "content": None,
    "refusal": "I will not.",
    "function_call": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
    "annotations": [ANNOTATION],
    "audio": {"id": "audio_1", "data": "UklGRg==", "expires_at": 1700000000, "transcript": "Hello"},
    "x_extra": "kept",
}
USAGE = {"prompt_tokens": 3, "completion_tokens": 9, "total_tokens": 12}
WHOLE = {
    "id": "chatcmpl-up",
    "object": "chat.completion",
    "created": 1,
    "model": "up",
    **HEAD,
    "choices": [
        {
            "index": 0,
            "message": WHOLE_MESSAGE,
            "logprobs": None,
            "finish_reason": "function_call",
            "x_choice": "kept too",
        }
    ],
    "usage": USAGE,
}
# The same answer as a stream: the call's name and arguments split, the rest in pieces too.
DELTAS: list[tuple[dict[str, Any], str | None]] = [
    (
        {"role": "assistant", "content": None, "function_call": {"name": "get_", "arguments": ""}},
        None,
    ),
    ({"function_call": {"name": "weather", "arguments": '{"city": '}}, None),
    ({"function_call": {"arguments": '"Paris"}'}}, None),
    ({"refusal": "I will "}, None),
    ({"refusal": "not."}, None),
    ({"annotations": [ANNOTATION]}, None),
    ({"audio": {"id": "audio_1", "transcript": "Hel"}}, None),
    ({"audio": {"transcript": "lo", "data": "UklGRg=="}}, None),
    ({"audio": {"expires_at": 1700000000}}, None),
    ({"x_extra": "kept"}, None),
    ({}, "function_call"),
]


def stream_objects() -> list[dict[str, Any]]:
    objects: list[dict[str, Any]] = []
    for delta, finish in DELTAS:
        choice: dict[str, Any] = {"index": 0, "delta": delta, "finish_reason": finish}
        if finish:
            choice["x_choice"] = "kept too"
        objects.append(
            {"id": "up", "object": "chat.completion.chunk", "created": 1, "model": "up", **HEAD}
            | {"choices": [choice]}
        )
    objects.append(
        {"id": "up", "object": "chat.completion.chunk", "created": 1, "model": "up", **HEAD}
        | {"choices": [], "usage": USAGE}
    )
    return objects


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth):
        value = {"a": value}
    return value


async def _rich_chat(request: web.Request) -> web.StreamResponse:
    body = await request.json()
    if body["model"] == "huge":
        message = {"role": "assistant", "content": "x" * (17 * 2**20)}
        return web.json_response(WHOLE | {"choices": [{"index": 0, "message": message}]})
    if not body.get("stream"):
        return web.json_response(WHOLE)
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    for obj in stream_objects():
        await response.write(b"data: " + orjson.dumps(obj) + b"\n\n")
    await response.write(b"data: [DONE]\n\n")
    return response


@pytest.fixture
async def rich_gateway(make_gateway: Gateway) -> AsyncIterator[str]:
    """The gateway in front of an OpenAI upstream whose answer carries every kind of field."""
    app = web.Application()
    app.router.add_post("/v1/chat/completions", _rich_chat)
    runner = web.AppRunner(app, shutdown_timeout=1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    provider = {
        "type": "openai",
        "base_url": f"http://127.0.0.1:{runner.addresses[0][1]}/v1",
        "models": {"rich": "up", "huge": "huge"},
    }
    yield await make_gateway(gateway_config({"rich": provider}, routing={"max_attempts": 1}))
    await runner.cleanup()


def assert_whole(answer: dict[str, Any]) -> None:
    for name, value in HEAD.items():
        assert answer[name] == value, name
    assert answer["usage"] == USAGE
    (choice,) = answer["choices"]
    assert choice["message"] == WHOLE_MESSAGE
    assert choice["finish_reason"] == "function_call"
    assert choice["x_choice"] == "kept too"


async def test_a_non_stream_answer_keeps_every_field_the_upstream_sent(rich_gateway: str) -> None:
    status, answer = await ask_whole(rich_gateway, "rich")
    assert status == 200, answer
    assert_whole(answer)


async def test_the_openai_sdk_gets_the_same_answer_streamed_and_not(rich_gateway: str) -> None:
    client = openai.AsyncOpenAI(base_url=rich_gateway, api_key="x", max_retries=0)
    whole = await client.chat.completions.create(model="rich", messages=MSG)  # type: ignore[arg-type]
    async with client.chat.completions.stream(model="rich", messages=MSG) as stream:  # type: ignore[arg-type]
        streamed = await stream.get_final_completion()
    for answer in (whole, streamed):
        message = answer.choices[0].message
        assert message.function_call is not None
        assert (message.function_call.name, message.function_call.arguments) == (
            "get_weather",
            '{"city": "Paris"}',
        )
        # null whole; "" streamed (the role delta always carries a string content)
        assert not message.content and message.refusal == "I will not."
        assert message.audio is not None and message.audio.transcript == "Hello"
        assert [a.url_citation.url for a in message.annotations or ()] == ["https://example.com"]
        assert (answer.service_tier, answer.system_fingerprint) == ("default", "fp_up")


async def test_an_openai_answer_sent_whole_past_the_budget_is_upstream_too_large(
    rich_gateway: str,
) -> None:
    """17 MiB in one JSON document: past the whole-body bound (16 MiB) as past the fold's."""
    status, answer = await ask_whole(rich_gateway, "huge")
    assert status == 502, answer
    assert answer["error"]["code"] == "upstream_too_large"
    assert "16 MiB" in answer["error"]["message"]


def test_the_fold_keeps_any_nesting_without_recursing_into_it() -> None:
    meta = StreamMeta(model="m")
    deep = nested(5000)
    piece: Chunk = {
        "id": "x",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "m",
        "choices": [{"index": 0, "delta": {"x": deep}, "finish_reason": None, "y": deep}],
    }
    piece["z"] = deep  # type: ignore[typeddict-unknown-key]
    answer: dict[str, Any] = dict(fold([piece, piece], meta))
    (choice,) = answer["choices"]
    assert answer["z"] is deep and choice["y"] is deep
    inner = choice["message"]["x"]
    for _ in range(17):
        inner = inner["a"]
    assert inner is nested_at(deep, 17)


def nested_at(value: dict[str, Any], depth: int) -> dict[str, Any]:
    for _ in range(depth):
        value = value["a"]
    return value


async def test_a_stream_keeps_every_field_the_upstream_sent(rich_gateway: str) -> None:
    body = {"model": "rich", "messages": MSG, "stream": True}
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{rich_gateway}/chat/completions", json=body) as response,
    ):
        raw = await response.read()
    events = [orjson.loads(part[6:]) for part in raw.split(b"\n\n") if part[6:7] == b"{"]
    deltas = [choice["delta"] for item in events for choice in item["choices"]]
    for item in events:
        assert {name: item.get(name) for name in HEAD} == HEAD
    calls = [d["function_call"] for d in deltas if "function_call" in d]
    assert "".join(call.get("name", "") for call in calls) == "get_weather"
    assert "".join(call["arguments"] for call in calls) == '{"city": "Paris"}'
    assert [d["annotations"] for d in deltas if "annotations" in d] == [[ANNOTATION]]
    assert [d["audio"] for d in deltas if "audio" in d] == [
        delta["audio"] for delta, _ in DELTAS[6:9]
    ]
    assert "".join(d["refusal"] for d in deltas if d.get("refusal")) == "I will not."
    assert [d["x_extra"] for d in deltas if "x_extra" in d] == ["kept"]
    finishes = [c for item in events for c in item["choices"] if c["finish_reason"]]
    assert [(c["finish_reason"], c["x_choice"]) for c in finishes] == [
        ("function_call", "kept too")
    ]


@pytest.mark.parametrize("include_usage", [True, False])
def test_a_folded_stream_rebuilds_every_field_the_upstream_sent(include_usage: bool) -> None:
    """The OpenAI adapter streaming, folded: the same answer as the whole one."""
    meta = StreamMeta(model="rich")
    converter = openai_adapter.new_converter(StreamContext(meta, include_usage=include_usage))
    chunks: list[Chunk] = []
    for obj in stream_objects():
        chunks += converter.feed(SSEEvent("message", orjson.dumps(obj).decode(), ""))
    chunks += converter.feed(SSEEvent("message", "[DONE]", ""))
    answer: dict[str, Any] = dict(fold(chunks, meta))
    if not include_usage:
        answer["usage"] = converter.usage
    assert_whole(answer)


@pytest.mark.parametrize("whole", [True, False])
def test_null_and_empty_fields_pass_through(whole: bool) -> None:
    """`tool_calls: null` and `function_call: null` (LiteLLM and others send them) are no error."""
    message = {
        "role": "assistant",
        "content": "hi",
        "tool_calls": None,
        "function_call": None,
        "annotations": [],
    }
    meta = StreamMeta(model="m")
    context = StreamContext(meta, include_usage=False)
    chunks: list[Chunk] = []
    if whole:
        choice = {"index": 0, "message": message, "finish_reason": "stop"}
        converter: Any = openai_adapter.new_whole_converter(context)
        chunks = converter.feed(orjson.dumps(WHOLE | {"choices": [choice]}))
    else:
        converter = openai_adapter.new_converter(context)
        for choice in (
            {"index": 0, "delta": message, "finish_reason": None},
            {"index": 0, "delta": {}, "finish_reason": "stop"},
        ):
            data = orjson.dumps(WHOLE | {"choices": [choice]}).decode()
            chunks += converter.feed(SSEEvent("message", data, ""))
    (choice,) = fold(chunks, meta)["choices"]
    assert choice["message"] == message | {"refusal": None}
    assert choice["finish_reason"] == "stop"


def test_a_folded_call_without_a_finish_reason_says_function_call() -> None:
    meta = StreamMeta(model="rich")
    converter = openai_adapter.new_converter(StreamContext(meta, include_usage=False))
    chunks: list[Chunk] = []
    for obj in stream_objects()[:3]:
        chunks += converter.feed(SSEEvent("message", orjson.dumps(obj).decode(), ""))
    chunks += converter.feed(SSEEvent("message", "[DONE]", ""))
    (choice,) = fold(chunks, meta)["choices"]
    assert choice["finish_reason"] == "function_call"
    assert choice["message"]["content"] is None
