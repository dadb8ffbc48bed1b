"""The Gemini adapter through the real gateway, with the official openai SDK as the client.

A fake Gemini API (tests/upstreams/gemini.py) replays the stored streams in
tests/transcripts/gemini/ and checks what the gateway sent it the way Google does (unknown fields
are a 400). protocol.md §3.4 and §5 items 12-16, 18-19, 34-35, 40, 42, 46, 55-58, 60.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import openai
import pytest
from aiohttp.test_utils import TestServer
from openai.types.chat import ChatCompletionChunk

from tests.conftest import gateway_config
from tests.upstreams.gemini import FakeGemini, error_script, events, transcript
from tests.upstreams.openai import Script

MESSAGES: list[Any] = [{"role": "user", "content": "hi"}]
TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "unit": {"type": "string"}},
                "required": ["city"],
                "additionalProperties": False,
            },
        },
    }
]


@dataclass(frozen=True)
class Golden:
    content: str
    finish: str
    usage: tuple[int, int, int]  # prompt, completion, total
    reasoning: str = ""
    tools: list[tuple[str | None, str, Any]] = field(
        default_factory=list
    )  # id (None: ours), name, args


GOLDEN: dict[str, Golden] = {
    "text.sse": Golden(
        "The capital of France is Paris. It sits on the Seine, in the north of the country.",
        "stop",
        (9, 117, 126),
    ),
    "thinking.sse": Golden(
        'There are three r\'s in "strawberry".',
        "stop",
        (14, 428, 442),
        reasoning="**Counting the letters**\n\nI'm spelling out the word and counting each r."
        "**Double-checking**\n\nStrawberry has r at positions 3, 8 and 9.",
    ),
    "tool_call.sse": Golden(
        "",
        "tool_calls",
        (61, 72, 133),
        tools=[(None, "get_weather", {"city": "Paris", "unit": "celsius"})],
    ),
    "parallel_tools.sse": Golden(
        "Checking both cities now.",
        "tool_calls",
        (83, 157, 240),
        tools=[
            ("ujx4wm2b", "get_weather", {"city": "Paris"}),
            ("3lq9d0ft", "get_weather", {"city": "Tokyo"}),
        ],
    ),
    "max_tokens.sse": Golden(
        "Once upon a time, in a kingdom by the sea, there lived", "length", (7, 16, 23)
    ),
    "safety.sse": Golden("Here is how you", "content_filter", (11, 4, 15)),
    "prompt_blocked.sse": Golden("", "content_filter", (12, 0, 12)),
    "usage_after_finish.sse": Golden(
        "Cached context says: the invoice is due on March 3.", "stop", (4107, 263, 4370)
    ),
}
NAMES = sorted(GOLDEN)


@pytest.fixture
async def fake() -> AsyncIterator[FakeGemini]:
    gemini = FakeGemini()
    server = TestServer(gemini.app, host="127.0.0.1")
    await server.start_server()
    gemini.base_url = str(server.make_url("/v1beta"))  # type: ignore[attr-defined]
    yield gemini
    await server.close()


def config(fake: FakeGemini, api_key: str = "gm-test-key") -> Any:
    return gateway_config(
        {
            "gm": {
                "type": "gemini",
                "base_url": fake.base_url,  # type: ignore[attr-defined]
                "api_key": api_key,
                "models": {
                    "gemini-flash": "gemini-2.5-flash",
                    "gemini-3": "gemini-3-flash-preview",
                },
                "timeouts": {"idle_s": 1, "first_token_s": 5},
            }
        },
        routing={"max_attempts": 1},
    )


@pytest.fixture
async def gateway(fake: FakeGemini, make_gateway: Callable[..., Awaitable[str]]) -> str:
    return await make_gateway(config(fake))


@pytest.fixture
def client(gateway: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gateway, api_key="x", max_retries=0)


def content_of(chunks: list[ChatCompletionChunk], index: int = 0) -> str:
    return "".join(c.delta.content or "" for i in chunks for c in i.choices if c.index == index)


def reasoning_of(chunks: list[ChatCompletionChunk]) -> str:
    extras = (c.delta.model_extra or {} for i in chunks for c in i.choices)
    return "".join(extra.get("reasoning_content") or "" for extra in extras)


def finishes_of(chunks: list[ChatCompletionChunk]) -> list[tuple[int, str]]:
    return [(c.index, c.finish_reason) for i in chunks for c in i.choices if c.finish_reason]


def tools_of(chunks: list[ChatCompletionChunk]) -> list[tuple[str, str, Any]]:
    calls: dict[int, list[Any]] = {}
    for item in chunks:
        for choice in item.choices:
            for call in choice.delta.tool_calls or ():
                assert call.function is not None
                if call.index in calls:
                    assert call.id is None and call.function.name is None
                    calls[call.index][2] += call.function.arguments or ""
                else:
                    assert call.index == len(calls)
                    assert call.type == "function"
                    calls[call.index] = [call.id, call.function.name, call.function.arguments]
    return [(c[0], c[1], json.loads(c[2])) for _, c in sorted(calls.items())]


def same_tools(got: list[tuple[str, str, Any]], golden: Golden) -> None:
    assert [(name, args) for _, name, args in got] == [(n, a) for _, n, a in golden.tools]
    for (call_id, _, _), (upstream_id, _, _) in zip(got, golden.tools, strict=True):
        assert call_id == upstream_id if upstream_id else call_id.startswith("call_")


# --- golden: the stream, the non-stream answer and .stream() agree -----------------------------


@pytest.mark.parametrize("name", NAMES)
async def test_stream_equals_non_stream(
    name: str, fake: FakeGemini, client: openai.AsyncOpenAI
) -> None:
    golden = GOLDEN[name]
    fake.scripts["gemini-2.5-flash"] = transcript(name)
    stream = await client.chat.completions.create(
        model="gemini-flash", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    chunks = [item async for item in stream]
    assert len({item.id for item in chunks}) == 1
    assert all(item.model == "gemini-flash" for item in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert all(c.delta.role is None for i in chunks[1:] for c in i.choices)
    assert all(item.usage is None for item in chunks[:-1])
    assert chunks[-1].choices == []
    usage = chunks[-1].usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == golden.usage
    assert content_of(chunks) == golden.content
    assert reasoning_of(chunks) == golden.reasoning
    assert finishes_of(chunks) == [(0, golden.finish)]
    same_tools(tools_of(chunks), golden)

    completion = await client.chat.completions.create(model="gemini-flash", messages=MESSAGES)
    choice = completion.choices[0]
    assert (choice.message.content or "") == content_of(chunks)
    assert choice.finish_reason == golden.finish
    assert (choice.message.model_extra or {}).get("reasoning_content", "") == golden.reasoning
    calls = [
        (c.id, c.function.name, json.loads(c.function.arguments))
        for c in choice.message.tool_calls or ()
    ]  # type: ignore[union-attr]
    same_tools(calls, golden)
    assert completion.usage is not None
    assert completion.usage.total_tokens == golden.usage[2]
    assert len(fake.received) == 2


@pytest.mark.parametrize("name", ["tool_call.sse", "parallel_tools.sse"])
async def test_stream_helper_final_tool_calls(
    name: str, fake: FakeGemini, client: openai.AsyncOpenAI
) -> None:
    """The SDK's accumulator: ids and names exactly once, arguments that parse."""
    golden = GOLDEN[name]
    fake.scripts["gemini-2.5-flash"] = transcript(name)
    async with client.chat.completions.stream(
        model="gemini-flash", messages=MESSAGES, tools=TOOLS
    ) as stream:
        final = await stream.get_final_completion()
    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.role == "assistant"
    assert (choice.message.content or "") == golden.content
    calls = choice.message.tool_calls or []
    same_tools([(c.id, c.function.name, json.loads(c.function.arguments)) for c in calls], golden)  # type: ignore[union-attr]


async def test_without_include_usage_no_usage_chunk(
    fake: FakeGemini, client: openai.AsyncOpenAI
) -> None:
    fake.scripts["gemini-2.5-flash"] = transcript("usage_after_finish.sse")
    stream = await client.chat.completions.create(
        model="gemini-flash", messages=MESSAGES, stream=True
    )
    chunks = [item async for item in stream]
    assert all(item.choices for item in chunks)
    assert finishes_of(chunks) == [(0, "stop")]


async def test_two_candidates(fake: FakeGemini, client: openai.AsyncOpenAI) -> None:
    fake.scripts["gemini-2.5-flash"] = transcript("two_candidates.sse")
    stream = await client.chat.completions.create(
        model="gemini-flash", messages=MESSAGES, stream=True, n=2
    )
    chunks = [item async for item in stream]
    assert (content_of(chunks, 0), content_of(chunks, 1)) == ("Red apple.", "Blue sky.")
    assert finishes_of(chunks) == [(0, "stop"), (1, "stop")]
    roles = [c.index for i in chunks for c in i.choices if c.delta.role == "assistant"]
    assert roles == [0, 1]
    assert fake.received[-1].body["generationConfig"] == {"candidateCount": 2}
    completion = await client.chat.completions.create(model="gemini-flash", messages=MESSAGES, n=2)
    assert [c.message.content for c in completion.choices] == ["Red apple.", "Blue sky."]


# --- what Gemini receives ---------------------------------------------------------------------


async def test_the_request_gemini_receives(fake: FakeGemini, client: openai.AsyncOpenAI) -> None:
    png = "data:image/png;base64,iVBORw0KGgo="
    await client.chat.completions.create(
        model="gemini-flash",
        messages=[
            {"role": "system", "content": "Be brief."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": png}},
                ],
            },
        ],
        tools=TOOLS,
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        temperature=0.3,
        max_completion_tokens=50,
        stop=["END"],
        seed=3,
        reasoning_effort="low",
        response_format={"type": "json_object"},
        user="someone",
    )
    sent = fake.received[-1]
    assert sent.path == "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    assert sent.headers["x-goog-api-key"] == "gm-test-key"
    assert "Authorization" not in sent.headers
    assert sent.body == {
        "contents": [
            {
                "role": "user",
                "parts": [
                    {"text": "What is this?"},
                    {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}},
                ],
            }
        ],
        "systemInstruction": {"parts": [{"text": "Be brief."}]},
        "tools": [
            {
                "functionDeclarations": [
                    {
                        "name": "get_weather",
                        "description": "Current weather",
                        "parametersJsonSchema": TOOLS[0]["function"]["parameters"],
                    }
                ]
            }
        ],
        "toolConfig": {
            "functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}
        },
        "generationConfig": {
            "temperature": 0.3,
            "maxOutputTokens": 50,
            "stopSequences": ["END"],
            "seed": 3,
            "responseMimeType": "application/json",
            "thinkingConfig": {"thinkingBudget": 1024, "includeThoughts": True},
        },
    }


SIGNATURE = "EpQCCpECAXLI2nxq5gk9mqf4PrN1kM0eYtWl0cQk"  # parallel_tools.sse's first call's


async def test_tool_round_trip_on_gemini_3(fake: FakeGemini, client: openai.AsyncOpenAI) -> None:
    fake.scripts["gemini-3-flash-preview"] = transcript("parallel_tools.sse")
    first = await client.chat.completions.create(model="gemini-3", messages=MESSAGES, tools=TOOLS)
    message = first.choices[0].message
    assert message.tool_calls is not None
    fake.scripts["gemini-3-flash-preview"] = transcript("text.sse")
    results: list[Any] = [
        {"role": "tool", "tool_call_id": call.id, "content": f'{{"temp": {n}}}'}
        for n, call in enumerate(message.tool_calls)
    ]
    history: list[Any] = [*MESSAGES, message.model_dump(exclude_none=True), *results]
    answer = await client.chat.completions.create(model="gemini-3", messages=history, tools=TOOLS)
    assert answer.choices[0].finish_reason == "stop"
    contents = fake.received[-1].body["contents"]
    # The signature Gemini gave the first call comes back on it (the `thinking_blocks` the
    # SDK kept on the message); the parallel call carries none, as Gemini sends them.
    assert message.model_dump()["thinking_blocks"] == [
        {"type": "thinking", "thinking": "", "signature": SIGNATURE}
    ]
    assert contents[1] == {
        "role": "model",
        "parts": [
            {"text": "Checking both cities now."},
            {
                "functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
                "thoughtSignature": SIGNATURE,
            },
            {"functionCall": {"name": "get_weather", "args": {"city": "Tokyo"}}},
        ],
    }
    assert contents[2] == {
        "role": "user",
        "parts": [
            {"functionResponse": {"name": "get_weather", "response": {"temp": 0}}},
            {"functionResponse": {"name": "get_weather", "response": {"temp": 1}}},
        ],
    }


async def test_http_image_url_is_refused_before_gemini(
    fake: FakeGemini, client: openai.AsyncOpenAI
) -> None:
    content: Any = [{"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]
    with pytest.raises(openai.BadRequestError) as info:
        await client.chat.completions.create(
            model="gemini-flash", messages=[{"role": "user", "content": content}]
        )
    assert info.value.param == "messages[0].content[0].image_url"
    assert fake.received == []


# --- faults -----------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
async def test_reset_before_the_first_byte_is_502(
    stream: bool, fake: FakeGemini, client: openai.AsyncOpenAI
) -> None:
    fake.scripts["gemini-2.5-flash"] = Script(fault="reset")
    with pytest.raises(openai.InternalServerError) as info:
        await client.chat.completions.create(model="gemini-flash", messages=MESSAGES, stream=stream)
    assert info.value.status_code == 502


QUOTA = [
    {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [{"quotaId": "x"}]},
    {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "6s"},
]


@pytest.mark.parametrize(("headers", "retry_after"), [({}, "6"), ({"Retry-After": "9"}, "9")])
async def test_429_carries_retry_after(
    headers: dict[str, str], retry_after: str, fake: FakeGemini, client: openai.AsyncOpenAI
) -> None:
    fake.scripts["gemini-2.5-flash"] = error_script(
        429,
        "RESOURCE_EXHAUSTED",
        "You exceeded your current quota.",
        details=QUOTA,
        headers=headers,
    )
    with pytest.raises(openai.RateLimitError) as info:
        await client.chat.completions.create(model="gemini-flash", messages=MESSAGES, stream=True)
    assert info.value.status_code == 429
    assert info.value.code == "rate_limit_exceeded"
    assert info.value.response.headers["retry-after"] == retry_after
    assert "exceeded your current quota" in info.value.message
    assert len(fake.received) == 1


@pytest.mark.parametrize(
    ("status", "grpc", "error_class", "client_status"),
    [
        (500, "INTERNAL", openai.InternalServerError, 502),
        (503, "UNAVAILABLE", openai.InternalServerError, 503),
        (400, "INVALID_ARGUMENT", openai.BadRequestError, 400),
        (404, "NOT_FOUND", openai.NotFoundError, 404),
    ],
)
async def test_http_errors(
    status: int,
    grpc: str,
    error_class: type[openai.APIStatusError],
    client_status: int,
    fake: FakeGemini,
    client: openai.AsyncOpenAI,
) -> None:
    fake.scripts["gemini-2.5-flash"] = error_script(status, grpc, f"Gemini says {grpc}")
    with pytest.raises(error_class) as info:
        await client.chat.completions.create(model="gemini-flash", messages=MESSAGES)
    assert info.value.status_code == client_status
    assert f"Gemini says {grpc}" in info.value.message


async def test_wrong_key_is_a_gateway_fault(
    fake: FakeGemini, make_gateway: Callable[..., Awaitable[str]]
) -> None:
    url = await make_gateway(config(fake, api_key="gm-wrong-key"))
    client = openai.AsyncOpenAI(base_url=url, api_key="x", max_retries=0)
    with pytest.raises(openai.InternalServerError) as info:
        await client.chat.completions.create(model="gemini-flash", messages=MESSAGES)
    assert info.value.status_code == 502
    assert info.value.code == "upstream_auth_failed"
    assert "gm-wrong-key" not in info.value.response.text


async def read_until_error(
    stream: openai.AsyncStream[ChatCompletionChunk],
) -> tuple[list[ChatCompletionChunk], openai.APIError]:
    chunks: list[ChatCompletionChunk] = []

    async def consume() -> None:
        async for item in stream:
            chunks.append(item)

    with pytest.raises(openai.APIError) as info:
        await consume()
    assert not isinstance(info.value, openai.APIStatusError)
    return chunks, info.value


def first_events(name: str, count: int) -> list[bytes]:
    return list(transcript(name).writes[:count])


@pytest.mark.parametrize(
    ("script", "code", "message"),
    [
        (
            Script(writes=first_events("text.sse", 2), delay_s=0.05, fault="reset"),
            "upstream_disconnected",
            None,
        ),
        (
            Script(writes=first_events("text.sse", 2), delay_s=0.05, fault="stall"),
            "upstream_idle_timeout",
            None,
        ),
        (
            Script(writes=[*first_events("text.sse", 2), b"data: {not json\r\n\r\n"], delay_s=0.05),
            "upstream_malformed",
            None,
        ),
        (
            transcript("error_midstream.sse", delay_s=0.05),
            "unavailable",
            "The model is overloaded. Please try again later.",
        ),
        (transcript("truncated.sse", delay_s=0.05), "upstream_incomplete", None),
    ],
    ids=["reset", "stall", "malformed", "error-event", "no-finish"],
)
async def test_failures_after_content_end_in_an_error_never_a_finish(
    script: Script,
    code: str,
    message: str | None,
    fake: FakeGemini,
    client: openai.AsyncOpenAI,
) -> None:
    fake.scripts["gemini-2.5-flash"] = script
    stream = await client.chat.completions.create(
        model="gemini-flash", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    chunks, error = await read_until_error(stream)
    assert content_of(chunks)
    assert finishes_of(chunks) == []
    assert all(item.choices for item in chunks)
    assert error.message
    assert error.code == code
    if message is not None:
        assert error.message == message


async def raw_stream(gateway: str, **fields: Any) -> bytes:
    body = {"model": "gemini-flash", "messages": MESSAGES, "stream": True, **fields}
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{gateway}/chat/completions", json=body) as response,
    ):
        assert response.status == 200
        return await response.read()


async def test_raw_bytes_of_a_stream_that_ends_without_finish(
    fake: FakeGemini, gateway: str
) -> None:
    fake.scripts["gemini-2.5-flash"] = transcript("truncated.sse", delay_s=0.05)
    blocks = (await raw_stream(gateway)).split(b"\n\n")
    assert blocks[-2:] == [b"data: [DONE]", b""]
    error = json.loads(blocks[-3].removeprefix(b"data: "))
    assert error["error"]["code"] == "upstream_incomplete"
    assert set(error["error"]) == {"message", "type", "param", "code"}
    assert all(b'"finish_reason":"stop"' not in block for block in blocks)


async def test_raw_bytes_of_a_normal_stream_end_with_done(fake: FakeGemini, gateway: str) -> None:
    """Gemini sends no [DONE]; the gateway still ends with finish, usage, then [DONE]."""
    fake.scripts["gemini-2.5-flash"] = Script(
        writes=events(
            {"candidates": [{"content": {"parts": [{"text": "Hi"}], "role": "model"}, "index": 0}]},
            {
                "candidates": [
                    {"content": {"parts": [], "role": "model"}, "finishReason": "STOP", "index": 0}
                ]
            },
            {
                "usageMetadata": {
                    "promptTokenCount": 2,
                    "candidatesTokenCount": 1,
                    "totalTokenCount": 3,
                }
            },
        ),
        delay_s=0.01,
    )
    raw = await raw_stream(gateway, stream_options={"include_usage": True})
    blocks = raw.split(b"\n\n")
    assert blocks[-2:] == [b"data: [DONE]", b""]
    usage = json.loads(blocks[-3].removeprefix(b"data: "))
    assert usage["choices"] == [] and usage["usage"]["total_tokens"] == 3
    finish = json.loads(blocks[-4].removeprefix(b"data: "))
    assert finish["choices"][0]["finish_reason"] == "stop"
    assert b"event:" not in raw and b"error" not in raw
