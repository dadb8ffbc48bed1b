"""The Bedrock Converse adapter, pure: request translation, the event converter, AWS's errors,
and the provider's config keys."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from llms.adapters import bedrock
from llms.adapters.base import StreamContext
from llms.adapters.bedrock_request import build_request, build_whole_request
from llms.chunks import StreamMeta
from llms.config import ProviderConfig, parse_config
from llms.errors import (
    ConfigError,
    InvalidRequest,
    UpstreamHTTPError,
    UpstreamIncomplete,
    UpstreamMalformed,
)
from llms.framing import EventStreamMessage
from llms.wire import ChatRequest, Chunk

MODEL = "anthropic.claude-3-5-sonnet-20240620-v1:0"
PNG = "iVBORw0KGgo="


def provider(**entry: Any) -> ProviderConfig:
    raw = {
        "type": "bedrock",
        "region": "eu-central-1",
        "access_key_id": "AKIDEXAMPLE",
        "secret_access_key": "$AWS_SECRET_ACCESS_KEY",
        "session_token": "$AWS_SESSION_TOKEN",
        "models": {"claude-br": MODEL},
        **entry,
    }
    raw = {key: value for key, value in raw.items() if value is not None or key == "region"}
    env = {"AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"}
    return parse_config({"providers": {"br": raw}}, source="t", env=env).providers[0]


def body_of(request: dict[str, Any], model: str = MODEL, whole: bool = False) -> dict[str, Any]:
    build = build_whole_request if whole else build_request
    sent = build(request, provider(), model)  # type: ignore[arg-type]
    parsed: dict[str, Any] = orjson.loads(sent.body)
    return parsed


# --- config -----------------------------------------------------------------------------------


def test_config_keys_and_the_default_url() -> None:
    p = provider()
    assert p.base_url == "https://bedrock-runtime.eu-central-1.amazonaws.com"
    # `$AWS_SESSION_TOKEN` unset: no token (long-term keys have none), the provider still used.
    assert p.options == {
        "region": "eu-central-1",
        "access_key_id": "AKIDEXAMPLE",
        "secret_access_key": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
    }
    assert provider(base_url="https://vpce-1.bedrock-runtime.example/").base_url == (
        "https://vpce-1.bedrock-runtime.example"
    )


@pytest.mark.parametrize(
    ("entry", "path"),
    [
        ({"region": "Frankfurt"}, "providers.br.region"),
        ({"region": None}, "providers.br.region"),
        ({"access_key_id": None}, "providers.br.access_key_id"),
        ({"secret_access_key": "line\nbreak"}, "providers.br.secret_access_key"),
        ({"profile": "default"}, "providers.br.profile"),
        ({"api_key": "ABSK-key"}, "providers.br.api_key"),
    ],
)
def test_config_mistakes_name_the_path(entry: dict[str, Any], path: str) -> None:
    with pytest.raises(ConfigError, match=path.replace(".", r"\.")):
        provider(**entry)


def test_a_missing_secret_skips_the_provider_with_a_note() -> None:
    raw = {
        "type": "bedrock",
        "region": "us-east-1",
        "access_key_id": "$AWS_ACCESS_KEY_ID",
        "secret_access_key": "$AWS_SECRET_ACCESS_KEY",
        "models": ["m"],
    }
    other = {"type": "openai", "base_url": "http://127.0.0.1:1/v1", "models": ["x"]}
    config = parse_config({"providers": {"br": raw, "o": other}}, source="t", env={})
    assert [p.name for p in config.providers] == ["o"]
    assert "AWS_ACCESS_KEY_ID" in config.notes[0]


# --- the request ------------------------------------------------------------------------------


def test_the_url_escapes_the_model_id_as_one_segment() -> None:
    arn = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-v1:0"
    sent = build_request(
        {"model": "m", "messages": [{"role": "user", "content": "hi"}]}, provider(), arn
    )
    assert sent.url == (
        "https://bedrock-runtime.eu-central-1.amazonaws.com/model/arn%3Aaws%3Abedrock%3Aus-east-1"
        "%3A123456789012%3Ainference-profile%2Fus.anthropic.claude-v1%3A0/converse-stream"
    )
    assert "authorization" not in {k.lower() for k in sent.headers}  # signed later


def test_messages_blocks_and_inference_config() -> None:
    request: dict[str, Any] = {
        "model": "m",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": [{"type": "text", "text": "Use French."}]},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                    {
                        "type": "file",
                        "file": {"file_data": "data:application/pdf;base64,JVBERi0="},
                    },
                ],
            },
            {"role": "user", "content": "Quick."},
            {"role": "assistant", "content": ""},
        ],
        "max_completion_tokens": 300,
        "temperature": 0.5,
        "top_p": 0.9,
        "stop": "END",
    }
    assert body_of(request) == {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"text": "What is this?"},
                    {"image": {"format": "png", "source": {"bytes": PNG}}},
                    {
                        "document": {
                            "format": "pdf",
                            "name": "document 1",
                            "source": {"bytes": "JVBERi0="},
                        }
                    },
                    {"text": "Quick."},
                ],
            }
        ],
        "system": [{"text": "Be brief."}, {"text": "Use French."}],
        "inferenceConfig": {
            "maxTokens": 300,
            "temperature": 0.5,
            "topP": 0.9,
            "stopSequences": ["END"],
        },
    }


def test_tool_choices() -> None:
    tools = [{"type": "function", "function": {"name": "f"}}]
    base: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": "x"}]}
    spec = {
        "toolSpec": {"name": "f", "inputSchema": {"json": {"type": "object", "properties": {}}}}
    }
    assert body_of({**base, "tools": tools})["toolConfig"] == {"tools": [spec]}
    assert body_of({**base, "tools": tools, "tool_choice": "auto"})["toolConfig"]["toolChoice"] == {
        "auto": {}
    }
    named = {"type": "function", "function": {"name": "f"}}
    assert body_of({**base, "tools": tools, "tool_choice": named})["toolConfig"]["toolChoice"] == {
        "tool": {"name": "f"}
    }
    assert "toolConfig" not in body_of({**base, "tools": tools, "tool_choice": "none"})


def test_tool_choice_none_with_tool_history_is_refused() -> None:
    tools = [{"type": "function", "function": {"name": "f"}}]
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    messages = [
        {"role": "user", "content": "x"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "c1", "content": [{"type": "text", "text": "ok"}]},
    ]
    request = {"model": "m", "messages": messages, "tools": tools}
    assert body_of(request)["messages"][2] == {
        "role": "user",
        "content": [{"toolResult": {"toolUseId": "c1", "content": [{"text": "ok"}]}}],
    }
    with pytest.raises(InvalidRequest) as caught:
        body_of({**request, "tool_choice": "none"})
    assert caught.value.param == "tool_choice"


def test_reasoning_effort_and_top_k_for_claude() -> None:
    request: dict[str, Any] = {
        "model": "m",
        "messages": [{"role": "user", "content": "x"}],
        "reasoning_effort": "low",
        "max_tokens": 100,
    }
    body = body_of(request)
    assert body["additionalModelRequestFields"] == {
        "thinking": {"type": "enabled", "budget_tokens": 1024}
    }
    assert body["inferenceConfig"] == {"maxTokens": 2048}
    assert (
        body_of({**request, "reasoning_effort": "none"}).get("additionalModelRequestFields") is None
    )
    top_k = {**request, "reasoning_effort": None, "top_k": 5}
    assert body_of(top_k)["additionalModelRequestFields"] == {"top_k": 5}


@pytest.mark.parametrize(
    ("extra", "param", "model"),
    [
        ({"n": 2}, "n", MODEL),
        ({"logprobs": True}, "logprobs", MODEL),
        ({"seed": 1}, "seed", MODEL),
        ({"response_format": {"type": "json_object"}}, "response_format", MODEL),
        ({"reasoning_effort": "high"}, "reasoning_effort", "amazon.nova-pro-v1:0"),
        ({"reasoning_effort": "loud"}, "reasoning_effort", MODEL),
        ({"top_k": 3}, "top_k", "meta.llama3-70b-instruct-v1:0"),
        ({"reasoning_effort": "low", "temperature": 0.3}, "temperature", MODEL),
        (
            {
                "parallel_tool_calls": False,
                "tools": [{"type": "function", "function": {"name": "f"}}],
            },
            "parallel_tool_calls",
            MODEL,
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}
                        ],
                    }
                ]
            },
            "messages[0].content[0].image_url",
            MODEL,
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "input_audio"}]}]},
            "messages[0].content[0]",
            MODEL,
        ),
    ],
)
def test_what_converse_cannot_honour_is_a_400_naming_it(
    extra: dict[str, Any], param: str, model: str
) -> None:
    request = {"model": "m", "messages": [{"role": "user", "content": "x"}], **extra}
    with pytest.raises(InvalidRequest) as caught:
        body_of(request, model)
    assert caught.value.param == param


def test_whole_request_goes_to_converse() -> None:
    sent = build_whole_request(
        {"model": "m", "messages": [{"role": "user", "content": "x"}]}, provider(), MODEL
    )
    assert sent.url.endswith("/converse")
    assert sent.headers["accept"] == "application/json"


def test_a_bedrock_api_key_is_sent_as_bearer() -> None:
    p = provider(api_key="ABSK-key", access_key_id=None, secret_access_key=None)
    assert "access_key_id" not in p.options
    request: ChatRequest = {"model": "m", "messages": [{"role": "user", "content": "x"}]}
    assert build_request(request, p, MODEL).headers["authorization"] == "Bearer ABSK-key"


# --- the stream -------------------------------------------------------------------------------


def ev(name: str, payload: dict[str, Any]) -> EventStreamMessage:
    headers: dict[str, Any] = {":message-type": "event", ":event-type": name}
    return EventStreamMessage(headers, orjson.dumps(payload))


def converse(events: list[EventStreamMessage], include_usage: bool = True) -> list[Chunk]:
    converter = bedrock.new_converter(StreamContext(StreamMeta(model="claude-br"), include_usage))
    out: list[Chunk] = []
    for message in events:
        out += converter.feed(message)
    return out + converter.close()


def deltas(chunks: list[Chunk]) -> list[dict[str, Any]]:
    return [dict(c["delta"]) for chunk in chunks for c in chunk["choices"]]


def test_a_stream_with_reasoning_a_tool_call_and_cached_usage() -> None:
    at0, at1, at2 = ({"contentBlockIndex": i} for i in range(3))
    chunks = converse(
        [
            ev("messageStart", {"role": "assistant", "p": "abc"}),
            ev("contentBlockDelta", {**at0, "delta": {"reasoningContent": {"text": "Hmm."}}}),
            ev("contentBlockDelta", {**at0, "delta": {"reasoningContent": {"signature": "sig"}}}),
            ev("contentBlockStop", at0),
            ev(
                "contentBlockDelta",
                {**at1, "delta": {"reasoningContent": {"redactedContent": "cmVk"}}},
            ),
            ev("contentBlockDelta", {**at1, "delta": {"text": "Sure."}}),
            ev(
                "contentBlockStart", {**at2, "start": {"toolUse": {"toolUseId": "t1", "name": "f"}}}
            ),
            ev("contentBlockDelta", {**at2, "delta": {"toolUse": {"input": '{"a":'}}}),
            ev("contentBlockDelta", {**at2, "delta": {"toolUse": {"input": "1}"}}}),
            ev("contentBlockStop", at2),
            ev("messageStop", {"stopReason": "tool_use"}),
            ev(
                "metadata",
                {
                    "usage": {
                        "inputTokens": 5,
                        "cacheReadInputTokens": 100,
                        "cacheWriteInputTokens": 20,
                        "outputTokens": 9,
                        "totalTokens": 134,
                    },
                    "metrics": {"latencyMs": 12},
                },
            ),
        ]
    )
    assert deltas(chunks) == [
        {"role": "assistant", "content": ""},
        {"reasoning_content": "Hmm."},
        {"thinking_blocks": [{"type": "thinking", "thinking": "", "signature": "sig"}]},
        {"thinking_blocks": [{"type": "redacted_thinking", "data": "cmVk"}]},
        {"content": "Sure."},
        {
            "tool_calls": [
                {
                    "index": 0,
                    "id": "t1",
                    "type": "function",
                    "function": {"name": "f", "arguments": ""},
                }
            ]
        },
        {"tool_calls": [{"index": 0, "function": {"arguments": '{"a":'}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]},
        {},
    ]
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert all(chunk["usage"] is None for chunk in chunks[:-1])
    assert chunks[-1]["usage"] == {
        "prompt_tokens": 125,
        "completion_tokens": 9,
        "total_tokens": 134,
        "prompt_tokens_details": {"cached_tokens": 100},
    }


@pytest.mark.parametrize(
    ("reason", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("guardrail_intervened", "content_filter"),
        ("content_filtered", "content_filter"),
        ("model_context_window_exceeded", "length"),
    ],
)
def test_stop_reasons(reason: str, finish: str) -> None:
    chunks = converse([ev("messageStart", {}), ev("messageStop", {"stopReason": reason})], False)
    assert chunks[-1]["choices"][0]["finish_reason"] == finish


def test_the_stream_must_reach_message_stop() -> None:
    with pytest.raises(UpstreamIncomplete):
        converse(
            [
                ev("messageStart", {}),
                ev("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "a"}}),
            ]
        )


@pytest.mark.parametrize(
    "message",
    [
        EventStreamMessage({":message-type": "event"}, b"{}"),
        EventStreamMessage({":message-type": "event", ":event-type": "messageStart"}, b"[1]"),
        EventStreamMessage({":message-type": "event", ":event-type": "messageStart"}, b"{no"),
        ev("contentBlockDelta", {"delta": {"toolUse": {"input": "{}"}}}),
        ev("contentBlockDelta", {"contentBlockIndex": 3, "delta": {"toolUse": {"input": "{}"}}}),
        ev("contentBlockDelta", {"contentBlockIndex": 0}),
    ],
)
def test_malformed_events(message: EventStreamMessage) -> None:
    converter = bedrock.new_converter(StreamContext(StreamMeta(model="m"), False))
    with pytest.raises(UpstreamMalformed):
        converter.feed(message)


def test_an_exception_message_keeps_its_status() -> None:
    converter = bedrock.new_converter(StreamContext(StreamMeta(model="m"), False))
    message = EventStreamMessage(
        {":message-type": "exception", ":exception-type": "throttlingException"},
        b'{"message":"Too many tokens, please wait before trying again."}',
    )
    with pytest.raises(UpstreamHTTPError) as caught:
        converter.feed(message)
    assert (caught.value.status, caught.value.retryable) == (429, True)
    assert caught.value.message == "Too many tokens, please wait before trying again."
    error = EventStreamMessage(
        {":message-type": "error", ":error-code": "InternalFailure", ":error-message": "boom"}, b""
    )
    with pytest.raises(UpstreamHTTPError) as caught:
        converter.feed(error)
    assert (caught.value.status, caught.value.message) == (502, "boom")


def test_a_whole_answer_gives_the_chunks_of_the_stream() -> None:
    answer = {
        "output": {
            "message": {
                "role": "assistant",
                "content": [
                    {"reasoningContent": {"reasoningText": {"text": "Hm.", "signature": "s"}}},
                    {"text": "Calling."},
                    {"toolUse": {"toolUseId": "t9", "name": "f", "input": {"x": 1}}},
                ],
            }
        },
        "stopReason": "tool_use",
        "usage": {"inputTokens": 3, "outputTokens": 4, "totalTokens": 7},
        "metrics": {"latencyMs": 5},
    }
    converter = bedrock.new_whole_converter(StreamContext(StreamMeta(model="m"), True))
    chunks = converter.feed(orjson.dumps(answer)) + converter.close()
    assert deltas(chunks)[1:5] == [
        {"reasoning_content": "Hm."},
        {"thinking_blocks": [{"type": "thinking", "thinking": "", "signature": "s"}]},
        {"content": "Calling."},
        {
            "tool_calls": [
                {
                    "index": 0,
                    "id": "t9",
                    "type": "function",
                    "function": {"name": "f", "arguments": ""},
                }
            ]
        },
    ]
    assert deltas(chunks)[5] == {"tool_calls": [{"index": 0, "function": {"arguments": '{"x":1}'}}]}
    assert chunks[-1]["usage"] == {
        "prompt_tokens": 3,
        "completion_tokens": 4,
        "total_tokens": 7,
        "prompt_tokens_details": {"cached_tokens": 0},
    }
    with pytest.raises(UpstreamMalformed):
        bedrock.new_whole_converter(StreamContext(StreamMeta(model="m"), True)).feed(
            b'{"output":{}}'
        )


@pytest.mark.parametrize(
    ("status", "kind", "body", "expected"),
    [
        (429, "ThrottlingException", b'{"message":"slow"}', (429, "rate_limit_exceeded", True)),
        (400, "ValidationException", b'{"message":"bad"}', (400, "validation_exception", False)),
        (
            403,
            "UnrecognizedClientException",
            b'{"Message":"token"}',
            (502, "upstream_auth_failed", False),
        ),
        (
            400,
            "ServiceQuotaExceededException",
            b'{"message":"quota"}',
            (429, "rate_limit_exceeded", True),
        ),
        (424, "ModelErrorException", b'{"message":"model"}', (502, "upstream_error", True)),
        (408, "ModelTimeoutException", b'{"message":"late"}', (502, "upstream_error", True)),
        (500, "", b"<html>oops</html>", (502, "upstream_error", True)),
    ],
)
def test_aws_http_errors(
    status: int, kind: str, body: bytes, expected: tuple[int, str, bool]
) -> None:
    headers = {"x-amzn-ErrorType": f"{kind}:http://internal.amazon.com/coral/"} if kind else {}
    error = bedrock.from_error_response(status, headers, body)
    assert (error.status, error.code, error.retryable) == expected


def test_signed_reasoning_is_replayed_as_reasoning_content() -> None:
    details = [
        {"type": "reasoning.text", "text": "Hm.", "signature": "sig-1"},
        {"type": "reasoning.summary", "summary": "thought"},
        {"type": "reasoning.encrypted", "data": "ZW5j"},
    ]
    messages: list[Any] = [
        {"role": "user", "content": "x"},
        {"role": "assistant", "content": "A.", "reasoning_details": details},
        {"role": "user", "content": "y"},
        {
            "role": "assistant",
            "content": "B.",
            "reasoning_content": "Its text, for the block without it.",
            "thinking_blocks": [{"type": "thinking", "signature": "sig-2"}],
        },
    ]
    sent = body_of({"model": "m", "messages": messages})["messages"]
    assert sent[1]["content"] == [
        {"reasoningContent": {"reasoningText": {"text": "Hm.", "signature": "sig-1"}}},
        {"reasoningContent": {"redactedContent": "ZW5j"}},
        {"text": "A."},
    ]
    text = {"text": "Its text, for the block without it.", "signature": "sig-2"}
    assert sent[3]["content"] == [{"reasoningContent": {"reasoningText": text}}, {"text": "B."}]
    bad = [*messages[:3], {"role": "assistant", "content": "C.", "thinking_blocks": [{"x": 1}]}]
    with pytest.raises(InvalidRequest) as caught:
        body_of({"model": "m", "messages": bad})
    assert caught.value.param == "messages[3].thinking_blocks[0]"


def test_an_empty_answer_still_opens_with_the_role() -> None:
    chunks = converse([ev("messageStop", {"stopReason": "end_turn"}), ev("metadata", {})], False)
    assert deltas(chunks) == [{"role": "assistant", "content": ""}, {}]
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
