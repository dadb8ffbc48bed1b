"""llms.adapters.anthropic as pure functions: the request it builds, the chunks it converts, the
errors it maps (protocol.md §3.3, §3.5, §5 items 53-60). No server, no I/O."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from llms.adapters import anthropic as adapter
from llms.adapters.base import StreamContext
from llms.chunks import StreamMeta, fold
from llms.config import ProviderConfig, Timeouts
from llms.errors import (
    InvalidRequest,
    UpstreamIncomplete,
    UpstreamMalformed,
    UpstreamStreamError,
)
from llms.framing import SSEDecoder, SSEEvent
from llms.wire import ChatRequest, Chunk
from tests.upstreams.anthropic import (
    MESSAGE_STOP,
    TRANSCRIPTS,
    block_stop,
    error_event,
    message_delta,
    message_start,
    text_delta,
    text_start,
)

TRANSCRIPT_DIR = Path(__file__).parent / "transcripts" / "anthropic"
USER = [{"role": "user", "content": "hi"}]
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"


def provider(**overrides: Any) -> ProviderConfig:
    fields: dict[str, Any] = {
        "name": "anthropic",
        "type": "anthropic",
        "base_url": "https://api.example.test",
        "models": {"claude": "claude-sonnet-4-5"},
        "timeouts": Timeouts(),
        "api_key": "sk-ant-test",
        **overrides,
    }
    return ProviderConfig(**fields)


def build(prov: ProviderConfig | None = None, **request: Any) -> dict[str, Any]:
    """The JSON body sent upstream for a request (messages default to one user turn)."""
    body: dict[str, Any] = {"model": "claude", "messages": USER, **request}
    upstream = adapter.build_request(ChatRequest(**body), prov or provider(), "claude-sonnet-4-5")
    result: dict[str, Any] = orjson.loads(upstream.body)
    return result


def refused(**request: Any) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as info:
        build(**request)
    assert info.value.status == 400
    return info.value


# --- the HTTP request -----------------------------------------------------------------------------


def test_request_url_headers_and_required_fields() -> None:
    upstream = adapter.build_request(
        ChatRequest(model="claude", messages=USER, stream=False),
        provider(headers={"anthropic-beta": "x", "anthropic-version": "2099-01-01"}),
        "claude-sonnet-4-5",
    )
    assert upstream.method == "POST"
    assert upstream.url == "https://api.example.test/v1/messages"
    assert upstream.headers["x-api-key"] == "sk-ant-test"
    assert upstream.headers["content-type"] == "application/json"
    assert "authorization" not in {k.lower() for k in upstream.headers}
    # Provider headers come last and win.
    assert upstream.headers["anthropic-beta"] == "x"
    assert upstream.headers["anthropic-version"] == "2099-01-01"
    body = orjson.loads(upstream.body)
    assert body == {
        "model": "claude-sonnet-4-5",
        "max_tokens": 4096,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
        "stream": True,
    }


def test_default_anthropic_version() -> None:
    upstream = adapter.build_request(
        ChatRequest(model="claude", messages=USER), provider(), "claude-sonnet-4-5"
    )
    assert upstream.headers["anthropic-version"] == "2023-06-01"


@pytest.mark.parametrize(
    ("request_fields", "options", "expected"),
    [
        ({}, {}, 4096),
        ({}, {"max_tokens": 1000}, 1000),
        ({"max_tokens": 77}, {"max_tokens": 1000}, 77),
        ({"max_completion_tokens": 55, "max_tokens": 77}, {}, 55),
    ],
)
def test_max_tokens(request_fields: dict[str, Any], options: dict[str, Any], expected: int) -> None:
    assert build(provider(options=options), **request_fields)["max_tokens"] == expected


# --- messages -------------------------------------------------------------------------------------


def test_system_and_developer_messages_become_system_in_order() -> None:
    body = build(
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "hi"},
            {"role": "developer", "content": [{"type": "text", "text": "Use French."}]},
            {"role": "assistant", "content": "Salut"},
            {"role": "user", "content": "again"},
        ]
    )
    assert body["system"] == [
        {"type": "text", "text": "Be brief."},
        {"type": "text", "text": "Use French."},
    ]
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    assert all(m["role"] in ("user", "assistant") for m in body["messages"])


def test_consecutive_user_messages_are_merged() -> None:
    body = build(messages=[{"role": "user", "content": "a"}, {"role": "user", "content": "b"}])
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}
    ]


def test_images_data_url_and_https_url() -> None:
    body = build(
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                    {"type": "image_url", "image_url": {"url": "https://x.test/cat.jpg"}},
                ],
            }
        ]
    )
    assert body["messages"][0]["content"] == [
        {"type": "text", "text": "What is this?"},
        {
            "type": "image",
            "source": {"type": "base64", "media_type": "image/png", "data": PNG},
        },
        {"type": "image", "source": {"type": "url", "url": "https://x.test/cat.jpg"}},
    ]


@pytest.mark.parametrize(
    "url", ["data:image/bmp;base64,AAAA", "data:image/png,rawbytes", "ftp://x.test/a.png"]
)
def test_images_anthropic_cannot_take_name_the_part(url: str) -> None:
    error = refused(
        messages=[
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "ok"},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "see"},
                    {"type": "image_url", "image_url": {"url": url}},
                ],
            },
        ]
    )
    assert error.param == "messages[2].content[1].image_url"


def test_data_url_with_parameters() -> None:
    url = f"data:image/webp;name=a.webp;base64,{PNG}"
    part = {"type": "image_url", "image_url": {"url": url}}
    body = build(messages=[{"role": "user", "content": [part]}])
    assert body["messages"][0]["content"][0]["source"] == {
        "type": "base64",
        "media_type": "image/webp",
        "data": PNG,
    }


def test_pdf_file_becomes_a_document() -> None:
    part = {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERi0x"}}
    body = build(messages=[{"role": "user", "content": [part]}])
    assert body["messages"][0]["content"] == [
        {
            "type": "document",
            "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0x"},
        }
    ]


@pytest.mark.parametrize(
    ("part", "param"),
    [
        ({"type": "file", "file": {"file_id": "file-1"}}, "messages[0].content[0].file"),
        (
            {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}},
            "messages[0].content[0]",
        ),
    ],
)
def test_parts_anthropic_cannot_take(part: dict[str, Any], param: str) -> None:
    assert refused(messages=[{"role": "user", "content": [part]}]).param == param


def test_tool_round_trip() -> None:
    body = build(
        messages=[
            {"role": "user", "content": "Weather in Paris and Tokyo?"},
            {
                "role": "assistant",
                "content": "Checking.",
                "reasoning_content": "The user wants weather.",
                "tool_calls": [
                    {
                        "id": "toolu_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                    },
                    {
                        "id": "call_2",
                        "type": "function",
                        "function": {"name": "get_time", "arguments": ""},
                    },
                ],
            },
            {"role": "tool", "tool_call_id": "toolu_1", "content": "22 C"},
            {
                "role": "tool",
                "tool_call_id": "call_2",
                "content": [{"type": "text", "text": "10:00"}],
            },
            {"role": "user", "content": "Thanks"},
        ]
    )
    user, assistant, results = body["messages"]
    assert user["role"] == "user"
    assert assistant == {
        "role": "assistant",
        "content": [
            {"type": "text", "text": "Checking."},
            {
                "type": "tool_use",
                "id": "toolu_1",
                "name": "get_weather",
                "input": {"city": "Paris"},
            },
            {"type": "tool_use", "id": "call_2", "name": "get_time", "input": {}},
        ],
    }
    # All results of the turn in one user message, before the user's own text.
    assert results == {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": "22 C"},
            {
                "type": "tool_result",
                "tool_use_id": "call_2",
                "content": [{"type": "text", "text": "10:00"}],
            },
            {"type": "text", "text": "Thanks"},
        ],
    }


def test_assistant_without_content_sends_only_tool_use() -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    body = build(
        messages=[*USER, {"role": "assistant", "content": None, "tool_calls": [call]}],
    )
    assert body["messages"][1]["content"] == [
        {"type": "tool_use", "id": "c1", "name": "f", "input": {}}
    ]


@pytest.mark.parametrize("arguments", ["{not json", "[1, 2]"])
def test_tool_call_arguments_must_be_a_json_object(arguments: str) -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": arguments}}
    error = refused(messages=[*USER, {"role": "assistant", "tool_calls": [call]}])
    assert error.param == "messages[1].tool_calls[0].function.arguments"


# --- tools and parameters -------------------------------------------------------------------------

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        "strict": True,
    },
}
BARE = {"type": "function", "function": {"name": "ping"}}


def test_tools() -> None:
    assert build(tools=[WEATHER, BARE])["tools"] == [
        {
            "name": "get_weather",
            "description": "Weather for a city",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
        {"name": "ping", "input_schema": {"type": "object", "properties": {}}},
    ]


@pytest.mark.parametrize(
    ("choice", "parallel", "expected"),
    [
        (None, None, None),
        ("auto", None, {"type": "auto"}),
        ("required", None, {"type": "any"}),
        ("none", None, {"type": "none"}),
        ({"type": "function", "function": {"name": "get_weather"}}, None, None),
        (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
        ("required", False, {"type": "any", "disable_parallel_tool_use": True}),
        ("none", False, {"type": "none"}),
        ("auto", True, {"type": "auto"}),
    ],
)
def test_tool_choice_and_parallel_tool_calls(
    choice: Any, parallel: bool | None, expected: dict[str, Any] | None
) -> None:
    fields: dict[str, Any] = {"tools": [WEATHER]}
    if choice is not None:
        fields["tool_choice"] = choice
    if parallel is not None:
        fields["parallel_tool_calls"] = parallel
    body = build(**fields)
    if isinstance(choice, dict):
        expected = {"type": "tool", "name": "get_weather"}
    assert body.get("tool_choice") == expected


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"tools": [{"type": "custom", "custom": {"name": "x"}}]}, "tools[0].type"),
        ({"tools": [WEATHER], "tool_choice": {"type": "allowed_tools"}}, "tool_choice"),
        ({"tool_choice": "required"}, "tool_choice"),
    ],
)
def test_tool_settings_anthropic_cannot_honour(fields: dict[str, Any], param: str) -> None:
    assert refused(**fields).param == param


def test_no_tools_and_harmless_tool_choice_sends_none() -> None:
    body = build(tool_choice="auto", parallel_tool_calls=False)
    assert "tools" not in body
    assert "tool_choice" not in body


@pytest.mark.parametrize(("stop", "expected"), [("END", ["END"]), (["a", "b"], ["a", "b"])])
def test_stop_sequences(stop: Any, expected: list[str]) -> None:
    assert build(stop=stop)["stop_sequences"] == expected


def test_sampling_and_user() -> None:
    body = build(temperature=0.3, top_p=0.9, top_k=40, user="user-42")
    assert body["temperature"] == 0.3
    assert body["top_p"] == 0.9
    assert body["top_k"] == 40
    assert body["metadata"] == {"user_id": "user-42"}


def test_temperature_above_one_is_refused_not_clamped() -> None:
    error = refused(temperature=1.5)
    assert error.param == "temperature"
    assert "0 to 1" in error.message


@pytest.mark.parametrize(
    ("effort", "budget", "max_tokens"),
    [("low", 1024, 4096), ("medium", 4096, 5120), ("high", 16384, 17408)],
)
def test_reasoning_effort_enables_thinking(effort: str, budget: int, max_tokens: int) -> None:
    body = build(reasoning_effort=effort)
    assert body["thinking"] == {"type": "enabled", "budget_tokens": budget}
    assert body["max_tokens"] == max_tokens
    assert body["max_tokens"] > budget


def test_reasoning_effort_keeps_a_larger_max_tokens() -> None:
    body = build(reasoning_effort="medium", max_completion_tokens=20000)
    assert body["max_tokens"] == 20000


@pytest.mark.parametrize("effort", ["none", "minimal"])
def test_reasoning_effort_none_means_no_thinking(effort: str) -> None:
    assert "thinking" not in build(reasoning_effort=effort)


def test_thinking_accepts_the_default_temperature() -> None:
    assert build(reasoning_effort="low", temperature=1)["temperature"] == 1


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"reasoning_effort": "low", "temperature": 0.2}, "temperature"),
        ({"reasoning_effort": "low", "top_k": 5}, "top_k"),
        ({"reasoning_effort": "low", "temperature": 0.2, "top_k": 5}, "temperature"),
        ({"reasoning_effort": "extreme"}, "reasoning_effort"),
    ],
)
def test_thinking_conflicts(fields: dict[str, Any], param: str) -> None:
    assert refused(**fields).param == param


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"n": 2}, "n"),
        ({"logprobs": True}, "logprobs"),
        ({"top_logprobs": 3}, "top_logprobs"),
        ({"frequency_penalty": 0.5}, "frequency_penalty"),
        ({"presence_penalty": -1}, "presence_penalty"),
        ({"seed": 0}, "seed"),
        ({"logit_bias": {"50256": -100}}, "logit_bias"),
        ({"modalities": ["text", "audio"]}, "modalities"),
        ({"response_format": {"type": "json_object"}}, "response_format"),
        (
            {"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}},
            "response_format",
        ),
    ],
)
def test_unsupported_parameters_are_refused(fields: dict[str, Any], param: str) -> None:
    error = refused(**fields)
    assert error.param == param
    assert error.code == "unsupported_parameter"
    assert error.type == "invalid_request_error"


def test_neutral_values_of_unsupported_parameters_pass() -> None:
    body = build(
        n=1,
        logprobs=False,
        frequency_penalty=0,
        presence_penalty=0,
        response_format={"type": "text"},
        modalities=["text"],
    )
    for name in ("n", "logprobs", "frequency_penalty", "presence_penalty", "response_format"):
        assert name not in body


# --- the stream -----------------------------------------------------------------------------------


def new(include_usage: bool = False) -> adapter.Converter:
    meta = StreamMeta(id="chatcmpl-gw", created=1234567890, model="claude")
    return adapter.new_converter(StreamContext(meta, include_usage=include_usage))


def feed(conv: adapter.Converter, *objects: dict[str, Any]) -> list[Chunk]:
    out: list[Chunk] = []
    for obj in objects:
        out += conv.feed(SSEEvent(obj.get("type", "message"), json.dumps(obj), ""))
    return out


def replay(name: str, include_usage: bool = False) -> tuple[adapter.Converter, list[Chunk]]:
    """A transcript through the real SSE decoder and a converter, as the gateway runs it."""
    conv = new(include_usage)
    decoder = SSEDecoder()
    out: list[Chunk] = []
    for event in decoder.feed((TRANSCRIPT_DIR / f"{name}.sse").read_bytes()):
        out += conv.feed(event)
    out += conv.close()
    return conv, out


def deltas(chunks: list[Chunk]) -> list[dict[str, Any]]:
    return [dict(c["delta"]) for item in chunks for c in item["choices"]]


def finishes(chunks: list[Chunk]) -> list[str]:
    return [c["finish_reason"] for item in chunks for c in item["choices"] if c["finish_reason"]]


def tool_deltas(chunks: list[Chunk]) -> list[dict[str, Any]]:
    return [dict(call) for d in deltas(chunks) for call in d.get("tool_calls") or ()]


@pytest.mark.parametrize("name", TRANSCRIPTS)
def test_every_transcript_has_the_chunk_shape(name: str) -> None:
    conv, chunks = replay(name, include_usage=True)
    assert conv.done
    assert deltas(chunks)[0] == {"role": "assistant", "content": ""}
    assert sum("role" in d for d in deltas(chunks)) == 1
    assert len(finishes(chunks)) == 1
    assert chunks[-2]["choices"][0]["finish_reason"] is not None
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == conv.usage
    for item in chunks:
        assert item["id"] == "chatcmpl-gw"
        assert item["created"] == 1234567890
        assert item["model"] == "claude"
        assert item["object"] == "chat.completion.chunk"


def test_text() -> None:
    conv, chunks = replay("text")
    assert deltas(chunks) == [
        {"role": "assistant", "content": ""},
        {"content": "Hello"},
        {"content": " there"},
        {"content": "! How can I help? \u00e9\u2014\U0001f600"},
        {},
    ]
    assert finishes(chunks) == ["stop"]
    assert conv.usage == {
        "prompt_tokens": 11,
        "completion_tokens": 12,
        "total_tokens": 23,
        "prompt_tokens_details": {"cached_tokens": 0},
    }
    assert all("usage" not in item for item in chunks)


def test_one_tool_call() -> None:
    _, chunks = replay("tool_use")
    calls = tool_deltas(chunks)
    assert calls[0] == {
        "index": 0,
        "id": "toolu_01NRLabsLyVHZPKxbKvkfSMn",
        "type": "function",
        "function": {"name": "get_weather", "arguments": ""},
    }
    # Later deltas carry only the index and an argument fragment; the empty first one is skipped.
    assert all(set(c) == {"index", "function"} for c in calls[1:])
    assert all(c["function"]["arguments"] for c in calls[1:])
    arguments = "".join(c["function"]["arguments"] for c in calls)
    assert json.loads(arguments) == {"location": "Paris"}
    assert finishes(chunks) == ["tool_calls"]
    message = fold(chunks, StreamMeta(model="claude"))["choices"][0]["message"]
    assert message["content"] == "I'll check the current weather in Paris for you."


def test_parallel_tool_calls_get_contiguous_gateway_indexes() -> None:
    _, chunks = replay("parallel_tools")
    calls = tool_deltas(chunks)
    firsts = [c for c in calls if "id" in c]
    assert [(c["index"], c["id"], c["function"]["name"]) for c in firsts] == [
        (0, "toolu_01Paris9mWq3ZkJ8xVfT2bH", "get_weather"),
        (1, "toolu_01Tokyo4cRn8LpA6sYdE1uG", "get_time"),
    ]
    tools = fold(chunks, StreamMeta(model="claude"))["choices"][0]["message"]["tool_calls"]
    assert [json.loads(t["function"]["arguments"]) for t in tools] == [
        {"city": "Paris"},
        {"city": "Tokyo", "utc": True},
    ]
    assert finishes(chunks) == ["tool_calls"]


def test_thinking_becomes_reasoning_content_and_its_signature_thinking_blocks() -> None:
    conv, chunks = replay("thinking")
    assert [d.get("reasoning_content") for d in deltas(chunks) if "reasoning_content" in d] == [
        "The user asks for 27 * 453. ",
        "27 * 453 = 12231.",
    ]
    # The signed block whole (text and signature), then the redacted one (tests: signatures).
    signed = [d["thinking_blocks"] for d in deltas(chunks) if "thinking_blocks" in d]
    assert [block["type"] for blocks in signed for block in blocks] == [
        "thinking",
        "redacted_thinking",
    ]
    message = fold(chunks, StreamMeta(model="claude"))["choices"][0]["message"]
    assert message["content"] == "27 * 453 = **12,231**"
    assert conv.usage is not None
    assert conv.usage["completion_tokens"] == 164
    assert conv.usage["completion_tokens_details"] == {"reasoning_tokens": 112}


def test_cached_usage_the_last_cumulative_values_win() -> None:
    conv, chunks = replay("cached_usage", include_usage=True)
    expected = {
        "prompt_tokens": 40 + 7 + 12,
        "completion_tokens": 8,
        "total_tokens": 67,
        "prompt_tokens_details": {"cached_tokens": 7, "cache_write_tokens": 12},
    }
    assert conv.usage == expected
    assert chunks[-1]["usage"] == expected
    assert chunks[-1]["choices"] == []


def test_server_tool_blocks_are_not_client_tool_calls() -> None:
    _, chunks = replay("server_tools")
    assert tool_deltas(chunks) == []
    assert finishes(chunks) == ["stop"]
    message = fold(chunks, StreamMeta(model="claude"))["choices"][0]["message"]
    assert message["content"] == "Let me search for that. It is sunny in Paris."


@pytest.mark.parametrize(
    ("name", "reason"),
    [("refusal", "content_filter"), ("max_tokens", "length"), ("stop_sequence", "stop")],
)
def test_recorded_finish_reasons(name: str, reason: str) -> None:
    assert finishes(replay(name)[1]) == [reason]


@pytest.mark.parametrize(
    ("stop_reason", "reason"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        ("model_context_window_exceeded", "length"),
        ("pause_turn", "stop"),
        ("something_new", "stop"),
        (None, "stop"),
    ],
)
def test_every_stop_reason(stop_reason: str | None, reason: str) -> None:
    conv = new()
    chunks = feed(conv, message_start(), message_delta(stop_reason), MESSAGE_STOP)
    assert finishes(chunks) == [reason]


def test_client_tool_call_with_end_turn_finishes_with_tool_calls() -> None:
    start = {
        "type": "content_block_start",
        "index": 0,
        "content_block": {"type": "tool_use", "id": "toolu_x", "name": "f", "input": {}},
    }
    chunks = feed(new(), message_start(), start, message_delta("end_turn"), MESSAGE_STOP)
    assert finishes(chunks) == ["tool_calls"]


def test_tool_use_with_whole_input_and_no_id() -> None:
    start = {
        "type": "content_block_start",
        "index": 0,
        "content_block": {"type": "tool_use", "name": "f", "input": {"a": 1}},
    }
    repeat = {
        "type": "content_block_delta",
        "index": 0,
        "delta": {"type": "input_json_delta", "partial_json": '{"a": 1}'},
    }
    calls = tool_deltas(feed(new(), message_start(), start, repeat))
    assert len(calls) == 1
    assert calls[0]["id"].startswith("call_")
    assert calls[0]["function"] == {"name": "f", "arguments": '{"a":1}'}


def test_usage_chunk_only_when_asked_but_usage_always_kept() -> None:
    objects = (message_start(7), text_start(), text_delta("x"), message_delta(), MESSAGE_STOP)
    quiet = new()
    chunks = feed(quiet, *objects)
    assert all(item["choices"] for item in chunks)
    assert quiet.usage is not None
    assert quiet.usage["prompt_tokens"] == 7
    loud = new(include_usage=True)
    chunks = feed(loud, *objects)
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == loud.usage


def test_ping_and_unknown_events_are_ignored() -> None:
    conv = new()
    assert feed(conv, message_start()) != []
    assert conv.feed(SSEEvent("ping", '{"type": "ping"}', "")) == []
    assert feed(conv, {"type": "brand_new_event", "payload": [1]}) == []
    assert feed(conv, {"type": "content_block_delta", "index": 0, "delta": {"type": "new"}}) == []
    assert feed(conv, block_stop()) == []


def test_content_before_message_start_still_opens_with_the_role() -> None:
    chunks = feed(new(), text_delta("hi"))
    assert deltas(chunks) == [{"role": "assistant", "content": ""}, {"content": "hi"}]


def test_message_stop_alone_gives_a_role_and_a_finish() -> None:
    chunks = feed(new(), MESSAGE_STOP)
    assert deltas(chunks) == [{"role": "assistant", "content": ""}, {}]


def test_events_after_message_stop_are_ignored() -> None:
    conv = new()
    feed(conv, message_start(), MESSAGE_STOP)
    assert feed(conv, text_delta("late"), error_event()) == []
    assert conv.close() == []


def test_missing_message_stop_is_incomplete() -> None:
    conv = new()
    feed(conv, message_start(), text_start(), text_delta("par"), message_delta())
    with pytest.raises(UpstreamIncomplete):
        conv.close()


def test_malformed_events() -> None:
    with pytest.raises(UpstreamMalformed):
        new().feed(SSEEvent("message_start", '{"type": "message_start", ', ""))
    with pytest.raises(UpstreamMalformed):
        new().feed(SSEEvent("message_start", "[1, 2]", ""))
    with pytest.raises(UpstreamMalformed):
        feed(new(), {"type": "content_block_delta", "index": 0})


def test_in_stream_overloaded_error() -> None:
    conv = new()
    feed(conv, message_start(), text_start(), text_delta("a"))
    with pytest.raises(UpstreamStreamError) as info:
        feed(conv, error_event("overloaded_error", "Overloaded"))
    assert info.value.message == "Overloaded"
    assert info.value.code == "overloaded_error"
    assert info.value.status == 503
    assert info.value.retryable


def test_in_stream_other_error_is_not_retryable() -> None:
    with pytest.raises(UpstreamStreamError) as info:
        feed(new(), error_event("invalid_request_error", "Prompt is too long"))
    assert info.value.message == "Prompt is too long"
    assert info.value.code == "invalid_request_error"
    assert not info.value.retryable


# --- HTTP error bodies ----------------------------------------------------------------------------


def error_body(kind: str, message: str) -> bytes:
    return orjson.dumps({"type": "error", "error": {"type": kind, "message": message}})


@pytest.mark.parametrize(
    ("status", "kind", "client_status", "code"),
    [
        (400, "invalid_request_error", 400, None),
        (402, "billing_error", 402, "billing_error"),
        (404, "not_found_error", 404, "model_not_found"),
        (413, "request_too_large", 413, "request_too_large"),
        (429, "rate_limit_error", 429, "rate_limit_exceeded"),
        (500, "api_error", 502, "upstream_error"),
        (504, "timeout_error", 504, "upstream_error"),
        (529, "overloaded_error", 503, "upstream_unavailable"),
    ],
)
def test_error_responses(status: int, kind: str, client_status: int, code: str | None) -> None:
    error = adapter.from_error_response(status, {}, error_body(kind, f"the {kind} text"))
    assert error.status == client_status
    assert error.code == code
    assert error.message == f"the {kind} text"


def test_429_keeps_retry_after() -> None:
    error = adapter.from_error_response(
        429, {"retry-after": "12", "anthropic-ratelimit-requests-limit": "5"}, b"{}"
    )
    assert error.status == 429
    # Anthropic's rate-limit headers under OpenAI's names (test_anthropic_upstream_extras.py).
    assert error.headers == {"retry-after": "12", "x-ratelimit-limit-requests": "5"}


def test_401_hides_the_upstream_text() -> None:
    error = adapter.from_error_response(401, {}, error_body("authentication_error", "bad sk-ant"))
    assert error.status == 502
    assert "sk-ant" not in error.message


def test_error_body_that_is_not_json() -> None:
    error = adapter.from_error_response(502, {}, b"<html>Bad gateway</html>")
    assert error.status == 502
    assert error.message == "<html>Bad gateway</html>"


def test_usage_is_null_until_the_usage_chunk_when_asked() -> None:
    conv, chunks = replay("text", include_usage=True)
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == conv.usage
    assert all(item["usage"] is None for item in chunks[:-1])
    _, plain = replay("text")
    assert all("usage" not in item for item in plain)
