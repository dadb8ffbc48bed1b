"""Shared helpers and constants for the tests/test_api_responses_*.py files: the builder run
that validates every event and Response with openai-python's own types, the stream balance
check, recorded transcripts through their adapters, and the request items the tests reuse.
"""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Any

import orjson
import pydantic
import pytest
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
)
from llms.api.responses_request import ResponsesCall, from_request
from llms.chunks import (
    StreamMeta,
    delta_chunk,
    make_usage,
    usage_chunk,
)
from llms.errors import (
    GatewayError,
    InvalidRequest,
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


# --- custom and namespaced tools ------------------------------------------------------------------

CUSTOM = {
    "type": "custom",
    "name": "apply_patch",
    "description": "Edit files.",
    "format": {"type": "grammar", "syntax": "lark", "definition": "start: /.+/"},
}


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


def messages(**body: Any) -> list[dict[str, Any]]:
    return call(**body).chat["messages"]


def bad(param: str, code: str = "invalid_value", **body: Any) -> InvalidRequest:
    """`body` (over a valid minimal request) is a 400 naming `param` with `code`."""
    with pytest.raises(InvalidRequest) as caught:
        from_request({"model": "m", "input": "hi", **body})
    assert (caught.value.param, caught.value.code) == (param, code), caught.value.message
    assert caught.value.status == 400
    return caught.value
