"""llms.api.responses*: the Responses API's request mapping and its events, as pure functions.

Every event and every Response is validated with openai-python's own pydantic types; streams are
checked for sequence numbers, balanced added/done events and item ids that stay the same from the
first event to the final output (docs: responses-and-messages.md §1.2 to §1.4, peers' bugs §3).
"""

from __future__ import annotations

import json
import typing
from pathlib import Path
from typing import Any

import orjson
import pydantic
import pytest
from openai.types.responses import Response, ResponseStreamEvent

from llms.adapters import openai as openai_adapter
from llms.adapters.base import StreamContext
from llms.api.responses import ResponseBuilder, ResponseEvent, encode_event, fold_response
from llms.api.responses_request import ResponsesCall, from_request
from llms.api.responses_usage import from_usage
from llms.chunks import (
    StreamMeta,
    delta_chunk,
    finish_chunk,
    make_usage,
    role_chunk,
    tool_call_delta,
    usage_chunk,
)
from llms.errors import (
    GatewayError,
    InvalidRequest,
    RateLimited,
    UpstreamDisconnected,
    UpstreamHTTPError,
)
from llms.framing import SSEEvent
from llms.wire import Chunk, Usage

TRANSCRIPTS = Path(__file__).parent / "transcripts"
EVENT = pydantic.TypeAdapter(ResponseStreamEvent)
# Each event type's own model (the union's errors list every member).
EVENT_MODELS: dict[str, type[pydantic.BaseModel]] = {
    model.model_fields["type"].annotation.__args__[0]: model
    for model in typing.get_args(typing.get_args(ResponseStreamEvent)[0])
}
META = StreamMeta(id="chatcmpl-x", created=1700000000, model="m")


# --- helpers --------------------------------------------------------------------------------------


def call(**body: Any) -> ResponsesCall:
    return from_request({"model": "m", "input": "hi", **body})


def text(value: str, **extra: Any) -> Chunk:
    return delta_chunk(META, {"content": value, **extra})  # type: ignore[typeddict-item]


def reasoning(value: str) -> Chunk:
    return delta_chunk(META, {"reasoning_content": value})


def calls(*deltas: Any) -> Chunk:
    return delta_chunk(META, {"tool_calls": list(deltas)})


def usage(prompt: int = 10, completion: int = 5, **details: Any) -> Chunk:
    value: Usage = make_usage(prompt, completion)
    if "cached" in details:
        value["prompt_tokens_details"] = {"cached_tokens": details["cached"]}
    if "reasoning" in details:
        value["completion_tokens_details"] = {"reasoning_tokens": details["reasoning"]}
    return usage_chunk(META, value)


def run(
    chunks: list[Chunk],
    *,
    body: dict[str, Any] | None = None,
    end: str = "finish",
    error: GatewayError | None = None,
    batch: int = 1,
    status: str = "in_progress",
    reasoning_mode: str = "text",
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Feed `chunks` (in batches of `batch`) through a builder; every event and the final
    Response validated. Returns (event payloads, response)."""
    builder = ResponseBuilder(
        "resp_1",
        "m",
        1700000000,
        call(**(body or {})),
        status=status,  # type: ignore[arg-type]
        reasoning=reasoning_mode,  # type: ignore[arg-type]
    )
    events = builder.start()
    for i in range(0, len(chunks), batch):
        events += builder.feed(chunks[i : i + batch])
    if end == "finish":
        events += builder.finish(completed_at=1700000009)
    elif end == "fail":
        assert error is not None
        events += builder.fail(error)
    elif end == "cancel":
        events += builder.cancel()
    payloads = check_events(events)
    response = builder.response
    Response.model_validate(response)
    assert builder.terminal
    assert builder.finish() == [] and builder.feed(chunks) == []  # nothing after the end
    return payloads, response


def check_events(events: list[ResponseEvent]) -> list[dict[str, Any]]:
    """Each event valid for openai-python, its SSE frame right, numbered 0, 1, 2…"""
    payloads = []
    for number, event in enumerate(events):
        assert event.sequence_number == number
        payload = orjson.loads(event.data)
        assert payload["type"] == event.type
        assert payload["sequence_number"] == number
        assert event.sse == b"event: " + event.type.encode() + b"\ndata: " + event.data + b"\n\n"
        EVENT_MODELS[event.type].model_validate(payload)
        EVENT.validate_python(payload)
        payloads.append(payload)
    return payloads


def types(payloads: list[dict[str, Any]]) -> list[str]:
    return [p["type"] for p in payloads]


def check_balance(payloads: list[dict[str, Any]], response: dict[str, Any]) -> None:
    """Each item: one added and one done, at its output index, with the id of the final output;
    each content part: one added and one done; deltas only inside an open part."""
    added = {p["output_index"]: p["item"] for p in payloads if p["type"].endswith("item.added")}
    done = {p["output_index"]: p["item"] for p in payloads if p["type"].endswith("item.done")}
    assert sum(p["type"].endswith("item.added") for p in payloads) == len(added)
    assert sum(p["type"].endswith("item.done") for p in payloads) == len(done)
    assert sorted(added) == sorted(done) == list(range(len(response["output"])))
    for index, item in enumerate(response["output"]):
        assert added[index]["id"] == done[index]["id"] == item["id"]
        assert done[index] == item
        if item["type"] in ("function_call", "custom_tool_call"):
            assert added[index]["call_id"] == item["call_id"]
    open_parts: set[tuple[int, int]] = set()
    for p in payloads:
        key = (p.get("output_index", -1), p.get("content_index", p.get("summary_index", -1)))
        if p["type"] in ("response.content_part.added", "response.reasoning_summary_part.added"):
            assert key not in open_parts
            open_parts.add(key)
        elif p["type"] in ("response.content_part.done", "response.reasoning_summary_part.done"):
            open_parts.remove(key)
        elif p["type"].endswith(".delta") and ("content_index" in p or "summary_index" in p):
            assert key in open_parts, p
    assert not open_parts


def transcript_chunks(name: str) -> list[Chunk]:
    """A recorded upstream stream through the OpenAI adapter: the chunks the gateway routes."""
    converter = openai_adapter.new_converter(StreamContext(META, include_usage=True))
    chunks: list[Chunk] = []
    for block in (TRANSCRIPTS / name).read_text().split("\n\n"):
        if block.startswith("data: "):
            chunks += converter.feed(SSEEvent("message", block[6:], ""))
    return chunks + converter.close()


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


@pytest.mark.parametrize("batch", [1, 3, 100])
@pytest.mark.parametrize(
    "name",
    [
        "openai_text.sse",
        "openai_tool_call.sse",
        "openai_parallel_tools.sse",
        "vllm_reasoning.sse",
        "deepseek_reasoning.sse",
        "usage_on_finish.sse",
        "llamacpp.sse",
    ],
)
def test_recorded_upstreams_become_valid_balanced_streams(name: str, batch: int) -> None:
    chunks = transcript_chunks(name)
    payloads, response = run(chunks, batch=batch)
    check_balance(payloads, response)
    assert response["status"] == "completed"
    assert response["usage"] is not None
    assert response["usage"]["output_tokens"] > 0
    # the non-stream fold is the same Response
    folded = fold_response("resp_1", "m", 1700000000, call(), chunks, completed_at=1700000009)
    Response.model_validate(folded)
    strip = [{k: v for k, v in item.items() if k != "id"} for item in response["output"]]
    assert [{k: v for k, v in item.items() if k != "id"} for item in folded["output"]] == strip


def test_the_parallel_tool_call_transcript_gives_two_function_calls() -> None:
    payloads, response = run(transcript_chunks("openai_parallel_tools.sse"))
    calls_ = response["output"]
    assert [item["type"] for item in calls_] == ["function_call", "function_call"]
    for item in calls_:
        assert item["id"].startswith("fc_") and item["call_id"].startswith("call_")
        assert json.loads(item["arguments"]) and item["status"] == "completed"
    assert calls_[0]["call_id"] != calls_[1]["call_id"]
    done = [p for p in payloads if p["type"] == "response.function_call_arguments.done"]
    assert [p["arguments"] for p in done] == [item["arguments"] for item in calls_]
    assert [p["name"] for p in done] == [item["name"] for item in calls_]
    for index, item in enumerate(calls_):
        deltas = [
            p["delta"]
            for p in payloads
            if p["type"] == "response.function_call_arguments.delta" and p["output_index"] == index
        ]
        assert "".join(deltas) == item["arguments"]


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


# --- custom and namespaced tools ------------------------------------------------------------------

CUSTOM = {
    "type": "custom",
    "name": "apply_patch",
    "description": "Edit files.",
    "format": {"type": "grammar", "syntax": "lark", "definition": "start: /.+/"},
}


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
