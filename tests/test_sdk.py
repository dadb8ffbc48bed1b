"""The official openai SDK (sync and async) against the real gateway, fed recorded upstream streams.

Every transcript in tests/transcripts/ has a golden answer below: the streamed deltas, the
non-stream `message` and the `.stream()` helper's final completion must all agree with it, and
every chunk must meet the OpenAI chunk contract (protocol.md §1.4, §5 items 8-19, 21-23).
Errors, models and concurrency are in test_sdk_errors.py.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

import openai
import pytest
from openai.types.chat import ChatCompletionChunk

from tests.upstreams.openai import TRANSCRIPTS, FakeOpenAI, Script, chunk, sse, transcript

MESSAGES: list[Any] = [{"role": "user", "content": "hi"}]
TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    },
    {
        "type": "function",
        "function": {
            "name": "get_time",
            "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}},
        },
    },
]


@dataclass(frozen=True)
class Golden:
    """What a transcript must turn into, whatever the client reads it with."""

    upstream_id: str
    content: str
    finish: str
    usage: tuple[int, int]  # prompt, completion
    reasoning: str = ""
    # (id, name, arguments) in index order
    tools: list[tuple[str, str, str]] = field(default_factory=list)


GOLDEN: dict[str, Golden] = {
    "openai_text.sse": Golden(
        "chatcmpl-AKvQ3zT8Lq1", "The capital of France is Paris — café ✓.", "stop", (14, 10)
    ),
    "openai_tool_call.sse": Golden(
        "chatcmpl-AKvR9Ty2Mn4",
        "",
        "tool_calls",
        (44, 16),
        tools=[("call_7mB2xQk9Lr0pZ1vN", "get_weather", '{"city":"Paris","unit":"celsius"}')],
    ),
    "openai_parallel_tools.sse": Golden(
        "chatcmpl-AKvS1Pq7Wx2",
        "",
        "tool_calls",
        (80, 52),
        tools=[
            ("call_Aa11Bb22Cc33Dd44", "get_weather", '{"city": "Paris"}'),
            ("call_Ee55Ff66Gg77Hh88", "get_time", '{"tz": "Europe/London"}'),
        ],
    ),
    "deepseek_reasoning.sse": Golden(
        "5f0c7a1e-3b2d-4c8e-9f61-2a7d9e0b4c11",
        "9.9 is larger.",
        "stop",
        (17, 13),
        reasoning="Compare 9.11 and 9.9: 0.90 > 0.11.",
    ),
    "vllm_reasoning.sse": Golden(
        "chatcmpl-9c1f0e2a4b6d",
        "Hi there!",
        "stop",
        (9, 8),
        reasoning="The user greets me.",
    ),
    "llamacpp.sse": Golden("chatcmpl-Xk2Jt9sP0", "Hello! How can I help?", "stop", (21, 7)),
    "openrouter_crlf.sse": Golden(
        "gen-1738500000-Zq8XwLk3", "Sure, here it is: 42.", "stop", (12, 8)
    ),
    "usage_on_finish.sse": Golden(
        "cmpl-e5cc70bb28c444948073e77776eb30ef", "Bonjour le monde !", "stop", (10, 5)
    ),
}
NAMES = sorted(GOLDEN)
TOOL_NAMES = ["openai_tool_call.sse", "openai_parallel_tools.sse"]


def script_for(name: str) -> Script:
    """A transcript as the fake upstream plays it: one network write per SSE event.

    `transcript()` splits on b"\\n\\n", which a CRLF file does not contain, so CRLF files are
    split here on b"\\r\\n\\r\\n", keeping each event's bytes exactly as recorded.
    """
    raw = (TRANSCRIPTS / name).read_bytes()
    if b"\r\n" not in raw:
        return transcript(name)
    parts = raw.split(b"\r\n\r\n")
    assert parts[-1] == b""
    return Script(writes=[part + b"\r\n\r\n" for part in parts[:-1]])


def test_transcripts_are_raw_sse_bytes() -> None:
    """Each file is one `data:` (or comment) block per event and ends with the [DONE] event."""
    assert set(NAMES) <= {p.name for p in TRANSCRIPTS.glob("*.sse")}
    for name in NAMES:
        raw = (TRANSCRIPTS / name).read_bytes()
        eol = b"\r\n" if name.endswith("_crlf.sse") else b"\n"
        assert (b"\r" in raw) == (eol == b"\r\n"), name
        blocks = raw.split(eol + eol)
        assert blocks[-1] == b"", name
        assert blocks[-2] in (b"data: [DONE]", b"data:[DONE]"), name
        for block in blocks[:-2]:
            assert eol not in block, (name, block)
            if block.startswith(b":"):
                continue
            payload = block.split(b":", 1)[1].removeprefix(b" ")
            assert isinstance(json.loads(payload), dict), name
    assert len(script_for("openrouter_crlf.sse").writes) == 14
    assert len(script_for("openai_text.sse").writes) == 14


# --- helpers ------------------------------------------------------------------------------------


def check_chunks(chunks: list[ChatCompletionChunk], *, include_usage: bool) -> None:
    """protocol.md §5 items 8-11, 16, 17: the shape every SDK client relies on."""
    assert chunks, "the stream yielded no chunks"
    first = chunks[0]
    assert first.id.startswith("chatcmpl-")
    assert isinstance(first.created, int)
    finishes = 0
    seen_role: set[int] = set()
    finished: set[int] = set()
    body = chunks[:-1] if include_usage else chunks
    for item in chunks:
        assert item.id == first.id
        assert item.created == first.created
        assert item.object == "chat.completion.chunk"
        assert item.model == "test-model"
    for item in body:
        assert item.choices, "a chunk with empty choices outside the usage chunk"
        assert item.usage is None
        for choice in item.choices:
            assert choice.delta is not None
            assert choice.index not in finished, "a delta after the choice's finish chunk"
            if choice.index not in seen_role:
                assert choice.delta.role == "assistant"
                seen_role.add(choice.index)
            else:
                assert choice.delta.role is None
            if choice.finish_reason is not None:
                finishes += 1
                finished.add(choice.index)
    assert finishes == 1
    if include_usage:
        last = chunks[-1]
        assert last.choices == []
        assert last.usage is not None
        assert last.usage.total_tokens == last.usage.prompt_tokens + last.usage.completion_tokens


def content_of(chunks: list[ChatCompletionChunk]) -> str:
    return "".join(c.delta.content or "" for item in chunks for c in item.choices)


def reasoning_of(chunks: list[ChatCompletionChunk]) -> str:
    out = []
    for item in chunks:
        for choice in item.choices:
            extra = choice.delta.model_extra or {}
            assert "reasoning" not in extra, "`reasoning` must be renamed to `reasoning_content`"
            out.append(extra.get("reasoning_content") or "")
    return "".join(out)


def tools_of(chunks: list[ChatCompletionChunk]) -> list[tuple[str, str, str]]:
    """Tool calls from the raw deltas, checking protocol.md §5 items 13-14 on the way."""
    calls: dict[int, list[str]] = {}
    for item in chunks:
        for choice in item.choices:
            for call in choice.delta.tool_calls or ():
                assert call.function is not None
                if call.index not in calls:
                    assert call.index == len(calls), "tool indexes must be contiguous from 0"
                    assert call.id
                    assert call.type == "function"
                    assert call.function.name
                    calls[call.index] = [call.id, call.function.name, call.function.arguments or ""]
                else:
                    assert call.id is None
                    assert call.type is None
                    assert call.function.name is None
                    calls[call.index][2] += call.function.arguments or ""
    return [(c[0], c[1], c[2]) for _, c in sorted(calls.items())]


def finish_of(chunks: list[ChatCompletionChunk]) -> str | None:
    return next((c.finish_reason for i in chunks for c in i.choices if c.finish_reason), None)


def check_golden(chunks: list[ChatCompletionChunk], golden: Golden) -> None:
    assert content_of(chunks) == golden.content
    assert reasoning_of(chunks) == golden.reasoning
    assert tools_of(chunks) == golden.tools
    assert finish_of(chunks) == golden.finish
    assert all(item.id != golden.upstream_id for item in chunks)


# --- streams ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
async def test_async_stream_with_usage(
    name: str, fake_openai: FakeOpenAI, client: openai.AsyncOpenAI
) -> None:
    golden = GOLDEN[name]
    fake_openai.scripts["up-model"] = script_for(name)
    stream = await client.chat.completions.create(
        model="test-model",
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
    )
    assert stream.response.headers["x-request-id"]
    assert stream.response.headers["content-type"].startswith("text/event-stream")
    chunks = [item async for item in stream]
    check_chunks(chunks, include_usage=True)
    check_golden(chunks, golden)
    usage = chunks[-1].usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens) == golden.usage
    assert usage.total_tokens == sum(golden.usage)
    # The upstream was asked for usage whatever the client asked, under its own model name.
    sent = fake_openai.received[-1]
    assert sent.body["model"] == "up-model"
    assert sent.body["stream"] is True
    assert sent.body["stream_options"] == {"include_usage": True}
    assert sent.headers["Authorization"] == "Bearer sk-upstream-secret"


@pytest.mark.parametrize("name", NAMES)
async def test_async_stream_without_usage(
    name: str, fake_openai: FakeOpenAI, client: openai.AsyncOpenAI
) -> None:
    """Every transcript carries upstream usage; a client that did not ask never sees it."""
    fake_openai.scripts["up-model"] = script_for(name)
    stream = await client.chat.completions.create(
        model="test-model", messages=MESSAGES, stream=True
    )
    chunks = [item async for item in stream]
    check_chunks(chunks, include_usage=False)
    check_golden(chunks, GOLDEN[name])
    assert fake_openai.received[-1].body["stream_options"] == {"include_usage": True}


@pytest.mark.parametrize("name", NAMES)
async def test_async_non_stream_matches_golden(
    name: str, fake_openai: FakeOpenAI, client: openai.AsyncOpenAI
) -> None:
    golden = GOLDEN[name]
    fake_openai.scripts["up-model"] = script_for(name)
    completion = await client.chat.completions.create(model="test-model", messages=MESSAGES)
    assert completion._request_id
    assert completion.object == "chat.completion"
    assert completion.model == "test-model"
    assert completion.id.startswith("chatcmpl-")
    assert completion.id != golden.upstream_id
    assert isinstance(completion.created, int)
    assert len(completion.choices) == 1
    choice = completion.choices[0]
    assert choice.index == 0
    assert choice.finish_reason == golden.finish
    message = choice.message
    assert message.role == "assistant"
    assert message.content == (golden.content if golden.content or not golden.tools else None)
    extra = message.model_extra or {}
    assert extra.get("reasoning_content", "") == golden.reasoning
    assert "reasoning" not in extra
    calls = [
        (call.id, call.function.name, call.function.arguments)  # type: ignore[union-attr]
        for call in message.tool_calls or ()
    ]
    assert calls == golden.tools
    assert all(call.type == "function" for call in message.tool_calls or ())
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == golden.usage
    assert completion.usage.total_tokens == sum(golden.usage)
    # Asked non-stream, the upstream answers whole: one JSON document, no chunks to fold.
    assert fake_openai.received[-1].body["stream"] is False
    assert "stream_options" not in fake_openai.received[-1].body


@pytest.mark.parametrize("name", NAMES)
async def test_sync_client_stream_equals_non_stream(
    name: str, fake_openai: FakeOpenAI, gateway: str
) -> None:
    """openai.OpenAI (sync, in a thread so the gateway's loop keeps running)."""
    golden = GOLDEN[name]
    fake_openai.scripts["up-model"] = script_for(name)

    def run() -> tuple[list[ChatCompletionChunk], Any, str]:
        with openai.OpenAI(base_url=gateway, api_key="unused", max_retries=0) as sync:
            stream = sync.chat.completions.create(
                model="test-model",
                messages=MESSAGES,
                stream=True,
                stream_options={"include_usage": True},
            )
            request_id = stream.response.headers["x-request-id"]
            chunks = list(stream)
            completion = sync.chat.completions.create(model="test-model", messages=MESSAGES)
        return chunks, completion, request_id

    chunks, completion, request_id = await asyncio.to_thread(run)
    assert request_id
    assert completion._request_id
    assert completion._request_id != request_id
    check_chunks(chunks, include_usage=True)
    check_golden(chunks, golden)
    streamed = content_of(chunks)
    assert streamed == golden.content
    assert (completion.choices[0].message.content or "") == streamed
    assert completion.choices[0].finish_reason == finish_of(chunks)


# --- the .stream() helper -------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
async def test_stream_helper_final_completion(
    name: str, fake_openai: FakeOpenAI, client: openai.AsyncOpenAI
) -> None:
    """openai-python's accumulator concatenates strings: a repeated role/id/name would double."""
    golden = GOLDEN[name]
    fake_openai.scripts["up-model"] = script_for(name)
    kwargs: dict[str, Any] = {"tools": TOOLS} if golden.tools else {}
    async with client.chat.completions.stream(
        model="test-model", messages=MESSAGES, **kwargs
    ) as stream:
        deltas = [event.delta async for event in stream if event.type == "content.delta"]
        final = await stream.get_final_completion()
    assert "".join(deltas) == golden.content
    assert final.model == "test-model"
    choice = final.choices[0]
    assert choice.finish_reason == golden.finish
    assert choice.message.role == "assistant"
    assert (choice.message.content or "") == golden.content
    calls = choice.message.tool_calls or []
    assert [(c.id, c.function.name, c.function.arguments) for c in calls] == golden.tools
    for call in calls:
        assert call.type == "function"
        assert isinstance(json.loads(call.function.arguments), dict)


def repeating_tools_script() -> Script:
    """An upstream that repeats index, id, type and name on every delta of two parallel calls."""
    objects: list[Any] = [chunk({"role": "assistant", "content": None})]
    calls = [
        ("call_rep0", "get_weather", ['{"city"', ': "Oslo"', "}"]),
        ("call_rep1", "get_time", ['{"tz": ', '"UTC"}']),
    ]
    for index, (call_id, name, fragments) in enumerate(calls):
        for fragment in fragments:
            delta = {
                "role": "assistant",
                "tool_calls": [
                    {
                        "index": index,
                        "id": call_id,
                        "type": "function",
                        "function": {"name": name, "arguments": fragment},
                    }
                ],
            }
            objects.append(chunk(delta))
    objects += [chunk({}, "tool_calls"), "[DONE]"]
    return Script(writes=sse(*objects))


async def test_stream_helper_repeated_ids_are_not_doubled(
    fake_openai: FakeOpenAI, client: openai.AsyncOpenAI
) -> None:
    fake_openai.scripts["up-model"] = repeating_tools_script()
    async with client.chat.completions.stream(
        model="test-model", messages=MESSAGES, tools=TOOLS
    ) as stream:
        final = await stream.get_final_completion()
    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.role == "assistant"
    calls = choice.message.tool_calls or []
    assert [(c.id, c.type, c.function.name) for c in calls] == [
        ("call_rep0", "function", "get_weather"),
        ("call_rep1", "function", "get_time"),
    ]
    assert [json.loads(c.function.arguments) for c in calls] == [{"city": "Oslo"}, {"tz": "UTC"}]


async def test_repeated_ids_raw_deltas_carry_id_once(
    fake_openai: FakeOpenAI, client: openai.AsyncOpenAI
) -> None:
    fake_openai.scripts["up-model"] = repeating_tools_script()
    stream = await client.chat.completions.create(
        model="test-model", messages=MESSAGES, tools=TOOLS, stream=True
    )
    chunks = [item async for item in stream]
    check_chunks(chunks, include_usage=False)
    assert tools_of(chunks) == [
        ("call_rep0", "get_weather", '{"city": "Oslo"}'),
        ("call_rep1", "get_time", '{"tz": "UTC"}'),
    ]
    assert finish_of(chunks) == "tool_calls"


async def test_stop_after_tool_calls_becomes_tool_calls(
    fake_openai: FakeOpenAI, client: openai.AsyncOpenAI
) -> None:
    """Servers (llama.cpp, some vLLM parsers) end a tool turn with finish_reason "stop"."""
    call = {
        "index": 0,
        "id": "call_x",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'},
    }
    fake_openai.scripts["up-model"] = Script(
        writes=sse(
            chunk({"role": "assistant", "content": None, "tool_calls": [call]}),
            chunk({}, "stop"),
            "[DONE]",
        )
    )
    async with client.chat.completions.stream(
        model="test-model", messages=MESSAGES, tools=TOOLS
    ) as stream:
        final = await stream.get_final_completion()
    assert final.choices[0].finish_reason == "tool_calls"
    completion = await client.chat.completions.create(
        model="test-model", messages=MESSAGES, tools=TOOLS
    )
    assert completion.choices[0].finish_reason == "tool_calls"
    assert completion.choices[0].message.tool_calls is not None
    assert completion.choices[0].message.tool_calls[0].id == "call_x"


# --- reasoning ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "pieces"), [("deepseek_reasoning.sse", 9), ("vllm_reasoning.sse", 5)]
)
async def test_reasoning_in_reasoning_content_never_in_content(
    name: str, pieces: int, fake_openai: FakeOpenAI, client: openai.AsyncOpenAI
) -> None:
    golden = GOLDEN[name]
    fake_openai.scripts["up-model"] = script_for(name)
    stream = await client.chat.completions.create(
        model="test-model", messages=MESSAGES, stream=True
    )
    reasoning_chunks = 0
    async for item in stream:
        for choice in item.choices:
            extra = choice.delta.model_extra or {}
            assert "reasoning" not in extra
            if extra.get("reasoning_content"):
                reasoning_chunks += 1
                assert not choice.delta.content
            if choice.delta.content:
                assert "9.11" not in choice.delta.content
                assert "greets" not in choice.delta.content
    assert reasoning_chunks == pieces
    assert golden.reasoning


# --- usage ----------------------------------------------------------------------------------------


async def test_include_usage_without_upstream_usage_sends_no_usage_chunk(
    fake_openai: FakeOpenAI, client: openai.AsyncOpenAI
) -> None:
    """No usage upstream: no invented numbers, and still no chunk with empty choices."""
    fake_openai.scripts["up-model"] = Script(
        writes=sse(
            chunk({"role": "assistant", "content": ""}),
            chunk({"content": "ok"}),
            chunk({}, "stop"),
            "[DONE]",
        )
    )
    stream = await client.chat.completions.create(
        model="test-model",
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [item async for item in stream]
    assert all(item.choices for item in chunks)
    assert all(item.usage is None for item in chunks)
    assert content_of(chunks) == "ok"
    check_chunks(chunks, include_usage=False)


async def test_upstream_without_done_but_finished_ends_normally(
    fake_openai: FakeOpenAI, client: openai.AsyncOpenAI
) -> None:
    """Some servers omit [DONE]: EOF after every choice finished is a normal end, usage kept."""
    fake_openai.scripts["up-model"] = Script(
        writes=sse(
            chunk({"role": "assistant", "content": "a"}),
            chunk({"content": "b"}, "length"),
            {
                **chunk({}),
                "choices": [],
                "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
            },
        )
    )
    stream = await client.chat.completions.create(
        model="test-model",
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [item async for item in stream]
    assert content_of(chunks) == "ab"
    assert finish_of(chunks) == "length"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.prompt_tokens == 3
    assert chunks[-1].usage.completion_tokens == 2
