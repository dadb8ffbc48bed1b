"""llms.api.messages*: the Messages stream events built from chat chunks — text, thinking,
tool calls, stop reasons and usage, each run through the SDK (peers' bugs 13-23).

Shared helpers: tests/messages_support.py.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from llms.api.messages import (
    from_usage,
)
from llms.api.messages_input import THINKING_BLOCKS
from llms.chunks import (
    delta_chunk,
    finish_chunk,
    make_usage,
    role_chunk,
    tool_call_delta,
)
from tests.messages_support import (
    META,
    calls,
    deltas,
    reasoning,
    run,
    signature,
    text,
    types,
    usage,
)

# --- the stream -----------------------------------------------------------------------------------


def test_a_text_answer_is_exactly_anthropics_bytes() -> None:
    chunks = [role_chunk(META), text("Hel"), text("lo"), finish_chunk(META, "stop"), usage(12, 3)]
    _, message, data = run(chunks, batch=100, input_tokens=9)
    assert data == (
        b"event: message_start\n"
        b'data: {"type":"message_start","message":{"id":"msg_1","type":"message","role":'
        b'"assistant","model":"claude-sonnet-4-5","content":[],"stop_reason":null,'
        b'"stop_sequence":null,"usage":{"input_tokens":9,"cache_creation_input_tokens":0,'
        b'"cache_read_input_tokens":0,"output_tokens":0}}}\n\n'
        b"event: content_block_start\n"
        b'data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}'
        b"\n\n"
        b"event: content_block_delta\n"
        b'data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hel"}}'
        b"\n\n"
        b"event: content_block_delta\n"
        b'data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"lo"}}'
        b"\n\n"
        b"event: content_block_stop\n"
        b'data: {"type":"content_block_stop","index":0}\n\n'
        b"event: message_delta\n"
        b'data: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},'
        b'"usage":{"input_tokens":12,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,'
        b'"output_tokens":3}}\n\n'
        b"event: message_stop\n"
        b'data: {"type":"message_stop"}\n\n'
    )
    assert message == {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5",
        "content": [{"type": "text", "text": "Hello"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 12,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": 3,
        },
    }


def test_message_start_has_every_usage_field_even_before_any_usage() -> None:
    """Peer bug 16: Claude Code aborts on a message_start without its usage counts."""
    payloads, message, _ = run([text("hi"), finish_chunk(META, "stop")], input_tokens=321)
    assert payloads[0]["message"]["usage"] == {
        "input_tokens": 321,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": 0,
    }
    assert message["usage"]["input_tokens"] == 321  # no upstream usage: the estimate stays


def test_thinking_comes_first_in_its_own_block_with_its_signature() -> None:
    chunks = [
        role_chunk(META),
        reasoning("Let me "),
        reasoning("think."),
        signature("sig-abc"),
        text("Answer."),
        finish_chunk(META, "stop"),
        usage(10, 50, reasoning=40),
    ]
    payloads, message, _ = run(chunks)
    assert message["content"] == [
        {"type": "thinking", "thinking": "Let me think.", "signature": "sig-abc"},
        {"type": "text", "text": "Answer."},
    ]
    assert payloads[1]["content_block"] == {"type": "thinking", "thinking": "", "signature": ""}
    assert deltas(payloads, 0) == [
        {"type": "thinking_delta", "thinking": "Let me "},
        {"type": "thinking_delta", "thinking": "think."},
        {"type": "signature_delta", "signature": "sig-abc"},
    ]
    assert deltas(payloads, 1) == [{"type": "text_delta", "text": "Answer."}]
    assert message["usage"]["output_tokens_details"] == {"thinking_tokens": 40}


def test_thinking_without_a_signature_has_an_empty_one_and_no_signature_delta() -> None:
    payloads, message, _ = run([reasoning("hmm"), text("ok"), finish_chunk(META, "stop")])
    assert message["content"][0] == {"type": "thinking", "thinking": "hmm", "signature": ""}
    assert not any(d["type"] == "signature_delta" for d in deltas(payloads, 0))


def test_thinking_after_a_signature_or_after_text_is_a_new_block() -> None:
    chunks = [
        reasoning("a"),
        signature("s1"),
        reasoning("b"),
        text("t"),
        reasoning("c"),
        finish_chunk(META, "stop"),
    ]
    _, message, _ = run(chunks)
    assert [(b["type"], b.get("thinking", b.get("text"))) for b in message["content"]] == [
        ("thinking", "a"),
        ("thinking", "b"),
        ("text", "t"),
        ("thinking", "c"),
    ]
    assert message["content"][0]["signature"] == "s1"


def test_redacted_thinking_is_a_whole_block() -> None:
    block = {"type": "redacted_thinking", "data": "opaque=="}
    chunks = [delta_chunk(META, {THINKING_BLOCKS: [block]}), text("hi")]  # type: ignore[misc]
    payloads, message, _ = run([*chunks, finish_chunk(META, "stop")])
    assert message["content"][0] == block
    assert types(payloads)[1:3] == ["content_block_start", "content_block_stop"]


def test_a_tool_call_streams_every_argument_fragment() -> None:
    """Peer bug 13: every input_json_delta kept; their concatenation is the input's JSON."""
    chunks = [
        role_chunk(META),
        text("Let me check."),
        calls(tool_call_delta(0, id="toolu_01abc", name="get_weather", arguments="")),
        calls(tool_call_delta(0, arguments='{"loca')),
        calls(tool_call_delta(0, arguments='tion": "Paris"}')),
        # the upstream says "stop" although it called a tool (peer bug 17)
        finish_chunk(META, "stop"),
        usage(),
    ]
    payloads, message, _ = run(chunks)
    assert message["stop_reason"] == "tool_use"
    assert message["content"][1] == {
        "type": "tool_use",
        "id": "toolu_01abc",
        "name": "get_weather",
        "input": {"location": "Paris"},
    }
    start = next(p for p in payloads if p["type"] == "content_block_start" and p["index"] == 1)
    assert start["content_block"] == {**message["content"][1], "input": {}}
    fragments = [d["partial_json"] for d in deltas(payloads, 1)]
    assert fragments == ['{"loca', 'tion": "Paris"}']
    assert json.loads("".join(fragments)) == message["content"][1]["input"]


def test_parallel_calls_are_sequential_blocks_and_stop_reason_is_tool_use() -> None:
    chunks = [
        calls(tool_call_delta(0, id="call_a", name="f", arguments='{"x": 1}')),
        calls(tool_call_delta(1, id="call_b", name="g", arguments='{"y"')),
        calls(tool_call_delta(1, arguments=": 2}")),
        finish_chunk(META, "tool_calls"),
    ]
    _, message, _ = run(chunks)
    assert [(b["id"], b["name"], b["input"]) for b in message["content"]] == [
        ("call_a", "f", {"x": 1}),
        ("call_b", "g", {"y": 2}),
    ]
    assert message["stop_reason"] == "tool_use"


def test_a_call_without_arguments_still_streams_an_empty_object() -> None:
    payloads, message, _ = run(
        [calls(tool_call_delta(0, id="call_a", name="now")), finish_chunk(META, "tool_calls")]
    )
    assert deltas(payloads, 0) == [{"type": "input_json_delta", "partial_json": "{}"}]
    assert message["content"][0]["input"] == {}


def test_an_upstream_call_id_anthropic_would_refuse_becomes_a_toolu_id() -> None:
    chunks = [
        calls(tool_call_delta(0, id="fc.1:x", name="f", arguments="{}")),
        calls(tool_call_delta(1, id="", name="g", arguments="{}")),
        finish_chunk(META, "tool_calls"),
    ]
    _, message, _ = run(chunks)
    ids = [block["id"] for block in message["content"]]
    assert all(i.startswith("toolu_") for i in ids) and ids[0] != ids[1]


def test_whitespace_before_a_call_opens_no_text_block() -> None:
    chunks = [
        text("\n\n"),
        calls(tool_call_delta(0, id="call_a", name="f", arguments="{}")),
        finish_chunk(META, "tool_calls"),
    ]
    _, message, _ = run(chunks)
    assert [b["type"] for b in message["content"]] == ["tool_use"]


def test_leading_whitespace_of_a_text_is_kept_with_it() -> None:
    _, message, _ = run([text("\n"), text(" "), text("Hi"), finish_chunk(META, "stop")])
    assert message["content"] == [{"type": "text", "text": "\n Hi"}]


def test_an_empty_answer_is_a_message_without_blocks() -> None:
    payloads, message, _ = run([role_chunk(META), finish_chunk(META, "stop")])
    assert message["content"] == [] and message["stop_reason"] == "end_turn"
    assert types(payloads) == ["message_start", "message_delta", "message_stop"]


@pytest.mark.parametrize(
    ("finish", "expected"),
    [
        ("stop", "end_turn"),
        ("length", "max_tokens"),
        ("content_filter", "refusal"),
        ("tool_calls", "end_turn"),  # no call was made: there is no tool_use block to run
        (None, "end_turn"),
    ],
)
def test_finish_reasons_become_stop_reasons(finish: Any, expected: str) -> None:
    chunks = [text("x")] + ([finish_chunk(META, finish)] if finish else [])
    _, message, _ = run(chunks)
    assert message["stop_reason"] == expected and message["stop_sequence"] is None


def test_a_length_cut_tool_call_keeps_max_tokens_and_its_fragments() -> None:
    chunks = [
        calls(tool_call_delta(0, id="call_a", name="f", arguments='{"path": "/et')),
        finish_chunk(META, "length"),
    ]
    payloads, message, _ = run(chunks)
    assert message["stop_reason"] == "max_tokens"
    assert deltas(payloads, 0) == [{"type": "input_json_delta", "partial_json": '{"path": "/et'}]


def test_a_stop_sequence_named_by_the_upstream_is_the_stop_reason() -> None:
    """Peer bug 19: vLLM names the stop string that ended the answer (choice.stop_reason)."""
    finish = finish_chunk(META, "stop")
    finish["choices"][0]["stop_reason"] = "###"  # type: ignore[typeddict-unknown-key]
    _, message, data = run([text("a"), finish], stop_sequences=["###", "END"])
    assert message["stop_reason"] == "stop_sequence" and message["stop_sequence"] == "###"
    assert b'"delta":{"stop_reason":"stop_sequence","stop_sequence":"###"}' in data


def test_a_stop_sequence_left_at_the_end_of_the_text_is_recognised() -> None:
    _, message, _ = run([text("done END"), finish_chunk(META, "stop")], stop_sequences=["END"])
    assert (message["stop_reason"], message["stop_sequence"]) == ("stop_sequence", "END")
    _, message, _ = run([text("done"), finish_chunk(META, "stop")], stop_sequences=["END"])
    assert (message["stop_reason"], message["stop_sequence"]) == ("end_turn", None)


def test_an_unknown_stop_reason_string_is_not_a_stop_sequence() -> None:
    finish = finish_chunk(META, "stop")
    finish["choices"][0]["stop_reason"] = "</s>"  # type: ignore[typeddict-unknown-key]
    _, message, _ = run([text("a"), finish], stop_sequences=["###"])
    assert message["stop_reason"] == "end_turn"


def test_a_refusal_is_text() -> None:
    chunks = [delta_chunk(META, {"refusal": "I can't help."}), finish_chunk(META, "content_filter")]
    _, message, _ = run(chunks)
    assert message["content"] == [{"type": "text", "text": "I can't help."}]
    assert message["stop_reason"] == "refusal"


def test_usage_counts_cache_reads_and_writes_apart_from_input() -> None:
    _, message, _ = run([text("a"), finish_chunk(META, "stop"), usage(100, 7, cached=60, write=30)])
    assert message["usage"] == {
        "input_tokens": 10,
        "cache_creation_input_tokens": 30,
        "cache_read_input_tokens": 60,
        "output_tokens": 7,
    }
    assert from_usage(make_usage(5, 1)) == {
        "input_tokens": 5,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": 1,
    }


def test_only_choice_zero_is_read() -> None:
    other = delta_chunk(META, {"content": "other"}, index=1)
    _, message, _ = run([text("mine"), other, finish_chunk(META, "stop")])
    assert message["content"] == [{"type": "text", "text": "mine"}]


def test_a_repeated_signature_opens_no_new_block() -> None:
    chunks = [reasoning("a"), signature("s"), signature("s"), text("t"), finish_chunk(META, "stop")]
    payloads, message, _ = run(chunks)
    assert [b["type"] for b in message["content"]] == ["thinking", "text"]
    assert sum(d["type"] == "signature_delta" for d in deltas(payloads, 0)) == 1
