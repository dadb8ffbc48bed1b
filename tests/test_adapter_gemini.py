"""llms.adapters.gemini as pure functions: the request it builds, the chunks it makes of Gemini's
events, the errors it maps (protocol.md §3.4, §3.5, §5 items 55-58, 60). No server, no I/O."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from llms.adapters import gemini as adapter
from llms.adapters.base import StreamContext
from llms.chunks import StreamMeta
from llms.config import ProviderConfig, Timeouts
from llms.errors import (
    InvalidRequest,
    UpstreamIncomplete,
    UpstreamMalformed,
    UpstreamStreamError,
)
from llms.framing import SSEDecoder, SSEEvent
from llms.wire import ChatRequest, Chunk

TRANSCRIPTS = Path(__file__).parent / "transcripts" / "gemini"
META_ID = "chatcmpl-gateway"
META_CREATED = 1234567890
USER: Any = {"role": "user", "content": "hi"}
PNG = "data:image/png;base64,iVBORw0KGgo="


def provider(**kw: Any) -> ProviderConfig:
    return ProviderConfig(
        name="gm",
        type="gemini",
        base_url=kw.pop("base_url", "https://generativelanguage.googleapis.com/v1beta"),
        models={"gemini-flash": "gemini-2.5-flash"},
        timeouts=Timeouts(),
        api_key=kw.pop("api_key", "gm-secret"),
        **kw,
    )


def build(*messages: Any, model: str = "gemini-2.5-flash", **fields: Any) -> dict[str, Any]:
    request: dict[str, Any] = {"model": "gemini-flash", "messages": list(messages or [USER])}
    request.update(fields)
    upstream = adapter.build_request(ChatRequest(**request), provider(), model)  # type: ignore[typeddict-item]
    body: dict[str, Any] = json.loads(upstream.body)
    return body


def refused(*messages: Any, **fields: Any) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as info:
        build(*messages, **fields)
    assert info.value.status == 400
    return info.value


# --- the request ------------------------------------------------------------------------------


def test_url_headers_and_key_in_a_header_only() -> None:
    upstream = adapter.build_request(
        {"model": "gemini-flash", "messages": [USER]},
        provider(headers={"x-extra": "1", "Accept": "*/*"}),
        "gemini-2.5-flash",
    )
    assert upstream.method == "POST"
    assert upstream.url == (
        "https://generativelanguage.googleapis.com/v1beta/models/"
        "gemini-2.5-flash:streamGenerateContent?alt=sse"
    )
    assert "gm-secret" not in upstream.url
    assert upstream.headers["x-goog-api-key"] == "gm-secret"
    assert upstream.headers["Content-Type"] == "application/json"
    assert upstream.headers["x-extra"] == "1"
    assert upstream.headers["Accept"] == "*/*"  # provider headers come last
    assert json.loads(upstream.body) == {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}


@pytest.mark.parametrize(
    ("model", "path"),
    [("models/gemini-2.5-pro", "models/gemini-2.5-pro"), ("tunedModels/mine", "tunedModels/mine")],
)
def test_model_paths(model: str, path: str) -> None:
    upstream = adapter.build_request({"model": "x", "messages": [USER]}, provider(), model)
    assert upstream.url.endswith(f"/v1beta/{path}:streamGenerateContent?alt=sse")


def test_system_and_developer_become_system_instruction() -> None:
    body = build(
        {"role": "system", "content": "Be brief."},
        {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
        USER,
        {"role": "assistant", "content": "Salut"},
        {"role": "user", "content": [{"type": "text", "text": "ça va?"}]},
    )
    assert body["systemInstruction"] == {
        "parts": [{"text": "Be brief."}, {"text": "Answer in French."}]
    }
    assert body["contents"] == [
        {"role": "user", "parts": [{"text": "hi"}]},
        {"role": "model", "parts": [{"text": "Salut"}]},
        {"role": "user", "parts": [{"text": "ça va?"}]},
    ]


def test_only_system_messages_are_refused() -> None:
    assert refused({"role": "system", "content": "x"}).param == "messages"


def test_images_audio_and_files() -> None:
    content = [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": PNG, "detail": "high"}},
        {"type": "image_url", "image_url": {"url": "gs://bucket/cat.jpg"}},
        {
            "type": "image_url",
            "image_url": {"url": "https://generativelanguage.googleapis.com/v1beta/files/abc"},
        },
        {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
        {
            "type": "file",
            "file": {"file_data": "data:application/pdf;base64,JVBERi0=", "filename": "a.pdf"},
        },
    ]
    body = build({"role": "user", "content": content})
    assert body["contents"][0]["parts"] == [
        {"text": "What is this?"},
        {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}},
        {"fileData": {"fileUri": "gs://bucket/cat.jpg", "mimeType": "image/jpeg"}},
        {"fileData": {"fileUri": "https://generativelanguage.googleapis.com/v1beta/files/abc"}},
        {"inlineData": {"mimeType": "audio/wav", "data": "UklGRg=="}},
        {"inlineData": {"mimeType": "application/pdf", "data": "JVBERi0="}},
    ]


@pytest.mark.parametrize(
    "url", ["https://example.com/cat.png", "http://example.com/cat.png", "data:image/png,raw"]
)
def test_image_urls_gemini_cannot_read_are_refused_by_field(url: str) -> None:
    content = [{"type": "text", "text": "look"}, {"type": "image_url", "image_url": {"url": url}}]
    error = refused({"role": "system", "content": "s"}, USER, {"role": "user", "content": content})
    assert error.param == "messages[2].content[1].image_url"


def test_unknown_content_part_is_refused_by_field() -> None:
    content = [{"type": "file", "file": {"file_id": "file-1"}}]
    assert refused({"role": "user", "content": content}).param == "messages[0].content[0].file"
    content = [{"type": "video", "video": {}}]
    assert refused({"role": "user", "content": content}).param == "messages[0].content[0]"


WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
            "additionalProperties": False,
        },
        "strict": True,
    },
}
TIME = {"type": "function", "function": {"name": "get_time"}}


def test_tools_use_the_json_schema_field_unchanged() -> None:
    body = build(tools=[WEATHER, TIME])
    assert body["tools"] == [
        {
            "functionDeclarations": [
                {
                    "name": "get_weather",
                    "description": "Weather for a city",
                    "parametersJsonSchema": WEATHER["function"]["parameters"],  # type: ignore[index]
                },
                {"name": "get_time"},
            ]
        }
    ]
    assert "toolConfig" not in body


@pytest.mark.parametrize(
    ("choice", "config"),
    [
        ("auto", {"mode": "AUTO"}),
        ("none", {"mode": "NONE"}),
        ("required", {"mode": "ANY"}),
        (
            {"type": "function", "function": {"name": "get_time"}},
            {"mode": "ANY", "allowedFunctionNames": ["get_time"]},
        ),
    ],
)
def test_tool_choice(choice: Any, config: dict[str, Any]) -> None:
    body = build(tools=[WEATHER, TIME], tool_choice=choice)
    assert body["toolConfig"] == {"functionCallingConfig": config}


@pytest.mark.parametrize(("mode", "gemini_mode"), [("auto", "AUTO"), ("required", "ANY")])
def test_allowed_tools_offers_only_those(mode: str, gemini_mode: str) -> None:
    choice = {
        "type": "allowed_tools",
        "allowed_tools": {
            "mode": mode,
            "tools": [{"type": "function", "function": {"name": "get_time"}}],
        },
    }
    body = build(tools=[WEATHER, TIME], tool_choice=choice)
    assert body["tools"] == [{"functionDeclarations": [{"name": "get_time"}]}]
    assert body["toolConfig"] == {"functionCallingConfig": {"mode": gemini_mode}}


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        (
            {"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "nope"}}},
            "tool_choice",
        ),
        ({"tool_choice": "required"}, "tool_choice"),
        (
            {"tools": [WEATHER], "tool_choice": {"type": "custom", "custom": {"name": "x"}}},
            "tool_choice",
        ),
        ({"tools": [{"type": "custom", "custom": {"name": "x"}}]}, "tools[0]"),
        ({"tools": [WEATHER], "parallel_tool_calls": False}, "parallel_tool_calls"),
        ({"logprobs": True}, "logprobs"),
        ({"logit_bias": {"50256": -100}}, "logit_bias"),
        ({"functions": [{"name": "f"}]}, "functions"),
        ({"audio": {"voice": "alloy", "format": "wav"}}, "audio"),
        ({"modalities": ["text", "audio"]}, "modalities"),
        ({"response_format": {"type": "xml"}}, "response_format.type"),
        ({"reasoning_effort": "extreme"}, "reasoning_effort"),
    ],
)
def test_what_gemini_cannot_honour_is_refused_by_name(fields: dict[str, Any], param: str) -> None:
    error = refused(USER, **fields)
    assert error.param == param
    assert error.code in ("unsupported_parameter", "unsupported_value")


def test_parameters_that_change_nothing_are_accepted_and_not_sent() -> None:
    body = build(
        tools=[WEATHER],
        parallel_tool_calls=True,
        user="user-42",
        store=False,
        metadata={"a": "b"},
        service_tier="auto",
        logprobs=False,
        modalities=["text"],
        tool_choice="auto",
    )
    assert set(body) == {"contents", "tools", "toolConfig"}
    assert "user-42" not in json.dumps(body)
    # Without tools in play, one-call-at-a-time is already true.
    assert "tools" not in build(parallel_tool_calls=False)


def test_tool_round_trip() -> None:
    calls = [
        {
            "id": "call_a",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
        },
        {"id": "call_b", "type": "function", "function": {"name": "get_time", "arguments": ""}},
    ]
    body = build(
        USER,
        {"role": "assistant", "content": "Checking.", "tool_calls": calls},
        {"role": "tool", "tool_call_id": "call_b", "content": "12:00"},
        {"role": "tool", "tool_call_id": "call_a", "content": '{"temp": 21, "sky": "clear"}'},
        {"role": "user", "content": "thanks"},
        tools=[WEATHER, TIME],
    )
    assert body["contents"][1:] == [
        {
            "role": "model",
            "parts": [
                {"text": "Checking."},
                {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
                {"functionCall": {"name": "get_time", "args": {}}},
            ],
        },
        {
            "role": "user",
            "parts": [
                {"functionResponse": {"name": "get_time", "response": {"result": "12:00"}}},
                {
                    "functionResponse": {
                        "name": "get_weather",
                        "response": {"temp": 21, "sky": "clear"},
                    }
                },
            ],
        },
        {"role": "user", "parts": [{"text": "thanks"}]},
    ]


def test_gemini_3_replays_calls_with_the_documented_stand_in_signature() -> None:
    calls = [
        {"id": f"call_{n}", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}
        for n in range(2)
    ]
    history = (USER, {"role": "assistant", "content": None, "tool_calls": calls})
    parts = build(*history, model="gemini-3-pro-preview")["contents"][1]["parts"]
    assert parts[0]["thoughtSignature"] == "skip_thought_signature_validator"
    assert "thoughtSignature" not in parts[1]
    for part in build(*history, model="gemini-2.5-flash")["contents"][1]["parts"]:
        assert "thoughtSignature" not in part


def test_tool_message_errors_name_the_field() -> None:
    orphan = {"role": "tool", "tool_call_id": "call_zzz", "content": "x"}
    assert refused(USER, orphan).param == "messages[1].tool_call_id"
    bad = {"id": "c", "type": "function", "function": {"name": "f", "arguments": "[1]"}}
    error = refused(USER, {"role": "assistant", "tool_calls": [bad]})
    assert error.param == "messages[1].tool_calls[0].function.arguments"


def test_generation_config() -> None:
    body = build(
        temperature=0.2,
        top_p=0.9,
        seed=7,
        presence_penalty=0.5,
        frequency_penalty=-0.5,
        max_tokens=10,
        max_completion_tokens=99,
        stop="END",
        n=2,
    )
    assert body["generationConfig"] == {
        "temperature": 0.2,
        "topP": 0.9,
        "seed": 7,
        "presencePenalty": 0.5,
        "frequencyPenalty": -0.5,
        "maxOutputTokens": 99,
        "stopSequences": ["END"],
        "candidateCount": 2,
    }
    body = build(max_tokens=10, stop=["a", "b"], n=1, temperature=0)
    assert body["generationConfig"] == {
        "temperature": 0,
        "maxOutputTokens": 10,
        "stopSequences": ["a", "b"],
    }


def test_response_format() -> None:
    assert "generationConfig" not in build(response_format={"type": "text"})
    body = build(response_format={"type": "json_object"})
    assert body["generationConfig"] == {"responseMimeType": "application/json"}
    schema = {
        "type": "object",
        "properties": {"a": {"type": "integer"}},
        "additionalProperties": False,
    }
    body = build(
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "s", "schema": schema, "strict": True},
        }
    )
    assert body["generationConfig"] == {
        "responseMimeType": "application/json",
        "responseJsonSchema": schema,
    }


@pytest.mark.parametrize(
    ("model", "effort", "config"),
    [
        ("gemini-2.5-flash", "low", {"thinkingBudget": 1024, "includeThoughts": True}),
        ("gemini-2.5-flash", "medium", {"thinkingBudget": 8192, "includeThoughts": True}),
        ("gemini-2.5-pro", "high", {"thinkingBudget": 24576, "includeThoughts": True}),
        ("gemini-2.5-flash", "none", {"thinkingBudget": 0}),
        ("gemini-3-pro-preview", "low", {"thinkingLevel": "low", "includeThoughts": True}),
        (
            "gemini-3-flash-preview",
            "minimal",
            {"thinkingLevel": "minimal", "includeThoughts": True},
        ),
        ("gemini-3-pro-preview", "xhigh", {"thinkingLevel": "high", "includeThoughts": True}),
        ("gemini-3-flash-preview", "none", {"thinkingLevel": "minimal"}),
    ],
)
def test_reasoning_effort(model: str, effort: str, config: dict[str, Any]) -> None:
    body = build(model=model, reasoning_effort=effort)
    assert body["generationConfig"] == {"thinkingConfig": config}


# --- the stream -------------------------------------------------------------------------------


def new(include_usage: bool = False) -> adapter.Converter:
    meta = StreamMeta(id=META_ID, created=META_CREATED, model="gemini-flash")
    return adapter.new_converter(StreamContext(meta, include_usage=include_usage))


def event(data: Any, name: str = "message") -> SSEEvent:
    return SSEEvent(name, data if isinstance(data, str) else json.dumps(data), "")


def feed(conv: adapter.Converter, *items: Any) -> list[Chunk]:
    out: list[Chunk] = []
    for item in items:
        out += conv.feed(event(item))
    return out


def play(
    name: str, include_usage: bool = False, piece: int = 0
) -> tuple[adapter.Converter, list[Chunk]]:
    """A stored transcript through the real SSE decoder (in `piece`-byte reads) and a converter."""
    raw = (TRANSCRIPTS / name).read_bytes()
    conv = new(include_usage)
    decoder = SSEDecoder()
    out: list[Chunk] = []
    step = piece or len(raw)
    for start in range(0, len(raw), step):
        for item in decoder.feed(raw[start : start + step]):
            out += conv.feed(item)
    for item in decoder.flush():
        out += conv.feed(item)
    out += conv.close()
    return conv, out


def cand(parts: list[Any], finish: str | None = None, index: int = 0) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": index}
    if finish:
        candidate["finishReason"] = finish
    return {"candidates": [candidate]}


def choices(chunks: list[Chunk]) -> list[dict[str, Any]]:
    return [dict(choice) for item in chunks for choice in item["choices"]]


def deltas(chunks: list[Chunk], index: int = 0) -> list[dict[str, Any]]:
    return [dict(c["delta"]) for c in choices(chunks) if c["index"] == index]


def finishes(chunks: list[Chunk]) -> list[tuple[int, str]]:
    return [(c["index"], c["finish_reason"]) for c in choices(chunks) if c["finish_reason"]]


def text(chunks: list[Chunk], key: str = "content", index: int = 0) -> str:
    return "".join(d.get(key) or "" for d in deltas(chunks, index))


@pytest.mark.parametrize("piece", [0, 1, 7])
def test_text_stream(piece: int) -> None:
    conv, chunks = play("text.sse", piece=piece)
    assert deltas(chunks)[0] == {"role": "assistant", "content": ""}
    assert [d.get("role") for d in deltas(chunks)].count("assistant") == 1
    assert (
        text(chunks)
        == "The capital of France is Paris. It sits on the Seine, in the north of the country."
    )
    assert finishes(chunks) == [(0, "stop")]
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"  # no usage chunk unless asked
    assert conv.done
    assert conv.usage == {
        "prompt_tokens": 9,
        "completion_tokens": 117,
        "total_tokens": 126,
        "prompt_tokens_details": {"cached_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 97},
    }
    for item in chunks:
        assert (item["id"], item["created"], item["model"]) == (
            META_ID,
            META_CREATED,
            "gemini-flash",
        )
        assert item["object"] == "chat.completion.chunk"
        assert "usage" not in item
        for choice in item["choices"]:
            assert choice["logprobs"] is None


def test_usage_chunk_comes_last_and_only_when_asked() -> None:
    conv, chunks = play("text.sse", include_usage=True)
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == conv.usage
    assert all(item["usage"] is None for item in chunks[:-1])
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"


def test_finish_goes_out_when_seen_and_usage_at_the_end_of_the_body() -> None:
    conv = new(include_usage=True)
    chunks = feed(conv, cand([{"text": "Hi"}], "STOP"))
    assert finishes(chunks) == [(0, "stop")]
    assert not conv.done
    chunks = feed(
        conv,
        {"usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 1, "totalTokenCount": 4}},
    )
    assert chunks == []
    last = conv.close()
    assert conv.done
    assert len(last) == 1
    assert last[0]["usage"]["total_tokens"] == 4
    assert conv.close() == []


def test_usage_from_a_later_event_with_cached_and_reasoning_tokens() -> None:
    _, chunks = play("usage_after_finish.sse", include_usage=True)
    assert text(chunks) == "Cached context says: the invoice is due on March 3."
    assert finishes(chunks) == [(0, "stop")]
    assert chunks[-1]["usage"] == {
        "prompt_tokens": 4107,
        "completion_tokens": 263,
        "total_tokens": 4370,
        "prompt_tokens_details": {"cached_tokens": 4032},
        "completion_tokens_details": {"reasoning_tokens": 250},
    }


def test_thoughts_become_reasoning_content_and_signatures_are_dropped() -> None:
    conv, chunks = play("thinking.sse")
    reasoning = text(chunks, "reasoning_content")
    assert reasoning.startswith("**Counting the letters**")
    assert "positions 3, 8 and 9" in reasoning
    assert text(chunks) == 'There are three r\'s in "strawberry".'
    assert "r at positions" not in text(chunks)
    dumped = json.dumps(chunks)
    assert "thoughtSignature" not in dumped and "CiQBcsjaf" not in dumped
    assert conv.usage is not None
    assert conv.usage["completion_tokens_details"] == {"reasoning_tokens": 418}


def test_one_tool_call_gets_a_synthesized_id() -> None:
    _, chunks = play("tool_call.sse")
    calls = [call for d in deltas(chunks) for call in d.get("tool_calls") or ()]
    assert len(calls) == 1
    call = calls[0]
    assert call["index"] == 0
    assert call["id"].startswith("call_") and len(call["id"]) > 8
    assert call["type"] == "function"
    assert call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == {"city": "Paris", "unit": "celsius"}
    assert finishes(chunks) == [(0, "tool_calls")]
    # Its thoughtSignature travels with it (tests/test_adapter_signatures.py).
    assert next(d for d in deltas(chunks) if "tool_calls" in d)["thinking_blocks"][0]["signature"]


def test_parallel_tool_calls_keep_upstream_ids_and_count_from_zero() -> None:
    _, chunks = play("parallel_tools.sse")
    assert text(chunks) == "Checking both cities now."
    calls = [call for d in deltas(chunks) for call in d.get("tool_calls") or ()]
    assert [(c["index"], c["id"], c["function"]["name"]) for c in calls] == [
        (0, "ujx4wm2b", "get_weather"),
        (1, "3lq9d0ft", "get_weather"),
    ]
    assert [json.loads(c["function"]["arguments"]) for c in calls] == [
        {"city": "Paris"},
        {"city": "Tokyo"},
    ]
    assert finishes(chunks) == [(0, "tool_calls")]


def test_call_without_args_gets_an_empty_object() -> None:
    chunks = feed(new(), cand([{"functionCall": {"name": "get_time"}}], "STOP"))
    call = deltas(chunks)[1]["tool_calls"][0]
    assert call["function"] == {"name": "get_time", "arguments": "{}"}


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("STOP", "stop"),
        ("MAX_TOKENS", "length"),
        ("SAFETY", "content_filter"),
        ("RECITATION", "content_filter"),
        ("BLOCKLIST", "content_filter"),
        ("PROHIBITED_CONTENT", "content_filter"),
        ("SPII", "content_filter"),
        ("IMAGE_SAFETY", "content_filter"),
        ("LANGUAGE", "stop"),
        ("OTHER", "stop"),
        ("MALFORMED_FUNCTION_CALL", "stop"),
        ("FINISH_REASON_UNSPECIFIED", "stop"),
        ("SOMETHING_NEW", "stop"),
    ],
)
def test_finish_reasons(reason: str, expected: str) -> None:
    conv = new()
    chunks = feed(conv, cand([{"text": "x"}]), cand([], reason))
    assert finishes(chunks) == [(0, expected)]
    conv.close()
    assert conv.done


@pytest.mark.parametrize(
    ("reason", "expected"),
    [("STOP", "tool_calls"), ("MAX_TOKENS", "length"), ("SAFETY", "content_filter")],
)
def test_finish_reasons_after_a_tool_call(reason: str, expected: str) -> None:
    chunks = feed(new(), cand([{"functionCall": {"name": "f", "args": {}}}], reason))
    assert finishes(chunks) == [(0, expected)]


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("max_tokens.sse", "Once upon a time, in a kingdom by the sea, there lived", "length"),
        ("safety.sse", "Here is how you", "content_filter"),
    ],
)
def test_stored_finishes(name: str, content: str, reason: str) -> None:
    _, chunks = play(name)
    assert text(chunks) == content
    assert finishes(chunks) == [(0, reason)]


def test_blocked_prompt_is_an_empty_content_filter_answer() -> None:
    conv, chunks = play("prompt_blocked.sse", include_usage=True)
    assert deltas(chunks)[0] == {"role": "assistant", "content": ""}
    assert text(chunks) == ""
    assert finishes(chunks) == [(0, "content_filter")]
    assert chunks[-1]["usage"]["prompt_tokens"] == 12  # type: ignore[index]
    assert conv.done


def test_two_candidates_are_two_choices() -> None:
    conv, chunks = play("two_candidates.sse", include_usage=True)
    assert text(chunks, index=0) == "Red apple."
    assert text(chunks, index=1) == "Blue sky."
    for index in (0, 1):
        assert deltas(chunks, index)[0] == {"role": "assistant", "content": ""}
        assert sum(d.get("role") == "assistant" for d in deltas(chunks, index)) == 1
    assert finishes(chunks) == [(0, "stop"), (1, "stop")]
    assert chunks[-1]["choices"] == []
    assert conv.done


def test_end_of_body_with_a_candidate_unfinished_is_incomplete() -> None:
    conv = new()
    feed(
        conv,
        {
            "candidates": [
                {"content": {"parts": [{"text": "a"}]}, "index": 0},
                {"content": {"parts": [{"text": "b"}]}, "index": 1},
            ]
        },
    )
    feed(conv, cand([], "STOP", index=0))
    with pytest.raises(UpstreamIncomplete):
        conv.close()
    assert not conv.done


@pytest.mark.parametrize("piece", [0, 5])
def test_end_of_body_before_any_finish_is_incomplete(piece: int) -> None:
    with pytest.raises(UpstreamIncomplete):
        play("truncated.sse", piece=piece)
    with pytest.raises(UpstreamIncomplete):
        new().close()


def test_parts_after_a_finish_are_dropped() -> None:
    conv = new()
    chunks = feed(
        conv, cand([{"text": "done"}], "STOP"), cand([{"text": "more"}]), cand([], "MAX_TOKENS")
    )
    assert text(chunks) == "done"
    assert finishes(chunks) == [(0, "stop")]


def test_in_stream_error() -> None:
    conv = new()
    decoder = SSEDecoder()
    raw = (TRANSCRIPTS / "error_midstream.sse").read_bytes()
    items = decoder.feed(raw)
    assert text(conv.feed(items[0]) + conv.feed(items[1])) == "Partial answer"
    with pytest.raises(UpstreamStreamError) as info:
        conv.feed(items[2])
    assert info.value.message == "The model is overloaded. Please try again later."
    assert info.value.code == "unavailable"


@pytest.mark.parametrize("data", ['{"candidates": [', "not json", "[1, 2]", '"text"'])
def test_malformed_events(data: str) -> None:
    with pytest.raises(UpstreamMalformed):
        new().feed(event(data))


def test_unknown_events_fields_and_parts_are_ignored() -> None:
    conv = new()
    assert conv.feed(event({"x": 1}, name="ping")) == []
    assert feed(conv, {"modelVersion": "gemini-2.5-flash", "somethingNew": {}}) == []
    chunks = feed(
        conv,
        cand(
            [
                {"executableCode": {"language": "PYTHON", "code": "1"}},
                {"text": "", "thoughtSignature": "abc"},
            ]
        ),
        cand([{"text": "ok", "newField": 1}], "STOP"),
    )
    assert deltas(chunks) == [{"role": "assistant", "content": ""}, {"content": "ok"}, {}]
    assert conv.close() == []


# --- error bodies -----------------------------------------------------------------------------


def gemini_error(code: int, status: str, message: str, details: list[Any] | None = None) -> bytes:
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details is not None:
        error["details"] = details
    return json.dumps({"error": error}, indent=2).encode()


@pytest.mark.parametrize(
    ("status", "grpc", "client_status", "error_type", "code"),
    [
        (400, "INVALID_ARGUMENT", 400, "invalid_request_error", "invalid_argument"),
        (400, "FAILED_PRECONDITION", 400, "invalid_request_error", "failed_precondition"),
        (404, "NOT_FOUND", 404, "invalid_request_error", "model_not_found"),
        (500, "INTERNAL", 502, "server_error", "upstream_error"),
        (503, "UNAVAILABLE", 503, "server_error", "upstream_unavailable"),
        (504, "DEADLINE_EXCEEDED", 504, "server_error", "upstream_error"),
    ],
)
def test_error_bodies(
    status: int, grpc: str, client_status: int, error_type: str, code: str
) -> None:
    error = adapter.from_error_response(
        status, {}, gemini_error(status, grpc, f"message for {grpc}")
    )
    assert (error.status, error.type, error.code) == (client_status, error_type, code)
    assert error.message == f"message for {grpc}"


def test_rate_limit_gets_retry_after_from_retry_info() -> None:
    details = [
        {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": []},
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "37.2s"},
    ]
    body = gemini_error(429, "RESOURCE_EXHAUSTED", "You exceeded your current quota.", details)
    error = adapter.from_error_response(429, {"x-other": "1"}, body)
    assert (error.status, error.type, error.code) == (
        429,
        "rate_limit_error",
        "rate_limit_exceeded",
    )
    assert error.headers == {"Retry-After": "38"}
    assert error.message == "You exceeded your current quota."
    error = adapter.from_error_response(429, {"Retry-After": "5"}, body)
    assert error.headers == {"Retry-After": "5"}


def test_bad_key_is_the_gateways_problem_and_its_text_is_not_passed_on() -> None:
    details = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}]
    body = (
        b"[" + gemini_error(400, "INVALID_ARGUMENT", "API key not valid. gm-secret", details) + b"]"
    )
    error = adapter.from_error_response(400, {}, body)
    assert (error.status, error.code) == (502, "upstream_auth_failed")
    assert "gm-secret" not in error.message
    error = adapter.from_error_response(403, {}, gemini_error(403, "PERMISSION_DENIED", "denied"))
    assert (error.status, error.code) == (502, "upstream_auth_failed")


def test_error_body_that_is_not_json() -> None:
    error = adapter.from_error_response(502, {}, b"<html>Bad Gateway</html>")
    assert error.status == 502
    assert "Bad Gateway" in error.message
