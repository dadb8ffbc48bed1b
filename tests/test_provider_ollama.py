"""The real gateway in front of a fake Ollama server, driven by the official openai SDK.

Every transcript in tests/transcripts/ollama/ must reach SDK clients the same way streamed and
non-streamed; the fake checks the `/api/chat` request the gateway sent; faults before and after
the first byte are reported as protocol.md §1.9 and §5 items 34-45 require; models are
discovered from `/api/tags` when the config lists none.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import openai
import pytest
from openai.types.chat import ChatCompletionChunk

from tests.conftest import gateway_config
from tests.upstreams.ollama import (
    NDJSON,
    OLLAMA_TRANSCRIPTS,
    FakeOllama,
    Script,
    error_script,
    line,
    ndjson,
    transcript,
)

MESSAGES: list[Any] = [{"role": "user", "content": "hi"}]
TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": name,
            "parameters": {"type": "object", "properties": {key: {"type": "string"}}},
        },
    }
    for name, key in (("get_weather", "city"), ("get_time", "tz"))
]


@dataclass(frozen=True)
class Golden:
    content: str
    finish: str
    usage: tuple[int, int]
    reasoning: str = ""
    # (id or None when the server sends none, name, arguments) in index order
    tools: list[tuple[str | None, str, str]] = field(default_factory=list)


GOLDEN = {
    "text.ndjson": Golden("The capital of France is Paris — café ✓.", "stop", (31, 11)),
    "thinking.ndjson": Golden(
        "9.9 is larger.", "stop", (17, 42), reasoning="Compare 9.11 and 9.9: 0.90 > 0.11."
    ),
    "tool_call.ndjson": Golden(
        "",
        "tool_calls",
        (180, 23),
        tools=[(None, "get_weather", '{"city":"Paris","unit":"celsius"}')],
    ),
    "parallel_tools.ndjson": Golden(
        "",
        "tool_calls",
        (212, 58),
        reasoning="Two lookups: weather and time.",
        tools=[
            ("call_k2m9x7qa", "get_weather", '{"city":"Paris"}'),
            ("call_p4w8n1zd", "get_time", '{"tz":"Europe/London"}'),
        ],
    ),
    "length.ndjson": Golden("Once upon a time,", "length", (12, 5)),
}
NAMES = sorted(GOLDEN)
TOOL_NAMES = [name for name in NAMES if GOLDEN[name].tools]


def ollama_provider(fake: FakeOllama, **fields: Any) -> dict[str, Any]:
    return {
        "type": "ollama",
        "base_url": fake.base_url,  # type: ignore[attr-defined]
        "api_key": "ollama-secret",
        "models": {"llama": "llama3.2"},
        "timeouts": {"idle_s": 1, "first_token_s": 3},
        **fields,
    }


@pytest.fixture
async def gateway(fake_ollama: FakeOllama, make_gateway: Callable[..., Awaitable[str]]) -> str:
    config = gateway_config({"ollama": ollama_provider(fake_ollama)}, routing={"max_attempts": 1})
    return await make_gateway(config)


@pytest.fixture
def client(gateway: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gateway, api_key="unused", max_retries=0)


def check_chunks(chunks: list[ChatCompletionChunk]) -> None:
    """The OpenAI chunk contract with include_usage (protocol.md §5 items 8-11, 16)."""
    assert chunks
    *body, last = chunks
    assert chunks[0].choices[0].delta.role == "assistant"
    for item in chunks:
        assert (item.id, item.created, item.model) == (chunks[0].id, chunks[0].created, "llama")
        assert item.object == "chat.completion.chunk"
    for item in body:
        assert len(item.choices) == 1
        assert item.usage is None
    assert all(c.choices[0].delta.role is None for c in body[1:])
    assert [c.choices[0].finish_reason is not None for c in body].count(True) == 1
    assert body[-1].choices[0].finish_reason is not None
    assert last.choices == []
    assert last.usage is not None


def content_of(chunks: list[ChatCompletionChunk]) -> str:
    return "".join(c.delta.content or "" for item in chunks for c in item.choices)


def reasoning_of(chunks: list[ChatCompletionChunk]) -> str:
    extras = [c.delta.model_extra or {} for item in chunks for c in item.choices]
    return "".join(extra.get("reasoning_content") or "" for extra in extras)


def tools_of(chunks: list[ChatCompletionChunk]) -> list[tuple[str, str, str]]:
    """Tool calls from the deltas: each arrives whole, in one delta, index by index."""
    out: list[tuple[str, str, str]] = []
    for item in chunks:
        for choice in item.choices:
            for call in choice.delta.tool_calls or ():
                assert call.index == len(out)
                assert call.type == "function"
                assert call.id and call.function and call.function.name
                out.append((call.id, call.function.name, call.function.arguments or ""))
    return out


def check_tools(found: list[tuple[str, str, str]], golden: Golden) -> None:
    assert [(name, args) for _, name, args in found] == [(n, a) for _, n, a in golden.tools]
    for (call_id, _, args), (expected, _, _) in zip(found, golden.tools, strict=True):
        if expected is None:
            # Synthesized: one `call_` prefix, never doubled by an accumulator.
            assert call_id.startswith("call_") and call_id.count("call_") == 1
        else:
            assert call_id == expected
        assert isinstance(json.loads(args), dict)
    assert len({call_id for call_id, _, _ in found}) == len(found)


# --- transcripts ----------------------------------------------------------------------------------


def test_every_transcript_has_a_golden_answer() -> None:
    assert sorted(p.name for p in OLLAMA_TRANSCRIPTS.iterdir()) == NAMES
    for name in NAMES:
        lines = (OLLAMA_TRANSCRIPTS / name).read_bytes().split(b"\n")
        assert lines[-1] == b""
        objects = [json.loads(raw) for raw in lines[:-1]]
        assert [o["done"] for o in objects] == [False] * (len(objects) - 1) + [True]


@pytest.mark.parametrize("piece", [None, 7])
@pytest.mark.parametrize("name", NAMES)
async def test_stream_and_non_stream_agree(
    name: str, piece: int | None, fake_ollama: FakeOllama, client: openai.AsyncOpenAI
) -> None:
    golden = GOLDEN[name]
    fake_ollama.scripts["llama3.2"] = transcript(name, piece=piece)
    stream = await client.chat.completions.create(
        model="llama", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    chunks = [item async for item in stream]
    check_chunks(chunks)
    assert content_of(chunks) == golden.content
    assert reasoning_of(chunks) == golden.reasoning
    check_tools(tools_of(chunks), golden)
    assert next(c.finish_reason for i in chunks for c in i.choices if c.finish_reason) == (
        golden.finish
    )
    usage = chunks[-1].usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (
        *golden.usage,
        sum(golden.usage),
    )

    completion = await client.chat.completions.create(model="llama", messages=MESSAGES)
    choice = completion.choices[0]
    assert (choice.message.content or "") == content_of(chunks)
    assert choice.message.content == (golden.content if not golden.tools else None)
    assert (choice.message.model_extra or {}).get("reasoning_content", "") == golden.reasoning
    assert choice.finish_reason == golden.finish
    calls = [(c.id, c.function.name, c.function.arguments) for c in choice.message.tool_calls or ()]  # type: ignore[union-attr]
    check_tools(calls, golden)
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == golden.usage
    assert [r.body["stream"] for r in fake_ollama.received] == [True, True]


@pytest.mark.parametrize("name", TOOL_NAMES)
async def test_stream_helper_final_completion(
    name: str, fake_ollama: FakeOllama, client: openai.AsyncOpenAI
) -> None:
    """openai-python's accumulator concatenates id and name: each must be sent once."""
    fake_ollama.scripts["llama3.2"] = transcript(name)
    async with client.chat.completions.stream(
        model="llama", messages=MESSAGES, tools=TOOLS
    ) as stream:
        final = await stream.get_final_completion()
    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.role == "assistant"
    calls = choice.message.tool_calls or []
    assert all(call.type == "function" for call in calls)
    check_tools([(c.id, c.function.name, c.function.arguments) for c in calls], GOLDEN[name])
    assert fake_ollama.received[-1].body["tools"] == TOOLS


async def test_the_translated_request(fake_ollama: FakeOllama, client: openai.AsyncOpenAI) -> None:
    messages: list[Any] = [
        {"role": "developer", "content": "Answer in French."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0K"}},
            ],
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_a",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_a", "content": "18C"},
    ]
    await client.chat.completions.create(
        model="llama",
        messages=messages,
        max_completion_tokens=64,
        stop="END",
        temperature=0.3,
        seed=11,
        response_format={"type": "json_object"},
        reasoning_effort="low",
        tools=TOOLS,
    )
    sent = fake_ollama.received[-1]
    assert sent.path == "/api/chat"
    assert sent.headers["Authorization"] == "Bearer ollama-secret"
    assert sent.headers["Content-Type"] == "application/json"
    assert sent.body == {
        "model": "llama3.2",
        "stream": True,
        "messages": [
            {"role": "system", "content": "Answer in French."},
            {"role": "user", "content": "What is this?", "images": ["iVBORw0K"]},
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {
                        "id": "call_a",
                        "function": {
                            "index": 0,
                            "name": "get_weather",
                            "arguments": {"city": "Paris"},
                        },
                    }
                ],
            },
            {
                "role": "tool",
                "content": "18C",
                "tool_call_id": "call_a",
                "tool_name": "get_weather",
            },
        ],
        "options": {"num_predict": 64, "stop": ["END"], "temperature": 0.3, "seed": 11},
        "tools": TOOLS,
        "format": "json",
        "think": "low",
    }


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "text", "text": "see"},
                            {"type": "image_url", "image_url": {"url": "https://x.test/a.png"}},
                        ],
                    }
                ]
            },
            "messages[0].content[1].image_url",
        ),
        ({"n": 2}, "n"),
        ({"tools": TOOLS, "tool_choice": "required"}, "tool_choice"),
    ],
)
async def test_requests_ollama_cannot_honour_are_400(
    fields: dict[str, Any], param: str, fake_ollama: FakeOllama, client: openai.AsyncOpenAI
) -> None:
    kwargs: dict[str, Any] = {"model": "llama", "messages": MESSAGES, **fields}
    with pytest.raises(openai.BadRequestError) as info:
        await client.chat.completions.create(**kwargs)
    assert info.value.param == param
    assert info.value.code == "unsupported_parameter"
    assert fake_ollama.received == []


# --- faults before the first byte ----------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
async def test_model_not_pulled_is_404(
    stream: bool, fake_ollama: FakeOllama, client: openai.AsyncOpenAI
) -> None:
    message = 'model "llama3.2" not found, try pulling it first'
    fake_ollama.scripts["llama3.2"] = error_script(404, message)
    with pytest.raises(openai.NotFoundError) as info:
        await client.chat.completions.create(model="llama", messages=MESSAGES, stream=stream)
    assert info.value.code == "model_not_found"
    assert message in str(info.value)


@pytest.mark.parametrize("stream", [False, True])
async def test_429_keeps_retry_after(
    stream: bool, fake_ollama: FakeOllama, client: openai.AsyncOpenAI
) -> None:
    fake_ollama.scripts["llama3.2"] = error_script(
        429, "too many requests", headers={"Retry-After": "7"}
    )
    with pytest.raises(openai.RateLimitError) as info:
        await client.chat.completions.create(model="llama", messages=MESSAGES, stream=stream)
    assert info.value.status_code == 429
    assert info.value.response.headers["retry-after"] == "7"
    assert "too many requests" in str(info.value)
    assert len(fake_ollama.received) == 1


async def test_500_is_502_with_ollamas_message(
    fake_ollama: FakeOllama, client: openai.AsyncOpenAI
) -> None:
    fake_ollama.scripts["llama3.2"] = error_script(500, "llama runner process has terminated")
    with pytest.raises(openai.InternalServerError) as info:
        await client.chat.completions.create(model="llama", messages=MESSAGES, stream=True)
    assert info.value.status_code == 502
    assert "llama runner process has terminated" in str(info.value)


async def test_reset_before_the_first_byte_is_502(
    fake_ollama: FakeOllama, client: openai.AsyncOpenAI
) -> None:
    fake_ollama.scripts["llama3.2"] = Script(fault="reset", content_type=NDJSON)
    with pytest.raises(openai.InternalServerError) as info:
        await client.chat.completions.create(model="llama", messages=MESSAGES, stream=True)
    assert info.value.status_code == 502


# --- faults after the first byte -----------------------------------------------------------------

PARTIAL = [line("Hel"), line("lo")]


async def read_until_error(
    stream: openai.AsyncStream[ChatCompletionChunk],
) -> tuple[list[str], openai.APIError]:
    contents: list[str] = []

    async def consume() -> None:
        async for item in stream:
            for choice in item.choices:
                assert choice.finish_reason is None, "a failed stream must not finish normally"
                contents.append(choice.delta.content or "")

    with pytest.raises(openai.APIError) as info:
        await consume()
    assert not isinstance(info.value, openai.APIStatusError)
    return contents, info.value


@pytest.mark.parametrize(
    ("script", "code", "message"),
    [
        (ndjson(*PARTIAL, delay_s=0.05, fault="reset"), "upstream_disconnected", None),
        (ndjson(*PARTIAL, delay_s=0.05, fault="stall"), "upstream_idle_timeout", None),
        (
            ndjson(*PARTIAL, b'{"message": {"content": "x"\n', delay_s=0.05),
            "upstream_malformed",
            None,
        ),
        (
            ndjson(
                *PARTIAL,
                {"error": "an error was encountered while running the model"},
                delay_s=0.05,
            ),
            "upstream_error",
            "an error was encountered while running the model",
        ),
        (ndjson(*PARTIAL, delay_s=0.05), "upstream_incomplete", None),
        (
            ndjson(*PARTIAL, b'{"message":{"content":"!"},"done":false}', delay_s=0.05),
            "upstream_incomplete",
            None,
        ),
    ],
    ids=["reset", "stall", "malformed", "error-line", "eof", "eof-without-newline"],
)
async def test_failure_after_chunks(
    script: Script,
    code: str,
    message: str | None,
    fake_ollama: FakeOllama,
    client: openai.AsyncOpenAI,
) -> None:
    fake_ollama.scripts["llama3.2"] = script
    stream = await client.chat.completions.create(
        model="llama", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    contents, error = await read_until_error(stream)
    assert contents[:3] == ["", "Hel", "lo"]
    assert error.code == code
    if message is not None:
        assert error.message == message


async def test_failure_raw_bytes(fake_ollama: FakeOllama, gateway: str) -> None:
    """The chunks, then an unnamed error event with all four keys, then [DONE]."""
    fake_ollama.scripts["llama3.2"] = ndjson(*PARTIAL, {"error": "boom"}, delay_s=0.05)
    body = {"model": "llama", "messages": MESSAGES, "stream": True}
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{gateway}/chat/completions", json=body) as response,
    ):
        assert response.status == 200
        raw = await response.read()
    events = raw.split(b"\n\n")
    assert events[-2:] == [b"data: [DONE]", b""]
    assert json.loads(events[-3].removeprefix(b"data: ")) == {
        "error": {
            "message": "boom",
            "type": "server_error",
            "param": None,
            "code": "upstream_error",
        }
    }
    assert b'"content":"lo"' in raw
    assert b'"finish_reason":"stop"' not in raw


async def test_non_stream_failure_is_an_error_not_a_partial_answer(
    fake_ollama: FakeOllama, client: openai.AsyncOpenAI
) -> None:
    fake_ollama.scripts["llama3.2"] = ndjson(*PARTIAL)
    with pytest.raises(openai.APIStatusError) as info:
        await client.chat.completions.create(model="llama", messages=MESSAGES)
    assert info.value.status_code >= 500


# --- model discovery ------------------------------------------------------------------------------


async def list_until(client: openai.AsyncOpenAI, expected: set[str]) -> set[str]:
    """The gateway lists discovered models once its first `/api/tags` call returned."""
    ids: set[str] = set()
    for _ in range(200):
        ids = {model.id async for model in client.models.list()}
        if expected <= ids:
            break
        await asyncio.sleep(0.02)
    return ids


async def test_models_are_discovered_from_api_tags(
    fake_ollama: FakeOllama, make_gateway: Callable[..., Awaitable[str]]
) -> None:
    fake_ollama.tags = ["llama3.2:latest", "qwen3:8b"]
    provider = ollama_provider(fake_ollama)
    del provider["models"]
    url = await make_gateway(gateway_config({"ollama": provider}, routing={"max_attempts": 1}))
    client = openai.AsyncOpenAI(base_url=url, api_key="unused", max_retries=0)
    assert await list_until(client, {"llama3.2:latest", "qwen3:8b"}) == {
        "llama3.2:latest",
        "llama3.2",  # the `:latest` tag may be left out, as with the Ollama CLI
        "qwen3:8b",
    }
    sent = fake_ollama.tag_requests[0]
    assert sent.path == "/api/tags"
    assert sent.headers["Authorization"] == "Bearer ollama-secret"
    completion = await client.chat.completions.create(model="qwen3:8b", messages=MESSAGES)
    assert completion.choices[0].message.content == "Hello, world!"
    assert completion.model == "qwen3:8b"
    assert fake_ollama.received[-1].body["model"] == "qwen3:8b"
    await client.chat.completions.create(model="llama3.2", messages=MESSAGES)
    assert fake_ollama.received[-1].body["model"] == "llama3.2:latest"
