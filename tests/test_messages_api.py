"""POST /v1/messages through the real gateway, driven by the official anthropic SDK, on every
upstream protocol (fake OpenAI-compatible, Ollama, Anthropic and Gemini servers on loopback)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import anthropic
import orjson
import pytest

from tests.conftest import gateway_config
from tests.test_responses_api import NATIVE, openai_provider, started
from tests.upstreams.openai import FakeOpenAI, Script, chunk, error_script, sse, usage_chunk

Gateway = Callable[..., Awaitable[str]]


async def gateway_for(make_gateway: Gateway, providers: dict[str, Any], **server: Any) -> str:
    config = gateway_config(providers, routing={"max_attempts": 1}, server=server or {})
    return str(await make_gateway(config)).removesuffix("/v1")


def client_of(base: str, key: str = "unused") -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=base, api_key=key, max_retries=0)


@pytest.fixture
async def upstream() -> Any:
    fake = FakeOpenAI()
    async for url in started(fake):
        fake.base_url = url  # type: ignore[attr-defined]
        yield fake


async def test_a_text_answer_streamed_and_whole(
    upstream: FakeOpenAI, make_gateway: Gateway
) -> None:
    base = await gateway_for(make_gateway, {"fake": openai_provider(upstream)})
    client = client_of(base)
    message = await client.messages.create(
        model="test-model",
        max_tokens=100,
        system="Be brief.",
        messages=[{"role": "user", "content": "Say hello"}],
    )
    assert message.content[0].type == "text" and message.content[0].text == "Hello, world!"
    assert message.stop_reason == "end_turn" and message.model == "test-model"
    assert message.usage.output_tokens == 4
    sent = upstream.received[-1].body
    assert sent["messages"][0] == {"role": "system", "content": "Be brief."}
    assert sent["max_tokens"] == 100
    async with client.messages.stream(
        model="test-model", max_tokens=100, messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        text = [piece async for piece in stream.text_stream]
        final = await stream.get_final_message()
    assert "".join(text) == final.content[0].text == "Hello, world!"  # type: ignore[union-attr]


async def test_the_stream_bytes_are_anthropics(upstream: FakeOpenAI, make_gateway: Gateway) -> None:
    upstream.scripts["up-model"] = Script(
        writes=sse(chunk({"content": "Hi"}), chunk({}, "stop"), usage_chunk(), "[DONE]"),
        first_delay_s=0.3,
    )
    base = await gateway_for(make_gateway, {"fake": openai_provider(upstream)}, heartbeat_s=0.1)
    body = {
        "model": "test-model",
        "max_tokens": 10,
        "stream": True,
        "messages": [{"role": "user", "content": "hi"}],
    }
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{base}/v1/messages", json=body, headers={"x-api-key": "k"}) as resp,
    ):
        raw = await resp.read()
    assert resp.status == 200
    assert raw.startswith(b'event: ping\ndata: {"type":"ping"}\n\n')  # heartbeats are pings
    names = [line[7:] for line in raw.split(b"\n") if line.startswith(b"event: ")]
    assert [n for n in names if n != b"ping"] == [
        b"message_start",
        b"content_block_start",
        b"content_block_delta",
        b"content_block_stop",
        b"message_delta",
        b"message_stop",
    ]
    assert b"[DONE]" not in raw and b": keep-alive" not in raw


async def test_a_tool_use_round_trip(upstream: FakeOpenAI, make_gateway: Gateway) -> None:
    call = {
        "index": 0,
        "id": "call_abc",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city":'},
    }
    upstream.scripts["up-model"] = [
        Script(
            writes=sse(
                chunk({"role": "assistant", "content": None, "tool_calls": [call]}),
                chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"Paris"}'}}]}),
                chunk({}, "tool_calls"),
                usage_chunk(),
                "[DONE]",
            )
        ),
        Script(
            writes=sse(chunk({"content": "Sunny."}), chunk({}, "stop"), usage_chunk(), "[DONE]")
        ),
    ]
    base = await gateway_for(make_gateway, {"fake": openai_provider(upstream)})
    client = client_of(base)
    tools: Any = [
        {
            "name": "get_weather",
            "description": "Weather",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
        }
    ]
    first = await client.messages.create(
        model="test-model",
        max_tokens=100,
        tools=tools,
        messages=[{"role": "user", "content": "Weather?"}],
    )
    assert first.stop_reason == "tool_use"
    use = first.content[-1]
    assert use.type == "tool_use" and use.name == "get_weather" and use.input == {"city": "Paris"}
    second = await client.messages.create(
        model="test-model",
        max_tokens=100,
        tools=tools,
        messages=[
            {"role": "user", "content": "Weather?"},
            {"role": "assistant", "content": [block.model_dump() for block in first.content]},
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "22C"}],
            },
        ],
    )
    assert second.content[0].text == "Sunny."  # type: ignore[union-attr]
    messages = upstream.received[-1].body["messages"]
    assert messages[1]["tool_calls"][0]["id"] == use.id
    assert messages[2]["role"] == "tool" and messages[2]["tool_call_id"] == use.id


async def test_errors_are_anthropics_shape_and_status(
    upstream: FakeOpenAI, make_gateway: Gateway
) -> None:
    upstream.scripts["up-model"] = error_script(503, {"error": {"message": "busy"}})
    base = await gateway_for(
        make_gateway, {"fake": openai_provider(upstream)}, api_keys=[{"key": "sk-a", "name": "a"}]
    )
    with pytest.raises(anthropic.AuthenticationError):
        await client_of(base, "wrong").messages.create(
            model="test-model", max_tokens=5, messages=[{"role": "user", "content": "hi"}]
        )
    client = client_of(base, "sk-a")
    with pytest.raises(anthropic.NotFoundError) as missing:
        await client.messages.create(
            model="nope", max_tokens=5, messages=[{"role": "user", "content": "hi"}]
        )
    assert missing.value.body["type"] == "error"  # type: ignore[index]
    assert missing.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]
    with pytest.raises(anthropic.BadRequestError) as bad:
        await client.messages.create(
            model="test-model",
            max_tokens=5,
            messages=[{"role": "robot", "content": "hi"}],  # type: ignore[list-item, typeddict-item]
        )
    assert bad.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
    with pytest.raises(anthropic.APIStatusError) as overloaded:
        await client.messages.create(
            model="test-model", max_tokens=5, messages=[{"role": "user", "content": "hi"}]
        )
    assert overloaded.value.status_code == 529
    assert overloaded.value.body["error"]["type"] == "overloaded_error"  # type: ignore[index]
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{base}/v1/messages", data=b"{", headers={"x-api-key": "sk-a"}) as resp,
    ):
        error = orjson.loads(await resp.read())
    assert resp.status == 400 and error["type"] == "error"


async def test_a_failure_after_output_is_an_error_event_without_message_stop(
    upstream: FakeOpenAI, make_gateway: Gateway
) -> None:
    upstream.scripts["up-model"] = Script(
        writes=sse(chunk({"role": "assistant", "content": "Hel"}), chunk({"content": "lo"})),
        fault="reset",
    )
    base = await gateway_for(make_gateway, {"fake": openai_provider(upstream)})

    async def read_all() -> None:
        async with client_of(base).messages.stream(
            model="test-model", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        ) as stream:
            async for _ in stream:
                pass

    with pytest.raises(anthropic.APIStatusError):
        await read_all()
    body = {
        "model": "test-model",
        "max_tokens": 10,
        "stream": True,
        "messages": [{"role": "user", "content": "hi"}],
    }
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{base}/v1/messages", json=body) as resp,
    ):
        raw = await resp.read()
    assert b'"text":"Hel"' in raw and b'"text":"lo"' in raw  # the output came first
    assert b"\nevent: error\n" in b"\n" + raw
    assert b"message_stop" not in raw


@pytest.mark.parametrize(("fake_of", "path", "provider_of", "text"), NATIVE)
@pytest.mark.parametrize("stream", [True, False], ids=["stream", "whole"])
async def test_every_upstream_protocol_answers_messages(
    make_gateway: Gateway,
    fake_of: Callable[[], FakeOpenAI],
    path: str,
    provider_of: Callable[[str], dict[str, Any]],
    text: str | None,
    stream: bool,
) -> None:
    fake = fake_of()
    async for url in started(fake, path):
        base = await gateway_for(make_gateway, {"up": provider_of(url)})
        client = client_of(base)
        request: Any = {
            "model": "m",
            "max_tokens": 50,
            "messages": [{"role": "user", "content": "hi"}],
        }
        if stream:
            async with client.messages.stream(**request) as events:
                message = await events.get_final_message()
        else:
            message = await client.messages.create(**request)
        texts = [block.text for block in message.content if block.type == "text"]
        assert texts and all(texts)
        if text is not None:
            assert "".join(texts) == text
        assert message.stop_reason in ("end_turn", "max_tokens")
        assert message.usage.input_tokens > 0
