"""llms.adapters.openai's stream converter, to its end: the usage it holds back, how the stream
ends (close, [DONE]) and the errors inside it (protocol.md §1.7, §1.8, §3.1). No server, no I/O."""

from __future__ import annotations

from typing import Any

import pytest

from llms.errors import UpstreamIncomplete, UpstreamMalformed, UpstreamStreamError
from tests.test_adapter_openai import CALL, META_ID, ROLE, choices, feed, new, up

# --- usage ----------------------------------------------------------------------------------------

USAGE = {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}


def usage_only() -> dict[str, Any]:
    return {**up(None), "choices": [], "usage": USAGE, "timings": {"predicted_n": 3}}


def test_usage_chunk_held_until_the_end_when_the_client_asked() -> None:
    conv = new(include_usage=True)
    body = feed(conv, ROLE, up({"content": "x"}), up({}, "stop"), usage_only())
    assert len(body) == 3
    assert all(item["usage"] is None for item in body)
    end = feed(conv, "[DONE]")
    assert len(end) == 1
    assert end[0]["choices"] == []
    assert end[0]["usage"] == USAGE
    assert end[0]["id"] == META_ID
    assert end[0]["model"] == "pub"
    assert "timings" not in end[0]
    assert conv.done


def test_usage_never_sent_when_the_client_did_not_ask() -> None:
    conv = new(include_usage=False)
    chunks = feed(conv, ROLE, up({}, "stop", usage=USAGE), usage_only(), "[DONE]")
    assert all(item["choices"] for item in chunks)
    assert all("usage" not in item for item in chunks)
    # The non-stream path reads it from here.
    assert conv.usage == USAGE


def test_usage_attached_to_the_finish_chunk_moves_to_its_own_chunk() -> None:
    conv = new(include_usage=True)
    chunks = feed(conv, ROLE, up({"content": "!"}, "stop", usage=USAGE), "[DONE]")
    assert [item["usage"] for item in chunks[:-1]] == [None, None]
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == USAGE


def test_usage_on_a_chunk_of_a_finished_choice_is_kept() -> None:
    """OpenRouter's usage chunk carries an empty delta for the choice that already finished."""
    conv = new(include_usage=True)
    late = up({"role": "assistant", "content": ""}, usage=USAGE)
    chunks = feed(conv, ROLE, up({}, "stop"), late)
    assert len(chunks) == 2
    assert feed(conv, "[DONE]")[0]["usage"] == USAGE


# --- the end of the stream ------------------------------------------------------------------------


def test_close_after_finish_is_a_normal_end() -> None:
    conv = new(include_usage=True)
    feed(conv, ROLE, up({"content": "x"}, "stop"), usage_only())
    end = conv.close()
    assert conv.done
    assert [item["usage"] for item in end] == [USAGE]
    assert end[0]["choices"] == []


def test_close_after_finish_without_usage_ends_with_nothing_more() -> None:
    conv = new()
    feed(conv, ROLE, up({}, "length"))
    assert conv.close() == []
    assert conv.done


@pytest.mark.parametrize(
    "items",
    [
        [],
        [ROLE],
        [ROLE, up({"content": "half"})],
        [up({"content": "a"}, "stop", index=0), up({"content": "b"}, index=1)],
    ],
)
def test_close_before_finish_is_incomplete(items: list[Any]) -> None:
    conv = new(include_usage=True)
    feed(conv, *items)
    with pytest.raises(UpstreamIncomplete):
        conv.close()
    assert not conv.done


def test_done_without_finish_finishes_with_stop() -> None:
    conv = new()
    chunks = feed(conv, ROLE, up({"content": "x"}), "[DONE]")
    last = choices(chunks)[-1]
    assert last["finish_reason"] == "stop"
    assert last["delta"] == {}
    assert chunks[-1]["id"] == META_ID
    assert conv.done


def test_done_without_finish_after_tool_calls_finishes_with_tool_calls() -> None:
    chunks = feed(new(), up({"tool_calls": [CALL]}), "[DONE]")
    assert choices(chunks)[-1]["finish_reason"] == "tool_calls"


def test_done_finishes_every_open_choice_once() -> None:
    conv = new()
    chunks = feed(conv, up({"content": "a"}, "stop"), up({"content": "b"}, index=1), "[DONE]")
    finishes = [(c["index"], c["finish_reason"]) for c in choices(chunks) if c["finish_reason"]]
    assert finishes == [(0, "stop"), (1, "stop")]


def test_legacy_function_call_finishes_as_function_call_per_choice() -> None:
    """A choice that sent `function_call` (over several chunks) ends with `function_call`, at
    its `stop` or at [DONE]; a choice beside it that did not ends with `stop`."""
    call = {"function_call": {"name": "f", "arguments": ""}}
    more = {"function_call": {"arguments": "{}"}}
    chunks = feed(new(), ROLE, up(call), up(more), up({}, "stop"))
    assert choices(chunks)[-1]["finish_reason"] == "function_call"
    conv = new()
    chunks = feed(conv, up(call), up(more), up({"content": "b"}, index=1), "[DONE]")
    finishes = [(c["index"], c["finish_reason"]) for c in choices(chunks) if c["finish_reason"]]
    assert finishes == [(0, "function_call"), (1, "stop")]
    assert feed(conv, "[DONE]") == []


def test_close_after_every_choice_finished_ends_without_done() -> None:
    conv = new()
    feed(conv, up({"content": "a"}, index=0), up({"content": "b"}, index=1))
    feed(conv, up({}, "stop", index=1), up({}, "length", index=0))
    assert conv.close() == []
    assert conv.done


def test_done_after_finish_adds_no_second_finish() -> None:
    conv = new()
    chunks = feed(conv, ROLE, up({}, "stop"), "[DONE]")
    assert [c["finish_reason"] for c in choices(chunks)] == [None, "stop"]


def test_done_alone_is_an_empty_answer() -> None:
    chunks = feed(new(), "[DONE]")
    assert [c["delta"] for c in choices(chunks)] == [{"role": "assistant", "content": ""}, {}]
    assert choices(chunks)[-1]["finish_reason"] == "stop"


def test_events_after_done_are_ignored() -> None:
    conv = new()
    feed(conv, ROLE, "[DONE]")
    assert feed(conv, up({"content": "late"})) == []
    assert conv.close() == []


def test_second_done_is_ignored() -> None:
    conv = new(include_usage=True)
    first = feed(conv, ROLE, up({}, "stop", usage=USAGE), "[DONE]")
    assert first[-1]["usage"] == USAGE
    assert feed(conv, "[DONE]") == []


# --- errors inside the stream ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message", "code"),
    [
        ({"error": {"message": "boom", "type": "server_error", "code": "x"}}, "boom", "x"),
        ({"error": {"message": "m", "code": 500}}, "m", None),
        (
            {"object": "error", "message": "flat", "type": "BadRequestError", "code": 400},
            "flat",
            None,
        ),
        ({"error": "plain text"}, "plain text", None),
        ({"error": {"type": "server_error"}}, "The upstream reported an error.", None),
    ],
)
def test_error_event_raises(body: dict[str, Any], message: str, code: str | None) -> None:
    conv = new()
    feed(conv, ROLE, up({"content": "a"}))
    with pytest.raises(UpstreamStreamError) as info:
        feed(conv, body)
    assert info.value.message == message
    assert info.value.code == (code or "upstream_error")
    assert info.value.status == 502


@pytest.mark.parametrize("data", ["hello", "{", "[1, 2]", '"text"'])
def test_non_object_events_are_malformed(data: str) -> None:
    with pytest.raises(UpstreamMalformed):
        feed(new(), data)
