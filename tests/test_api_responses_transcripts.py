"""llms.api.responses: recorded upstream transcripts through their adapters into valid balanced
event streams, and fuzz: any request body is a translation or a 400, any chunk sequence a valid
stream (docs: responses-and-messages.md §1.2 to §1.4).
"""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openai.types.responses import Response

from llms.api.responses import (
    fold_response,
)
from llms.api.responses_request import from_request
from llms.chunks import (
    delta_chunk,
    finish_chunk,
    tool_call_delta,
)
from llms.errors import (
    InvalidRequest,
)
from llms.wire import Chunk
from tests.responses_support import (
    CUSTOM,
    FC1,
    ITEM,
    META,
    OUT1,
    RS,
    TRANSCRIPTS,
    call,
    calls,
    check_balance,
    reasoning,
    run,
    text,
    transcript_chunks,
    usage,
)

# --- recorded upstreams ---------------------------------------------------------------------------

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
