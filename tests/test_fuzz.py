"""Fuzz POST /v1/chat/completions with hypothesis: never a 500, always OpenAI's error shape.

The gateway (tests/fuzz_support.py) runs on its own event loop in a thread, in front of four
fake providers, one per protocol, so every adapter meets every body that the validation lets
through. Valid bodies get a 200. POST /v1/responses: test_fuzz_responses; the stored responses'
routes, and that the gateway still serves afterwards: test_fuzz_responses_routes.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fuzz_support import (
    MODELS,
    SETTINGS,
    ThreadedGateway,
    check,
    dumps,
    gateway_fixture,  # noqa: F401 (the `gateway` fixture)
    json_values,
)

BASE: dict[str, Any] = {"model": "via-openai", "messages": [{"role": "user", "content": "hi"}]}
TOP_FIELDS = [
    "model",
    "messages",
    "stream",
    "stream_options",
    "temperature",
    "top_p",
    "n",
    "max_tokens",
    "max_completion_tokens",
    "stop",
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
    "logprobs",
    "top_logprobs",
    "top_k",
    "seed",
    "user",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "response_format",
    "reasoning_effort",
    "metadata",
    "modalities",
    "audio",
    "functions",
    "function_call",
    "service_tier",
    "store",
    "prediction",
    "web_search_options",
]
MESSAGE_FIELDS = [
    "role",
    "content",
    "name",
    "tool_call_id",
    "tool_calls",
    "refusal",
    "function_call",
]
PART_TYPES = ("text", "image_url", "input_audio", "file", "refusal", "weird")
TOOLS_AND_FORMATS: list[tuple[str, Any]] = [
    ("tools", [{"type": "function", "function": {"name": "f", "parameters": {}}}]),
    ("tool_choice", {"type": "function", "function": {"name": "f"}}),
    ("tool_choice", {"type": "allowed_tools", "allowed_tools": {"mode": "auto", "tools": []}}),
    ("response_format", {"type": "json_schema", "json_schema": {"name": "n", "schema": {}}}),
]


@SETTINGS
@given(value=json_values)
def test_any_json_body(gateway: ThreadedGateway, value: Any) -> None:
    check(gateway.post(dumps(value)))


@SETTINGS
@given(data=st.binary(max_size=200))
def test_any_bytes(gateway: ThreadedGateway, data: bytes) -> None:
    check(gateway.post(data))


PER_FIELD = settings(SETTINGS, max_examples=40)


@pytest.mark.parametrize("field", TOP_FIELDS)
@PER_FIELD
@given(model=st.sampled_from(MODELS), value=json_values, stream=st.booleans())
def test_every_field_with_any_value(
    gateway: ThreadedGateway, field: str, model: str, value: Any, stream: bool
) -> None:
    body = {**BASE, "model": model, "stream": stream, field: value}
    check(gateway.post(dumps(body)))


@pytest.mark.parametrize("field", MESSAGE_FIELDS)
@PER_FIELD
@given(
    model=st.sampled_from(MODELS),
    role=st.sampled_from(("system", "developer", "user", "assistant", "tool", "function")),
    value=json_values,
)
def test_every_message_field_with_any_value(
    gateway: ThreadedGateway, field: str, model: str, role: str, value: Any
) -> None:
    message = {"role": role, "content": "x", "tool_call_id": "call_1", field: value}
    body = {**BASE, "model": model, "messages": [{"role": "user", "content": "hi"}, message]}
    check(gateway.post(dumps(body)))


@SETTINGS
@given(
    model=st.sampled_from(MODELS),
    kind=st.sampled_from(PART_TYPES),
    payload=json_values,
    role=st.sampled_from(("user", "assistant", "system", "tool")),
)
def test_content_parts_of_any_shape(
    gateway: ThreadedGateway, model: str, kind: str, payload: Any, role: str
) -> None:
    part = {"type": kind, kind: payload}
    message = {"role": role, "content": [part], "tool_call_id": "call_1"}
    check(gateway.post(dumps({**BASE, "model": model, "messages": [message]})))


@SETTINGS
@given(
    model=st.sampled_from(MODELS),
    choice=st.sampled_from(TOOLS_AND_FORMATS),
    path=st.lists(st.text(max_size=12), min_size=1, max_size=3),
    value=json_values,
)
def test_tool_and_format_shapes_with_any_value_inside(
    gateway: ThreadedGateway, model: str, choice: tuple[str, Any], path: list[str], value: Any
) -> None:
    field, template = choice
    document = json.loads(json.dumps(template))
    node = document[0] if isinstance(document, list) else document
    for key in path[:-1]:  # walk into the template where it has objects, then plant the value
        child = node.get(key) if isinstance(node, dict) else None
        if not isinstance(child, dict):
            break
        node = child
    node[path[-1]] = value
    tools = [{"type": "function", "function": {"name": "f"}}]
    body = {**BASE, "model": model, "tools": tools, field: document}
    check(gateway.post(dumps(body)))


@SETTINGS
@given(
    depth=st.integers(min_value=1, max_value=3000),
    opener=st.sampled_from((b"[", b'{"a":')),
    where=st.sampled_from(("body", "field", "message")),
)
def test_deep_nesting(gateway: ThreadedGateway, depth: int, opener: bytes, where: str) -> None:
    closer = b"]" if opener == b"[" else b"}"
    deep = opener * depth + b"1" + closer * depth
    if where == "body":
        data = deep
    elif where == "field":
        data = (
            b'{"model":"via-gemini","messages":[{"role":"user","content":"x"}],"metadata":' + deep
        )
        data += b"}"
    else:
        data = b'{"model":"via-anthropic","messages":[{"role":"user","content":' + deep + b"}]}"
    check(gateway.post(data))


@SETTINGS
@given(
    model=st.sampled_from(MODELS),
    field=st.sampled_from(
        ("temperature", "top_p", "n", "max_tokens", "seed", "top_logprobs", "top_k")
    ),
    number=st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats(allow_nan=False, allow_infinity=False),
)
def test_huge_and_tiny_numbers(
    gateway: ThreadedGateway, model: str, field: str, number: Any
) -> None:
    check(gateway.post(dumps({**BASE, "model": model, field: number})))


@settings(SETTINGS, max_examples=40)
@given(
    model=st.sampled_from(MODELS),
    stream=st.booleans(),
    temperature=st.none() | st.floats(min_value=0, max_value=1),
    max_tokens=st.none() | st.integers(min_value=1, max_value=4096),
    text=st.text(min_size=1, max_size=50),
)
def test_valid_bodies_are_answered(
    gateway: ThreadedGateway,
    model: str,
    stream: bool,
    temperature: float | None,
    max_tokens: int | None,
    text: str,
) -> None:
    body = {
        "model": model,
        "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": text}],
        "stream": stream,
        "temperature": temperature,
        "max_tokens": max_tokens,
    }
    status, _, raw = gateway.post(dumps(body))
    assert status == 200, raw
    assert (b"data: [DONE]" in raw) if stream else (b'"chat.completion"' in raw)


def test_the_gateway_still_serves_after_the_chat_fuzzing(gateway: ThreadedGateway) -> None:
    """Last in the module: the gateway every test above hit still answers every model."""
    for model in MODELS:
        status, _, raw = gateway.post(dumps({**BASE, "model": model}))
        assert status == 200, raw
    assert gateway.call("GET", "/health")[0] == 200
