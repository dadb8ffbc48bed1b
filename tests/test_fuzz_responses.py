"""Fuzz POST /v1/responses with hypothesis: never a 500, always OpenAI's error shape, and a 200
is an honest answer (no fake upstream fails). The gateway: tests/fuzz_support.py."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llms.api.responses_request import KNOWN_FIELDS
from tests.fuzz_support import (
    MODELS,
    SETTINGS,
    ThreadedGateway,
    check,
    dumps,
    gateway_fixture,  # noqa: F401 (the `gateway` fixture)
    json_values,
)

# --- POST /v1/responses -------------------------------------------------------------------------

RESPONSES = "/v1/responses"
RESPONSES_BASE: dict[str, Any] = {"model": "via-openai", "input": "hi"}
# Every field the gateway reads, and two it does not.
RESPONSES_FIELDS = sorted(KNOWN_FIELDS | {"messages", "unknown_field"})


def respond(gateway: ThreadedGateway, body: Any) -> tuple[int, dict[str, str], bytes]:
    return gateway.post(body if isinstance(body, bytes) else dumps(body), RESPONSES)


def check_response(answer: tuple[int, dict[str, str], bytes], *, valid: bool = False) -> None:
    """`check`, and a 200 is an honest answer: no fake upstream fails, so a Response that
    failed (or a stream's error event) is the gateway's own fault."""
    check(answer, valid=valid)
    status, headers, raw = answer
    if status != 200:
        return
    if headers["Content-Type"].startswith("text/event-stream"):
        assert b"event: response.failed" not in raw and b"event: error" not in raw, raw[-2000:]
        assert b"event: response.created" in raw, raw[:500]
    else:
        assert orjson.loads(raw)["status"] in ("completed", "incomplete", "queued"), raw[:2000]


@SETTINGS
@given(value=json_values)
def test_responses_any_json_body(gateway: ThreadedGateway, value: Any) -> None:
    check_response(respond(gateway, value))


@settings(SETTINGS, max_examples=50)
@given(data=st.binary(max_size=200))
def test_responses_any_bytes(gateway: ThreadedGateway, data: bytes) -> None:
    check_response(respond(gateway, data))


RESPONSES_PER_FIELD = settings(SETTINGS, max_examples=20)


@pytest.mark.parametrize("field", RESPONSES_FIELDS)
@RESPONSES_PER_FIELD
@given(model=st.sampled_from(MODELS), value=json_values, stream=st.booleans())
def test_responses_every_field_with_any_value(
    gateway: ThreadedGateway, field: str, model: str, value: Any, stream: bool
) -> None:
    body = {**RESPONSES_BASE, "model": model, "stream": stream, field: value}
    check_response(respond(gateway, body))


ITEMS: dict[str, list[dict[str, Any]]] = {
    "message": [{"type": "message", "role": "user", "content": "hi"}],
    "no type": [{"role": "developer", "content": [{"type": "input_text", "text": "hi"}]}],
    "function_call": [
        {"type": "function_call", "call_id": "call_1", "name": "f", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "call_1", "output": "ok"},
    ],
    "custom_tool_call": [
        {"type": "custom_tool_call", "call_id": "call_1", "name": "c", "input": "x"},
        {"type": "custom_tool_call_output", "call_id": "call_1", "output": "ok"},
    ],
    "reasoning": [
        {"type": "reasoning", "summary": [{"type": "summary_text", "text": "s"}]},
        {"type": "message", "role": "user", "content": "hi"},
    ],
    "item_reference": [{"type": "item_reference", "id": "msg_1"}],
    "web_search_call": [
        {"type": "web_search_call", "id": "ws_1", "status": "completed"},
        {"type": "message", "role": "user", "content": "hi"},
    ],
    "assistant": [
        {"type": "message", "role": "user", "content": "hi"},
        {"role": "assistant", "content": [{"type": "output_text", "text": "yo"}]},
        {"role": "user", "content": "again"},
    ],
}
ITEM_FIELDS = ("type", "role", "content", "id", "call_id", "name", "arguments", "input", "output",
               "summary", "encrypted_content", "status", "phase", "namespace")  # fmt: skip


@SETTINGS
@given(
    model=st.sampled_from(MODELS),
    shape=st.sampled_from(sorted(ITEMS)),
    which=st.integers(min_value=0, max_value=2),
    field=st.sampled_from(ITEM_FIELDS),
    value=json_values,
    stream=st.booleans(),
)
def test_responses_input_items_of_any_shape(
    gateway: ThreadedGateway,
    model: str,
    shape: str,
    which: int,
    field: str,
    value: Any,
    stream: bool,
) -> None:
    items = json.loads(json.dumps(ITEMS[shape]))
    items[which % len(items)][field] = value
    body = {**RESPONSES_BASE, "model": model, "input": items, "stream": stream}
    check_response(respond(gateway, body))


PART_KINDS = ("input_text", "output_text", "text", "refusal", "input_image", "input_file", "weird")
PART_FIELDS = ("text", "refusal", "image_url", "detail", "file_id", "file_data", "file_url",
               "filename", "annotations", "type")  # fmt: skip


@SETTINGS
@given(
    model=st.sampled_from(MODELS),
    kind=st.sampled_from(PART_KINDS),
    field=st.sampled_from(PART_FIELDS),
    value=json_values,
    where=st.sampled_from(("user", "assistant", "system", "developer", "tool output")),
)
def test_responses_content_parts_of_any_shape(
    gateway: ThreadedGateway, model: str, kind: str, field: str, value: Any, where: str
) -> None:
    part: dict[str, Any] = {"type": kind, "text": "t", "image_url": "data:image/png;base64,AA=="}
    part[field] = value
    if where == "tool output":
        items: list[Any] = [
            {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c", "output": [part]},
        ]
    else:
        items = [{"role": where, "content": [part]}]
    if where != "user":
        items.append({"role": "user", "content": "hi"})
    check_response(respond(gateway, {**RESPONSES_BASE, "model": model, "input": items}))


RESPONSES_SHAPES: list[tuple[str, Any]] = [
    ("tools", [{"type": "function", "name": "f", "parameters": {}, "strict": True}]),
    (
        "tools",
        [
            {
                "type": "custom",
                "name": "c",
                "format": {"type": "grammar", "syntax": "lark", "definition": "start: x"},
            }
        ],
    ),
    ("tools", [{"type": "namespace", "name": "ns", "tools": [{"type": "function", "name": "g"}]}]),
    ("tool_choice", {"type": "function", "name": "f"}),
    (
        "tool_choice",
        {"type": "allowed_tools", "mode": "auto", "tools": [{"type": "function", "name": "f"}]},
    ),
    ("text", {"format": {"type": "json_schema", "name": "n", "schema": {}}, "verbosity": "low"}),
    ("reasoning", {"effort": "low", "summary": "auto"}),
    ("stream_options", {"include_obfuscation": False}),
    ("metadata", {"k": "v"}),
]


@SETTINGS
@given(
    model=st.sampled_from(MODELS),
    choice=st.sampled_from(RESPONSES_SHAPES),
    path=st.lists(st.text(max_size=12), min_size=1, max_size=3),
    value=json_values,
    stream=st.booleans(),
)
def test_responses_tools_and_formats_with_any_value_inside(
    gateway: ThreadedGateway,
    model: str,
    choice: tuple[str, Any],
    path: list[str],
    value: Any,
    stream: bool,
) -> None:
    field, template = choice
    document = json.loads(json.dumps(template))
    node = document[0] if isinstance(document, list) else document
    for key in path[:-1]:  # walk into the template where it has objects, then plant the value
        child = node.get(key) if isinstance(node, dict) else None
        if isinstance(child, list) and child and isinstance(child[0], dict):
            child = child[0]
        if not isinstance(child, dict):
            break
        node = child
    node[path[-1]] = value
    tools = [{"type": "function", "name": "f"}]
    body = {**RESPONSES_BASE, "model": model, "tools": tools, "stream": stream, field: document}
    check_response(respond(gateway, body))


@settings(SETTINGS, max_examples=60)
@given(
    depth=st.integers(min_value=1, max_value=3000),
    opener=st.sampled_from((b"[", b'{"a":')),
    where=st.sampled_from(("body", "metadata", "input", "schema", "parameters", "output")),
)
def test_responses_deep_nesting(
    gateway: ThreadedGateway, depth: int, opener: bytes, where: str
) -> None:
    closer = b"]" if opener == b"[" else b"}"
    deep = opener * depth + b"1" + closer * depth
    heads = {
        "body": b"",
        "metadata": b'{"model":"via-gemini","input":"x","metadata":',
        "input": b'{"model":"via-anthropic","input":[{"role":"user","content":',
        "schema": b'{"model":"via-ollama","input":"x","text":{"format":{"type":"json_schema",'
        b'"name":"n","schema":{"a":',
        "parameters": b'{"model":"via-openai","input":"x","tools":[{"type":"function",'
        b'"name":"f","parameters":{"a":',
        "output": b'{"model":"via-openai","input":[{"type":"function_call","call_id":"c",'
        b'"name":"f","arguments":"{}"},{"type":"function_call_output","call_id":"c","output":',
    }
    tails = {"body": b"", "metadata": b"}", "input": b"}]}", "schema": b"}}}}",
             "parameters": b"}}]}", "output": b"}]}"}  # fmt: skip
    check_response(respond(gateway, heads[where] + deep + tails[where]))


@SETTINGS
@given(
    model=st.sampled_from(MODELS),
    field=st.sampled_from(
        (
            "temperature",
            "top_p",
            "max_output_tokens",
            "max_tool_calls",
            "top_logprobs",
            "presence_penalty",
            "frequency_penalty",
            "n",
        )
    ),
    number=st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats(allow_nan=False, allow_infinity=False),
    stream=st.booleans(),
)
def test_responses_huge_and_tiny_numbers(
    gateway: ThreadedGateway, model: str, field: str, number: Any, stream: bool
) -> None:
    body = {**RESPONSES_BASE, "model": model, field: number, "stream": stream}
    check_response(respond(gateway, body))


@settings(SETTINGS, max_examples=40)
@given(
    model=st.sampled_from(MODELS),
    stream=st.booleans(),
    store=st.booleans(),
    background=st.booleans(),
    temperature=st.none() | st.floats(min_value=0, max_value=1),
    max_output_tokens=st.none() | st.integers(min_value=1, max_value=4096),
    text=st.text(min_size=1, max_size=50),
)
def test_responses_valid_bodies_are_answered(
    gateway: ThreadedGateway,
    model: str,
    stream: bool,
    store: bool,
    background: bool,
    temperature: float | None,
    max_output_tokens: int | None,
    text: str,
) -> None:
    body = {
        "model": model,
        "instructions": "be brief",
        "input": [{"role": "user", "content": text}],
        "stream": stream,
        "store": store,
        "background": background,
        "temperature": temperature,
        "max_output_tokens": max_output_tokens,
    }
    answer = respond(gateway, body)
    check_response(answer, valid=True)
    raw = answer[2]
    assert (b"event: response.created" in raw) if stream else (b'"object":"response"' in raw)


def test_the_gateway_still_serves_after_the_responses_fuzzing(gateway: ThreadedGateway) -> None:
    """Last in the module: the gateway every test above hit still answers every model."""
    for model in MODELS:
        status, _, raw = respond(gateway, {**RESPONSES_BASE, "model": model})
        assert status == 200, raw
    assert gateway.call("GET", "/health")[0] == 200
