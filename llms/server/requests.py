"""Parse and validate a client's chat request: every field the gateway reads, or a 400 naming it."""

from __future__ import annotations

from typing import Any, cast

import orjson

from llms.errors import InvalidRequest
from llms.wire import ChatRequest

ROLES = frozenset(("system", "developer", "user", "assistant", "tool", "function"))
TOOL_CHOICES = frozenset(("none", "auto", "required"))


def _fail(param: str, message: str, code: str = "invalid_value") -> InvalidRequest:
    return InvalidRequest(message, param=param, code=code)


def _type_name(value: Any) -> str:
    return {
        type(None): "null",
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "an array",
        dict: "an object",
    }.get(type(value), type(value).__name__)


def _number(
    body: dict[str, Any], name: str, low: float, high: float, *, integer: bool = False
) -> None:
    value = body.get(name)
    if value is None:
        return
    kind = "an integer" if integer else "a number"
    if isinstance(value, bool) or not isinstance(value, int if integer else int | float):
        raise _fail(
            name,
            f"Invalid type for '{name}': expected {kind}, got {_type_name(value)}.",
            "invalid_type",
        )
    if not low <= value <= high:
        raise _fail(name, f"Invalid '{name}': {value} is not within [{low:g}, {high:g}].")


def _boolean(body: dict[str, Any], name: str) -> None:
    value = body.get(name)
    if value is not None and not isinstance(value, bool):
        raise _fail(
            name,
            f"Invalid type for '{name}': expected a boolean, got {_type_name(value)}.",
            "invalid_type",
        )


def parse_chat_request(raw: bytes) -> ChatRequest:
    """The body of POST /v1/chat/completions, validated; unknown fields pass through."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise InvalidRequest(
            "We could not parse the JSON body of your request. The body must be valid JSON."
        ) from None
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    model = body.get("model")
    if model is None:
        raise _fail("model", "Missing required parameter: 'model'.", "missing_required_parameter")
    if not isinstance(model, str) or not model:
        raise _fail("model", "Invalid 'model': expected a non-empty string.", "invalid_type")
    _messages(body.get("messages"))
    _boolean(body, "stream")
    options = body.get("stream_options")
    if options is not None:
        if not isinstance(options, dict):
            raise _fail(
                "stream_options", "Invalid 'stream_options': expected an object.", "invalid_type"
            )
        if not body.get("stream"):
            raise _fail("stream_options", "'stream_options' is only allowed when 'stream' is true.")
        if not isinstance(options.get("include_usage", False), bool):
            raise _fail(
                "stream_options.include_usage",
                "Invalid 'include_usage': expected a boolean.",
                "invalid_type",
            )
    _number(body, "temperature", 0, 2)
    _number(body, "top_p", 0, 1)
    _number(body, "presence_penalty", -2, 2)
    _number(body, "frequency_penalty", -2, 2)
    _number(body, "n", 1, 128, integer=True)
    _number(body, "max_tokens", 1, 2**31, integer=True)
    _number(body, "max_completion_tokens", 1, 2**31, integer=True)
    _number(body, "top_logprobs", 0, 20, integer=True)
    _number(body, "seed", -(2**63), 2**63 - 1, integer=True)
    _boolean(body, "logprobs")
    _boolean(body, "parallel_tool_calls")
    _stop(body.get("stop"))
    _tools(body)
    fmt = body.get("response_format")
    if fmt is not None and (not isinstance(fmt, dict) or not isinstance(fmt.get("type"), str)):
        raise _fail(
            "response_format",
            "Invalid 'response_format': expected an object with a 'type'.",
            "invalid_type",
        )
    user = body.get("user")
    if user is not None and not isinstance(user, str):
        raise _fail("user", "Invalid type for 'user': expected a string.", "invalid_type")
    return cast(ChatRequest, body)


def _messages(messages: Any) -> None:
    if messages is None:
        raise _fail(
            "messages", "Missing required parameter: 'messages'.", "missing_required_parameter"
        )
    if not isinstance(messages, list):
        raise _fail(
            "messages",
            f"Invalid type for 'messages': expected an array, got {_type_name(messages)}.",
            "invalid_type",
        )
    if not messages:
        raise _fail(
            "messages",
            "Invalid 'messages': empty array. Expected an array with minimum length 1.",
            "empty_array",
        )
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise _fail(where, f"Invalid type for '{where}': expected an object.", "invalid_type")
        role = message.get("role")
        if role not in ROLES:
            raise _fail(
                f"{where}.role",
                f"Invalid '{where}.role': expected one of {', '.join(sorted(ROLES))}.",
            )
        content = message.get("content")
        if content is None:
            if role != "assistant":
                raise _fail(
                    f"{where}.content",
                    f"Missing required parameter: '{where}.content'.",
                    "missing_required_parameter",
                )
        elif isinstance(content, list):
            for j, part in enumerate(content):
                if not isinstance(part, dict) or not isinstance(part.get("type"), str):
                    raise _fail(
                        f"{where}.content[{j}]",
                        f"Invalid '{where}.content[{j}]': expected a content part with a 'type'.",
                        "invalid_type",
                    )
        elif not isinstance(content, str):
            raise _fail(
                f"{where}.content",
                f"Invalid type for '{where}.content': expected a string or an array of parts.",
                "invalid_type",
            )
        if role == "tool" and not isinstance(message.get("tool_call_id"), str):
            raise _fail(
                f"{where}.tool_call_id",
                f"Missing required parameter: '{where}.tool_call_id'.",
                "missing_required_parameter",
            )
        calls = message.get("tool_calls")
        if calls is not None and not isinstance(calls, list):
            raise _fail(
                f"{where}.tool_calls",
                f"Invalid type for '{where}.tool_calls': expected an array.",
                "invalid_type",
            )


def _stop(stop: Any) -> None:
    if stop is None or isinstance(stop, str):
        return
    if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
        raise _fail(
            "stop",
            "Invalid type for 'stop': expected a string or an array of strings.",
            "invalid_type",
        )
    if len(stop) > 4:
        raise _fail(
            "stop", f"Invalid 'stop': array too long. Expected at most 4 items, got {len(stop)}."
        )


def _tools(body: dict[str, Any]) -> None:
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            raise _fail("tools", "Invalid type for 'tools': expected an array.", "invalid_type")
        for i, tool in enumerate(tools):
            if not isinstance(tool, dict) or not isinstance(tool.get("type"), str):
                raise _fail(
                    f"tools[{i}]",
                    f"Invalid 'tools[{i}]': expected an object with a 'type'.",
                    "invalid_type",
                )
            function = tool.get("function")
            if tool["type"] == "function" and (
                not isinstance(function, dict) or not isinstance(function.get("name"), str)
            ):
                raise _fail(
                    f"tools[{i}].function.name",
                    f"Missing required parameter: 'tools[{i}].function.name'.",
                    "missing_required_parameter",
                )
    choice = body.get("tool_choice")
    if choice is None or isinstance(choice, dict):
        return
    if not isinstance(choice, str) or choice not in TOOL_CHOICES:
        raise _fail(
            "tool_choice",
            "Invalid 'tool_choice': expected 'none', 'auto', 'required' or an object.",
        )
