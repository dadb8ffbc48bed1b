"""Validation of a chat request's `messages`: roles, content parts, tool calls and results."""

from __future__ import annotations

from typing import Any

from llms.server import fields
from llms.server.fields import fail, obj, required_obj, string, wrong_type

ROLES = frozenset(("system", "developer", "user", "assistant", "tool", "function"))
MAX_NAME_LENGTH = 256


def check_messages(messages: Any) -> None:
    if messages is None:
        raise fields.missing("messages")
    if not isinstance(messages, list):
        raise wrong_type("messages", "an array", messages)
    if not messages:
        raise fail(
            "messages",
            "Invalid 'messages': empty array. Expected an array with minimum length 1.",
            "empty_array",
        )
    for i, message in enumerate(messages):
        _message(message, f"messages[{i}]")


def _message(message: Any, where: str) -> None:
    if not isinstance(message, dict):
        raise fail(where, f"Invalid type for '{where}': expected an object.", "invalid_type")
    role = message.get("role")
    if not isinstance(role, str) or role not in ROLES:
        raise fail(
            f"{where}.role",
            f"Invalid '{where}.role': expected one of {', '.join(sorted(ROLES))}.",
        )
    content = message.get("content")
    if content is None:
        if role != "assistant":
            raise fields.missing(f"{where}.content")
    elif isinstance(content, list):
        for j, part in enumerate(content):
            _part(part, f"{where}.content[{j}]")
    elif not isinstance(content, str):
        raise fail(
            f"{where}.content",
            f"Invalid type for '{where}.content': expected a string or an array of parts.",
            "invalid_type",
        )
    string(message.get("name"), f"{where}.name", max_length=MAX_NAME_LENGTH)
    if role == "tool" and not isinstance(message.get("tool_call_id"), str):
        raise fields.missing(f"{where}.tool_call_id")
    string(message.get("tool_call_id"), f"{where}.tool_call_id")
    string(message.get("refusal"), f"{where}.refusal")
    string(message.get("reasoning_content"), f"{where}.reasoning_content")
    calls = message.get("tool_calls")
    if calls is not None and not isinstance(calls, list):
        raise fail(
            f"{where}.tool_calls",
            f"Invalid type for '{where}.tool_calls': expected an array.",
            "invalid_type",
        )
    for k, call in enumerate(calls or ()):
        _tool_call(call, f"{where}.tool_calls[{k}]")
    call = obj(message.get("function_call"), f"{where}.function_call")
    if call is not None:
        string(call.get("name"), f"{where}.function_call.name", required=True)


def _part(part: Any, where: str) -> None:
    """A content part: an object with a `type`, and the field that type names."""
    if not isinstance(part, dict) or not isinstance(part.get("type"), str):
        raise fail(
            where, f"Invalid '{where}': expected a content part with a 'type'.", "invalid_type"
        )
    kind = part["type"]
    if kind in ("text", "refusal"):
        string(part.get(kind), f"{where}.{kind}", required=True)
    elif kind == "image_url":
        image = part.get("image_url")
        if not isinstance(image, str):  # an object as OpenAI has it (or its bare URL)
            image = required_obj(image, f"{where}.image_url")
            string(image.get("url"), f"{where}.image_url.url", required=True)
            string(image.get("detail"), f"{where}.image_url.detail")
    elif kind == "input_audio":
        audio = required_obj(part.get("input_audio"), f"{where}.input_audio")
        string(audio.get("data"), f"{where}.input_audio.data", required=True)
        string(audio.get("format"), f"{where}.input_audio.format", required=True)
    elif kind == "file":
        file = required_obj(part.get("file"), f"{where}.file")
        for name in ("file_data", "file_id", "filename"):
            string(file.get(name), f"{where}.file.{name}")


def _tool_call(call: Any, where: str) -> None:
    """An assistant's earlier tool call: `function.name`, and arguments as JSON text."""
    call = required_obj(call, where)
    string(call.get("id"), f"{where}.id")
    string(call.get("type"), f"{where}.type")
    function = call.get("function")
    if call.get("type", "function") != "function" and function is None:
        return  # another kind of call (custom tools): the upstream judges it
    function = required_obj(function, f"{where}.function")
    string(function.get("name"), f"{where}.function.name", required=True)
    arguments = function.get("arguments")
    if arguments is not None and not isinstance(arguments, str | dict):
        raise wrong_type(f"{where}.function.arguments", "a JSON string", arguments)
