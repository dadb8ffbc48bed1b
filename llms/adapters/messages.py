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


def thinking_blocks(message: Mapping[str, Any], where: str) -> list[dict[str, Any]]:
    """An assistant message's reasoning to replay, as Anthropic's blocks: the gateway's
    `thinking_blocks` extension (`{"type": "thinking", "thinking", "signature"}`,
    `{"type": "redacted_thinking", "data"}`), else OpenRouter's `reasoning_details`
    (`reasoning.text` with a signature, `reasoning.encrypted`). Unsigned thinking is left out; a
    thinking block without its text takes the message's `reasoning_content` when it is the
    message's only one."""
    blocks = message.get("thinking_blocks")
    field = "thinking_blocks"
    if blocks is None:
        blocks, field = _from_reasoning_details(message.get("reasoning_details")), ""
    if not isinstance(blocks, list):
        raise invalid(f"{where}.thinking_blocks", "`thinking_blocks` must be an array of blocks.")
    out: list[dict[str, Any]] = []
    for j, block in enumerate(blocks):
        at = f"{where}.{field}[{j}]" if field else f"{where}.reasoning_details"
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "thinking" and block.get("signature") in (None, ""):
            continue  # unsigned thinking (another model's): nothing an upstream could verify
        if kind == "thinking" and isinstance(block.get("signature"), str):
            text = block.get("thinking")
            out.append({"type": "thinking", "thinking": text if isinstance(text, str) else ""})
            out[-1]["signature"] = block["signature"]
        elif kind == "redacted_thinking" and isinstance(block.get("data"), str):
            out.append({"type": "redacted_thinking", "data": block["data"]})
        else:
            raise invalid(
                at,
                'Expected {"type": "thinking", "thinking", "signature"} or '
                '{"type": "redacted_thinking", "data"}.',
            )
    thoughts = [block for block in out if block["type"] == "thinking"]
    reasoning = message.get("reasoning_content")
    if len(thoughts) == 1 and not thoughts[0]["thinking"] and isinstance(reasoning, str):
        thoughts[0]["thinking"] = reasoning
    return out


def _from_reasoning_details(details: Any) -> list[Any]:
    """OpenRouter's `reasoning_details` as thinking blocks; entries without a signature or
    encrypted data (plain summaries) have nothing to replay."""
    if not isinstance(details, list):
        return []
    blocks: list[Any] = []
    for detail in details:
        if not isinstance(detail, dict):
            blocks.append(detail)
        elif detail.get("type") == "reasoning.text" and detail.get("signature"):
            text = detail.get("text") or ""
            blocks.append({"type": "thinking", "thinking": text, "signature": detail["signature"]})
        elif detail.get("type") == "reasoning.encrypted" and detail.get("data"):
            blocks.append({"type": "redacted_thinking", "data": detail["data"]})
    return blocks
