"""Every field the gateway reads is checked (type and range): a 400 naming it, never a 500.

Also the JSON nesting limit, oversized bodies and numbers beyond every range.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest

from llms.errors import InvalidRequest
from llms.server.requests import MAX_JSON_DEPTH, parse_chat_request, parse_json_object
from tests.test_http_errors import assert_error_shape, request

MSG = [{"role": "user", "content": "hi"}]


def body(**fields: Any) -> dict[str, Any]:
    return {"model": "test-model", "messages": MSG, **fields}


def with_message(**message: Any) -> dict[str, Any]:
    return body(messages=[{"role": "user", "content": "hi"}, message])


FN = {"type": "function", "function": {"name": "f"}}

BAD: list[tuple[dict[str, Any], str, str]] = [
    (body(model="m" * 257), "model", "string_above_max_length"),
    (body(model=["x"]), "model", "invalid_type"),
    (body(top_k=-1), "top_k", "invalid_value"),
    (body(top_k=1.5), "top_k", "invalid_type"),
    (body(seed=2**64), "seed", "invalid_type"),  # parsed as a float
    (body(max_tokens=10**30), "max_tokens", "invalid_type"),
    (body(max_tokens=2**40), "max_tokens", "invalid_value"),
    (body(temperature=1e308), "temperature", "invalid_value"),
    (body(store="yes"), "store", "invalid_type"),
    (
        body(stream_options={"include_usage": "yes"}, stream=True),
        "stream_options.include_usage",
        "invalid_type",
    ),
    (body(reasoning_effort=["high"]), "reasoning_effort", "invalid_type"),
    (body(reasoning_effort=5), "reasoning_effort", "invalid_type"),
    (body(service_tier={}), "service_tier", "invalid_type"),
    (body(user=7), "user", "invalid_type"),
    (body(user="u" * 257), "user", "string_above_max_length"),
    (body(metadata=[]), "metadata", "invalid_type"),
    (body(metadata={f"k{i}": "v" for i in range(17)}), "metadata", "invalid_value"),
    (body(metadata={"k" * 65: "v"}), "metadata." + "k" * 64, "invalid_value"),
    (body(metadata={"k": 1}), "metadata.k", "invalid_type"),
    (body(metadata={"k": "v" * 513}), "metadata.k", "string_above_max_length"),
    (body(modalities="text"), "modalities", "invalid_type"),
    (body(modalities=[1]), "modalities[0]", "invalid_type"),
    (body(logit_bias=[1]), "logit_bias", "invalid_type"),
    (body(logit_bias={"abc": 1}), "logit_bias", "invalid_value"),
    (body(logit_bias={"50256": 101}), "logit_bias", "invalid_value"),
    (body(logit_bias={"50256": "1"}), "logit_bias", "invalid_type"),
    (body(audio="alloy"), "audio", "invalid_type"),
    (body(prediction=[]), "prediction", "invalid_type"),
    (body(web_search_options=1), "web_search_options", "invalid_type"),
    (body(functions={}), "functions", "invalid_type"),
    (body(functions=[{}]), "functions[0].name", "missing_required_parameter"),
    (body(function_call=1), "function_call", "invalid_type"),
    (body(function_call={}), "function_call.name", "missing_required_parameter"),
    # response_format
    (body(response_format="json"), "response_format", "invalid_type"),
    (body(response_format={}), "response_format.type", "missing_required_parameter"),
    (body(response_format={"type": 1}), "response_format.type", "invalid_type"),
    (
        body(response_format={"type": "json_schema"}),
        "response_format.json_schema",
        "missing_required_parameter",
    ),
    (
        body(response_format={"type": "json_schema", "json_schema": "x"}),
        "response_format.json_schema",
        "invalid_type",
    ),
    (
        body(response_format={"type": "json_schema", "json_schema": {"schema": "x"}}),
        "response_format.json_schema.schema",
        "invalid_type",
    ),
    (
        body(response_format={"type": "json_schema", "json_schema": {"name": 1}}),
        "response_format.json_schema.name",
        "invalid_type",
    ),
    (
        body(response_format={"type": "json_object", "json_schema": {"strict": "y"}}),
        "response_format.json_schema.strict",
        "invalid_type",
    ),
    # tools and tool_choice
    (body(tools={}), "tools", "invalid_type"),
    (
        body(tools=[{"type": "function", "function": {"name": 1}}]),
        "tools[0].function.name",
        "missing_required_parameter",
    ),
    (
        body(tools=[{"type": "function", "function": {"name": "f", "parameters": "{}"}}]),
        "tools[0].function.parameters",
        "invalid_type",
    ),
    (
        body(tools=[{"type": "function", "function": {"name": "f", "description": 1}}]),
        "tools[0].function.description",
        "invalid_type",
    ),
    (
        body(tools=[{"type": "function", "function": {"name": "f", "strict": 1}}]),
        "tools[0].function.strict",
        "invalid_type",
    ),
    (body(tools=[{"type": "custom"}]), "tools[0].custom", "missing_required_parameter"),
    (body(tool_choice="sometimes"), "tool_choice", "invalid_value"),
    (body(tool_choice=1), "tool_choice", "invalid_value"),
    (body(tools=[FN], tool_choice={}), "tool_choice.type", "missing_required_parameter"),
    (
        body(tools=[FN], tool_choice={"type": "function"}),
        "tool_choice.function",
        "missing_required_parameter",
    ),
    (
        body(tools=[FN], tool_choice={"type": "function", "function": "f"}),
        "tool_choice.function",
        "invalid_type",
    ),
    (
        body(tools=[FN], tool_choice={"type": "function", "function": {"name": ["f"]}}),
        "tool_choice.function.name",
        "invalid_type",
    ),
    (
        body(tools=[FN], tool_choice={"type": "allowed_tools", "allowed_tools": "x"}),
        "tool_choice.allowed_tools",
        "invalid_type",
    ),
    (
        body(
            tools=[FN], tool_choice={"type": "allowed_tools", "allowed_tools": {"mode": ["auto"]}}
        ),
        "tool_choice.allowed_tools.mode",
        "invalid_value",
    ),
    (
        body(
            tools=[FN],
            tool_choice={
                "type": "allowed_tools",
                "allowed_tools": {"mode": "auto", "tools": ["f"]},
            },
        ),
        "tool_choice.allowed_tools.tools[0]",
        "invalid_type",
    ),
    (
        body(tools=[FN], tool_choice={"type": "custom", "custom": {}}),
        "tool_choice.custom.name",
        "missing_required_parameter",
    ),
    # messages
    (body(messages=[{"role": ["user"], "content": "x"}]), "messages[0].role", "invalid_value"),
    (with_message(role="user", content="x", name=1), "messages[1].name", "invalid_type"),
    (
        with_message(role="tool", content="x", tool_call_id=1),
        "messages[1].tool_call_id",
        "missing_required_parameter",
    ),
    (with_message(role="assistant", refusal=1), "messages[1].refusal", "invalid_type"),
    (
        with_message(role="assistant", tool_calls=[1]),
        "messages[1].tool_calls[0]",
        "invalid_type",
    ),
    (
        with_message(role="assistant", tool_calls=[{"function": "f"}]),
        "messages[1].tool_calls[0].function",
        "invalid_type",
    ),
    (
        with_message(role="assistant", tool_calls=[{"function": {"arguments": "{}"}}]),
        "messages[1].tool_calls[0].function.name",
        "missing_required_parameter",
    ),
    (
        with_message(role="assistant", tool_calls=[{"function": {"name": "f", "arguments": 1}}]),
        "messages[1].tool_calls[0].function.arguments",
        "invalid_type",
    ),
    (
        with_message(role="user", content=[{"type": "text", "text": 1}]),
        "messages[1].content[0].text",
        "invalid_type",
    ),
    (
        with_message(role="user", content=[{"type": "text"}]),
        "messages[1].content[0].text",
        "missing_required_parameter",
    ),
    (
        with_message(role="user", content=[{"type": "image_url", "image_url": 1}]),
        "messages[1].content[0].image_url",
        "invalid_type",
    ),
    (
        with_message(role="user", content=[{"type": "image_url", "image_url": {"url": 1}}]),
        "messages[1].content[0].image_url.url",
        "invalid_type",
    ),
    (
        with_message(role="user", content=[{"type": "input_audio", "input_audio": "x"}]),
        "messages[1].content[0].input_audio",
        "invalid_type",
    ),
    (
        with_message(role="user", content=[{"type": "input_audio", "input_audio": {"data": "x"}}]),
        "messages[1].content[0].input_audio.format",
        "missing_required_parameter",
    ),
    (
        with_message(role="user", content=[{"type": "file", "file": "x"}]),
        "messages[1].content[0].file",
        "invalid_type",
    ),
    (
        with_message(role="user", content=[{"type": "file", "file": {"file_data": 1}}]),
        "messages[1].content[0].file.file_data",
        "invalid_type",
    ),
]


@pytest.mark.parametrize(("data", "param", "code"), BAD, ids=[param for _, param, _ in BAD])
async def test_each_field_is_checked_with_a_400_naming_it(
    gateway: str, data: dict[str, Any], param: str, code: str
) -> None:
    raw_body = json.dumps(data).encode()  # the stdlib writes integers beyond 64 bits
    status, headers, raw = await request("POST", f"{gateway}/chat/completions", raw_body)
    assert status == 400, raw
    error = assert_error_shape(status, headers, raw)
    assert error["type"] == "invalid_request_error"
    assert (error["param"], error["code"]) == (param, code), error["message"]


def nested(depth: int) -> Any:
    value: Any = "leaf"
    for i in range(depth):
        value = [value] if i % 2 else {"k": value}
    return value


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 1000, 1025, 100_000])
async def test_bodies_nested_too_deep_are_refused_naming_the_body(gateway: str, depth: int) -> None:
    # The body is an object (depth 1) holding `metadata`-like junk `depth` levels down.
    raw_body = b'{"model":"test-model","messages":[{"role":"user","content":"hi"}],"x":'
    raw_body += b"[" * depth + b"]" * depth + b"}"
    status, headers, raw = await request("POST", f"{gateway}/chat/completions", raw_body)
    assert status == 400, raw
    error = assert_error_shape(status, headers, raw)
    assert error["code"] == "json_too_deep"
    assert "request body" in error["message"]
    assert str(MAX_JSON_DEPTH) in error["message"]


async def test_deep_but_allowed_nesting_passes(gateway: str) -> None:
    # parameters is 5 levels down, its `x` 6: the deepest array or object is the 64th level.
    schema = {"type": "object", "x": nested(MAX_JSON_DEPTH - 6)}
    data = body(tools=[{"type": "function", "function": {"name": "f", "parameters": schema}}])
    status, _, raw = await request("POST", f"{gateway}/chat/completions", orjson.dumps(data))
    assert status == 200, raw


def test_depth_is_checked_without_recursion() -> None:
    # orjson stops at 1024 levels itself; ours is checked iteratively on what it parsed.
    parse_chat_request(orjson.dumps(body(x=nested(MAX_JSON_DEPTH - 2))))
    with pytest.raises(InvalidRequest, match="more than 64 levels"):
        parse_chat_request(orjson.dumps(body(x=nested(MAX_JSON_DEPTH))))


def test_depth_at_the_bracket_count_bound() -> None:
    """A body with at most 64 brackets cannot nest deeper (it is not walked); one with 65, all
    nested, is the first too deep. Brackets inside strings count too (a bound, not a depth)."""
    allowed = {"x": nested(MAX_JSON_DEPTH - 1), "s": "[[{{"}
    assert orjson.dumps(allowed).count(b"[") + orjson.dumps(allowed).count(b"{") > MAX_JSON_DEPTH
    assert parse_json_object(orjson.dumps(allowed)) == allowed
    exact = {"x": nested(MAX_JSON_DEPTH - 1)}
    raw = orjson.dumps(exact)
    assert raw.count(b"[") + raw.count(b"{") == MAX_JSON_DEPTH
    assert parse_json_object(raw) == exact
    with pytest.raises(InvalidRequest, match="more than 64 levels"):
        parse_json_object(orjson.dumps({"x": nested(MAX_JSON_DEPTH)}))


@pytest.mark.parametrize(
    "raw_body",
    [
        b"",
        b"\xff\xfe",
        b'"just a string"',
        b"1e400",
        b'{"model": "test-model", "messages": [], "n": 1e400}',
        b'{"model": "\\ud800", "messages": []}',
        b'{"model": "test-model", "messages": [{"role": "user", "content": "x"}], "n": NaN}',
        b"null",
        b"[" * 2000,
    ],
)
async def test_broken_json_is_400(gateway: str, raw_body: bytes) -> None:
    status, headers, raw = await request("POST", f"{gateway}/chat/completions", raw_body)
    assert status == 400, raw
    assert_error_shape(status, headers, raw)


async def test_bodies_over_the_limit_are_413(make_gateway: Any, fake_openai: Any) -> None:
    from tests.conftest import gateway_config

    config = gateway_config(
        {"f": {"type": "openai", "base_url": fake_openai.base_url, "models": ["m"]}},
        server={"max_body_mb": 0.01},
    )
    base = await make_gateway(config)
    data = orjson.dumps(body(model="m", messages=[{"role": "user", "content": "x" * 20_000}]))
    status, headers, raw = await request("POST", f"{base}/chat/completions", data)
    assert status == 413
    assert assert_error_shape(status, headers, raw)["code"] == "request_too_large"
