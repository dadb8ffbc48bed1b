"""Thinking signatures as pure functions: Anthropic's `signature_delta` and `redacted_thinking`,
Gemini's `thoughtSignature`, into the `thinking_blocks` delta extension (exact chunks), back into
each provider's request, and through the Responses API's reasoning items (`encrypted_content`)
both ways. The round trips through the gateway and the SDKs: tests/test_signatures.py."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from llms.adapters import anthropic, gemini
from llms.adapters.base import StreamContext
from llms.api.responses import ResponseBuilder
from llms.api.responses_input import REDACTED, from_input
from llms.chunks import StreamMeta, fold
from llms.config import ProviderConfig, Timeouts
from llms.errors import InvalidRequest
from llms.framing import SSEDecoder
from llms.wire import ChatRequest, Chunk
from tests.upstreams import anthropic as anthropic_fake
from tests.upstreams import gemini as gemini_fake

META = StreamMeta(model="m", id="chatcmpl-1", created=1)
SIG = "EqQBCgIYAhIMsig"
GSIG = "CiQBsigGemini3"
CALL = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}


def chunk(delta: Any) -> Chunk:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}],
    }


def run(module: Any, writes: list[bytes]) -> list[Chunk]:
    converter = module.new_converter(StreamContext(META, include_usage=False))
    decoder = SSEDecoder()
    out: list[Chunk] = []
    for event in decoder.feed(b"".join(writes)):
        out += converter.feed(event)
    return out


def thinking_events(text: str, signature: str, index: int = 0) -> list[dict[str, Any]]:
    start = {"type": "thinking", "thinking": "", "signature": ""}
    return [
        {"type": "content_block_start", "index": index, "content_block": start},
        {
            "type": "content_block_delta",
            "index": index,
            "delta": {"type": "thinking_delta", "thinking": text},
        },
        {
            "type": "content_block_delta",
            "index": index,
            "delta": {"type": "signature_delta", "signature": signature},
        },
        anthropic_fake.block_stop(index),
    ]


# --- Anthropic -----------------------------------------------------------------------------------


def test_anthropic_signature_and_redacted_thinking_become_thinking_blocks() -> None:
    redacted = {"type": "redacted_thinking", "data": "ZW5j"}
    writes = anthropic_fake.events(
        anthropic_fake.message_start(),
        *thinking_events("Hm", SIG),
        {"type": "content_block_start", "index": 1, "content_block": redacted},
        anthropic_fake.block_stop(1),
    )
    assert run(anthropic, writes)[1:] == [
        chunk({"reasoning_content": "Hm"}),
        chunk({"thinking_blocks": [{"type": "thinking", "thinking": "Hm", "signature": SIG}]}),
        chunk({"thinking_blocks": [redacted]}),
    ]


def test_anthropic_a_whole_signed_block_and_the_folded_message() -> None:
    block = {"type": "thinking", "thinking": "Whole.", "signature": SIG}
    writes = anthropic_fake.events(
        anthropic_fake.message_start(),
        {"type": "content_block_start", "index": 0, "content_block": block},
        anthropic_fake.block_stop(0),
        *thinking_events("Second.", "sig2", 1),
    )
    chunks = run(anthropic, writes)
    assert chunks[1] == chunk({"reasoning_content": "Whole.", "thinking_blocks": [block]})
    message = fold(chunks, META)["choices"][0]["message"]
    assert message.get("reasoning_content") == "Whole.Second."
    assert message.get("thinking_blocks") == [
        block,
        {"type": "thinking", "thinking": "Second.", "signature": "sig2"},
    ]


def provider(kind: str) -> ProviderConfig:
    return ProviderConfig(
        name=kind, type=kind, base_url="http://127.0.0.1:9", models={}, timeouts=Timeouts()
    )


def anthropic_body(*messages: dict[str, Any]) -> dict[str, Any]:
    history: Any = [{"role": "user", "content": "hi"}, *messages]
    request = ChatRequest(model="m", messages=history)
    upstream = anthropic.build_request(request, provider("anthropic"), "claude")
    body: dict[str, Any] = orjson.loads(upstream.body)
    return body


def test_anthropic_request_replays_thinking_blocks_first_in_the_turn() -> None:
    redacted = {"type": "redacted_thinking", "data": "ZW5j"}
    body = anthropic_body(
        {
            "role": "assistant",
            "content": "Let me look.",
            "reasoning_content": "Hm",
            "tool_calls": [CALL],
            # The text may be left out when it is the message's reasoning_content.
            "thinking_blocks": [{"type": "thinking", "thinking": "", "signature": SIG}, redacted],
        }
    )
    assert body["messages"][1]["content"] == [
        {"type": "thinking", "thinking": "Hm", "signature": SIG},
        redacted,
        {"type": "text", "text": "Let me look."},
        {"type": "tool_use", "id": "call_1", "name": "f", "input": {}},
    ]


def test_anthropic_request_takes_openrouter_reasoning_details_and_drops_unsigned() -> None:
    details = [
        {"type": "reasoning.summary", "summary": "plain"},
        {"type": "reasoning.text", "text": "Hm", "signature": SIG, "format": "anthropic-claude-v1"},
        {"type": "reasoning.encrypted", "data": "ZW5j", "format": "anthropic-claude-v1"},
    ]
    body = anthropic_body({"role": "assistant", "content": "a", "reasoning_details": details})
    assert body["messages"][1]["content"][:2] == [
        {"type": "thinking", "thinking": "Hm", "signature": SIG},
        {"type": "redacted_thinking", "data": "ZW5j"},
    ]
    unsigned = [{"type": "thinking", "thinking": "another model's", "signature": ""}]
    body = anthropic_body({"role": "assistant", "content": "a", "thinking_blocks": unsigned})
    assert body["messages"][1]["content"] == [{"type": "text", "text": "a"}]


@pytest.mark.parametrize("blocks", [{"type": "thinking"}, [{"type": "x"}], ["s"]])
def test_a_malformed_thinking_blocks_field_is_a_400_naming_it(blocks: Any) -> None:
    with pytest.raises(InvalidRequest) as info:
        anthropic_body({"role": "assistant", "content": "a", "thinking_blocks": blocks})
    assert info.value.status == 400
    assert info.value.param is not None and info.value.param.startswith("messages[1].thinking")


# --- Gemini --------------------------------------------------------------------------------------


def test_gemini_a_calls_thought_signature_comes_with_the_call() -> None:
    parts = [
        {"text": "Weather.", "thought": True},
        {"functionCall": {"id": "c1", "name": "f", "args": {}}, "thoughtSignature": GSIG},
        {"functionCall": {"id": "c2", "name": "f", "args": {"a": 1}}},
    ]
    event = {"candidates": [{"content": {"role": "model", "parts": parts}, "index": 0}]}
    chunks = run(gemini, gemini_fake.events(event))
    first = {
        "index": 0,
        "id": "c1",
        "type": "function",
        "function": {"name": "f", "arguments": "{}"},
    }
    second = {"index": 1, "id": "c2", "type": "function"}
    second["function"] = {"name": "f", "arguments": '{"a":1}'}
    assert chunks[1:] == [
        chunk({"reasoning_content": "Weather."}),
        chunk(
            {
                "thinking_blocks": [{"type": "thinking", "thinking": "", "signature": GSIG}],
                "tool_calls": [first],
            }
        ),
        chunk({"tool_calls": [second]}),
    ]


def gemini_parts(model: str, message: dict[str, Any]) -> list[dict[str, Any]]:
    messages = [{"role": "user", "content": "hi"}, message]
    request = ChatRequest(model="m", messages=messages)  # type: ignore[typeddict-item]
    body = orjson.loads(gemini.build_request(request, provider("gemini"), model).body)
    parts: list[dict[str, Any]] = body["contents"][1]["parts"]
    return parts


def test_gemini_request_puts_the_signature_back_on_the_first_call() -> None:
    signed = [{"type": "thinking", "thinking": "", "signature": GSIG}]
    calls = [CALL, {**CALL, "id": "call_2"}]
    message = {"role": "assistant", "content": None, "tool_calls": calls}
    for model in ("gemini-3-pro-preview", "gemini-2.5-flash"):
        parts = gemini_parts(model, {**message, "thinking_blocks": signed})
        assert [part.get("thoughtSignature") for part in parts] == [GSIG, None]
    # Google's OpenAI layer's place for it, on the call itself.
    google = {**CALL, "extra_content": {"google": {"thought_signature": "own"}}}
    parts = gemini_parts("gemini-3-pro-preview", {**message, "tool_calls": [google]})
    assert parts[0]["thoughtSignature"] == "own"
    # None kept: Google's stand-in for Gemini 3, nothing for 2.x.
    assert gemini_parts("gemini-3-pro-preview", message)[0]["thoughtSignature"] == (
        gemini_fake.SIGNATURE_SENTINEL
    )
    assert "thoughtSignature" not in gemini_parts("gemini-2.5-flash", message)[0]


# --- the Responses API ---------------------------------------------------------------------------


def events_of(chunks: list[Chunk]) -> list[dict[str, Any]]:
    builder = ResponseBuilder("resp_1", "m", 1, {})
    out = builder.start() + builder.feed(chunks) + builder.finish()
    return [orjson.loads(event.data) for event in out]


def test_responses_a_signature_closes_its_reasoning_item_with_encrypted_content() -> None:
    signed = {"type": "thinking", "thinking": "Hm", "signature": SIG}
    redacted = {"type": "redacted_thinking", "data": "ZW5j"}
    events = events_of(
        [
            chunk({"reasoning_content": "Hm"}),
            chunk({"thinking_blocks": [signed]}),
            chunk({"thinking_blocks": [redacted]}),
            chunk({"reasoning_content": "More"}),
            chunk({"content": "Hi"}),
        ]
    )
    done = [e["item"] for e in events if e["type"] == "response.output_item.done"]
    assert [(item["type"], item.get("encrypted_content")) for item in done] == [
        ("reasoning", SIG),
        ("reasoning", REDACTED + "ZW5j"),
        ("reasoning", None),
        ("message", None),
    ]
    assert done[0]["content"] == [{"type": "reasoning_text", "text": "Hm"}]
    assert done[1]["content"] == [] and done[2]["content"][0]["text"] == "More"
    assert events[-1]["response"]["output"] == done


def test_responses_gemini_signature_is_a_reasoning_item_before_its_call() -> None:
    call = {
        "index": 0,
        "id": "c1",
        "type": "function",
        "function": {"name": "f", "arguments": "{}"},
    }
    signed = {"type": "thinking", "thinking": "", "signature": GSIG}
    events = events_of([chunk({"thinking_blocks": [signed], "tool_calls": [call]})])
    output = events[-1]["response"]["output"]
    assert [(item["type"], item.get("encrypted_content")) for item in output] == [
        ("reasoning", GSIG),
        ("function_call", None),
    ]


def test_responses_input_gives_reasoning_items_back_as_thinking_blocks() -> None:
    items = [
        {"role": "user", "content": "hi"},
        {
            "type": "reasoning",
            "summary": [],
            "content": [{"type": "reasoning_text", "text": "Hm"}],
            "encrypted_content": SIG,
        },
        {"type": "reasoning", "summary": [], "encrypted_content": REDACTED + "ZW5j"},
        {"type": "reasoning", "summary": [{"type": "summary_text", "text": "no signature"}]},
        {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": "22C"},
        {
            "type": "message",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "Warm."}],
        },
    ]
    messages = from_input(items)[0]
    assert messages[1]["thinking_blocks"] == [
        {"type": "thinking", "thinking": "Hm", "signature": SIG},
        {"type": "redacted_thinking", "data": "ZW5j"},
    ]
    assert messages[1]["tool_calls"][0]["id"] == "c1"
    assert "thinking_blocks" not in messages[3] and "thinking_blocks" not in messages[0]
