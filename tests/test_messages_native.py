"""Messages passthrough: `POST /v1/messages` for a model of an `anthropic` provider goes to the
upstream's own `/v1/messages` with the client's body intact (thinking signatures,
`cache_control`, server tools) and its `anthropic-version` / `anthropic-beta` headers; the
events come back byte for byte but for `message_start`'s model, which is the client's name.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import anthropic
import orjson
import pytest
from aiohttp.test_utils import TestServer

from tests.conftest import gateway_config
from tests.upstreams.anthropic import (
    API_KEY,
    MODEL,
    FakeAnthropic,
    error_script,
    recorded,
    text_script,
)
from tests.upstreams.openai import FakeOpenAI

Gateway = Callable[..., Awaitable[str]]
TRANSCRIPTS = __import__("pathlib").Path(__file__).parent / "transcripts" / "anthropic"
SIGNATURE = "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds="


@pytest.fixture
async def upstream() -> AsyncIterator[FakeAnthropic]:
    fake = FakeAnthropic()
    server = TestServer(fake.app, host="127.0.0.1")
    await server.start_server()
    fake.base_url = str(server.make_url(""))  # type: ignore[attr-defined]
    yield fake
    await server.close()


def provider(fake: FakeAnthropic) -> dict[str, Any]:
    return {
        "type": "anthropic",
        "base_url": fake.base_url,  # type: ignore[attr-defined]
        "api_key": API_KEY,
        "models": {"claude-sonnet": MODEL},
        "timeouts": {"idle_s": 1, "first_token_s": 5, "answer_s": 5},
    }


async def gateway_for(make_gateway: Gateway, providers: dict[str, Any]) -> str:
    config = gateway_config(providers, routing={"max_attempts": 2})
    return str(await make_gateway(config)).removesuffix("/v1")


def client_of(base: str) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=base, api_key="unused", max_retries=0)


# An earlier turn with a signed thinking block, a cached system block and a server tool.
REQUEST: dict[str, Any] = {
    "model": "claude-sonnet",
    "max_tokens": 2048,
    "system": [{"type": "text", "text": "Be exact.", "cache_control": {"type": "ephemeral"}}],
    "thinking": {"type": "enabled", "budget_tokens": 1024},
    "tools": [{"type": "web_search_20250305", "name": "web_search", "max_uses": 2}],
    "messages": [
        {"role": "user", "content": "What is 27 * 453?"},
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "27 * 453 = 12231.", "signature": SIGNATURE},
                {"type": "text", "text": "12231"},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "And doubled?", "cache_control": {"type": "ephemeral"}}
            ],
        },
    ],
}


async def test_blocks_and_headers_reach_anthropic_intact_and_events_come_back(
    upstream: FakeAnthropic, make_gateway: Gateway
) -> None:
    upstream.scripts[MODEL] = recorded("thinking")
    base = await gateway_for(make_gateway, {"up": provider(upstream)})
    client = client_of(base)
    beta = "interleaved-thinking-2025-05-14"
    async with client.messages.stream(**REQUEST, extra_headers={"anthropic-beta": beta}) as events:
        message = await events.get_final_message()
    assert message.model == "claude-sonnet"
    thinking = message.content[0]
    assert thinking.type == "thinking" and thinking.signature == SIGNATURE
    assert message.content[1].type == "redacted_thinking"
    [received] = upstream.received
    assert received.body == {**REQUEST, "model": MODEL, "stream": True}
    assert received.headers["anthropic-beta"] == beta
    assert received.headers["anthropic-version"] == anthropic._constants.ANTHROPIC_API_VERSION
    assert received.headers["x-api-key"] == API_KEY


async def test_the_stream_is_relayed_byte_for_byte_but_the_model(
    upstream: FakeAnthropic, make_gateway: Gateway
) -> None:
    upstream.scripts[MODEL] = recorded("server_tools")
    base = await gateway_for(make_gateway, {"up": provider(upstream)})
    body = {**REQUEST, "stream": True}
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{base}/v1/messages", json=body) as answer,
    ):
        assert answer.status == 200
        raw = await answer.read()
    source = (TRANSCRIPTS / "server_tools.sse").read_bytes()
    start, _, rest = source.partition(b"\n\n")
    name, data = start.split(b"\n")
    obj = orjson.loads(data.removeprefix(b"data: "))
    obj["message"]["model"] = "claude-sonnet"
    expected = name + b"\ndata: " + orjson.dumps(obj) + b"\n\n" + rest
    assert raw == expected.rstrip(b"\n") + b"\n\n"


async def test_non_stream_is_the_upstream_message_with_the_client_model(
    upstream: FakeAnthropic, make_gateway: Gateway
) -> None:
    upstream.scripts[MODEL] = recorded("thinking")
    base = await gateway_for(make_gateway, {"up": provider(upstream)})
    message = await client_of(base).messages.create(**REQUEST)
    assert message.model == "claude-sonnet" and message.id.startswith("msg_01Thinking")
    assert message.content[0].signature == SIGNATURE  # type: ignore[union-attr]
    assert message.usage.input_tokens == 45
    assert upstream.received[0].body["stream"] is False


@pytest.mark.parametrize("fault", ["reset", "no-stop", "overloaded"])
async def test_an_upstream_failing_mid_stream_is_an_error_event_without_message_stop(
    upstream: FakeAnthropic, make_gateway: Gateway, fault: str
) -> None:
    script = text_script(["Hello", " there"], stop=False)
    if fault == "reset":
        script.fault = "reset"
    elif fault == "overloaded":
        script.writes = [
            *script.writes,
            b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error",'
            b'"message":"Overloaded"}}\n\n',
        ]
    upstream.scripts[MODEL] = script
    base = await gateway_for(make_gateway, {"up": provider(upstream)})
    body = {"model": "claude-sonnet", "max_tokens": 50, "stream": True, "messages": []}
    body["messages"] = [{"role": "user", "content": "hi"}]
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{base}/v1/messages", json=body) as answer,
    ):
        assert answer.status == 200
        raw = await answer.read()
    assert b"text_delta" in raw and b"event: message_stop" not in raw
    last = raw.rstrip(b"\n").split(b"\n\n")[-1]
    name, data = last.split(b"\n")
    assert name == b"event: error"
    error = orjson.loads(data.removeprefix(b"data: "))
    expected = "overloaded_error" if fault == "overloaded" else "api_error"
    assert error["type"] == "error" and error["error"]["type"] == expected


async def test_before_output_anthropic_failing_falls_back_to_a_translated_provider(
    upstream: FakeAnthropic, make_gateway: Gateway
) -> None:
    upstream.scripts[MODEL] = error_script(529, "overloaded_error", "Overloaded")
    chat = FakeOpenAI()
    server = TestServer(chat.app, host="127.0.0.1")
    await server.start_server()
    try:
        translated = {
            "type": "openai",
            "base_url": str(server.make_url("/v1")),
            "models": {"claude-sonnet": "chat-model"},
        }
        base = await gateway_for(make_gateway, {"up": provider(upstream), "chat": translated})
        body = {"model": "claude-sonnet", "max_tokens": 50}
        body["messages"] = [{"role": "user", "content": "hi"}]
        async with client_of(base).messages.stream(**body) as events:
            message = await events.get_final_message()
        assert message.content[0].text == "Hello, world!"  # type: ignore[union-attr]
        assert len(upstream.received) == 1 and len(chat.received) == 1
    finally:
        await server.close()


async def test_before_output_an_anthropic_error_keeps_anthropic_status(
    upstream: FakeAnthropic, make_gateway: Gateway
) -> None:
    upstream.scripts[MODEL] = error_script(529, "overloaded_error", "Overloaded")
    base = await gateway_for(make_gateway, {"up": provider(upstream)})
    with pytest.raises(anthropic.APIStatusError) as failed:
        await client_of(base).messages.create(
            model="claude-sonnet", max_tokens=5, messages=[{"role": "user", "content": "hi"}]
        )
    assert failed.value.status_code == 529
    assert failed.value.body["error"]["type"] == "overloaded_error"  # type: ignore[index]


async def test_server_tools_are_refused_only_by_translated_providers(
    upstream: FakeAnthropic, make_gateway: Gateway
) -> None:
    chat = FakeOpenAI()
    server = TestServer(chat.app, host="127.0.0.1")
    await server.start_server()
    try:
        translated = {
            "type": "openai",
            "base_url": str(server.make_url("/v1")),
            "models": {"chat-only": "chat-model", "claude-sonnet": "chat-model"},
        }
        base = await gateway_for(make_gateway, {"up": provider(upstream), "chat": translated})
        client = client_of(base)
        with pytest.raises(anthropic.BadRequestError) as refused:
            await client.messages.create(**{**REQUEST, "model": "chat-only"})
        assert "tools[0].type" in refused.value.message
        upstream.scripts[MODEL] = error_script(529, "overloaded_error", "Overloaded")
        # The Anthropic provider is overloaded; the chat provider cannot run the server tool:
        # the client gets Anthropic's failure, and the chat provider is never asked.
        with pytest.raises(anthropic.APIStatusError) as failed:
            await client.messages.create(**REQUEST)
        assert failed.value.status_code == 529
        assert chat.received == []
    finally:
        await server.close()
