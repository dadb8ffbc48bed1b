"""llms.adapters.openai as pure functions: the stream's chunks it normalises (protocol.md §1.7,
§1.8, §3.1). No server, no I/O. Elsewhere: usage and the stream's end (test_adapter_openai_
stream_end), the errors it maps (_errors), the request it builds (_request), a non-stream answer
(_whole)."""

from __future__ import annotations

import json
from typing import Any
from unittest.mock import ANY

import pytest

from llms.adapters import openai as adapter
from llms.adapters.base import StreamContext
from llms.chunks import StreamMeta
from llms.errors import UpstreamMalformed, UpstreamStreamError
from llms.framing import SSEBytesEvent, SSEEvent
from llms.wire import Chunk

META_ID = "chatcmpl-gateway"
META_CREATED = 1234567890


def new(include_usage: bool = False) -> adapter.Converter:
    meta = StreamMeta(id=META_ID, created=META_CREATED, model="pub")
    return adapter.new_converter(StreamContext(meta, include_usage=include_usage))


def event(data: Any) -> SSEEvent:
    return SSEEvent("message", data if isinstance(data, str) else json.dumps(data), "")


def up(
    delta: dict[str, Any] | None, finish: str | None = None, *, index: int = 0, **extra: Any
) -> dict[str, Any]:
    """An upstream chunk, as a vendor would send it (no logprobs key, its own id and model)."""
    return {
        "id": "upstream-id",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "/models/file.gguf",
        "choices": [{"index": index, "delta": delta, "finish_reason": finish}],
        **extra,
    }


def feed(conv: adapter.Converter, *items: Any) -> list[Chunk]:
    out: list[Chunk] = []
    for item in items:
        out += conv.feed(event(item))
    return out


def choices(chunks: list[Chunk]) -> list[dict[str, Any]]:
    return [dict(choice) for item in chunks for choice in item["choices"]]


def tool_deltas(chunks: list[Chunk]) -> list[dict[str, Any]]:
    return [dict(call) for c in choices(chunks) for call in c["delta"].get("tool_calls") or ()]


ROLE = up({"role": "assistant", "content": ""})


# --- chunk shape ----------------------------------------------------------------------------------


def test_every_chunk_gets_the_gateway_id_created_model_and_object() -> None:
    conv = new()
    chunks = feed(conv, up({"role": "assistant", "content": None}), up({"content": "x"}))
    chunks += feed(conv, {**up({}, "stop"), "object": "something.else"})
    assert len(chunks) == 3
    for item in chunks:
        assert item["id"] == META_ID
        assert item["created"] == META_CREATED
        assert item["model"] == "pub"
        assert item["object"] == "chat.completion.chunk"
        assert "usage" not in item
        for choice in item["choices"]:
            assert choice["logprobs"] is None
            assert isinstance(choice["delta"], dict)


def test_role_only_in_the_first_chunk_and_content_null_becomes_empty() -> None:
    conv = new()
    chunks = feed(
        conv,
        up({"role": "assistant", "content": None}),
        up({"role": "assistant", "content": "a"}),
        up({"role": "assistant", "content": "b"}, "stop"),
    )
    deltas = [c["delta"] for c in choices(chunks)]
    assert deltas == [{"role": "assistant", "content": ""}, {"content": "a"}, {"content": "b"}]


def test_first_chunk_without_role_gets_one() -> None:
    chunks = feed(new(), up({"content": "Hi"}))
    assert choices(chunks)[0]["delta"] == {"role": "assistant", "content": "Hi"}


def test_each_choice_gets_its_own_role() -> None:
    conv = new()
    chunks = feed(conv, up({"content": "a"}, index=0), up({"content": "b"}, index=1))
    chunks += feed(conv, up({"content": "c"}, index=1))
    assert [c["delta"].get("role") for c in choices(chunks)] == ["assistant", "assistant", None]


@pytest.mark.parametrize("delta", [{}, None])
def test_empty_delta_chunks_are_dropped(delta: dict[str, Any] | None) -> None:
    conv = new()
    assert len(feed(conv, ROLE)) == 1
    assert feed(conv, up(delta)) == []
    assert feed(conv, {**up(None), "choices": []}) == []


def test_first_chunk_with_empty_delta_still_opens_the_choice() -> None:
    chunks = feed(new(), up({}))
    assert choices(chunks)[0]["delta"] == {"role": "assistant", "content": ""}


def test_chunks_after_a_choice_finished_are_dropped() -> None:
    conv = new()
    feed(conv, ROLE, up({"content": "a"}, index=1), up({"content": "x"}, "stop"))
    assert feed(conv, up({"content": "late"})) == []
    assert feed(conv, up({}, "length")) == []
    # The other choice goes on.
    later = feed(conv, up({"content": "b"}, index=1))
    assert [c["delta"] for c in choices(later)] == [{"content": "b"}]


# --- finish_reason --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("stop", "stop"),
        ("length", "length"),
        ("content_filter", "content_filter"),
        ("eos", "stop"),
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("MAX_TOKENS", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        ("safety", "content_filter"),
        ("something_new", "stop"),
        ("abort", "stop"),
    ],
)
def test_finish_reason_normalised(given: str, expected: str) -> None:
    chunks = feed(new(), ROLE, up({}, given))
    assert choices(chunks)[-1]["finish_reason"] == expected


def test_finish_reason_canonical_values_in_upper_case() -> None:
    chunks = feed(new(), ROLE, up({}, "LENGTH"))
    assert choices(chunks)[-1]["finish_reason"] == "length"


CALL = {
    "index": 0,
    "id": "call_abc",
    "type": "function",
    "function": {"name": "f", "arguments": "{}"},
}


@pytest.mark.parametrize("given", ["stop", "eos", "end_turn"])
def test_stop_after_tool_calls_becomes_tool_calls(given: str) -> None:
    chunks = feed(new(), up({"role": "assistant", "tool_calls": [CALL]}), up({}, given))
    assert choices(chunks)[-1]["finish_reason"] == "tool_calls"


def test_length_after_tool_calls_stays_length() -> None:
    chunks = feed(new(), up({"tool_calls": [CALL]}), up({}, "length"))
    assert choices(chunks)[-1]["finish_reason"] == "length"


def test_tool_calls_of_one_choice_do_not_change_another() -> None:
    conv = new()
    chunks = feed(conv, up({"tool_calls": [CALL]}, index=0), up({"content": "x"}, "stop", index=1))
    assert choices(chunks)[-1] == {**choices(chunks)[-1], "index": 1, "finish_reason": "stop"}


# --- tool calls -----------------------------------------------------------------------------------


def test_first_delta_of_a_call_has_id_type_name_later_only_arguments() -> None:
    conv = new()
    first = {"index": 0, "id": "call_1", "function": {"name": "f", "arguments": '{"a"'}}
    again = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "f"}}
    chunks = feed(conv, up({"tool_calls": [first]}), up({"tool_calls": [again]}))
    chunks += feed(conv, up({"tool_calls": [{"index": 0, "function": {"arguments": ":1}"}}]}))
    assert tool_deltas(chunks) == [
        {
            "index": 0,
            "id": "call_1",
            "type": "function",
            "function": {"name": "f", "arguments": '{"a"'},
        },
        {"index": 0, "function": {"arguments": ""}},
        {"index": 0, "function": {"arguments": ":1}"}},
    ]


def test_tool_indexes_are_the_gateways_own_counter() -> None:
    """Upstream indexes 3 and 7 (say, content-block numbers) become 0 and 1."""
    conv = new()
    a = {"index": 3, "id": "call_a", "type": "function", "function": {"name": "a", "arguments": ""}}
    b = {"index": 7, "id": "call_b", "type": "function", "function": {"name": "b", "arguments": ""}}
    chunks = feed(conv, up({"tool_calls": [a]}), up({"tool_calls": [b]}))
    chunks += feed(conv, up({"tool_calls": [{"index": 3, "function": {"arguments": "{}"}}]}))
    assert [(d["index"], d.get("id")) for d in tool_deltas(chunks)] == [
        (0, "call_a"),
        (1, "call_b"),
        (0, None),
    ]


def test_missing_index_whole_calls_each_with_an_id() -> None:
    conv = new()
    a = {"id": "call_a", "type": "function", "function": {"name": "a", "arguments": '{"x":1}'}}
    b = {"id": "call_b", "type": "function", "function": {"name": "b", "arguments": '{"y":2}'}}
    chunks = feed(conv, up({"tool_calls": [a, b]}), up({}, "stop"))
    calls = tool_deltas(chunks)
    assert [(c["index"], c["id"], c["function"]["name"]) for c in calls] == [
        (0, "call_a", "a"),
        (1, "call_b", "b"),
    ]
    assert choices(chunks)[-1]["finish_reason"] == "tool_calls"


def test_missing_index_fragment_without_id_continues_the_last_call() -> None:
    conv = new()
    a = {"id": "call_a", "function": {"name": "a", "arguments": '{"x"'}}
    chunks = feed(conv, up({"tool_calls": [a]}))
    chunks += feed(conv, up({"tool_calls": [{"function": {"arguments": ":1}"}}]}))
    assert tool_deltas(chunks) == [
        {
            "index": 0,
            "id": "call_a",
            "type": "function",
            "function": {"name": "a", "arguments": '{"x"'},
        },
        {"index": 0, "function": {"arguments": ":1}"}},
    ]


def test_missing_index_and_id_first_call_gets_index_zero_and_an_id() -> None:
    chunks = feed(new(), up({"tool_calls": [{"function": {"name": "a", "arguments": "{}"}}]}))
    (call,) = tool_deltas(chunks)
    assert call["index"] == 0
    assert call["id"].startswith("call_")
    assert call["type"] == "function"


def test_missing_index_and_id_two_named_calls_stay_two() -> None:
    calls = [
        {"function": {"name": "a", "arguments": '{"x":1}'}},
        {"function": {"name": "b", "arguments": '{"y":2}'}},
    ]
    deltas = tool_deltas(feed(new(), up({"tool_calls": calls})))
    assert [d["index"] for d in deltas] == [0, 1]
    assert [d["function"].get("name") for d in deltas] == ["a", "b"]


def test_missing_index_repeated_id_stays_one_call() -> None:
    conv = new()
    chunks: list[Chunk] = []
    for fragment in ['{"x"', ":1}"]:
        call = {
            "id": "call_a",
            "type": "function",
            "function": {"name": "a", "arguments": fragment},
        }
        chunks += feed(conv, up({"tool_calls": [call]}))
    assert [d["index"] for d in tool_deltas(chunks)] == [0, 0]
    assert [d.get("id") for d in tool_deltas(chunks)] == ["call_a", None]


def test_object_arguments_become_a_json_string() -> None:
    call = {"index": 0, "id": "call_o", "function": {"name": "f", "arguments": {"city": "Zürich"}}}
    (delta,) = tool_deltas(feed(new(), up({"tool_calls": [call]})))
    arguments = delta["function"]["arguments"]
    assert isinstance(arguments, str)
    assert json.loads(arguments) == {"city": "Zürich"}


def test_missing_arguments_and_function_become_strings() -> None:
    conv = new()
    chunks = feed(
        conv, up({"tool_calls": [{"index": 0, "id": "call_n", "function": {"name": "f"}}]})
    )
    chunks += feed(conv, up({"tool_calls": [{"index": 0}]}))
    first, second = tool_deltas(chunks)
    assert first["function"] == {"name": "f", "arguments": ""}
    assert second == {"index": 0, "function": {"arguments": ""}}


def test_missing_id_is_synthesized_once_per_call() -> None:
    conv = new()
    a = {"index": 0, "function": {"name": "a", "arguments": ""}}
    b = {"index": 1, "function": {"name": "b", "arguments": ""}}
    chunks = feed(conv, up({"tool_calls": [a]}), up({"tool_calls": [b]}))
    chunks += feed(conv, up({"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]}))
    first, second, third = tool_deltas(chunks)
    assert first["id"].startswith("call_")
    assert second["id"].startswith("call_")
    assert first["id"] != second["id"]
    assert first["type"] == second["type"] == "function"
    assert "id" not in third


def test_tool_calls_that_are_not_a_list_are_malformed() -> None:
    with pytest.raises(UpstreamMalformed):
        feed(new(), up({"tool_calls": {"index": 0}}))


# --- reasoning ------------------------------------------------------------------------------------


def test_reasoning_is_renamed_to_reasoning_content() -> None:
    conv = new()
    chunks = feed(conv, up({"role": "assistant", "reasoning": "think"}), up({"reasoning": "more"}))
    deltas = [c["delta"] for c in choices(chunks)]
    assert deltas == [
        {"role": "assistant", "content": "", "reasoning_content": "think"},
        {"reasoning_content": "more"},
    ]


def test_reasoning_content_passes_and_wins_over_reasoning() -> None:
    conv = new()
    feed(conv, ROLE)
    chunks = feed(conv, up({"reasoning_content": "a", "reasoning": "a"}))
    assert choices(chunks)[0]["delta"] == {"reasoning_content": "a"}


def test_empty_reasoning_alone_is_an_empty_delta() -> None:
    conv = new()
    feed(conv, ROLE)
    assert feed(conv, up({"reasoning": ""})) == []
    assert feed(conv, up({"reasoning": None})) == []


def test_reasoning_kept_when_reasoning_content_is_null() -> None:
    conv = new()
    feed(conv, ROLE)
    chunks = feed(conv, up({"content": None, "reasoning_content": None, "reasoning": "r"}))
    assert choices(chunks)[0]["delta"].get("reasoning_content") == "r"


# --- events whose data is bytes (the SSEBytesDecoder the gateway uses for this adapter) --------

BYTES_STREAM = [
    b'{"id":"u","choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}',
    '{"choices":[{"index":0,"delta":{"content":"caf\u00e9 \u65e5\u672c \U0001f642"}}]}'.encode(),
    b'{"choices":[{"index":0,"delta":{"content":"a\xffb\xed\xa0\x80c"}}]}',
    b'{"choices":[{"index":0,"delta":{"reasoning":"r\xc3\xa9","tool_calls":'
    b'[{"index":0,"id":"c","function":{"name":"f","arguments":"{}"}}]}}]}',
    b'{"choices":[{"index":0,"delta":{},"finish_reason":"STOP"}],'
    b'"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}',
    b"[DONE]",
]


def both_ways(items: list[bytes], include_usage: bool = True) -> tuple[object, object]:
    """What one converter makes of the events with bytes data and another of the same events
    decoded (invalid UTF-8 as U+FFFD, as SSEDecoder gives them): chunks, or the error raised."""
    results = []
    for as_bytes in (True, False):
        conv = new(include_usage)
        try:
            out: list[Chunk] = []
            for data in items:
                text = data.decode("utf-8", "replace")
                out += conv.feed(SSEBytesEvent("message", data, "") if as_bytes else event(text))
            results.append((out, conv.done, conv.usage))
        except Exception as exc:  # the error itself is compared
            results.append((type(exc), str(exc), getattr(exc, "code", None)))
    return results[0], results[1]


def test_bytes_events_give_the_chunks_of_decoded_events() -> None:
    got, expected = both_ways(BYTES_STREAM)
    assert got == expected
    chunks = got[0]  # type: ignore[index]
    assert chunks[1]["choices"][0]["delta"]["content"] == "caf\u00e9 \u65e5\u672c \U0001f642"
    assert chunks[2]["choices"][0]["delta"]["content"] == "a\ufffdb\ufffd\ufffd\ufffdc"
    assert chunks[-1]["usage"]["total_tokens"] == 7


@pytest.mark.parametrize(
    "data",
    [
        b"not json \xff",
        b"[1, 2]",
        b'"text"',
        b'{"error":{"message":"overloaded \xc3\xa9","code":"busy"}}',
        b'{"object":"error","message":"bad \xff"}',
        b"[DONE] trailing",
        b" [DONE]",
        b"\xef\xbb\xbf{}",
        b"",
    ],
)
def test_bytes_events_fail_or_end_as_decoded_events_do(data: bytes) -> None:
    got, expected = both_ways([BYTES_STREAM[0], data])
    assert got == expected


def test_feed_all_gives_what_feed_gives_event_by_event() -> None:
    """A read's events in one call: the same chunks; nothing after [DONE]."""
    events = [SSEBytesEvent("message", data, "") for data in [*BYTES_STREAM, BYTES_STREAM[1]]]
    one_by_one, at_once = new(True), new(True)
    expected: list[Chunk] = []
    for item in events:
        expected += one_by_one.feed(item)
    got: list[Chunk] = []
    at_once.feed_all(events, got)
    assert got == expected
    assert (at_once.done, at_once.usage) == (one_by_one.done, one_by_one.usage) == (True, ANY)
    assert at_once.feed(events[1]) == []


def test_feed_all_raises_after_the_chunks_before_the_error() -> None:
    events = [
        SSEBytesEvent("message", data, "")
        for data in [*BYTES_STREAM[:3], b'{"error":{"message":"gone"}}', BYTES_STREAM[4]]
    ]
    conv, out = new(), list[Chunk]()
    with pytest.raises(UpstreamStreamError, match="gone"):
        conv.feed_all(events, out)
    assert [c["choices"][0]["delta"].get("content") for c in out] == [
        "",
        "caf\u00e9 \u65e5\u672c \U0001f642",
        "a\ufffdb\ufffd\ufffd\ufffdc",
    ]


def test_one_more_piece_of_text_after_the_first_chunk() -> None:
    """The common chunk (`{"content": …}` alone, the choice open, no finish): kept with a null
    finish reason and logprobs (or the upstream's), dropped when its text is empty or null."""
    conv = new()
    feed(conv, ROLE)
    logprobs = {"content": [{"token": "b", "logprob": -0.5}]}
    sent = [
        up({"content": "a"}),
        {"choices": [{"index": 0, "delta": {"content": "b"}, "logprobs": logprobs}]},
        up({"content": ""}),
        up({"content": None}),
        {"choices": [{"delta": {"content": "c"}, "extra": 1}]},
        up({"content": "d"}, "stop"),
    ]
    got = choices(feed(conv, *sent))
    expected = [
        {"index": 0, "delta": {"content": "a"}, "finish_reason": None, "logprobs": None},
        {"index": 0, "delta": {"content": "b"}, "logprobs": logprobs, "finish_reason": None},
        {
            "delta": {"content": "c"},
            "extra": 1,
            "index": 0,
            "finish_reason": None,
            "logprobs": None,
        },
        {"index": 0, "delta": {"content": "d"}, "finish_reason": "stop", "logprobs": None},
    ]
    assert got == expected
    assert [list(choice) for choice in got] == [list(choice) for choice in expected]  # the order
