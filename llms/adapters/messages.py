"""What the request translators share about OpenAI requests and their messages.

Each `<protocol>_request` module rewrites an OpenAI chat request in its provider's terms. The
pieces that mean the same for every provider live here: the 400s they raise, the base64 data URLs
they unpack, the tool-call arguments they decode, and the function a tool result answers for.
Which values a provider accepts, and the messages that say so, stay in its own module.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from llms.errors import InvalidRequest

_BASE64_MARK = ";base64"


def unsupported(param: str, message: str) -> InvalidRequest:
    """400 `unsupported_parameter`: the provider has no way to honour `param`."""
    return InvalidRequest(message, param=param, code="unsupported_parameter")


def unsupported_value(param: str, message: str) -> InvalidRequest:
    """400 `unsupported_value`: `param` is valid OpenAI, but not with a value the provider takes."""
    return InvalidRequest(message, param=param, code="unsupported_value")


def invalid(param: str, message: str) -> InvalidRequest:
    """400 `invalid_value`: `param` is missing a part or has the wrong type."""
    return InvalidRequest(message, param=param, code="invalid_value")


def from_data_url(url: str) -> tuple[str, str] | None:
    """(media type, base64 data) of `data:<media type>;base64,<data>`; None for any other URL.

    The media type is as written, parameters included (`image/webp;name=a.webp`), and may be
    empty; the data may be empty.
    """
    if not url.startswith("data:"):
        return None
    header, comma, data = url[5:].partition(",")
    if not comma or not header.endswith(_BASE64_MARK):
        return None
    return header[: -len(_BASE64_MARK)], data


def from_arguments(arguments: Any) -> dict[str, Any] | None:
    """A tool call's `arguments` as an object: the decoded JSON string, or an object as sent.

    Missing or empty arguments are `{}`; None when they are not a JSON object.
    """
    value = arguments or "{}"
    if isinstance(value, str):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            return None
    return value if isinstance(value, dict) else None


def tool_name(messages: Sequence[Mapping[str, Any]], before: int, call_id: Any) -> str | None:
    """The function name of tool call `call_id` in the assistant messages before `before`.

    The latest call with that id wins. None when no earlier call has it, or `call_id` is no string.
    """
    if not isinstance(call_id, str):
        return None
    for message in reversed(messages[:before]):
        if message.get("role") != "assistant":
            continue
        for call in reversed(message.get("tool_calls") or ()):
            if isinstance(call, Mapping) and call.get("id") == call_id:
                function = call.get("function")
                name = function.get("name") if isinstance(function, Mapping) else None
                if isinstance(name, str):
                    return name
    return None
