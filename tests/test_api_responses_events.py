"""llms.api.responses: the Responses API's events and Response objects, as pure functions.

Every event and every Response is validated with openai-python's own pydantic types; streams are
checked for sequence numbers, balanced added/done events and item ids that stay the same from the
first event to the final output (docs: responses-and-messages.md §1.2 to §1.4, peers' bugs §3).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import orjson
import pytest
from openai._models import construct_type
from openai.types.responses import Response, ResponseStreamEvent

from llms.api.responses import (
    ResponseBuilder,
    ResponseEvent,
    encode_event,
    fold_response,
)
from llms.api.responses_object import from_usage
from llms.api.responses_stream import ResponsesEncoder
from llms.chunks import (
    delta_chunk,
    finish_chunk,
    role_chunk,
    tool_call_delta,
)
from llms.errors import (
    GatewayError,
    InvalidRequest,
    RateLimited,
    UpstreamDisconnected,
    UpstreamHTTPError,
    UpstreamMalformed,
)
from llms.wire import Chunk
from tests.responses_support import (
    CUSTOM,
    EVENT,
    EVENT_MODELS,
    META,
    call,
    calls,
    check_balance,
    check_events,
    reasoning,
    run,
    text,
    types,
    usage,
)

# --- answers: text --------------------------------------------------------------------------------


def test_a_text_answer_is_the_full_event_sequence_with_usage() -> None:
    chunks = [role_chunk(META), text("Hel"), text("lo"), finish_chunk(META, "stop"), usage()]
    payloads, response = run(chunks)
    assert types(payloads) == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert payloads[0]["response"]["status"] == "in_progress"
    assert payloads[0]["response"]["output"] == [] and payloads[0]["response"]["usage"] is None
    assert [p["delta"] for p in payloads if p["type"] == "response.output_text.delta"] == [
        "Hel",
        "lo",
    ]
    assert all(p["logprobs"] == [] for p in payloads if "output_text" in p["type"])
    assert payloads[6]["text"] == "Hello"
    assert payloads[7]["part"] == {
        "type": "output_text",
        "text": "Hello",
        "annotations": [],
        "logprobs": [],
    }
    message = response["output"][0]
    assert message["id"].startswith("msg_") and message["status"] == "completed"
    assert message["role"] == "assistant"
    assert response["status"] == "completed" and response["completed_at"] == 1700000009
    assert response["usage"] == {
        "input_tokens": 10,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": 5,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 15,
    }
    assert payloads[-1]["response"] == response
    assert Response.model_validate(response).output_text == "Hello"
    check_balance(payloads, response)


def test_reasoning_is_an_item_before_the_message_never_text() -> None:
    chunks = [
        reasoning("Think"),
        reasoning("ing."),
        text("\n\n"),
        text("Answer"),
        finish_chunk(META, "stop"),
        usage(20, 8, reasoning=3, cached=4),
    ]
    payloads, response = run(chunks)
    rs, msg = response["output"]
    assert rs["type"] == "reasoning" and rs["id"].startswith("rs_")
    assert rs["summary"] == [] and rs["content"] == [
        {"type": "reasoning_text", "text": "Thinking."}
    ]
    assert msg["content"][0]["text"] == "\n\nAnswer"
    assert Response.model_validate(response).output_text == "\n\nAnswer"
    assert [p["delta"] for p in payloads if p["type"] == "response.reasoning_text.delta"] == [
        "Think",
        "ing.",
    ]
    done = next(p for p in payloads if p["type"] == "response.reasoning_text.done")
    assert done["text"] == "Thinking." and done["content_index"] == 0
    # the reasoning item is closed before the message opens
    kinds = types(payloads)
    assert kinds.index("response.output_item.done") < kinds.index("response.output_text.delta")
    assert response["usage"]["output_tokens_details"] == {"reasoning_tokens": 3}
    assert response["usage"]["input_tokens_details"]["cached_tokens"] == 4
    check_balance(payloads, response)


def test_reasoning_can_stream_as_summary_parts() -> None:
    chunks = [reasoning("Plan"), text("Done"), finish_chunk(META, "stop")]
    payloads, response = run(chunks, reasoning_mode="summary")
    assert response["output"][0]["summary"] == [{"type": "summary_text", "text": "Plan"}]
    assert "content" not in response["output"][0]
    assert "response.reasoning_summary_text.delta" in types(payloads)
    assert "response.reasoning_text.delta" not in types(payloads)
    delta = next(p for p in payloads if p["type"] == "response.reasoning_summary_text.delta")
    assert delta["summary_index"] == 0
    check_balance(payloads, response)


def test_raw_reasoning_keeps_openais_event_names_not_open_responses_ones() -> None:
    """Open Responses names raw reasoning events `response.reasoning.delta`/`.done`; OpenAI,
    vLLM and Codex use `response.reasoning_text.*` (docs §1.4). openai-python's union has no
    member for the Open Responses name and builds such an event as another class, and Codex
    ignores unknown types, so the default stays OpenAI's."""
    payloads, _ = run([reasoning("Think"), text("Answer"), finish_chunk(META, "stop")])
    named = {p["type"] for p in payloads if "reasoning" in p["type"]}
    assert named == {"response.reasoning_text.delta", "response.reasoning_text.done"}
    delta = next(p for p in payloads if p["type"] == "response.reasoning_text.delta")
    typed = construct_type(type_=ResponseStreamEvent, value=delta)
    assert type(typed) is EVENT_MODELS["response.reasoning_text.delta"]
    assert "response.reasoning.delta" not in EVENT_MODELS
    renamed = construct_type(
        type_=ResponseStreamEvent, value={**delta, "type": "response.reasoning.delta"}
    )
    assert type(renamed) not in (EVENT_MODELS[name] for name in named)


def test_delta_bytes_carry_any_text_exactly() -> None:
    tricky = 'He said "hi"\n\t\\ é ✓ 😀 \u2028 </script>'
    chunks = [
        reasoning(tricky),
        text(tricky),
        calls(tool_call_delta(0, id="c", name="f", arguments=tricky)),
    ]
    payloads, response = run([*chunks, finish_chunk(META, "tool_calls")])
    deltas = [p["delta"] for p in payloads if p["type"].endswith(".delta")]
    assert deltas == [tricky, tricky, tricky]
    assert response["output"][1]["content"][0]["text"] == tricky


def test_no_phantom_whitespace_items() -> None:
    chunks = [
        role_chunk(META),
        text("\n\n"),
        calls(tool_call_delta(0, id="call_a", name="f", arguments='{"x":1}')),
        text(" "),
        finish_chunk(META, "tool_calls"),
    ]
    payloads, response = run(chunks)
    assert [item["type"] for item in response["output"]] == ["function_call"]
    assert "response.content_part.added" not in types(payloads)
    check_balance(payloads, response)


def test_a_whitespace_only_answer_has_no_message_item() -> None:
    _, response = run([text("  "), finish_chunk(META, "stop")])
    assert response["output"] == [] and response["status"] == "completed"


def test_text_then_tool_calls_are_separate_items_with_stable_ids() -> None:
    chunks = [
        text("Let me check."),
        calls(tool_call_delta(0, id="call_a", name="get", arguments='{"q":')),
        calls(tool_call_delta(0, arguments='"a"}')),
        calls(tool_call_delta(1, id="call_b", name="get", arguments='{"q":"b"}')),
        finish_chunk(META, "tool_calls"),
        usage(),
    ]
    payloads, response = run(chunks)
    message, first, second = response["output"]
    assert message["content"][0]["text"] == "Let me check."
    assert (first["call_id"], first["arguments"]) == ("call_a", '{"q":"a"}')
    assert (second["call_id"], second["arguments"]) == ("call_b", '{"q":"b"}')
    # Codex takes calls only from output_item.done: one for every call, with call_id and name
    done = [p["item"] for p in payloads if p["type"] == "response.output_item.done"]
    assert [(d["type"], d.get("call_id")) for d in done] == [
        ("message", None),
        ("function_call", "call_a"),
        ("function_call", "call_b"),
    ]
    check_balance(payloads, response)


def test_a_call_without_arguments_sends_an_empty_object() -> None:
    payloads, response = run(
        [calls(tool_call_delta(0, id="call_a", name="now")), finish_chunk(META, "tool_calls")]
    )
    assert response["output"][0]["arguments"] == "{}"
    deltas = [p["delta"] for p in payloads if p["type"] == "response.function_call_arguments.delta"]
    assert deltas == ["{}"]


def test_a_call_without_an_id_gets_one() -> None:
    _, response = run(
        [
            calls({"index": 0, "function": {"name": "f", "arguments": "{}"}}),
            finish_chunk(META, "stop"),
        ]
    )
    assert response["output"][0]["call_id"].startswith("call_")


def test_a_refusal_is_a_refusal_part() -> None:
    chunks = [delta_chunk(META, {"refusal": "I can't"}), delta_chunk(META, {"refusal": " help."})]
    payloads, response = run([*chunks, finish_chunk(META, "stop")])
    assert response["output"][0]["content"] == [{"type": "refusal", "refusal": "I can't help."}]
    assert [p["delta"] for p in payloads if p["type"] == "response.refusal.delta"] == [
        "I can't",
        " help.",
    ]
    done = next(p for p in payloads if p["type"] == "response.refusal.done")
    assert done["refusal"] == "I can't help."
    check_balance(payloads, response)


def test_logprobs_map_onto_deltas_and_the_part() -> None:
    entry = {
        "token": "Hi",
        "logprob": -0.5,
        "bytes": [72, 105],
        "top_logprobs": [{"token": "Hi", "logprob": -0.5, "bytes": [72, 105]}],
    }
    chunk = text("Hi")
    chunk["choices"][0]["logprobs"] = {"content": [entry]}
    payloads, response = run([chunk, finish_chunk(META, "stop")], body={"top_logprobs": 1})
    delta = next(p for p in payloads if p["type"] == "response.output_text.delta")
    assert delta["logprobs"][0]["token"] == "Hi" and delta["logprobs"][0]["logprob"] == -0.5
    part = response["output"][0]["content"][0]
    assert part["logprobs"] == [entry]


def test_text_after_tool_calls_closes_them_and_opens_a_new_message() -> None:
    chunks = [
        calls(tool_call_delta(0, id="call_a", name="f", arguments="{}")),
        text("After."),
        finish_chunk(META, "stop"),
    ]
    payloads, response = run(chunks)
    assert [item["type"] for item in response["output"]] == ["function_call", "message"]
    check_balance(payloads, response)


def test_a_call_continued_after_other_output_fails_the_response() -> None:
    builder = ResponseBuilder("resp_1", "m", 1, call())
    events = builder.start()
    events += builder.feed([calls(tool_call_delta(0, id="call_a", name="f", arguments="{"))])
    late = calls(tool_call_delta(0, arguments="}"))
    events += builder.feed([text("x"), late, text("never")])
    payloads = check_events(events)  # no gap in the numbering
    assert payloads[-1]["type"] == "response.failed"
    assert isinstance(builder.failure, UpstreamMalformed) and builder.terminal
    assert builder.response["output"][1]["content"][0]["text"] == "x"
    assert builder.feed([text("more")]) == [] and builder.finish() == []


def test_the_legacy_function_call_delta_is_a_function_call_item() -> None:
    chunks = [
        delta_chunk(META, {"function_call": {"name": "f", "arguments": '{"a":'}}),  # type: ignore[typeddict-unknown-key]
        delta_chunk(META, {"function_call": {"arguments": "1}"}}),  # type: ignore[typeddict-unknown-key]
        finish_chunk(META, "function_call"),
    ]
    payloads, response = run(chunks)
    (item,) = response["output"]
    assert (item["type"], item["name"], item["arguments"]) == ("function_call", "f", '{"a":1}')
    check_balance(payloads, response)


def test_the_response_mid_stream_shows_the_text_so_far() -> None:
    builder = ResponseBuilder("resp_1", "m", 1, call())
    builder.start()
    builder.feed([reasoning("r"), text("Hel"), text("lo")])
    builder.feed([calls(tool_call_delta(0, id="c", name="f", arguments='{"x"'))])
    now = builder.response
    Response.model_validate(now)
    assert now["status"] == "in_progress"
    assert now["output"][1]["content"][0]["text"] == "Hello"
    assert now["output"][2]["arguments"] == '{"x"'
    assert builder.sequence_number > 0


def test_a_queued_start_can_defer_in_progress() -> None:
    builder = ResponseBuilder("resp_1", "m", 1, call(background=True), status="queued")
    events = builder.start(in_progress=False)
    assert [e.type for e in events] == ["response.created", "response.queued"]
    assert builder.response["status"] == "queued" and builder.response["background"] is True
    events += builder.in_progress()
    events += builder.in_progress()  # once only
    events += builder.feed([text("x"), finish_chunk(META, "stop")]) + builder.finish()
    payloads = check_events(events)
    assert types(payloads).count("response.in_progress") == 1
    assert payloads[-1]["response"]["status"] == "completed"


# --- answers: ends --------------------------------------------------------------------------------


def test_a_length_cut_is_incomplete_max_output_tokens() -> None:
    payloads, response = run([text("Once upon"), finish_chunk(META, "length"), usage(3, 2)])
    assert payloads[-1]["type"] == "response.incomplete"
    assert response["status"] == "incomplete"
    assert response["incomplete_details"] == {"reason": "max_output_tokens"}
    assert response["output"][0]["status"] == "incomplete"
    assert response["usage"]["output_tokens"] == 2
    assert "response.completed" not in types(payloads)
    check_balance(payloads, response)


def test_a_content_filter_stop_is_incomplete_content_filter() -> None:
    payloads, response = run([text("x"), finish_chunk(META, "content_filter")])
    assert payloads[-1]["type"] == "response.incomplete"
    assert response["incomplete_details"] == {"reason": "content_filter"}


def test_a_failure_after_output_is_failed_with_the_output_so_far() -> None:
    chunks = [
        text("Partial"),
        calls(tool_call_delta(0, id="call_a", name="f", arguments='{"a"')),
    ]
    error = UpstreamDisconnected("The upstream closed the connection.")
    payloads, response = run(chunks, end="fail", error=error)
    assert payloads[-1]["type"] == "response.failed"
    assert "response.completed" not in types(payloads)
    assert response["status"] == "failed" and response["completed_at"] is None
    assert response["error"]["code"] == "server_error"
    assert response["error"]["message"] == "The upstream closed the connection."
    message, function = response["output"]
    assert message["content"][0]["text"] == "Partial"
    assert function["arguments"] == '{"a"' and function["status"] == "incomplete"
    # a half-streamed call never gets an output_item.done (Codex would run it)
    done_items = [p["item"]["id"] for p in payloads if p["type"] == "response.output_item.done"]
    assert function["id"] not in done_items


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (RateLimited("slow down"), "rate_limit_exceeded"),
        (InvalidRequest("bad"), "invalid_prompt"),
        (UpstreamHTTPError("boom", status=503, type="server_error"), "server_error"),
    ],
)
def test_failure_codes_are_openai_ones(error: GatewayError, code: str) -> None:
    payloads, response = run([], end="fail", error=error)
    assert response["error"]["code"] == code
    assert types(payloads) == ["response.created", "response.in_progress", "response.failed"]


def test_a_context_length_failure_keeps_the_code_codex_acts_on() -> None:
    builder = ResponseBuilder("resp_1", "m", 1, call())
    builder.start()
    error = UpstreamHTTPError(
        "too long", status=400, type="invalid_request_error", code="context_length_exceeded"
    )
    (event,) = builder.fail(error)
    assert orjson.loads(event.data)["response"]["error"]["code"] == "context_length_exceeded"


def test_cancel_marks_the_response_cancelled() -> None:
    payloads, response = run([text("abc")], end="cancel")
    assert response["status"] == "cancelled"
    assert response["output"][0]["status"] == "incomplete"
    assert response["output"][0]["content"][0]["text"] == "abc"
    assert types(payloads)[-1] == "response.output_text.delta"


def test_a_background_response_is_queued_first() -> None:
    payloads, _ = run([text("x"), finish_chunk(META, "stop")], status="queued")
    assert types(payloads)[:3] == ["response.created", "response.queued", "response.in_progress"]
    assert payloads[0]["response"]["status"] == "queued"
    assert payloads[2]["response"]["status"] == "in_progress"


def test_the_error_event_carries_both_shapes() -> None:
    builder = ResponseBuilder("resp_1", "m", 1, call())
    builder.start()
    event = builder.error_event(RateLimited("slow down"))
    payload = orjson.loads(event.data)
    EVENT.validate_python(payload)
    assert payload["code"] == "rate_limit_exceeded" and payload["message"] == "slow down"
    assert payload["error"] == {
        "message": "slow down",
        "type": "rate_limit_error",
        "param": None,
        "code": "rate_limit_exceeded",
    }
    assert payload["sequence_number"] == 2


def test_encode_event_can_carry_an_id_line() -> None:
    assert encode_event("response.created", b"{}", 7) == (
        b"id: 7\nevent: response.created\ndata: {}\n\n"
    )


def test_usage_mapping_always_has_integer_details() -> None:
    assert from_usage(None) is None
    mapped = from_usage(
        {
            "prompt_tokens": 7,
            "completion_tokens": 3,
            "total_tokens": 10,
            "prompt_tokens_details": {"cached_tokens": None},
            "completion_tokens_details": {"reasoning_tokens": 2},
        }
    )
    assert mapped is not None
    assert mapped["input_tokens_details"]["cached_tokens"] == 0
    assert mapped["output_tokens_details"]["reasoning_tokens"] == 2
    assert mapped["total_tokens"] == 10


# --- the Response object --------------------------------------------------------------------------

OPEN_RESPONSES_REQUIRED = frozenset(
    (
        "id",
        "object",
        "created_at",
        "completed_at",
        "status",
        "incomplete_details",
        "model",
        "previous_response_id",
        "instructions",
        "output",
        "error",
        "tools",
        "tool_choice",
        "truncation",
        "parallel_tool_calls",
        "text",
        "top_p",
        "presence_penalty",
        "frequency_penalty",
        "top_logprobs",
        "temperature",
        "reasoning",
        "usage",
        "max_output_tokens",
        "max_tool_calls",
        "store",
        "background",
        "service_tier",
        "metadata",
        "safety_identifier",
        "prompt_cache_key",
    )
)


def test_the_response_has_every_field_open_responses_requires() -> None:
    _, response = run([text("x"), finish_chunk(META, "stop")])
    assert sorted(set(OPEN_RESPONSES_REQUIRED) - set(response)) == []
    # numbers and flags that schema makes non-null
    for key in ("top_p", "temperature", "presence_penalty", "frequency_penalty", "top_logprobs"):
        assert isinstance(response[key], int | float), key
    assert response["store"] is True and response["background"] is False
    assert response["parallel_tool_calls"] is True and response["service_tier"] == "default"
    assert response["text"] == {"format": {"type": "text"}} and response["metadata"] == {}


def test_the_response_echoes_the_request() -> None:
    body = {
        "instructions": "Be brief.",
        "temperature": 0.2,
        "top_p": 0.9,
        "max_output_tokens": 64,
        "metadata": {"k": "v"},
        "reasoning": {"effort": "low", "summary": "auto"},
        "text": {"verbosity": "low"},
        "truncation": "auto",
        "store": False,
        "prompt_cache_key": "s1",
        "safety_identifier": "u1",
        "user": "bob",
        "parallel_tool_calls": False,
        "tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}}],
        "tool_choice": {"type": "function", "name": "f"},
        "previous_response_id": "resp_0",
    }
    _, response = run([text("x"), finish_chunk(META, "stop")], body=body)
    for key in ("instructions", "temperature", "top_p", "max_output_tokens", "metadata"):
        assert response[key] == body[key]
    assert response["reasoning"] == {"effort": "low", "summary": "auto"}
    assert response["text"] == {"format": {"type": "text"}, "verbosity": "low"}
    assert response["truncation"] == "auto" and response["store"] is False
    assert response["prompt_cache_key"] == "s1" and response["safety_identifier"] == "u1"
    assert response["user"] == "bob" and response["parallel_tool_calls"] is False
    assert response["tools"][0]["name"] == "f"
    assert response["tool_choice"] == {"type": "function", "name": "f"}
    assert response["previous_response_id"] == "resp_0"


def test_a_builder_from_stored_settings_alone() -> None:
    response = fold_response("resp_2", "m", 5, {}, [text("x"), finish_chunk(META, "stop")])
    Response.model_validate(response)
    assert response["tools"] == [] and response["completed_at"] == 5


def test_a_custom_tool_is_offered_as_a_function_with_one_string_input() -> None:
    chat = call(tools=[CUSTOM]).chat
    (tool,) = chat["tools"]
    assert tool["function"]["name"] == "apply_patch"
    assert tool["function"]["parameters"]["properties"] == {
        "input": {"type": "string", "description": "The tool's whole input."}
    }
    assert "start: /.+/" in tool["function"]["description"]


def test_a_custom_tool_call_comes_back_as_a_custom_tool_call_item() -> None:
    chunks = [
        calls(tool_call_delta(0, id="call_p", name="apply_patch", arguments='{"input": "*** B')),
        calls(tool_call_delta(0, arguments='egin"}')),
        finish_chunk(META, "tool_calls"),
    ]
    payloads, response = run(chunks, body={"tools": [CUSTOM]})
    (item,) = response["output"]
    assert item["type"] == "custom_tool_call" and item["input"] == "*** Begin"
    assert item["call_id"] == "call_p" and item["id"].startswith("ctc_")
    done = next(p for p in payloads if p["type"] == "response.custom_tool_call_input.done")
    assert done["input"] == "*** Begin"
    check_balance(payloads, response)


def test_a_namespaced_call_carries_its_namespace() -> None:
    tools = [
        {
            "type": "namespace",
            "name": "crm",
            "description": "CRM",
            "tools": [{"type": "function", "name": "lookup", "parameters": {"type": "object"}}],
        }
    ]
    assert [t["function"]["name"] for t in call(tools=tools).chat["tools"]] == ["lookup"]
    chunks = [calls(tool_call_delta(0, id="c", name="lookup", arguments="{}"))]
    _, response = run([*chunks, finish_chunk(META, "tool_calls")], body={"tools": tools})
    assert response["output"][0]["namespace"] == "crm"


def test_url_citations_become_output_text_annotations() -> None:
    cite = {
        "type": "url_citation",
        "url_citation": {"start_index": 0, "end_index": 5, "title": "Ex", "url": "https://x.test"},
    }
    chunks = [
        text("Paris is big."),
        delta_chunk(META, {"annotations": [cite, {"type": "other"}]}),  # type: ignore[typeddict-unknown-key]
        finish_chunk(META, "stop"),
    ]
    payloads, response = run(chunks)
    flat = {
        "type": "url_citation",
        "start_index": 0,
        "end_index": 5,
        "title": "Ex",
        "url": "https://x.test",
    }
    assert response["output"][0]["content"][0]["annotations"] == [flat]
    added = [p for p in payloads if p["type"] == "response.output_text.annotation.added"]
    assert [(p["annotation_index"], p["annotation"]) for p in added] == [(0, flat)]
    check_balance(payloads, response)


def test_the_encoders_text_fast_path_writes_what_feed_would() -> None:
    """ResponsesEncoder writes one-piece text chunks through `ResponseBuilder.frames`' fast
    path (no event objects); every other chunk goes through `feed`. The bytes are the same,
    chunk by chunk and with the whole stream as one batch (as a fast upstream's read gives)."""
    stream: list[Chunk] = [
        role_chunk(META),
        text("Hel"),
        text("lo"),
        reasoning("hmm"),
        text(" again"),
        text(" <\u2028>"),
        {**text("x"), "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}},
        text("y", refusal=None),
        delta_chunk(
            META, {"tool_calls": [tool_call_delta(0, id="call_1", name="f", arguments="{}")]}
        ),
        text("after"),
        delta_chunk(META, {"content": "end"}, finish="stop"),
    ]

    def builder() -> ResponseBuilder:
        return ResponseBuilder("resp_1", "m", 1700000000, call())

    fed = 0

    class Counting(ResponseBuilder):
        def feed(self, chunks: Iterable[Chunk]) -> list[ResponseEvent]:
            nonlocal fed
            chunks = list(chunks)
            fed += len(chunks)
            return super().feed(chunks)

    fast = ResponsesEncoder(Counting("resp_1", "m", 1700000000, call()), lambda: 1700000009)
    fast_bytes = b"".join(fast.chunks([chunk]) for chunk in stream) + fast.done()
    fast_frames = len(stream) - fed
    whole = ResponsesEncoder(Counting("resp_1", "m", 1700000000, call()), lambda: 1700000009)
    whole_bytes = whole.chunks(list(stream)) + whole.done()
    slow = builder()
    events = slow.start()
    for chunk in stream:
        events += slow.feed([chunk])
    events += slow.finish(completed_at=1700000009)
    # Item ids are random: the same stream, by the same rules, with its ids set aside.
    ids = re.compile(rb'"(msg|rs|fc)_[0-9a-f]+"')
    slow_bytes = b"".join(event.sse for event in events)
    assert ids.sub(b"ID", fast_bytes) == ids.sub(b"ID", slow_bytes)
    assert ids.sub(b"ID", whole_bytes) == ids.sub(b"ID", slow_bytes)
    assert fast_bytes.count(b"response.output_text.delta\n") == 8
    assert fast_frames == 2  # "lo" and " <\u2028>": each of the others needs `feed`
    assert len(stream) * 2 - fed == 4  # the same two in the one batch
    for encoder in (fast, whole):
        assert ids.sub(b"ID", orjson.dumps(encoder.builder.response)) == ids.sub(
            b"ID", orjson.dumps(slow.response)
        )
    assert fast.chunks([text("late")]) == b""  # the response has ended


def test_the_fast_path_numbers_a_long_answer_past_its_precomputed_tails() -> None:
    """The fast path's frame tails are made once for the first sequence numbers; an answer
    longer than those is numbered on, every delta exactly as `feed` makes it."""
    stream: list[Chunk] = [role_chunk(META)] + [text(f" t{i}") for i in range(1500)]
    stream.append(delta_chunk(META, {}, finish="stop"))
    fast = ResponsesEncoder(ResponseBuilder("resp_1", "m", 1700000000, call()), lambda: 1)
    fast_bytes = fast.chunks(stream[:700]) + fast.chunks(stream[700:]) + fast.done()
    slow = ResponseBuilder("resp_1", "m", 1700000000, call())
    events = slow.start()
    for chunk in stream:
        events += slow.feed([chunk])
    events += slow.finish(completed_at=1)
    ids = re.compile(rb'"(msg|rs|fc)_[0-9a-f]+"')
    assert ids.sub(b"ID", fast_bytes) == ids.sub(b"ID", b"".join(e.sse for e in events))
    numbers = [int(n) for n in re.findall(rb'"sequence_number":(\d+)', fast_bytes)]
    assert numbers == list(range(len(numbers))) and len(numbers) > 1500
