"""The Anthropic Messages API request (`POST /v1/messages`) for an OpenAI chat request.

System/developer messages become `system`; user, assistant and tool turns become content blocks
(consecutive same-role turns merged, so the tool results of one turn share a user message);
tools, tool_choice, stop, sampling and `reasoning_effort` (-> `thinking`) are translated; a
parameter Anthropic cannot honour is refused with a 400 naming it (protocol.md §3.3). An
assistant message's signed and redacted thinking (`thinking_blocks`, or OpenRouter's
`reasoning_details`) goes back first in its turn, as Anthropic requires during tool use.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import orjson

from llms.adapters.base import UpstreamRequest
from llms.adapters.messages import (
    from_arguments,
    from_data_url,
    invalid,
    thinking_blocks,
    unsupported,
    unsupported_value,
)
from llms.config import ProviderConfig
from llms.wire import ChatRequest

ANTHROPIC_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096
# Thinking budget per OpenAI effort; None = no thinking. The API wants budget >= 1024.
THINKING_BUDGETS: dict[str, int | None] = {
    "none": None,
    "minimal": None,
    "low": 1024,
    "medium": 4096,
    "high": 16384,
    "xhigh": 32768,
    "max": 32768,
}
# Room left for the answer when max_tokens has to be raised above the thinking budget.
THINKING_HEADROOM = 1024
IMAGE_TYPES = frozenset(("image/jpeg", "image/png", "image/gif", "image/webp"))
# OpenAI parameters with no Anthropic equivalent: a truthy value is refused, never dropped.
UNSUPPORTED = (
    "logprobs",
    "top_logprobs",
    "frequency_penalty",
    "presence_penalty",
    "logit_bias",
    "audio",
    "functions",
    "function_call",
    "web_search_options",
)


def build_request(
    request: ChatRequest, provider: ProviderConfig, upstream_model: str
) -> UpstreamRequest:
    """The streaming `/v1/messages` request for a validated OpenAI chat request."""
    raw = cast(Mapping[str, Any], request)
    _refuseunsupported(raw)
    system, messages = from_messages(raw["messages"])
    max_tokens: int = (
        raw.get("max_completion_tokens")
        or raw.get("max_tokens")
        or provider.options.get("max_tokens", DEFAULT_MAX_TOKENS)
    )
    body: dict[str, Any] = {"model": upstream_model, "max_tokens": max_tokens}
    if system:
        body["system"] = system
    body["messages"] = messages
    body["stream"] = True
    stop = raw.get("stop")
    if stop:
        body["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    temperature = raw.get("temperature")
    if temperature is not None:
        if temperature > 1:
            raise unsupported_value(
                "temperature", f"Anthropic accepts `temperature` from 0 to 1, got {temperature}."
            )
        body["temperature"] = temperature
    for name in ("top_p", "top_k"):  # top_k: an extension some clients send; Anthropic has it
        if raw.get(name) is not None:
            body[name] = raw[name]
    budget = _thinking_budget(raw.get("reasoning_effort"))
    if budget is not None:
        # Thinking works only at the default temperature (1) and without top_k.
        if temperature not in (None, 1) or "top_k" in body:
            modified = "top_k" if temperature in (None, 1) else "temperature"
            raise unsupported_value(
                modified,
                f"Anthropic's extended thinking (`reasoning_effort`) cannot be combined with a "
                f"modified `{modified}`.",
            )
        body["thinking"] = {"type": "enabled", "budget_tokens": budget}
        # The API requires max_tokens > budget_tokens (thinking counts against max_tokens).
        if max_tokens <= budget:
            body["max_tokens"] = budget + THINKING_HEADROOM
    _add_tools(raw, body)
    if raw.get("user"):
        body["metadata"] = {"user_id": raw["user"]}
    headers = {
        "anthropic-version": ANTHROPIC_VERSION,
        "content-type": "application/json",
        "accept": "text/event-stream",
    }
    if provider.api_key:
        headers["x-api-key"] = provider.api_key
    headers.update(provider.headers)
    return UpstreamRequest("POST", messages_url(provider), headers, orjson.dumps(body))


def messages_url(provider: ProviderConfig, path: str = "") -> str:
    """`{root}/v1/messages{path}`, whether the base URL was written as Anthropic's SDKs write it
    (the root) or as OpenAI-style configs do (ending in `/v1`): else `/v1/v1/messages`, a 404."""
    root = provider.base_url.rstrip("/").removesuffix("/v1")
    return f"{root}/v1/messages{path}"


def _refuseunsupported(raw: Mapping[str, Any]) -> None:
    n = raw.get("n")
    if n is not None and n != 1:
        raise unsupported("n", "Anthropic returns one choice per request: `n` must be 1.")
    for name in UNSUPPORTED:
        if raw.get(name):
            raise unsupported(name, f"The Anthropic Messages API has no `{name}` parameter.")
    if raw.get("seed") is not None:
        raise unsupported("seed", "The Anthropic Messages API has no `seed` parameter.")
    if any(m != "text" for m in raw.get("modalities") or ()):
        raise unsupported("modalities", "Anthropic models answer with text only.")
    fmt = raw.get("response_format")
    if fmt and fmt.get("type") != "text":
        raise unsupported(
            "response_format",
            f"The Anthropic Messages API has no JSON output mode (`{fmt.get('type')}`); "
            "describe the format in the prompt or use a tool.",
        )


def _thinking_budget(effort: Any) -> int | None:
    if effort is None:
        return None
    if not isinstance(effort, str) or effort not in THINKING_BUDGETS:
        raise invalid(
            "reasoning_effort",
            f"Invalid 'reasoning_effort': expected one of {', '.join(THINKING_BUDGETS)}.",
        )
    return THINKING_BUDGETS[effort]


def _add_tools(raw: Mapping[str, Any], body: dict[str, Any]) -> None:
    tools = raw.get("tools")
    choice = raw.get("tool_choice")
    if not tools:
        if choice not in (None, "none", "auto"):
            raise invalid("tool_choice", "`tool_choice` requires `tools`.")
        return
    specs = []
    for i, tool in enumerate(tools):
        if tool.get("type") != "function":
            raise unsupported(f"tools[{i}].type", "Anthropic takes function tools only.")
        function = tool["function"]
        spec = {"name": function["name"]}
        if function.get("description"):
            spec["description"] = function["description"]
        spec["input_schema"] = function.get("parameters") or {"type": "object", "properties": {}}
        specs.append(spec)
    body["tools"] = specs
    tool_choice = _tool_choice(choice)
    if raw.get("parallel_tool_calls") is False:
        tool_choice = tool_choice or {"type": "auto"}
        if tool_choice["type"] != "none":  # Anthropic's `none` takes no options
            tool_choice["disable_parallel_tool_use"] = True
    if tool_choice:
        body["tool_choice"] = tool_choice


def _tool_choice(choice: Any) -> dict[str, Any] | None:
    if choice is None:
        return None
    if isinstance(choice, str):
        return {"type": {"auto": "auto", "required": "any", "none": "none"}[choice]}
    function = choice.get("function")
    if choice.get("type") != "function" or not isinstance(function, dict):
        raise unsupported("tool_choice", "Anthropic supports only a named function tool_choice.")
    name = function.get("name")
    if not isinstance(name, str):
        raise invalid("tool_choice.function.name", "Missing tool name.")
    return {"type": "tool", "name": name}


def from_messages(messages: list[Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(system blocks, messages): system/developer hoisted in order, same-role turns merged."""
    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []
    for i, message in enumerate(messages):
        role = message["role"]
        where = f"messages[{i}]"
        content = message.get("content")
        if role in ("system", "developer"):
            system += _blocks(content, where, ("text",))
            continue
        if role == "user":
            blocks = _blocks(content, where, ("text", "image_url", "file"))
        elif role == "assistant":
            # Signed thinking first: with thinking on, Anthropic wants it back before a tool_use.
            blocks = thinking_blocks(message, where)
            blocks += _blocks(content, where, ("text", "refusal"))
            blocks += _tool_uses(message.get("tool_calls") or (), where)
        elif role == "tool":
            result = content if isinstance(content, str) else _blocks(content, where, ("text",))
            blocks = [
                {"type": "tool_result", "tool_use_id": message["tool_call_id"], "content": result}
            ]
            role = "user"
        else:
            raise unsupported(f"{where}.role", f"Anthropic has no `{role}` messages.")
        if not blocks:
            continue
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"] += blocks
        else:
            turns.append({"role": role, "content": blocks})
    return system, turns


def _blocks(content: Any, where: str, allowed: tuple[str, ...]) -> list[dict[str, Any]]:
    # Anthropic rejects empty text blocks, so empty strings are left out.
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    out: list[dict[str, Any]] = []
    for j, part in enumerate(content):
        kind = part["type"]
        at = f"{where}.content[{j}]"
        if kind not in allowed:
            raise unsupported(at, f"Anthropic cannot take a `{kind}` part here.")
        if kind == "image_url":
            out.append(_image(part.get("image_url"), f"{at}.image_url"))
        elif kind == "file":
            out.append(_document(part.get("file"), f"{at}.file"))
        else:
            text = part.get(kind)
            if not isinstance(text, str):
                raise invalid(f"{at}.{kind}", f"Missing `{kind}` string.")
            if text:
                out.append({"type": "text", "text": text})
    return out


def _image(image: Any, param: str) -> dict[str, Any]:
    url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str):
        raise invalid(param, "Missing image URL.")
    if url.startswith(("https://", "http://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    media_type, data = _base64_source(url)
    if media_type not in IMAGE_TYPES:
        raise unsupported_value(
            param,
            "Anthropic takes http(s) URLs and base64 data URLs of JPEG, PNG, GIF or WebP images.",
        )
    return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}


def _document(file: Any, param: str) -> dict[str, Any]:
    data_url = file.get("file_data") if isinstance(file, dict) else None
    media_type, data = _base64_source(data_url if isinstance(data_url, str) else "")
    if media_type != "application/pdf":
        raise unsupported_value(param, "Anthropic takes files as base64 PDF data URLs only.")
    return {
        "type": "document",
        "source": {"type": "base64", "media_type": media_type, "data": data},
    }


def _base64_source(url: str) -> tuple[str, str]:
    """(media type, data) of a base64 data URL, the type bare and lower-case; ("", "") otherwise."""
    parsed = from_data_url(url)
    if parsed is None:
        return "", ""
    return parsed[0].partition(";")[0].lower(), parsed[1]


def _tool_uses(calls: Any, where: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for j, call in enumerate(calls):
        at = f"{where}.tool_calls[{j}]"
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or call.get("type", "function") != "function":
            raise unsupported(at, "Anthropic takes function tool calls only.")
        arguments = from_arguments(function.get("arguments"))
        if arguments is None:
            raise invalid(
                f"{at}.function.arguments",
                "Tool call arguments must be a JSON object for Anthropic.",
            )
        block = {"type": "tool_use", "id": call.get("id"), "name": function.get("name")}
        block["input"] = arguments
        out.append(block)
    return out
