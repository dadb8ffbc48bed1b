"""llms.api.messages*: Anthropic's Messages API as pure functions — the request mapping, the
stream events, the Message and the error shape.

Every event is validated with anthropic-python's own pydantic types, every stream is checked for
Anthropic's block discipline (one block open at a time, deltas only for it, thinking before text)
and run through the SDK itself (`messages.stream()` over an in-memory transport: its SSE decoder
and accumulator), whose final Message must equal the builder's and the non-stream fold
(docs: responses-and-messages.md §2, peers' bugs 13-23).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import orjson
import pydantic
import pytest
from anthropic.types import Message, RawMessageStreamEvent
from anthropic.types.shared import ErrorResponse
from hypothesis import given, settings
from hypothesis import strategies as st

from llms.adapters import anthropic as anthropic_adapter
from llms.adapters import gemini as gemini_adapter
from llms.adapters import ollama as ollama_adapter
from llms.adapters import openai as openai_adapter
from llms.adapters.base import StreamContext
from llms.api.messages import (
    PING,
    MessageBuilder,
    error_body,
    error_status,
    error_type,
    fold_message,
    from_usage,
    new_message_id,
)
from llms.api.messages_input import THINKING_BLOCKS
from llms.api.messages_request import MessagesCall, from_request
from llms.api.messages_stream import LOG_PREFIX, MessagesEncoder, MessagesLog
from llms.api.responses_stream import from_completion
from llms.chunks import (
    Fold,
    StreamMeta,
    delta_chunk,
    finish_chunk,
    make_usage,
    role_chunk,
    tool_call_delta,
    usage_chunk,
)
from llms.errors import (
    AuthenticationFailed,
    GatewayError,
    InvalidRequest,
    ModelNotFound,
    PayloadTooLarge,
    PermissionDenied,
    RateLimited,
    ServiceUnavailable,
    UpstreamDisconnected,
    UpstreamHTTPError,
    UpstreamMalformed,
    UpstreamTimeout,
)
from llms.framing import NDJSONDecoder, SSEDecoder
from llms.wire import Chunk, Usage

TRANSCRIPTS = Path(__file__).parent / "transcripts"
EVENT = pydantic.TypeAdapter(RawMessageStreamEvent)
META = StreamMeta(id="chatcmpl-x", created=1700000000, model="m")
BODY = {"model": "claude-sonnet-4-5", "max_tokens": 1024}


# --- helpers --------------------------------------------------------------------------------------


def text(value: str) -> Chunk:
    return delta_chunk(META, {"content": value})


def reasoning(value: str) -> Chunk:
    return delta_chunk(META, {"reasoning_content": value})


def signature(value: str) -> Chunk:
    block = {"type": "thinking", "thinking": "", "signature": value}
    return delta_chunk(META, {THINKING_BLOCKS: [block]})  # type: ignore[misc]


def calls(*deltas: Any) -> Chunk:
    return delta_chunk(META, {"tool_calls": list(deltas)})


def usage(prompt: int = 10, completion: int = 5, **details: int) -> Chunk:
    value: Usage = make_usage(prompt, completion)
    prompt_details = {
        key: details[name]
        for name, key in (("cached", "cached_tokens"), ("write", "cache_write_tokens"))
        if name in details
    }
    if prompt_details:
        value["prompt_tokens_details"] = prompt_details
    if "reasoning" in details:
        value["completion_tokens_details"] = {"reasoning_tokens": details["reasoning"]}
    return usage_chunk(META, value)


def parse_sse(data: bytes) -> list[tuple[str, dict[str, Any]]]:
    """Exactly Anthropic's framing: `event: <type>\\ndata: <json>\\n\\n`, data.type = type."""
    assert data.endswith(b"\n\n")
    frames = []
    for frame in data[:-2].split(b"\n\n"):
        event_line, data_line = frame.split(b"\n")
        assert event_line.startswith(b"event: ") and data_line.startswith(b"data: ")
        name, payload = event_line[7:].decode(), orjson.loads(data_line[6:])
        assert payload["type"] == name
        frames.append((name, payload))
    return frames


def check_stream(payloads: list[dict[str, Any]], *, complete: bool = True) -> None:
    """Every event valid for anthropic-python; blocks strictly sequential (peers' bugs 14/15):
    one message_start first, each block started at the next index, deltas of its own kind
    for the open block only, a stop for each start, one signature at most; the end is
    message_delta + message_stop, or an error and nothing after it."""
    assert payloads[0]["type"] == "message_start"
    assert [p["type"] for p in payloads].count("message_start") == 1
    usage0 = payloads[0]["message"]["usage"]
    assert isinstance(usage0["input_tokens"], int) and isinstance(usage0["output_tokens"], int)
    open_: dict[str, Any] | None = None
    count = 0
    kinds = {
        "text": {"text_delta"},
        "thinking": {"thinking_delta", "signature_delta"},
        "tool_use": {"input_json_delta"},
        "redacted_thinking": set(),
    }
    signed: set[int] = set()
    for p in payloads:
        if p["type"] == "error":
            ErrorResponse.model_validate(p)
            assert p is payloads[-1] and not complete
            return
        EVENT.validate_python(p)
        if p["type"] == "content_block_start":
            assert open_ is None and p["index"] == count
            open_ = p["content_block"]
            count += 1
        elif p["type"] == "content_block_delta":
            assert open_ is not None and p["index"] == count - 1, p
            assert p["delta"]["type"] in kinds[open_["type"]], p
            if p["delta"]["type"] == "signature_delta":
                assert p["index"] not in signed
                signed.add(p["index"])
            elif p["index"] in signed:
                raise AssertionError("a delta after the signature")
        elif p["type"] == "content_block_stop":
            assert open_ is not None and p["index"] == count - 1
            open_ = None
        elif p["type"] == "message_delta":
            assert open_ is None
    assert complete
    assert [p["type"] for p in payloads[-2:]] == ["message_delta", "message_stop"]


def sdk_stream(data: bytes) -> tuple[list[Any], Any]:
    """The bytes through anthropic-python's own `messages.stream()`: (its events, the final
    Message its accumulator built)."""

    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=data)

    client = anthropic.Anthropic(
        api_key="k",
        base_url="http://gateway",
        http_client=httpx2.Client(transport=httpx2.MockTransport(handler)),
        max_retries=0,
    )
    with client.messages.stream(
        model="m", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        events = list(stream)
        return events, stream.get_final_message()


def run(
    chunks: list[Chunk],
    *,
    batch: int = 1,
    end: str = "finish",
    error: GatewayError | None = None,
    **options: Any,
) -> tuple[list[dict[str, Any]], dict[str, Any], bytes]:
    """`chunks` in batches through the encoder; every event and the Message validated, the
    stream through the SDK. Returns (event payloads, the Message, the bytes)."""
    builder = MessageBuilder("msg_1", "claude-sonnet-4-5", **options)
    encoder = MessagesEncoder(builder)
    data = b"".join(encoder.chunks(chunks[i : i + batch]) for i in range(0, len(chunks), batch))
    if end == "finish":
        data += encoder.done()
    else:
        assert error is not None
        data += encoder.failed(error)
    payloads = [payload for _, payload in parse_sse(data)]
    check_stream(payloads, complete=end == "finish")
    message = builder.message
    Message.model_validate(message)
    assert builder.terminal and builder.feed(chunks) == [] and builder.finish() == []
    if end == "finish" and whole_arguments(payloads, message):
        # (an upstream's broken JSON is relayed as sent; the SDK's own parse of it fails)
        _, final = sdk_stream(data)
        assert final.model_dump(exclude_none=True) == Message.model_validate(message).model_dump(
            exclude_none=True
        )
    if end == "finish":
        assert payloads[-2]["usage"] == message["usage"]
        assert payloads[-2]["delta"]["stop_reason"] == message["stop_reason"]
        folded = fold_message("msg_1", "claude-sonnet-4-5", chunks, **options)
        assert strip_ids(folded) == strip_ids(message)
    return payloads, message, data


def whole_arguments(payloads: list[dict[str, Any]], message: dict[str, Any]) -> bool:
    """Whether every tool_use block's streamed fragments make a JSON object, its `input`
    (else the Message's `input` is `{}`)."""
    whole = True
    for index, block in enumerate(message["content"]):
        if block["type"] != "tool_use":
            continue
        fragments = "".join(d["partial_json"] for d in deltas(payloads, index))
        try:
            assert json.loads(fragments) == block["input"]
        except json.JSONDecodeError:
            assert block["input"] == {}
            whole = False
    return whole


def strip_ids(message: dict[str, Any]) -> dict[str, Any]:
    """The Message without generated tool ids (the fold makes its own)."""
    content = [
        {**block, "id": "x"}
        if block["type"] == "tool_use" and block["id"].startswith("toolu_")
        else block
        for block in message["content"]
    ]
    return {**message, "content": content}


def types(payloads: list[dict[str, Any]]) -> list[str]:
    return [p["type"] for p in payloads]


def deltas(payloads: list[dict[str, Any]], index: int) -> list[dict[str, Any]]:
    return [
        p["delta"] for p in payloads if p["type"] == "content_block_delta" and p["index"] == index
    ]


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


PIECES = st.one_of(
    st.builds(text, st.sampled_from(["a", "b c", "\n", " ", "\n\n", "é"])),
    st.builds(reasoning, st.sampled_from(["r", " ", "think"])),
    st.builds(signature, st.sampled_from(["s1", "s2"])),
    st.builds(lambda value: delta_chunk(META, {"refusal": value}), st.just("no")),
    st.builds(
        lambda index, args: calls(
            tool_call_delta(index, id=f"call_{index}", name=f"f{index}", arguments=args)
        ),
        st.integers(0, 2),
        st.sampled_from(["", "{", '{"a": 1}']),
    ),
    st.builds(
        lambda index, args: calls(tool_call_delta(index, arguments=args)),
        st.integers(0, 2),
        st.sampled_from(['"x": 2}', "}", ""]),
    ),
    st.builds(lambda: usage(7, 3)),
)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(PIECES, max_size=12),
    st.sampled_from([None, "stop", "length", "tool_calls", "content_filter"]),
    st.sampled_from([1, 2, 50]),
)
def test_any_chunk_sequence_is_a_valid_sequential_stream(
    chunks: list[Chunk], finish: Any, batch: int
) -> None:
    """Peers' bugs 14/15 as a property: whatever order deltas come in, blocks never overlap,
    no delta lands outside its block, and the SDK accumulates what the fold builds — or the
    stream ends with an error event when the upstream continued a call it had left."""
    chunks = chunks + ([finish_chunk(META, finish)] if finish else [])
    builder = MessageBuilder("msg_1", "m")
    encoder = MessagesEncoder(builder)
    data = b"".join(encoder.chunks(chunks[i : i + batch]) for i in range(0, len(chunks), batch))
    if builder.failure is not None:
        payloads = [payload for _, payload in parse_sse(data)]
        check_stream(payloads, complete=False)
        with pytest.raises(UpstreamMalformed):
            fold_message("msg_1", "m", chunks)
        return
    run(chunks, batch=batch)


# --- failures -------------------------------------------------------------------------------------


def test_a_failure_after_output_is_an_error_event_and_no_message_stop() -> None:
    error = UpstreamDisconnected("The upstream closed the connection.")
    payloads, _, data = run([text("partial")], end="fail", error=error)
    assert payloads[-1] == {
        "type": "error",
        "error": {"type": "api_error", "message": "The upstream closed the connection."},
    }
    assert b"message_stop" not in data and data.endswith(b"\n\n")
    with pytest.raises(anthropic.APIStatusError) as caught:
        sdk_stream(data)
    assert "The upstream closed the connection." in str(caught.value)


def test_a_failure_before_any_output_is_an_error_event_the_sdk_raises() -> None:
    """After a heartbeat started the response but before the first output."""
    builder = MessageBuilder("msg_1", "m")
    encoder = MessagesEncoder(builder)
    data = PING + encoder.failed(UpstreamTimeout("No first token in 120 s."))
    assert parse_sse(data)[1] == (
        "error",
        {
            "type": "error",
            "error": {"type": "timeout_error", "message": "No first token in 120 s."},
        },
    )
    with pytest.raises(anthropic.APIStatusError, match="No first token"):
        sdk_stream(data)
    assert encoder.done() == b"" and encoder.chunks([text("late")]) == b""


def test_an_overloaded_upstream_mid_stream_is_overloaded_error() -> None:
    error = UpstreamHTTPError("Overloaded", status=503, type="server_error")
    payloads, _, _ = run([text("x")], end="fail", error=error)
    assert payloads[-1]["error"]["type"] == "overloaded_error"


def test_a_call_continued_after_other_output_ends_the_stream_with_an_error() -> None:
    chunks = [
        calls(tool_call_delta(0, id="call_a", name="f", arguments="{")),
        text("interleaved"),
        calls(tool_call_delta(0, arguments="}")),
        text("more"),
    ]
    builder = MessageBuilder("msg_1", "m")
    data = MessagesEncoder(builder).chunks(chunks)
    payloads = [payload for _, payload in parse_sse(data)]
    check_stream(payloads, complete=False)
    assert payloads[-1]["type"] == "error" and isinstance(builder.failure, UpstreamMalformed)
    assert builder.feed([text("after")]) == []
    with pytest.raises(UpstreamMalformed):
        fold_message("msg_1", "m", chunks)


@pytest.mark.parametrize(
    ("error", "status", "kind"),
    [
        (InvalidRequest("bad", param="x"), 400, "invalid_request_error"),
        (AuthenticationFailed("no key"), 401, "authentication_error"),
        (PermissionDenied("not yours"), 403, "permission_error"),
        (ModelNotFound("nope"), 404, "not_found_error"),
        (PayloadTooLarge("big"), 413, "request_too_large"),
        (RateLimited("slow down"), 429, "rate_limit_error"),
        (GatewayError("boom"), 500, "api_error"),
        (UpstreamDisconnected("gone"), 502, "api_error"),
        (ServiceUnavailable("busy"), 529, "overloaded_error"),
        (UpstreamTimeout("late"), 504, "timeout_error"),
        (UpstreamHTTPError("teapot", status=418, type="x"), 418, "invalid_request_error"),
        (UpstreamHTTPError("odd", status=507, type="x"), 507, "api_error"),
    ],
)
def test_errors_take_anthropics_shape_and_status(
    error: GatewayError, status: int, kind: str
) -> None:
    body = error_body(error, request_id="req_1")
    assert body == {
        "type": "error",
        "error": {"type": kind, "message": error.message},
        "request_id": "req_1",
    }
    assert error_status(error) == status and error_type(error) == kind
    if kind != "request_too_large":  # documented by Anthropic, missing from the SDK's union
        ErrorResponse.model_validate(body)
    assert "request_id" not in error_body(error)


def test_the_sdk_raises_the_right_class_for_each_http_error() -> None:
    def answer(error: GatewayError) -> Exception:
        def handler(request: httpx2.Request) -> httpx2.Response:
            return httpx2.Response(error_status(error), json=error_body(error))

        client = anthropic.Anthropic(
            api_key="k",
            base_url="http://gateway",
            http_client=httpx2.Client(transport=httpx2.MockTransport(handler)),
            max_retries=0,
        )
        with pytest.raises(anthropic.APIStatusError) as caught:
            client.messages.create(
                model="m", max_tokens=5, messages=[{"role": "user", "content": "x"}]
            )
        return caught.value

    assert isinstance(answer(ServiceUnavailable("busy")), anthropic.OverloadedError)
    assert isinstance(answer(RateLimited("slow")), anthropic.RateLimitError)
    assert isinstance(answer(ModelNotFound("m")), anthropic.NotFoundError)
    bad = answer(InvalidRequest("messages[0].role: expected 'user' or 'assistant'."))
    assert isinstance(bad, anthropic.BadRequestError)
    assert bad.body["error"]["message"].startswith("messages[0].role")  # type: ignore[index]


# --- the non-stream Message and the SDK -----------------------------------------------------------


def test_the_non_stream_message_is_what_messages_create_returns() -> None:
    chunks = [
        reasoning("r"),
        text("Hi"),
        calls(tool_call_delta(0, id="toolu_1", name="f", arguments='{"a": [1, 2]}')),
        finish_chunk(META, "tool_calls"),
        usage(20, 4, cached=5),
    ]
    message = fold_message("msg_1", "claude-x", chunks)

    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, content=orjson.dumps(message))

    client = anthropic.Anthropic(
        api_key="k",
        base_url="http://gateway",
        http_client=httpx2.Client(transport=httpx2.MockTransport(handler)),
        max_retries=0,
    )
    got = client.messages.create(
        model="m", max_tokens=5, messages=[{"role": "user", "content": "x"}]
    )
    assert got.stop_reason == "tool_use" and got.usage.cache_read_input_tokens == 5
    assert [block.type for block in got.content] == ["thinking", "text", "tool_use"]
    assert got.content[2].input == {"a": [1, 2]}  # type: ignore[union-attr]
    assert got.content[0].signature == ""  # type: ignore[union-attr]


def test_the_sdk_skips_a_ping_anywhere_even_before_message_start() -> None:
    builder = MessageBuilder("msg_1", "m")
    encoder = MessagesEncoder(builder)
    assert encoder.heartbeat == PING
    assert parse_sse(PING) == [("ping", {"type": "ping"})]
    data = PING + encoder.chunks([text("a")]) + PING + encoder.chunks([text("b")]) + encoder.done()
    events, final = sdk_stream(data)
    assert final.content[0].text == "ab"
    assert [event.type for event in events][-1] == "message_stop"


def test_message_ids_look_like_anthropics() -> None:
    ids = {new_message_id() for _ in range(50)}
    assert len(ids) == 50
    assert all(i.startswith("msg_") and i[4:].isalnum() for i in ids)


# --- the resumable log ----------------------------------------------------------------------------


def test_the_log_encoder_names_each_event_and_ends_like_the_stream() -> None:
    log = MessagesLog(MessageBuilder("msg_1", "m"))
    assert log.opening() == [] and log.status({"status": "retrying"}) == []
    items, failure = log.chunks([text("hi")])
    assert failure is None
    items += log.done()
    assert [kind for kind, _ in items] == [
        LOG_PREFIX + name
        for name in (
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop",
        )
    ]
    for kind, data in items:
        EVENT.validate_json(data)
        assert orjson.loads(data)["type"] == kind.removeprefix(LOG_PREFIX)


def test_the_log_encoder_fails_cancels_and_refuses_in_anthropics_shape() -> None:
    log = MessagesLog(MessageBuilder("msg_1", "m"))
    log.chunks([text("hi")])
    [(kind, data)] = log.cancelled(GatewayError("Stopped.", code="cancelled"))
    assert kind == LOG_PREFIX + "error"
    ErrorResponse.model_validate_json(data)
    refused = MessagesLog(MessageBuilder("msg_2", "m")).refused(
        ServiceUnavailable("busy", headers={"Retry-After": "3"})
    )
    [(kind, data)] = refused
    assert kind == "fail"
    assert orjson.loads(data) == {
        "status": 529,
        "headers": {"Retry-After": "3"},
        "body": {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}},
    }


def test_the_log_encoder_reports_an_untranslatable_batch() -> None:
    log = MessagesLog(MessageBuilder("msg_1", "m"))
    chunks = [calls(tool_call_delta(0, id="c", name="f")), text("x"), calls(tool_call_delta(0))]
    items, failure = log.chunks(chunks)
    assert isinstance(failure, UpstreamMalformed) and items[-1][0] == LOG_PREFIX + "error"


# --- recorded upstreams ---------------------------------------------------------------------------


ADAPTERS = {"anthropic": anthropic_adapter, "gemini": gemini_adapter, "ollama": ollama_adapter}
TRANSCRIPT_NAMES = sorted(
    str(path.relative_to(TRANSCRIPTS))
    for path in TRANSCRIPTS.rglob("*")
    if path.suffix in (".sse", ".ndjson")
)


def transcript_chunks(name: str) -> tuple[list[Chunk], GatewayError | None]:
    """A recorded upstream stream through the real decoder and its adapter."""
    folder, _, _ = name.rpartition("/")
    adapter: Any = ADAPTERS.get(folder, openai_adapter)
    converter = adapter.new_converter(StreamContext(META, include_usage=True))
    decoder: Any = NDJSONDecoder() if name.endswith(".ndjson") else SSEDecoder()
    chunks: list[Chunk] = []
    try:
        events = list(decoder.feed((TRANSCRIPTS / name).read_bytes()))
        events += list(decoder.flush()) if hasattr(decoder, "flush") else []
        for event in events:
            if getattr(event, "data", None) == "[DONE]":
                continue
            chunks += converter.feed(event)
        chunks += converter.close()
    except GatewayError as error:
        return chunks, error
    return chunks, None


@pytest.mark.parametrize("batch", [1, 3, 100])
@pytest.mark.parametrize("name", TRANSCRIPT_NAMES)
def test_recorded_upstreams_become_valid_messages_streams(name: str, batch: int) -> None:
    """Every recorded upstream (OpenAI-compatible, Anthropic, Gemini, Ollama) through its
    adapter: valid, sequential events the SDK accumulates into the builder's Message, which
    the non-stream fold equals; an adapter's error is an error event."""
    chunks, error = transcript_chunks(name)
    if error is not None:
        payloads, _, _ = run(chunks, batch=batch, end="fail", error=error)
        assert payloads[-1]["type"] == "error" and payloads[-1]["error"]["message"]
        return
    payloads, message, _ = run(chunks, batch=batch)
    for index, block in enumerate(message["content"]):
        if block["type"] == "tool_use":
            fragments = "".join(d["partial_json"] for d in deltas(payloads, index))
            assert json.loads(fragments) == block["input"]
        if block["type"] == "text":
            assert block["text"].strip()
    if any(block["type"] == "tool_use" for block in message["content"]):
        assert message["stop_reason"] in ("tool_use", "max_tokens")


def test_the_anthropic_tool_transcript_round_trips_its_calls() -> None:
    chunks, error = transcript_chunks("anthropic/tool_use.sse")
    assert error is None
    _, message, _ = run(chunks)
    tools = [block for block in message["content"] if block["type"] == "tool_use"]
    assert tools and all(block["input"] for block in tools)
    assert message["stop_reason"] == "tool_use"


def test_the_thinking_transcripts_put_thinking_first() -> None:
    for name in ("anthropic/thinking.sse", "gemini/thinking.sse", "ollama/thinking.ndjson"):
        chunks, error = transcript_chunks(name)
        assert error is None
        _, message, _ = run(chunks)
        assert message["content"][0]["type"] == "thinking", name


def test_the_cached_usage_transcript_keeps_its_cache_counts() -> None:
    chunks, _ = transcript_chunks("anthropic/cached_usage.sse")
    _, message, _ = run(chunks)
    usage_ = message["usage"]
    assert usage_["cache_read_input_tokens"] or usage_["cache_creation_input_tokens"]


@pytest.mark.parametrize("name", TRANSCRIPT_NAMES)
def test_a_whole_completion_folds_to_the_same_message(name: str) -> None:
    """The non-stream path gets a `chat.completion` (a non-stream upstream, or the fold of a
    stream): as one chunk (responses_stream.from_completion) it makes the same Message."""
    chunks, error = transcript_chunks(name)
    if error is not None:
        return
    fold = Fold(META)
    fold.add(chunks)
    whole = fold_message("msg_1", "m", [from_completion(fold.completion())])
    assert strip_ids(whole) == strip_ids(fold_message("msg_1", "m", chunks))
    Message.model_validate(whole)


# --- the request ----------------------------------------------------------------------------------


def request(**body: Any) -> MessagesCall:
    return from_request({**BODY, "messages": [{"role": "user", "content": "hi"}], **body})


def refused(param: str, **body: Any) -> InvalidRequest:
    """The 400 a body gets; its param is `param` and its message names it."""
    with pytest.raises(InvalidRequest) as caught:
        from_request({**BODY, "messages": [{"role": "user", "content": "hi"}], **body})
    error = caught.value
    assert error.param == param, (error.param, error.message)
    assert param.split(".")[0].split("[")[0] in error.message
    ErrorResponse.model_validate(error_body(error))
    assert error_status(error) == 400
    return error


def test_a_minimal_request() -> None:
    call = request()
    assert call.chat == {
        "model": "claude-sonnet-4-5",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 1024,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    assert call.model == "claude-sonnet-4-5" and not call.stream and call.ignored == ()
    assert request(stream=True).stream


def test_sampling_stop_and_user_are_translated() -> None:
    call = request(
        temperature=0.2,
        top_p=0.9,
        top_k=40,
        stop_sequences=["###", "END"],
        metadata={"user_id": "user_abc_session_1", "other": "x"},
    )
    chat = call.chat
    assert (chat["temperature"], chat["top_p"], chat["top_k"]) == (0.2, 0.9, 40)
    assert chat["stop"] == ["###", "END"] and call.stop_sequences == ("###", "END")
    assert chat["user"] == "user_abc_session_1"


def test_the_system_prompt_string_or_blocks_cache_control_dropped() -> None:
    blocks = [
        {"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}},
        {"type": "text", "text": "Be brief."},
    ]
    assert request(system=blocks).chat["messages"][0] == {
        "role": "system",
        "content": "You are Claude Code.\nBe brief.",
    }
    assert request(system="S").chat["messages"][0] == {"role": "system", "content": "S"}
    assert request(system="").chat["messages"][0]["role"] == "user"
    refused("system[0].type", system=[{"type": "image"}])


def test_user_blocks_text_and_images() -> None:
    content = [
        {"type": "text", "text": "What is this?", "cache_control": {"type": "ephemeral"}},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBO"}},
        {"type": "image", "source": {"type": "url", "url": "https://x.test/a.jpg"}},
    ]
    call = request(messages=[{"role": "user", "content": content}])
    assert call.chat["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO"}},
                {"type": "image_url", "image_url": {"url": "https://x.test/a.jpg"}},
            ],
        }
    ]
    texts = [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]
    assert request(messages=[{"role": "user", "content": texts}]).chat["messages"] == [
        {"role": "user", "content": "a\nb"}
    ]


def test_documents_text_and_pdf() -> None:
    content = [
        {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "D"}},
        {
            "type": "document",
            "title": "r.pdf",
            "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBE"},
        },
    ]
    [message] = request(messages=[{"role": "user", "content": content}]).chat["messages"]
    assert message["content"] == [
        {"type": "text", "text": "D"},
        {
            "type": "file",
            "file": {"file_data": "data:application/pdf;base64,JVBE", "filename": "r.pdf"},
        },
    ]


@pytest.mark.parametrize(
    ("block", "param"),
    [
        (
            {"type": "image", "source": {"type": "file", "file_id": "f"}},
            "messages[0].content[0].source",
        ),
        (
            {"type": "image", "source": {"type": "base64", "media_type": "image/bmp", "data": "x"}},
            "messages[0].content[0].source.media_type",
        ),
        (
            {
                "type": "document",
                "source": {"type": "text", "media_type": "text/plain", "data": "D"},
                "citations": {"enabled": True},
            },
            "messages[0].content[0].citations",
        ),
        (
            {"type": "document", "source": {"type": "url", "url": "https://x"}},
            "messages[0].content[0].source",
        ),
        (
            {"type": "web_search_tool_result", "tool_use_id": "s", "content": []},
            "messages[0].content[0].type",
        ),
        ({"type": "container_upload", "file_id": "f"}, "messages[0].content[0].type"),
        ({"type": "video"}, "messages[0].content[0].type"),
        ({"type": "tool_use", "id": "t", "name": "f", "input": {}}, "messages[0].content[0].type"),
        ({"type": "text"}, "messages[0].content[0].text"),
    ],
)
def test_user_blocks_a_chat_model_cannot_honour_are_400s(block: dict[str, Any], param: str) -> None:
    refused(param, messages=[{"role": "user", "content": [block]}])


def tool_turns(*results: dict[str, Any], extra: list[Any] | None = None) -> list[dict[str, Any]]:
    return [
        {"role": "user", "content": "weather in Paris and Rome?"},
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "Two calls.", "signature": "sig=="},
                {"type": "text", "text": "Checking."},
                {
                    "type": "tool_use",
                    "id": "toolu_a",
                    "name": "weather",
                    "input": {"city": "Paris"},
                },
                {"type": "tool_use", "id": "toolu_b", "name": "weather", "input": {"city": "Rome"}},
            ],
        },
        {"role": "user", "content": [*results, *(extra or [])]},
    ]


def test_tool_use_and_results_pair_in_call_order_before_the_user_text() -> None:
    """Results arrive in any order (and after text): each becomes a tool message right after
    the assistant message, in the order of its calls, then the rest of the user turn."""
    messages = tool_turns(
        {"type": "text", "text": "here you go"},
        {"type": "tool_result", "tool_use_id": "toolu_b", "content": "18C", "is_error": False},
        {
            "type": "tool_result",
            "tool_use_id": "toolu_a",
            "content": [{"type": "text", "text": "no"}, {"type": "text", "text": "network"}],
            "is_error": True,
            "cache_control": {"type": "ephemeral"},
        },
    )
    call = request(messages=messages)
    assert call.chat["messages"] == [
        {"role": "user", "content": "weather in Paris and Rome?"},
        {
            "role": "assistant",
            "content": "Checking.",
            "tool_calls": [
                {
                    "id": "toolu_a",
                    "type": "function",
                    "function": {"name": "weather", "arguments": '{"city":"Paris"}'},
                },
                {
                    "id": "toolu_b",
                    "type": "function",
                    "function": {"name": "weather", "arguments": '{"city":"Rome"}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "toolu_a", "content": "Error: no\nnetwork"},
        {"role": "tool", "tool_call_id": "toolu_b", "content": "18C"},
        {"role": "user", "content": "here you go"},
    ]
    assert call.origins == (
        "messages[0]",
        "messages[1]",
        "messages[2].content[2]",
        "messages[2].content[1]",
        "messages[2]",
    )


def test_thinking_is_never_text_and_its_signature_is_kept_aside() -> None:
    """Peers' bugs 18/23: thinking blocks are not replayed as text nor restructured; they are
    kept verbatim, in order, for an adapter that can replay them."""
    messages = tool_turns(
        {"type": "tool_result", "tool_use_id": "toolu_a", "content": "20C"},
        {"type": "tool_result", "tool_use_id": "toolu_b", "content": "18C"},
    )
    messages[1]["content"].insert(1, {"type": "redacted_thinking", "data": "enc=="})
    call = request(messages=messages)
    assistant = call.chat["messages"][1]
    assert "Two calls" not in orjson.dumps(call.chat).decode() and THINKING_BLOCKS not in assistant
    assert call.thinking == {
        1: [
            {"type": "thinking", "thinking": "Two calls.", "signature": "sig=="},
            {"type": "redacted_thinking", "data": "enc=="},
        ]
    }
    replay = call.chat_with_thinking()
    assert replay["messages"][1][THINKING_BLOCKS] == call.thinking[1]
    assert THINKING_BLOCKS not in call.chat["messages"][1]  # the routed request is untouched


def test_an_assistant_turn_of_thinking_alone_is_no_chat_message() -> None:
    messages = [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": [{"type": "thinking", "thinking": "t", "signature": "s"}]},
        {"role": "user", "content": "b"},
    ]
    assert [m["role"] for m in request(messages=messages).chat["messages"]] == ["user", "user"]


def test_an_assistant_string_is_its_text_and_a_prefill_may_end_the_conversation() -> None:
    messages = [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": "The answer is ("},
    ]
    assert request(messages=messages).chat["messages"][1] == {
        "role": "assistant",
        "content": "The answer is (",
    }


def test_a_tool_result_image_follows_the_tool_messages() -> None:
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AA"}}
    messages = tool_turns(
        {"type": "tool_result", "tool_use_id": "toolu_a", "content": [image]},
        {"type": "tool_result", "tool_use_id": "toolu_b"},
    )
    chat = request(messages=messages).chat["messages"]
    assert [m["role"] for m in chat[2:]] == ["tool", "tool", "user"]
    assert chat[2]["content"].startswith("(The tool's output is the attachment")
    assert chat[3]["content"] == ""
    assert chat[4]["content"][0]["image_url"]["url"] == "data:image/png;base64,AA"


@pytest.mark.parametrize(
    ("results", "param"),
    [
        (
            [
                {"type": "tool_result", "tool_use_id": "toolu_a", "content": "x"},
                {"type": "tool_result", "tool_use_id": "toolu_zz", "content": "x"},
            ],
            "messages[2].content[1].tool_use_id",
        ),
        (
            [{"type": "tool_result", "tool_use_id": "toolu_a", "content": "x"}],
            "messages[1].content[3]",
        ),
        (
            [
                {"type": "tool_result", "tool_use_id": "toolu_a", "content": "x"},
                {"type": "tool_result", "tool_use_id": "toolu_a", "content": "y"},
            ],
            "messages[2].content[1].tool_use_id",
        ),
        (
            [{"type": "tool_result", "tool_use_id": "toolu_a", "content": "x", "is_error": "yes"}],
            "messages[2].content[0].is_error",
        ),
    ],
)
def test_tool_results_that_do_not_pair_are_400s(results: list[Any], param: str) -> None:
    refused(param, messages=tool_turns(*results))


def test_calls_without_any_answer_are_400s() -> None:
    turns = tool_turns()[:2]
    refused("messages[1].content[2]", messages=turns)
    refused("messages[1].content[2]", messages=[*turns, {"role": "assistant", "content": "x"}])
    refused("messages[1].content[2]", messages=[*turns, {"role": "user", "content": "ignore"}])
    orphan = [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t"}]}]
    refused("messages[0].content[0].tool_use_id", messages=orphan)


@pytest.mark.parametrize(
    ("messages", "param"),
    [
        ([], "messages"),
        (None, "messages"),
        ([{"role": "system", "content": "x"}], "messages[0].role"),
        ([{"content": "x"}], "messages[0].role"),
        ([{"role": "user"}], "messages[0].content"),
        ([{"role": "user", "content": 5}], "messages[0].content"),
        (
            [
                {
                    "role": "assistant",
                    "content": [{"type": "tool_use", "id": "t", "name": "f", "input": "{}"}],
                }
            ],
            "messages[0].content[0].input",
        ),
        (
            [{"role": "assistant", "content": [{"type": "image", "source": {}}]}],
            "messages[0].content[0].type",
        ),
        (
            [
                {
                    "role": "assistant",
                    "content": [
                        {"type": "server_tool_use", "id": "s", "name": "web_search", "input": {}}
                    ],
                }
            ],
            "messages[0].content[0].type",
        ),
    ],
)
def test_malformed_messages_are_400s_naming_the_path(messages: Any, param: str) -> None:
    refused(param, messages=messages)


def test_tools_become_function_tools() -> None:
    tools = [
        {
            "name": "Bash",
            "description": "Run a command",
            "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}},
            "cache_control": {"type": "ephemeral"},
        },
        {"type": "custom", "name": "noop", "input_schema": {"type": "object"}, "strict": True},
    ]
    call = request(tools=tools)
    assert call.chat["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "Bash",
                "description": "Run a command",
                "parameters": tools[0]["input_schema"],
            },
        },
        {
            "type": "function",
            "function": {"name": "noop", "parameters": {"type": "object"}, "strict": True},
        },
    ]
    assert "tool_choice" not in call.chat


@pytest.mark.parametrize(
    ("choice", "expected", "parallel"),
    [
        ({"type": "auto"}, "auto", None),
        ({"type": "any"}, "required", None),
        ({"type": "none"}, "none", None),
        ({"type": "tool", "name": "f"}, {"type": "function", "function": {"name": "f"}}, None),
        ({"type": "auto", "disable_parallel_tool_use": True}, "auto", False),
        ({"type": "any", "disable_parallel_tool_use": True}, "required", False),
    ],
)
def test_tool_choice_maps(choice: dict[str, Any], expected: Any, parallel: Any) -> None:
    call = request(tools=[{"name": "f", "input_schema": {"type": "object"}}], tool_choice=choice)
    assert call.chat["tool_choice"] == expected
    assert call.chat.get("parallel_tool_calls") == parallel


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"tools": [{"type": "web_search_20250305", "name": "web_search"}]}, "tools[0].type"),
        ({"tools": [{"type": "bash_20250124", "name": "bash"}]}, "tools[0].type"),
        ({"tools": [{"type": "code_execution_20250825", "name": "code"}]}, "tools[0].type"),
        ({"tools": [{"name": "f"}]}, "tools[0].input_schema"),
        ({"tools": [{"input_schema": {}}]}, "tools[0].name"),
        ({"tools": "f"}, "tools"),
        ({"tool_choice": {"type": "tool", "name": "f"}}, "tool_choice.name"),
        ({"tool_choice": {"type": "any"}}, "tool_choice"),
        ({"tool_choice": {"type": "sometimes"}}, "tool_choice.type"),
        ({"container": "cntr_1"}, "container"),
        ({"mcp_servers": [{"type": "url", "url": "https://m", "name": "m"}]}, "mcp_servers"),
        ({"max_tokens": None}, "max_tokens"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_tokens": "10"}, "max_tokens"),
        ({"model": None}, "model"),
        ({"temperature": 1.5}, "temperature"),
        ({"top_k": 1.5}, "top_k"),
        ({"stop_sequences": "###"}, "stop_sequences"),
        ({"stop_sequences": [1]}, "stop_sequences[0]"),
        ({"stream": "yes"}, "stream"),
        ({"metadata": {"user_id": 5}}, "metadata.user_id"),
        ({"thinking": {"type": "enabled"}}, "thinking.budget_tokens"),
        ({"thinking": {"type": "enabled", "budget_tokens": 512}}, "thinking.budget_tokens"),
        ({"thinking": {"type": "sometimes"}}, "thinking.type"),
        ({"output_config": {"effort": "extreme"}}, "output_config.effort"),
        ({"output_config": {"format": {"type": "xml"}}}, "output_config.format.type"),
    ],
)
def test_invalid_or_unhonourable_fields_are_400s_naming_them(
    body: dict[str, Any], param: str
) -> None:
    refused(param, **body)


@pytest.mark.parametrize(
    ("thinking", "effort"),
    [
        ({"type": "enabled", "budget_tokens": 1024}, "low"),
        ({"type": "enabled", "budget_tokens": 4095}, "low"),
        ({"type": "enabled", "budget_tokens": 4096}, "medium"),
        ({"type": "enabled", "budget_tokens": 16384}, "high"),
        ({"type": "enabled", "budget_tokens": 64000}, "high"),
        ({"type": "adaptive"}, None),
        ({"type": "disabled"}, None),
    ],
)
def test_thinking_becomes_reasoning_effort(thinking: dict[str, Any], effort: Any) -> None:
    assert request(thinking=thinking).chat.get("reasoning_effort") == effort


def test_output_config_effort_and_format() -> None:
    call = request(
        thinking={"type": "adaptive"},
        output_config={
            "effort": "max",
            "format": {"type": "json_schema", "schema": {"type": "object"}},
        },
    )
    assert call.chat["reasoning_effort"] == "max"
    assert call.chat["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "output", "schema": {"type": "object"}, "strict": True},
    }
    assert (
        "reasoning_effort"
        not in request(thinking={"type": "disabled"}, output_config={"effort": "high"}).chat
    )


def test_hints_a_chat_model_cannot_use_are_dropped() -> None:
    call = request(
        cache_control={"type": "ephemeral"},
        context_management={"edits": [{"type": "clear_thinking_20251015"}]},
        service_tier="auto",
        inference_geo="us",
        speed="fast",
        metadata={"tenant": "x"},
        some_future_field=1,
    )
    assert call.chat == request().chat
    assert call.ignored == ("some_future_field",)


def test_a_claude_code_request_translates() -> None:
    """The shape Claude Code sends on every turn (responses-and-messages.md §2.4)."""
    body = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 32000,
        "stream": True,
        "system": [
            {"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1"},
            {
                "type": "text",
                "text": "You are Claude Code.",
                "cache_control": {"type": "ephemeral"},
            },
        ],
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "<system-reminder>ctx</system-reminder>"},
                    {"type": "text", "text": "list files", "cache_control": {"type": "ephemeral"}},
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "Use Bash.", "signature": "EqQB"},
                    {
                        "type": "tool_use",
                        "id": "toolu_01",
                        "name": "Bash",
                        "input": {"command": "ls"},
                    },
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_01",
                        "content": "a.txt\nb.txt",
                        "cache_control": {"type": "ephemeral"},
                    }
                ],
            },
        ],
        "tools": [
            {
                "name": "Bash",
                "description": "Runs a shell command",
                "input_schema": {
                    "type": "object",
                    "properties": {"command": {"type": "string"}},
                    "required": ["command"],
                    "additionalProperties": False,
                    "$schema": "http://json-schema.org/draft-07/schema#",
                },
            }
        ],
        "metadata": {"user_id": "user_abc_account__session_1234"},
        "thinking": {"type": "enabled", "budget_tokens": 31999},
        "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
        "temperature": 1,
    }
    call = from_request(body)
    assert call.stream and call.ignored == ()
    chat = call.chat
    assert [m["role"] for m in chat["messages"]] == ["system", "user", "assistant", "tool"]
    assert chat["messages"][3] == {
        "role": "tool",
        "tool_call_id": "toolu_01",
        "content": "a.txt\nb.txt",
    }
    assert chat["reasoning_effort"] == "high" and chat["user"].startswith("user_abc")
    assert chat["tools"][0]["function"]["name"] == "Bash"
    assert "cache_control" not in orjson.dumps(chat).decode()
    assert "context_management" not in chat


def test_chat_params_map_back_to_messages_paths() -> None:
    messages = tool_turns(
        {"type": "tool_result", "tool_use_id": "toolu_a", "content": "x"},
        {"type": "tool_result", "tool_use_id": "toolu_b", "content": "y"},
    )
    call = request(system="S", messages=messages, tools=[{"name": "f", "input_schema": {}}])
    assert call.messages_param("messages[0].content") == "system"
    assert call.messages_param("messages[2]") == "messages[1]"
    assert call.messages_param("messages[3].content") == "messages[2].content[0]"
    assert call.messages_param("messages[99]") == "messages"
    assert call.messages_param("tools[0].function.parameters") == "tools[0].input_schema"
    assert call.messages_param("stop") == "stop_sequences"
    assert call.messages_param("reasoning_effort") == "thinking"
    assert call.messages_param("temperature") == "temperature"
    assert call.messages_param(None) is None
