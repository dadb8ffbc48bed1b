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
from hypothesis import given, settings
from hypothesis import strategies as st
from openai._models import construct_type
from openai._types import omit
from openai.lib.streaming.responses import ResponseStreamState
from openai.types.responses import Response, ResponseItem, ResponseStreamEvent

from llms.adapters import anthropic as anthropic_adapter
from llms.adapters import gemini as gemini_adapter
from llms.adapters import ollama as ollama_adapter
from llms.adapters import openai as openai_adapter
from llms.adapters.base import StreamContext
from llms.api.responses import (
    ResponseBuilder,
    ResponseEvent,
    deleted,
    encode_event,
    fold_response,
    input_items_page,
    new_response_id,
    previous_response_not_found,
    response_not_found,
)
from llms.api.responses_object import from_usage
from llms.api.responses_request import ResponsesCall, from_request
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
    UpstreamMalformed,
)
from llms.framing import NDJSONDecoder, SSEDecoder
from llms.wire import Chunk, Usage

TRANSCRIPTS = Path(__file__).parent / "transcripts"
EVENT = pydantic.TypeAdapter(ResponseStreamEvent)
ITEM = pydantic.TypeAdapter(ResponseItem)
# Each event type's own model (the union's errors list every member).
EVENT_MODELS: dict[str, type[pydantic.BaseModel]] = {
    model.model_fields["type"].annotation.__args__[0]: model
    for model in typing.get_args(typing.get_args(ResponseStreamEvent)[0])
}
META = StreamMeta(id="chatcmpl-x", created=1700000000, model="m")


# --- helpers --------------------------------------------------------------------------------------


def call(**body: Any) -> ResponsesCall:
    """A valid request; its input items must be what GET …/input_items may list."""
    result = from_request({"model": "m", "input": "hi", **body})
    for item in result.input_items:
        ITEM.validate_python(item)
    return result


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
    final = sdk_stream(payloads, tools=(body or {}).get("tools"))
    if final is not None:  # what responses.stream() hands the user equals the Response
        assert unparsed(final.model_dump(exclude_unset=True)["output"]) == response["output"]
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


def sdk_stream(
    payloads: list[dict[str, Any]], *, tools: Any = None, text_format: Any = omit
) -> Any:
    """The events through openai-python's own `responses.stream()` accumulator (which checks
    item identities end to end); the final parsed Response when the stream completed."""
    state: Any = ResponseStreamState(input_tools=tools or omit, text_format=text_format)
    final = None
    for payload in payloads:
        event: Any = construct_type(type_=ResponseStreamEvent, value=payload)
        for handled in state.handle_event(event):
            if handled.type == "response.completed":
                final = handled.response
    return final


def unparsed(value: Any) -> Any:
    """`value` without the `parsed`/`parsed_arguments` keys the SDK's parsing adds."""
    if isinstance(value, dict):
        return {k: unparsed(v) for k, v in value.items() if k not in ("parsed", "parsed_arguments")}
    if isinstance(value, list):
        return [unparsed(item) for item in value]
    return value


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


ADAPTERS = {"anthropic": anthropic_adapter, "gemini": gemini_adapter, "ollama": ollama_adapter}


def transcript_chunks(name: str) -> tuple[list[Chunk], GatewayError | None]:
    """A recorded upstream stream through the real decoder and its adapter: the chunks the
    gateway routes, and the error the adapter raised, if any."""
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


TRANSCRIPT_NAMES = sorted(
    str(path.relative_to(TRANSCRIPTS))
    for path in TRANSCRIPTS.rglob("*")
    if path.suffix in (".sse", ".ndjson")
)


@pytest.mark.parametrize("batch", [1, 3, 100])
@pytest.mark.parametrize("name", TRANSCRIPT_NAMES)
def test_recorded_upstreams_become_valid_balanced_streams(name: str, batch: int) -> None:
    """Every recorded upstream (OpenAI-compatible, Anthropic, Gemini, Ollama) through its
    adapter: valid events, balanced items, ids stable; an adapter's error is response.failed."""
    chunks, error = transcript_chunks(name)
    if error is not None:
        payloads, response = run(chunks, batch=batch, end="fail", error=error)
        assert payloads[-1]["type"] == "response.failed" and response["error"]["message"]
        return
    payloads, response = run(chunks, batch=batch)
    check_balance(payloads, response)
    assert payloads[-1]["type"] in ("response.completed", "response.incomplete")
    assert response["usage"] is None or response["usage"]["total_tokens"] >= 0
    # the non-stream fold is the same Response
    folded = fold_response("resp_1", "m", 1700000000, call(), chunks, completed_at=1700000009)
    Response.model_validate(folded)
    strip = [{k: v for k, v in item.items() if k != "id"} for item in response["output"]]
    assert [{k: v for k, v in item.items() if k != "id"} for item in folded["output"]] == strip
    assert folded["status"] == response["status"]


def test_the_parallel_tool_call_transcript_gives_two_function_calls() -> None:
    payloads, response = run(transcript_chunks("openai_parallel_tools.sse")[0])
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


# --- requests: the chat request -------------------------------------------------------------------


def messages(**body: Any) -> list[dict[str, Any]]:
    return call(**body).chat["messages"]


def bad(param: str, code: str = "invalid_value", **body: Any) -> InvalidRequest:
    """`body` (over a valid minimal request) is a 400 naming `param` with `code`."""
    with pytest.raises(InvalidRequest) as caught:
        from_request({"model": "m", "input": "hi", **body})
    assert (caught.value.param, caught.value.code) == (param, code), caught.value.message
    assert caught.value.status == 400
    return caught.value


def test_a_string_input_is_one_user_message_after_the_instructions() -> None:
    result = call(instructions="Be brief.")
    assert result.chat == {
        "model": "m",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "hi"},
        ],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    assert (result.stream, result.background, result.store) == (False, False, True)
    assert result.previous_response_id is None and result.ignored == ()
    (item,) = result.input_items
    assert item["id"].startswith("msg_")
    assert {k: v for k, v in item.items() if k != "id"} == {
        "type": "message",
        "role": "user",
        "content": [{"type": "input_text", "text": "hi"}],
        "status": "completed",
    }


def test_roles_and_easy_messages() -> None:
    got = messages(
        input=[
            {"role": "developer", "content": "Rules."},
            {"role": "system", "content": [{"type": "input_text", "text": "More rules."}]},
            {"type": "message", "role": "user", "content": "Q"},
            {
                "type": "message",
                "role": "assistant",
                "phase": "commentary",
                "content": [
                    {"type": "output_text", "text": "A1", "annotations": []},
                    {"type": "refusal", "refusal": "no"},
                ],
            },
            {"role": "assistant", "content": "A2"},
        ]
    )
    assert got == [
        {"role": "system", "content": "Rules."},
        {"role": "system", "content": "More rules."},
        {"role": "user", "content": "Q"},
        {"role": "assistant", "content": "A1\nno"},
        {"role": "assistant", "content": "A2"},
    ]


def test_images_and_files_become_chat_parts() -> None:
    content = [
        {"type": "input_text", "text": "What is this?"},
        {"type": "input_image", "image_url": "https://x.test/a.png", "detail": "high"},
        {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo="},
        {
            "type": "input_file",
            "file_data": "data:application/pdf;base64,JVBE",
            "filename": "a.pdf",
        },
    ]
    result = call(input=[{"role": "user", "content": content}])
    assert result.chat["messages"][0]["content"] == [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "https://x.test/a.png", "detail": "high"}},
        {
            "type": "image_url",
            "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "auto"},
        },
        {
            "type": "file",
            "file": {"file_data": "data:application/pdf;base64,JVBE", "filename": "a.pdf"},
        },
    ]
    assert result.input_items[0]["content"][2]["detail"] == "auto"


USER = {"role": "user", "content": "Weather in Paris and Rome?"}
RS = {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "SECRET"}]}
FC1 = {
    "type": "function_call",
    "id": "fc_1",
    "call_id": "call_1",
    "name": "weather",
    "arguments": '{"city":"Paris"}',
}
FC2 = {**FC1, "id": "fc_2", "call_id": "call_2", "arguments": '{"city":"Rome"}'}
OUT1 = {"type": "function_call_output", "call_id": "call_1", "output": "18C"}
OUT2 = {"type": "function_call_output", "call_id": "call_2", "output": "21C"}


def test_calls_join_the_assistant_text_before_them_keyed_by_call_id() -> None:
    # peers' bug #1: an assistant message with text + function_call items
    text_item = {"role": "assistant", "content": "Checking both."}
    got = messages(input=[USER, RS, text_item, FC1, FC2, OUT1, OUT2])
    assert got == [
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {
            "role": "assistant",
            "content": "Checking both.",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "weather", "arguments": '{"city":"Paris"}'},
                },
                {
                    "id": "call_2",
                    "type": "function",
                    "function": {"name": "weather", "arguments": '{"city":"Rome"}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
        {"role": "tool", "tool_call_id": "call_2", "content": "21C"},
    ]


def test_text_between_calls_and_their_outputs_joins_the_calls_message() -> None:
    got = messages(input=[USER, FC1, {"role": "assistant", "content": "Waiting."}, OUT1])
    assert [m["role"] for m in got] == ["user", "assistant", "tool"]
    assert got[1]["content"] == "Waiting." and got[1]["tool_calls"][0]["id"] == "call_1"


def test_many_turns_keep_every_call_and_never_send_reasoning_as_text() -> None:
    # peers' bug #2: replay of function_call/reasoning items over several turns
    turn2 = {"role": "user", "content": "And Oslo?"}
    fc3 = {**FC1, "id": "fc_3", "call_id": "call_3", "arguments": '{"city":"Oslo"}'}
    out3 = {**OUT1, "call_id": "call_3", "output": "2C"}
    answer = {"role": "assistant", "content": "Paris 18C."}
    items = [USER, RS, FC1, OUT1, answer, turn2, RS | {"id": "rs_2"}, fc3, out3]
    got = messages(input=items)
    assert [m["role"] for m in got] == [
        "user",
        "assistant",
        "tool",
        "assistant",
        "user",
        "assistant",
        "tool",
    ]
    assert got[1] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "weather", "arguments": '{"city":"Paris"}'},
            }
        ],
    }
    assert got[5]["tool_calls"][0]["id"] == "call_3" and got[6]["tool_call_id"] == "call_3"
    assert "SECRET" not in json.dumps(got)
    # the items keep the reasoning and the given ids
    ids = [item["id"] for item in call(input=items).input_items]
    assert ids[1] == "rs_1" and ids[2] == "fc_1" and ids[7] == "fc_3"


def test_a_list_output_is_flattened_to_text_and_its_image_follows_the_tools() -> None:
    # peers' bug #3: function_call_output.output as a list of parts
    out = {
        **OUT1,
        "output": [
            {"type": "input_text", "text": "line 1"},
            {"type": "input_image", "image_url": "data:image/png;base64,AA=="},
            {"type": "input_text", "text": "line 2"},
        ],
    }
    got = messages(input=[USER, FC1, FC2, out, OUT2, {"role": "user", "content": "next"}])
    assert got[2] == {"role": "tool", "tool_call_id": "call_1", "content": "line 1\nline 2"}
    assert got[3] == {"role": "tool", "tool_call_id": "call_2", "content": "21C"}
    assert got[4] == {
        "role": "user",
        "content": [
            {
                "type": "image_url",
                "image_url": {"url": "data:image/png;base64,AA==", "detail": "auto"},
            }
        ],
    }
    assert got[5] == {"role": "user", "content": "next"}


def test_custom_tool_items_are_replayed_like_function_calls() -> None:
    ctc = {
        "type": "custom_tool_call",
        "call_id": "call_p",
        "name": "apply_patch",
        "input": "*** Begin",
    }
    cto = {"type": "custom_tool_call_output", "call_id": "call_p", "output": "Done"}
    result = call(input=[USER, ctc, cto], tools=[CUSTOM])
    got = result.chat["messages"]
    assert got[1]["tool_calls"][0]["function"] == {
        "name": "apply_patch",
        "arguments": '{"input":"*** Begin"}',
    }
    assert got[2] == {"role": "tool", "tool_call_id": "call_p", "content": "Done"}
    assert result.input_items[1]["id"].startswith("ctc_")


def test_every_meaningful_field_reaches_the_chat_request() -> None:
    # peers' bugs #4 and #6: nothing that changes the answer is dropped
    schema = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}
    result = call(
        tools=[
            {
                "type": "function",
                "name": "f",
                "description": "F.",
                "parameters": {"type": "object", "properties": {}},
                "strict": True,
            }
        ],
        tool_choice="required",
        parallel_tool_calls=False,
        max_output_tokens=100,
        temperature=0.5,
        top_p=0.8,
        top_logprobs=2,
        reasoning={"effort": "high", "summary": "detailed"},
        text={"format": {"type": "json_schema", "name": "out", "schema": schema, "strict": True}},
        prompt_cache_key="sess",
        user="u",
        safety_identifier="sid",
        truncation="auto",
        include=["reasoning.encrypted_content"],
        service_tier="flex",
        max_tool_calls=3,
        metadata={"a": "b"},
        stream=True,
        stream_options={"include_obfuscation": False},
        store=False,
        background=True,
    )
    chat = result.chat
    assert chat["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "f",
                "description": "F.",
                "parameters": {"type": "object", "properties": {}},
                "strict": True,
            },
        }
    ]
    assert chat["tool_choice"] == "required" and chat["parallel_tool_calls"] is False
    assert chat["max_tokens"] == 100 and chat["temperature"] == 0.5 and chat["top_p"] == 0.8
    assert chat["logprobs"] is True and chat["top_logprobs"] == 2
    assert chat["reasoning_effort"] == "high"
    assert chat["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "out", "schema": schema, "strict": True},
    }
    assert chat["prompt_cache_key"] == "sess" and chat["user"] == "u"
    assert chat["safety_identifier"] == "sid"
    # hints: echoed, not forwarded
    for hint in ("include", "service_tier", "max_tool_calls", "metadata", "truncation", "store"):
        assert hint not in chat
    settings = result.settings
    assert settings["service_tier"] == "flex" and settings["max_tool_calls"] == 3
    assert settings["text"]["format"]["name"] == "out"
    assert (result.stream, result.store, result.background) == (True, False, True)


def test_named_and_allowed_tool_choices() -> None:
    tools = [{"type": "function", "name": "f"}, {"type": "function", "name": "g"}]
    named = call(tools=tools, tool_choice={"type": "function", "name": "g"}).chat
    assert named["tool_choice"] == {"type": "function", "function": {"name": "g"}}
    allowed = call(
        tools=tools,
        tool_choice={
            "type": "allowed_tools",
            "mode": "auto",
            "tools": [{"type": "function", "name": "f"}],
        },
    ).chat
    assert allowed["tool_choice"] == {
        "type": "allowed_tools",
        "allowed_tools": {
            "mode": "auto",
            "tools": [{"type": "function", "function": {"name": "f"}}],
        },
    }


def test_without_tools_auto_choices_are_not_forwarded() -> None:
    chat = call(tool_choice="auto", parallel_tool_calls=True, tools=[]).chat
    assert "tool_choice" not in chat and "parallel_tool_calls" not in chat and "tools" not in chat


def test_json_object_format() -> None:
    assert call(text={"format": {"type": "json_object"}}).chat["response_format"] == {
        "type": "json_object"
    }
    assert "response_format" not in call(text={"format": {"type": "text"}}).chat


def test_unknown_fields_are_listed_not_forwarded() -> None:
    result = call(some_new_hint=1)
    assert result.ignored == ("some_new_hint",) and "some_new_hint" not in result.chat


# --- requests: previous_response_id history -------------------------------------------------------


def test_history_comes_first_and_only_this_requests_instructions_apply() -> None:
    history = [
        {
            "type": "message",
            "id": "msg_u",
            "role": "user",
            "content": [{"type": "input_text", "text": "Q1"}],
        },
        RS,
        FC1,
    ]
    result = from_request(
        {
            "model": "m",
            "input": [OUT1],
            "instructions": "New rules.",
            "previous_response_id": "resp_0",
        },
        history,
    )
    assert result.chat["messages"] == [
        {"role": "system", "content": "New rules."},
        {"role": "user", "content": "Q1"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "weather", "arguments": '{"city":"Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
    ]
    assert result.previous_response_id == "resp_0"
    # only this request's input is its input items
    assert [item["type"] for item in result.input_items] == ["function_call_output"]


def test_a_conversation_round_trip_through_the_builder() -> None:
    first = call(input="Weather?", tools=[{"type": "function", "name": "weather"}])
    response = fold_response(
        "resp_1",
        "m",
        1,
        first,
        [
            reasoning("hmm"),
            calls(tool_call_delta(0, id="call_9", name="weather", arguments="{}")),
            finish_chunk(META, "tool_calls"),
        ],
    )
    history = first.input_items + response["output"]
    follow = {"type": "function_call_output", "call_id": "call_9", "output": "sunny"}
    second = from_request(
        {"model": "m", "input": [follow], "previous_response_id": "resp_1"}, history
    )
    got = second.chat["messages"]
    assert [m["role"] for m in got] == ["user", "assistant", "tool"]
    assert got[1]["tool_calls"][0]["id"] == "call_9" and got[2]["tool_call_id"] == "call_9"


def test_every_output_item_kind_replays_as_history() -> None:
    first = call(input="Go", tools=[CUSTOM])
    builder = ResponseBuilder("resp_1", "m", 1, first, reasoning="summary")
    builder.start()
    builder.feed(
        [
            reasoning("plan"),
            delta_chunk(META, {"refusal": "not that"}),
            text("but this"),
            calls(tool_call_delta(0, id="call_p", name="apply_patch", arguments='{"input":"P"}')),
            finish_chunk(META, "tool_calls"),
        ]
    )
    builder.finish()
    output = builder.response["output"]
    assert [item["type"] for item in output] == ["reasoning", "message", "custom_tool_call"]
    answer = {"type": "custom_tool_call_output", "call_id": "call_p", "output": "ok"}
    second = from_request(
        {"model": "m", "input": [answer], "tools": [CUSTOM]}, first.input_items + output
    )
    assert second.chat["messages"] == [
        {"role": "user", "content": "Go"},
        {
            "role": "assistant",
            "content": "not that\nbut this",
            "tool_calls": [
                {
                    "id": "call_p",
                    "type": "function",
                    "function": {"name": "apply_patch", "arguments": '{"input":"P"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_p", "content": "ok"},
    ]


def test_an_item_reference_resolves_from_history() -> None:
    history = [{"type": "message", "id": "msg_a", "role": "user", "content": "Earlier"}]
    result = from_request(
        {
            "model": "m",
            "input": [
                {"type": "item_reference", "id": "msg_a"},
                {"role": "user", "content": "Now"},
            ],
        },
        history,
    )
    assert result.chat["messages"][-2:] == [
        {"role": "user", "content": "Earlier"},
        {"role": "user", "content": "Now"},
    ]
    assert result.input_items[0]["id"] == "msg_a"
    bad("input[0].id", input=[{"type": "item_reference", "id": "msg_zz"}])


# --- requests: 400s naming the Responses field ----------------------------------------------------


def test_pairing_errors_name_the_item() -> None:
    error = bad("input[1].call_id", input=[USER, OUT1])
    assert "call_1" in error.message
    error = bad("input[1]", input=[USER, FC1, FC2, OUT2])
    assert "call_1" in error.message


@pytest.mark.parametrize(
    ("param", "code", "body"),
    [
        ("model", "missing_required_parameter", {"model": None}),
        ("model", "invalid_type", {"model": 3}),
        ("input", "missing_required_parameter", {"input": None}),
        ("input", "invalid_type", {"input": {"role": "user"}}),
        ("input", "empty_array", {"input": []}),
        ("input[0]", "invalid_type", {"input": ["hi"]}),
        ("input[0].role", "invalid_value", {"input": [{"role": "tool", "content": "x"}]}),
        (
            "input[0].role",
            "missing_required_parameter",
            {"input": [{"type": "message", "content": "x"}]},
        ),
        ("input[0].content", "missing_required_parameter", {"input": [{"role": "user"}]}),
        ("input[0].type", "invalid_value", {"input": [{"type": "telepathy"}]}),
        (
            "input[0].content[0].type",
            "invalid_value",
            {"input": [{"role": "user", "content": [{"type": "video"}]}]},
        ),
        (
            "input[0].content[0].type",
            "invalid_value",
            {
                "input": [
                    {
                        "role": "system",
                        "content": [{"type": "input_image", "image_url": "https://x"}],
                    }
                ]
            },
        ),
        (
            "input[0].content[0].text",
            "invalid_type",
            {"input": [{"role": "user", "content": [{"type": "input_text", "text": 5}]}]},
        ),
        (
            "input[2].content[0].image_url",
            "missing_required_parameter",
            {"input": [USER, USER, {"role": "user", "content": [{"type": "input_image"}]}]},
        ),
        (
            "input[0].content[0].file_id",
            "invalid_value",
            {
                "input": [
                    {"role": "user", "content": [{"type": "input_image", "file_id": "file_1"}]}
                ]
            },
        ),
        (
            "input[0].content[0].file_id",
            "invalid_value",
            {"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "file_1"}]}]},
        ),
        (
            "input[0].content[0].detail",
            "invalid_value",
            {
                "input": [
                    {
                        "role": "user",
                        "content": [{"type": "input_image", "image_url": "https://x", "detail": 1}],
                    }
                ]
            },
        ),
        (
            "input[0].content[0].file_url",
            "invalid_value",
            {
                "input": [
                    {
                        "role": "user",
                        "content": [{"type": "input_file", "file_url": "https://x/a.pdf"}],
                    }
                ]
            },
        ),
        (
            "input[0].call_id",
            "missing_required_parameter",
            {"input": [{"type": "function_call", "name": "f", "arguments": "{}"}]},
        ),
        (
            "input[0].arguments",
            "invalid_type",
            {"input": [{"type": "function_call", "call_id": "c", "name": "f", "arguments": {}}]},
        ),
        ("input[1].output", "invalid_type", {"input": [FC1, {**OUT1, "output": 5}]}),
        (
            "input[1].output[0].type",
            "invalid_value",
            {"input": [FC1, {**OUT1, "output": [{"type": "audio"}]}]},
        ),
        ("instructions", "invalid_type", {"instructions": ["x"]}),
        ("tools", "invalid_type", {"tools": {"type": "function"}}),
        (
            "tools[1].type",
            "unsupported_value",
            {"tools": [{"type": "function", "name": "f"}, {"type": "web_search"}]},
        ),
        (
            "tools[0].type",
            "unsupported_value",
            {"tools": [{"type": "code_interpreter", "container": {"type": "auto"}}]},
        ),
        ("tools[0].type", "unsupported_value", {"tools": [{"type": "local_shell"}]}),
        ("tools[0].name", "missing_required_parameter", {"tools": [{"type": "function"}]}),
        (
            "tools[0].parameters",
            "invalid_type",
            {"tools": [{"type": "function", "name": "f", "parameters": "x"}]},
        ),
        (
            "tool_choice.type",
            "unsupported_value",
            {
                "tools": [{"type": "function", "name": "f"}],
                "tool_choice": {"type": "web_search_preview"},
            },
        ),
        (
            "tool_choice.mode",
            "invalid_value",
            {
                "tools": [{"type": "function", "name": "f"}],
                "tool_choice": {"type": "allowed_tools", "mode": "all", "tools": []},
            },
        ),
        (
            "tool_choice.mode",
            "missing_required_parameter",
            {
                "tools": [{"type": "function", "name": "f"}],
                "tool_choice": {"type": "allowed_tools", "tools": []},
            },
        ),
        (
            "tool_choice.tools[0].type",
            "unsupported_value",
            {
                "tools": [{"type": "function", "name": "f"}],
                "tool_choice": {
                    "type": "allowed_tools",
                    "mode": "auto",
                    "tools": [{"type": "mcp"}],
                },
            },
        ),
        (
            "tools[0].tools[0].type",
            "unsupported_value",
            {"tools": [{"type": "namespace", "name": "n", "tools": [{"type": "web_search"}]}]},
        ),
        (
            "tools[0].format.type",
            "invalid_value",
            {"tools": [{"type": "custom", "name": "c", "format": {"type": "regexish"}}]},
        ),
        ("tool_choice", "invalid_value", {"tool_choice": "sometimes"}),
        ("tool_choice", "invalid_value", {"tool_choice": "required"}),
        ("parallel_tool_calls", "invalid_type", {"parallel_tool_calls": "yes"}),
        ("max_output_tokens", "invalid_value", {"max_output_tokens": 0}),
        ("max_output_tokens", "invalid_type", {"max_output_tokens": 1.5}),
        ("temperature", "invalid_value", {"temperature": 3}),
        ("top_p", "invalid_type", {"top_p": "1"}),
        ("top_logprobs", "invalid_value", {"top_logprobs": 21}),
        ("text", "invalid_type", {"text": "json"}),
        ("text.format.type", "invalid_value", {"text": {"format": {"type": "yaml"}}}),
        (
            "text.format.schema",
            "missing_required_parameter",
            {"text": {"format": {"type": "json_schema", "name": "x"}}},
        ),
        (
            "text.format.name",
            "missing_required_parameter",
            {"text": {"format": {"type": "json_schema", "schema": {}}}},
        ),
        ("text.verbosity", "invalid_value", {"text": {"verbosity": "loud"}}),
        ("reasoning.effort", "invalid_value", {"reasoning": {"effort": "huge"}}),
        ("reasoning.effort", "invalid_type", {"reasoning": {"effort": ["low"]}}),
        ("reasoning.summary", "invalid_value", {"reasoning": {"summary": "long"}}),
        ("include", "invalid_type", {"include": "reasoning.encrypted_content"}),
        ("include[0]", "invalid_type", {"include": [1]}),
        ("metadata.k", "invalid_type", {"metadata": {"k": 1}}),
        ("metadata", "invalid_value", {"metadata": {str(i): "v" for i in range(17)}}),
        ("truncation", "invalid_value", {"truncation": "middle"}),
        ("truncation", "invalid_type", {"truncation": ["auto"]}),
        ("store", "invalid_type", {"store": "no"}),
        ("stream", "invalid_type", {"stream": 1}),
        ("background", "invalid_type", {"background": "yes"}),
        ("previous_response_id", "invalid_type", {"previous_response_id": 5}),
        (
            "stream_options.include_obfuscation",
            "invalid_type",
            {"stream_options": {"include_obfuscation": "no"}},
        ),
        ("conversation", "unsupported_parameter", {"conversation": "conv_1"}),
        ("prompt", "unsupported_parameter", {"prompt": {"id": "pmpt_1"}}),
        ("n", "invalid_value", {"n": 2}),
        ("user", "invalid_type", {"user": 5}),
        ("service_tier", "invalid_type", {"service_tier": 5}),
    ],
)
def test_invalid_requests_name_the_responses_field(
    param: str, code: str, body: dict[str, Any]
) -> None:
    bad(param, code, **body)


def test_only_reasoning_in_the_input_is_a_400() -> None:
    bad("input", "empty_array", input=[RS])


def test_an_adapters_400_about_the_chat_request_names_the_responses_field() -> None:
    history = [{"type": "message", "id": "msg_h", "role": "user", "content": "Earlier"}]
    ns = {
        "type": "namespace",
        "name": "crm",
        "description": "CRM",
        "tools": [{"type": "function", "name": "a"}, {"type": "function", "name": "b"}],
    }
    result = from_request(
        {
            "model": "m",
            "instructions": "Rules.",
            "input": [RS, {"role": "user", "content": "Now"}, FC1, OUT1],
            "tools": [{"type": "function", "name": "f"}, ns],
        },
        history,
    )
    # messages: instructions, history[0], input[1], input[2] (the call), input[3] (its output)
    assert result.message_origins == (
        "instructions",
        "history[0]",
        "input[1]",
        "input[2]",
        "input[3]",
    )
    to = result.responses_param
    assert to("messages[0].content") == "instructions"
    assert to("messages[1].content") == "previous_response_id"
    assert to("messages[2].content[0].image_url") == "input[1]"
    assert to("messages[3].tool_calls[0].function.arguments") == "input[2]"
    assert to("messages[9]") == "input" and to("messages") == "input"
    assert to("tools[0].function.parameters") == "tools[0].parameters"
    assert to("tools[2].function.name") == "tools[1].tools[1].name"
    assert to("tools[2]") == "tools[1].tools[1]"
    assert to("response_format") == "text.format"
    assert to("response_format.json_schema") == "text.format"
    assert to("max_tokens") == "max_output_tokens"
    assert to("max_completion_tokens") == "max_output_tokens"
    assert to("reasoning_effort") == "reasoning.effort"
    assert to("parallel_tool_calls") == "parallel_tool_calls"
    assert to("temperature") == "temperature"
    assert to(None) is None


class Weather(pydantic.BaseModel):
    city: str
    celsius: int


def test_structured_output_parses_in_the_sdk_like_responses_parse() -> None:
    schema = Weather.model_json_schema() | {"additionalProperties": False}
    body = {"text": {"format": {"type": "json_schema", "name": "Weather", "schema": schema}}}
    assert call(**body).chat["response_format"]["json_schema"]["name"] == "Weather"
    chunks = [text('{"city": "Par'), text('is", "celsius": 18}'), finish_chunk(META, "stop")]
    payloads, response = run(chunks, body=body)
    final = sdk_stream(payloads, text_format=Weather)
    assert final.output_parsed == Weather(city="Paris", celsius=18)
    assert response["text"]["format"]["type"] == "json_schema"


# --- the API's other bodies ---------------------------------------------------------------------


def test_input_items_pages_newest_first_by_default() -> None:
    items = call(input=[{"role": "user", "content": str(i)} for i in range(5)]).input_items
    ids = [item["id"] for item in items]
    page = input_items_page(items, limit="2")
    assert [item["id"] for item in page["data"]] == [ids[4], ids[3]]
    assert (page["object"], page["first_id"], page["last_id"], page["has_more"]) == (
        "list",
        ids[4],
        ids[3],
        True,
    )
    rest = input_items_page(items, after=ids[3], limit=10)
    assert [item["id"] for item in rest["data"]] == [ids[2], ids[1], ids[0]]
    assert rest["has_more"] is False
    ascending = input_items_page(items, order="asc")
    assert [item["id"] for item in ascending["data"]] == ids
    empty = input_items_page([], limit=5)
    assert empty["data"] == [] and empty["first_id"] is None and empty["has_more"] is False
    for query, param in (
        ({"limit": "0"}, "limit"),
        ({"limit": "101"}, "limit"),
        ({"limit": "x"}, "limit"),
        ({"order": "up"}, "order"),
        ({"after": "msg_nope"}, "after"),
    ):
        with pytest.raises(InvalidRequest) as caught:
            input_items_page(items, **query)
        assert caught.value.param == param


def test_ids_and_the_errors_the_api_names() -> None:
    assert new_response_id().startswith("resp_") and new_response_id() != new_response_id()
    assert deleted("resp_1") == {"id": "resp_1", "object": "response.deleted", "deleted": True}
    missing = response_not_found("resp_x")
    assert missing.status == 404 and missing.message == "Response with id 'resp_x' not found."
    previous = previous_response_not_found("resp_y")
    assert previous.to_body()["error"] == {
        "message": "Previous response with id 'resp_y' not found.",
        "type": "invalid_request_error",
        "param": "previous_response_id",
        "code": "previous_response_not_found",
    }


# --- fuzz: any body is a translation or a 400, never another exception --------------------------

ODD = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.floats(allow_nan=False),
    st.text(max_size=3),
    st.just([]),
    st.just({}),
    st.just([[]]),
    st.just({"type": []}),
)
VALID_BODY: dict[str, Any] = {
    "model": "m",
    "instructions": "I",
    "input": [
        {
            "role": "user",
            "content": [
                {"type": "input_text", "text": "q"},
                {"type": "input_image", "image_url": "https://x"},
            ],
        },
        RS,
        {"role": "assistant", "content": "a"},
        FC1,
        OUT1 | {"output": [{"type": "input_text", "text": "o"}]},
        {"type": "item_reference", "id": "msg_h"},
    ],
    "tools": [
        {"type": "function", "name": "weather", "parameters": {"type": "object"}, "strict": False},
        CUSTOM,
        {
            "type": "namespace",
            "name": "n",
            "description": "d",
            "tools": [{"type": "function", "name": "g"}],
        },
    ],
    "tool_choice": {
        "type": "allowed_tools",
        "mode": "auto",
        "tools": [{"type": "function", "name": "weather"}],
    },
    "text": {"format": {"type": "json_schema", "name": "s", "schema": {}}, "verbosity": "low"},
    "reasoning": {"effort": "low", "summary": "auto"},
    "metadata": {"k": "v"},
    "temperature": 1,
    "include": ["reasoning.encrypted_content"],
    "stream_options": {"include_obfuscation": True},
}


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path into a JSON value."""
    out = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            out += paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            out += paths(item, (*prefix, index))
    return out


BODY_PATHS = paths(VALID_BODY)[1:]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(BODY_PATHS), ODD), min_size=1, max_size=3))
def test_any_mutated_body_is_translated_or_a_400(
    changes: list[tuple[tuple[Any, ...], Any]],
) -> None:
    body = json.loads(json.dumps(VALID_BODY))
    history = [{"type": "message", "id": "msg_h", "role": "user", "content": "h"}]
    for path, value in changes:
        target = body
        try:
            for key in path[:-1]:
                target = target[key]
            target[path[-1]] = json.loads(json.dumps(value))  # a fresh copy: no cycles
        except (KeyError, IndexError, TypeError):
            continue  # an earlier change removed this path
    refused: InvalidRequest | None = None
    try:
        result = from_request(body, history)
    except InvalidRequest as error:
        refused = error
    if refused is not None:
        assert refused.param, refused.message  # a 400 always names the field
        return
    orjson.dumps(result.chat)
    for item in result.input_items:
        ITEM.validate_python(item)


STEPS = st.one_of(
    st.tuples(st.just("text"), st.sampled_from(["a", " ", "\n\n", "bc"])),
    st.tuples(st.just("reasoning"), st.sampled_from(["r", " ", "s t"])),
    st.tuples(st.just("refusal"), st.sampled_from(["no", " "])),
    st.tuples(st.just("call"), st.integers(0, 2)),
    st.tuples(st.just("args"), st.integers(0, 2)),
    st.tuples(st.just("usage"), st.integers(0, 9)),
)


def to_chunks(steps: list[tuple[str, Any]]) -> list[Chunk]:
    out: list[Chunk] = []
    for kind, value in steps:
        if kind == "text":
            out.append(text(value))
        elif kind == "reasoning":
            out.append(reasoning(value))
        elif kind == "refusal":
            out.append(delta_chunk(META, {"refusal": value}))
        elif kind == "call":
            out.append(calls(tool_call_delta(value, id=f"call_{value}", name="f", arguments="{")))
        elif kind == "args":
            out.append(calls(tool_call_delta(value, arguments='"x"}')))
        else:
            out.append(usage(value, value))
    return out


@settings(max_examples=120, deadline=None)
@given(
    st.lists(STEPS, max_size=12),
    st.sampled_from(["stop", "length", "tool_calls", "content_filter"]),
    st.sampled_from(["text", "summary"]),
    st.integers(1, 4),
)
def test_any_chunk_sequence_is_a_valid_balanced_stream(
    steps: list[tuple[str, Any]], finish: str, mode: str, batch: int
) -> None:
    chunks = [*to_chunks(steps), finish_chunk(META, finish)]  # type: ignore[arg-type]
    payloads, response = run(chunks, batch=batch, reasoning_mode=mode)
    if payloads[-1]["type"] == "response.failed":  # a call continued after other output
        assert response["error"]["code"] == "server_error"
        return
    check_balance(payloads, response)
    assert payloads[-1]["type"] == (
        "response.incomplete" if finish in ("length", "content_filter") else "response.completed"
    )
    for item in response["output"]:  # never an item of whitespace alone
        if item["type"] == "message":
            assert any((p.get("text") or p.get("refusal") or "").strip() for p in item["content"])


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
