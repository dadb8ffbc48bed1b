"""The real gateway in front of a fake Anthropic Messages API, driven by the official openai SDK.

protocol.md §3.3 and §5 items 12-17, 34-35, 40-44, 53-60: golden transcripts (stream equals
non-stream), the translated request as the fake received it, tool calls through `.stream()`, and
the fault matrix before and after the first byte.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import openai
import pytest
from aiohttp.test_utils import TestServer

from tests.conftest import gateway_config
from tests.upstreams.anthropic import (
    API_KEY,
    MODEL,
    TRANSCRIPTS,
    FakeAnthropic,
    error_event,
    error_script,
    events,
    message_start,
    recorded,
    text_delta,
    text_script,
    text_start,
)
from tests.upstreams.openai import Script

MESSAGES: list[Any] = [{"role": "user", "content": "hi"}]
Start = Callable[..., Awaitable[openai.AsyncOpenAI]]


@pytest.fixture
async def fake() -> AsyncIterator[FakeAnthropic]:
    upstream = FakeAnthropic()
    server = TestServer(upstream.app, host="127.0.0.1")
    await server.start_server()
    upstream.base_url = str(server.make_url("")).rstrip("/")  # type: ignore[attr-defined]
    yield upstream
    await server.close()


@pytest.fixture
async def start(fake: FakeAnthropic, make_gateway: Callable[..., Awaitable[str]]) -> Start:
    """Start the gateway in front of the fake; returns an SDK client without retries."""

    async def run(max_attempts: int = 1, **provider: Any) -> openai.AsyncOpenAI:
        config = gateway_config(
            {
                "anthropic": {
                    "type": "anthropic",
                    "base_url": fake.base_url,  # type: ignore[attr-defined]
                    "api_key": API_KEY,
                    "models": {"claude": MODEL},
                    # first_token_s too: upstream.Watchdog only fires at the earliest deadline
                    # it armed, so a stall after the commit ends at first_token_s, not idle_s.
                    "timeouts": {"idle_s": 1, "first_token_s": 3},
                    **provider,
                }
            },
            routing={"max_attempts": max_attempts},
        )
        base_url = await make_gateway(config)
        return openai.AsyncOpenAI(base_url=base_url, api_key="client-key", max_retries=0)

    return run


@pytest.fixture
async def client(start: Start) -> openai.AsyncOpenAI:
    return await start()


# --- golden transcripts ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", TRANSCRIPTS)
async def test_stream_equals_non_stream(
    name: str, fake: FakeAnthropic, client: openai.AsyncOpenAI
) -> None:
    fake.default = recorded(name)
    stream = await client.chat.completions.create(
        model="claude", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    content: list[str] = []
    reasoning: list[str] = []
    finish: list[str] = []
    usage = None
    async for item in stream:
        assert item.model == "claude"
        if item.usage is not None:
            usage = item.usage
        for choice in item.choices:
            content.append(choice.delta.content or "")
            reasoning.append(getattr(choice.delta, "reasoning_content", None) or "")
            if choice.finish_reason:
                finish.append(choice.finish_reason)
    completion = await client.chat.completions.create(model="claude", messages=MESSAGES)
    message = completion.choices[0].message
    assert "".join(content) == (message.content or "")
    assert "".join(reasoning) == (getattr(message, "reasoning_content", None) or "")
    assert finish == [completion.choices[0].finish_reason]
    assert usage is not None
    assert usage == completion.usage
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


async def test_text_answer_and_usage(fake: FakeAnthropic, client: openai.AsyncOpenAI) -> None:
    fake.default = recorded("cached_usage")
    completion = await client.chat.completions.create(model="claude", messages=MESSAGES)
    assert completion.choices[0].message.content == "Hello there!"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == 59
    assert completion.usage.completion_tokens == 8
    assert completion.usage.prompt_tokens_details is not None
    assert completion.usage.prompt_tokens_details.cached_tokens == 7


async def test_thinking_reaches_the_client_as_reasoning_content(
    fake: FakeAnthropic, client: openai.AsyncOpenAI
) -> None:
    fake.default = recorded("thinking")
    completion = await client.chat.completions.create(
        model="claude", messages=MESSAGES, reasoning_effort="low"
    )
    message = completion.choices[0].message
    assert message.content == "27 * 453 = **12,231**"
    assert (
        getattr(message, "reasoning_content", None)
        == "The user asks for 27 * 453. 27 * 453 = 12231."
    )
    assert fake.received[-1].body["thinking"] == {"type": "enabled", "budget_tokens": 1024}
    assert completion.usage is not None
    assert completion.usage.completion_tokens_details is not None
    assert completion.usage.completion_tokens_details.reasoning_tokens == 112


@pytest.mark.parametrize(
    ("name", "reason"),
    [("refusal", "content_filter"), ("max_tokens", "length"), ("tool_use", "tool_calls")],
)
async def test_finish_reasons(
    name: str, reason: str, fake: FakeAnthropic, client: openai.AsyncOpenAI
) -> None:
    fake.default = recorded(name)
    completion = await client.chat.completions.create(model="claude", messages=MESSAGES)
    assert completion.choices[0].finish_reason == reason


async def test_raw_bytes_are_unnamed_data_events(fake: FakeAnthropic, start: Start) -> None:
    """Anthropic's `event:` lines never reach the client (§1.9)."""
    client = await start()
    fake.default = recorded("tool_use")
    body = {"model": "claude", "messages": MESSAGES, "stream": True}
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{client.base_url}chat/completions", json=body) as response,
    ):
        assert response.status == 200
        raw = await response.read()
    assert b"event:" not in raw
    assert b"ping" not in raw
    assert raw.endswith(b"data: [DONE]\n\n")
    assert all(e.startswith(b"data: ") for e in raw.split(b"\n\n") if e)


# --- the translated request -----------------------------------------------------------------------

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


async def test_the_fake_receives_the_translated_request(
    fake: FakeAnthropic, client: openai.AsyncOpenAI
) -> None:
    await client.chat.completions.create(
        model="claude",
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Weather?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "toolu_9",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "toolu_9", "content": "-3 C"},
        ],
        tools=[WEATHER],  # type: ignore[list-item]
        tool_choice="required",
        parallel_tool_calls=False,
        max_completion_tokens=300,
        stop=["END"],
        temperature=0.2,
        user="u-1",
    )
    received = fake.received[-1]
    assert received.path == "/v1/messages"
    assert received.headers["x-api-key"] == API_KEY
    assert received.headers["anthropic-version"] == "2023-06-01"
    assert "client-key" not in json.dumps(received.headers)
    assert received.body == {
        "model": MODEL,
        "max_tokens": 300,
        "system": [{"type": "text", "text": "Be brief."}],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "Weather?"}]},
            {
                "role": "assistant",
                "content": [
                    {
                        "type": "tool_use",
                        "id": "toolu_9",
                        "name": "get_weather",
                        "input": {"city": "Oslo"},
                    }
                ],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "toolu_9", "content": "-3 C"}],
            },
        ],
        "stream": True,
        "stop_sequences": ["END"],
        "temperature": 0.2,
        "tools": [
            {
                "name": "get_weather",
                "description": "Weather for a city",
                "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
            }
        ],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
        "metadata": {"user_id": "u-1"},
    }


async def test_configured_max_tokens_and_image(fake: FakeAnthropic, start: Start) -> None:
    client = await start(max_tokens=2000)
    await client.chat.completions.create(
        model="claude",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is it?"},
                    {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQ"}},
                ],
            }
        ],
    )
    body = fake.received[-1].body
    assert body["max_tokens"] == 2000
    assert body["messages"][0]["content"][1] == {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j/4AAQ"},
    }


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"n": 2}, "n"),
        ({"logprobs": True}, "logprobs"),
        ({"temperature": 1.5}, "temperature"),
        ({"reasoning_effort": "high", "temperature": 0.5}, "temperature"),
        ({"seed": 7}, "seed"),
        ({"response_format": {"type": "json_object"}}, "response_format"),
    ],
)
async def test_unsupported_parameters_are_400(
    fields: dict[str, Any], param: str, fake: FakeAnthropic, client: openai.AsyncOpenAI
) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        await client.chat.completions.create(model="claude", messages=MESSAGES, **fields)
    assert info.value.status_code == 400
    assert info.value.param == param
    assert fake.received == []


# --- tool calls through the SDK's stream helper ---------------------------------------------------


async def test_stream_helper_one_tool_call(fake: FakeAnthropic, client: openai.AsyncOpenAI) -> None:
    fake.default = recorded("tool_use")
    async with client.chat.completions.stream(
        model="claude",
        messages=MESSAGES,
        tools=[WEATHER],  # type: ignore[list-item]
    ) as stream:
        async for _ in stream:
            pass
        final = await stream.get_final_completion()
    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.role == "assistant"
    assert choice.message.content == "I'll check the current weather in Paris for you."
    calls = choice.message.tool_calls or []
    assert [(c.id, c.type, c.function.name) for c in calls] == [
        ("toolu_01NRLabsLyVHZPKxbKvkfSMn", "function", "get_weather")
    ]
    assert json.loads(calls[0].function.arguments) == {"location": "Paris"}


async def test_stream_helper_parallel_tool_calls(
    fake: FakeAnthropic, client: openai.AsyncOpenAI
) -> None:
    fake.default = recorded("parallel_tools")
    async with client.chat.completions.stream(
        model="claude",
        messages=MESSAGES,
        tools=[WEATHER],  # type: ignore[list-item]
    ) as stream:
        final = await stream.get_final_completion()
    calls = final.choices[0].message.tool_calls or []
    assert [(c.id, c.function.name) for c in calls] == [
        ("toolu_01Paris9mWq3ZkJ8xVfT2bH", "get_weather"),
        ("toolu_01Tokyo4cRn8LpA6sYdE1uG", "get_time"),
    ]
    assert [json.loads(c.function.arguments) for c in calls] == [
        {"city": "Paris"},
        {"city": "Tokyo", "utc": True},
    ]


# --- faults before the first byte -----------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
async def test_reset_before_the_first_byte_is_502(
    stream: bool, fake: FakeAnthropic, client: openai.AsyncOpenAI
) -> None:
    fake.default = Script(fault="reset")
    with pytest.raises(openai.InternalServerError) as info:
        await client.chat.completions.create(model="claude", messages=MESSAGES, stream=stream)
    assert info.value.status_code == 502


@pytest.mark.parametrize("stream", [False, True])
async def test_429_keeps_retry_after(
    stream: bool, fake: FakeAnthropic, client: openai.AsyncOpenAI
) -> None:
    fake.default = error_script(
        429,
        "rate_limit_error",
        "Number of requests has exceeded your rate limit",
        headers={"retry-after": "17", "anthropic-ratelimit-requests-remaining": "0"},
    )
    with pytest.raises(openai.RateLimitError) as info:
        await client.chat.completions.create(model="claude", messages=MESSAGES, stream=stream)
    assert info.value.status_code == 429
    assert info.value.response.headers["retry-after"] == "17"
    assert "exceeded your rate limit" in str(info.value)


@pytest.mark.parametrize(
    ("status", "kind", "client_status"),
    [(500, "api_error", 502), (529, "overloaded_error", 503), (401, "authentication_error", 502)],
)
async def test_upstream_error_statuses(
    status: int, kind: str, client_status: int, fake: FakeAnthropic, client: openai.AsyncOpenAI
) -> None:
    fake.default = error_script(status, kind, "upstream says no")
    with pytest.raises(openai.InternalServerError) as info:
        await client.chat.completions.create(model="claude", messages=MESSAGES, stream=True)
    assert info.value.status_code == client_status
    assert isinstance(info.value.body, dict)
    assert set(info.value.body) == {"message", "type", "param", "code"}


async def test_upstream_400_keeps_the_message(
    fake: FakeAnthropic, client: openai.AsyncOpenAI
) -> None:
    fake.default = error_script(400, "invalid_request_error", "prompt is too long: 210000 tokens")
    with pytest.raises(openai.BadRequestError) as info:
        await client.chat.completions.create(model="claude", messages=MESSAGES)
    assert "prompt is too long" in str(info.value)


async def test_wrong_provider_key_is_502(fake: FakeAnthropic, start: Start) -> None:
    """The fake checks `x-api-key` like the real API; the gateway hides the upstream's text."""
    client = await start(api_key="sk-ant-wrong")
    with pytest.raises(openai.InternalServerError) as info:
        await client.chat.completions.create(model="claude", messages=MESSAGES)
    assert info.value.status_code == 502
    assert info.value.code == "upstream_auth_failed"


OVERLOADED_FIRST = Script(writes=events(message_start(), error_event()))


async def test_overloaded_before_content_is_503(
    fake: FakeAnthropic, client: openai.AsyncOpenAI
) -> None:
    fake.default = OVERLOADED_FIRST
    with pytest.raises(openai.InternalServerError) as info:
        await client.chat.completions.create(model="claude", messages=MESSAGES, stream=True)
    assert info.value.status_code == 503
    assert "Overloaded" in str(info.value)


async def test_overloaded_before_content_is_retried(fake: FakeAnthropic, start: Start) -> None:
    client = await start(max_attempts=2)
    fake.scripts[MODEL] = [OVERLOADED_FIRST, text_script(["second try"])]
    completion = await client.chat.completions.create(model="claude", messages=MESSAGES)
    assert completion.choices[0].message.content == "second try"
    assert len(fake.received) == 2


# --- faults after the first byte ------------------------------------------------------------------


async def read_until_error(
    stream: openai.AsyncStream[Any],
) -> tuple[list[str], list[str | None], openai.APIError]:
    contents: list[str] = []
    finishes: list[str | None] = []

    async def consume() -> None:
        async for item in stream:
            for choice in item.choices:
                contents.append(choice.delta.content or "")
                finishes.append(choice.finish_reason)

    with pytest.raises(openai.APIError) as info:
        await consume()
    return contents, finishes, info.value


def partial(pieces: list[str], *tail: bytes, fault: str | None = None) -> Script:
    """message_start, a text block with the pieces, then `tail`; a pause between writes."""
    writes = events(message_start(), text_start(), *(text_delta(p) for p in pieces))
    return Script(writes=[*writes, *tail], delay_s=0.05, fault=fault)


async def stream_until_error(
    client: openai.AsyncOpenAI,
) -> tuple[list[str], list[str | None], openai.APIError]:
    stream = await client.chat.completions.create(
        model="claude", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    return await read_until_error(stream)


@pytest.mark.parametrize("n", [1, 3])
async def test_reset_after_n_chunks(
    n: int, fake: FakeAnthropic, client: openai.AsyncOpenAI
) -> None:
    pieces = [f"p{i}" for i in range(n)]
    fake.default = partial(pieces, fault="reset")
    contents, finishes, error = await stream_until_error(client)
    assert contents == ["", *pieces]
    assert finishes == [None] * (n + 1)
    assert not isinstance(error, openai.APIStatusError)
    assert error.message


async def test_stall_past_the_idle_timeout(fake: FakeAnthropic, client: openai.AsyncOpenAI) -> None:
    fake.default = partial(["Hel", "lo"], fault="stall")
    contents, finishes, error = await stream_until_error(client)
    assert contents == ["", "Hel", "lo"]
    assert finishes == [None, None, None]
    assert error.code == "upstream_idle_timeout"


async def test_malformed_json_after_content(
    fake: FakeAnthropic, client: openai.AsyncOpenAI
) -> None:
    fake.default = partial(["Hel"], b'event: content_block_delta\ndata: {"type": \n\n')
    contents, finishes, error = await stream_until_error(client)
    assert contents == ["", "Hel"]
    assert finishes == [None, None]
    assert error.code == "upstream_malformed"


async def test_in_stream_error_after_content(
    fake: FakeAnthropic, client: openai.AsyncOpenAI
) -> None:
    fake.default = partial(["Hel", "lo"], *events(error_event()))
    contents, finishes, error = await stream_until_error(client)
    assert contents == ["", "Hel", "lo"]
    assert finishes == [None, None, None]
    assert not isinstance(error, openai.APIStatusError)
    assert error.message == "Overloaded"
    assert error.code == "overloaded_error"


async def test_body_without_message_stop(fake: FakeAnthropic, client: openai.AsyncOpenAI) -> None:
    """message_delta carried a stop_reason, but a body without message_stop was cut short."""
    fake.default = text_script(["par", "tial"], stop=False, delay_s=0.05)
    contents, finishes, error = await stream_until_error(client)
    assert contents == ["", "par", "tial"]
    assert finishes == [None, None, None]
    assert error.code == "upstream_incomplete"


async def test_in_stream_error_raw_bytes(fake: FakeAnthropic, start: Start) -> None:
    """The error event is an unnamed `data:` line with all four keys, then [DONE]."""
    client = await start()
    fake.default = partial(["Hel", "lo"], *events(error_event()))
    body = {"model": "claude", "messages": MESSAGES, "stream": True}
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{client.base_url}chat/completions", json=body) as response,
    ):
        assert response.status == 200
        raw = await response.read()
    parts = raw.split(b"\n\n")
    assert parts[-2:] == [b"data: [DONE]", b""]
    error = json.loads(parts[-3].removeprefix(b"data: "))["error"]
    assert error["message"] == "Overloaded"
    assert set(error) == {"message", "type", "param", "code"}
    assert b'"finish_reason":"stop"' not in raw
    assert b"event:" not in raw
