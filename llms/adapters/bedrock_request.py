"""The AWS Bedrock Converse request (`POST /model/{modelId}/converse-stream`, or `/converse`).

System/developer messages become `system` text blocks; user, assistant and tool turns become
Converse content blocks (`text`, `image` and `document` with their bytes base64, `toolUse`,
`toolResult`, and `reasoningContent` from an assistant message's `thinking_blocks` extension or
`reasoning_details`, signatures intact), consecutive same-role turns merged; `max_tokens`,
`temperature`, `top_p` and `stop` go in `inferenceConfig`; tools and `tool_choice` in
`toolConfig`; `reasoning_effort` and `top_k` for an Anthropic model in
`additionalModelRequestFields` (Claude's `thinking`). A parameter Converse cannot honour is
refused with a 400 naming it. A Bedrock API key (`api_key`) goes in as a bearer token; with
access keys the request leaves here unsigned, and is signed with the time just before it is
sent (llms/credentials_aws.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast
from urllib.parse import quote

import orjson

from llms.adapters.anthropic_request import THINKING_BUDGETS, THINKING_HEADROOM
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

IMAGE_FORMATS = {"image/jpeg": "jpeg", "image/png": "png", "image/gif": "gif", "image/webp": "webp"}
# OpenAI parameters with no Converse equivalent: a truthy value is refused, never dropped.
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
    """The streaming `converse-stream` request for a validated OpenAI chat request."""
    return _request(request, provider, upstream_model, "converse-stream")


def build_whole_request(
    request: ChatRequest, provider: ProviderConfig, upstream_model: str
) -> UpstreamRequest:
    """The non-stream `converse` request: one JSON answer."""
    return _request(request, provider, upstream_model, "converse")


def model_url(provider: ProviderConfig, upstream_model: str, action: str) -> str:
    """`{base}/model/{modelId}/{action}`, the id one path segment (an ARN's `/` and `:` escaped)."""
    return f"{provider.base_url}/model/{quote(upstream_model, safe='')}/{action}"


def _request(
    request: ChatRequest, provider: ProviderConfig, upstream_model: str, action: str
) -> UpstreamRequest:
    raw = cast(Mapping[str, Any], request)
    _refuse_unsupported(raw)
    system, messages = from_messages(raw["messages"])
    body: dict[str, Any] = {"messages": messages}
    if system:
        body["system"] = system
    inference: dict[str, Any] = {}
    max_tokens = raw.get("max_completion_tokens") or raw.get("max_tokens")
    if max_tokens:
        inference["maxTokens"] = max_tokens
    if raw.get("temperature") is not None:
        inference["temperature"] = raw["temperature"]
    if raw.get("top_p") is not None:
        inference["topP"] = raw["top_p"]
    stop = raw.get("stop")
    if stop:
        inference["stopSequences"] = [stop] if isinstance(stop, str) else list(stop)
    extra = _model_fields(raw, upstream_model, inference)
    if inference:
        body["inferenceConfig"] = inference
    if extra:
        body["additionalModelRequestFields"] = extra
    tool_config = _tool_config(raw, messages)
    if tool_config:
        body["toolConfig"] = tool_config
    headers = {"content-type": "application/json", "accept": "application/json"}
    if action == "converse-stream":
        headers["accept"] = "application/vnd.amazon.eventstream"
    if provider.api_key:  # a Bedrock API key; else the request is signed with access keys
        headers["authorization"] = f"Bearer {provider.api_key}"
    headers.update(provider.headers)
    url = model_url(provider, upstream_model, action)
    return UpstreamRequest("POST", url, headers, orjson.dumps(body))


def _refuse_unsupported(raw: Mapping[str, Any]) -> None:
    n = raw.get("n")
    if n is not None and n != 1:
        raise unsupported("n", "Bedrock's Converse API returns one choice: `n` must be 1.")
    for name in UNSUPPORTED:
        if raw.get(name):
            raise unsupported(name, f"Bedrock's Converse API has no `{name}` parameter.")
    if raw.get("seed") is not None:
        raise unsupported("seed", "Bedrock's Converse API has no `seed` parameter.")
    if any(m != "text" for m in raw.get("modalities") or ()):
        raise unsupported("modalities", "Bedrock's Converse API answers with text only here.")
    fmt = raw.get("response_format")
    if fmt and fmt.get("type") != "text":
        raise unsupported(
            "response_format",
            f"Bedrock's Converse API has no JSON output mode (`{fmt.get('type')}`); describe "
            "the format in the prompt or use a tool.",
        )


def _model_fields(
    raw: Mapping[str, Any], upstream_model: str, inference: dict[str, Any]
) -> dict[str, Any]:
    """`additionalModelRequestFields`: Claude's `thinking` and `top_k` (Anthropic models only)."""
    anthropic = "anthropic." in upstream_model
    extra: dict[str, Any] = {}
    if raw.get("top_k") is not None:
        if not anthropic:
            raise unsupported("top_k", "`top_k` is sent to Bedrock for Anthropic models only.")
        extra["top_k"] = raw["top_k"]
    effort = raw.get("reasoning_effort")
    if effort is None:
        return extra
    if not isinstance(effort, str) or effort not in THINKING_BUDGETS:
        raise invalid(
            "reasoning_effort",
            f"Invalid 'reasoning_effort': expected one of {', '.join(THINKING_BUDGETS)}.",
        )
    budget = THINKING_BUDGETS[effort]
    if budget is None:
        return extra
    if not anthropic:
        raise unsupported_value(
            "reasoning_effort",
            "Through Bedrock, `reasoning_effort` is translated for Anthropic models only.",
        )
    if inference.get("temperature") not in (None, 1) or "top_k" in extra:
        modified = "top_k" if "top_k" in extra else "temperature"
        raise unsupported_value(
            modified,
            f"Claude's extended thinking (`reasoning_effort`) cannot be combined with a "
            f"modified `{modified}`.",
        )
    extra["thinking"] = {"type": "enabled", "budget_tokens": budget}
    if inference.get("maxTokens", 0) <= budget:
        inference["maxTokens"] = budget + THINKING_HEADROOM
    return extra


def _tool_config(raw: Mapping[str, Any], messages: list[dict[str, Any]]) -> dict[str, Any] | None:
    tools = raw.get("tools")
    choice = raw.get("tool_choice")
    if not tools:
        if choice not in (None, "none", "auto"):
            raise invalid("tool_choice", "`tool_choice` requires `tools`.")
        return None
    if choice == "none":
        # Converse has no `none`: without the tools the model cannot call one; but a
        # conversation that holds tool calls needs them declared.
        if any("toolUse" in b or "toolResult" in b for m in messages for b in m["content"]):
            raise unsupported_value(
                "tool_choice",
                "Bedrock's Converse API has no `tool_choice: none` for a conversation that "
                "holds tool calls.",
            )
        return None
    specs = []
    for i, tool in enumerate(tools):
        if tool.get("type") != "function":
            raise unsupported(f"tools[{i}].type", "Bedrock's Converse API takes function tools.")
        function = tool["function"]
        spec: dict[str, Any] = {"name": function["name"]}
        if function.get("description"):
            spec["description"] = function["description"]
        schema = function.get("parameters") or {"type": "object", "properties": {}}
        spec["inputSchema"] = {"json": schema}
        specs.append({"toolSpec": spec})
    config: dict[str, Any] = {"tools": specs}
    if raw.get("parallel_tool_calls") is False:
        raise unsupported(
            "parallel_tool_calls", "Bedrock's Converse API cannot turn parallel tool calls off."
        )
    if choice == "required":
        config["toolChoice"] = {"any": {}}
    elif choice == "auto":
        config["toolChoice"] = {"auto": {}}
    elif isinstance(choice, Mapping):
        function = choice.get("function")
        if choice.get("type") != "function" or not isinstance(function, Mapping):
            raise unsupported("tool_choice", "Bedrock supports only a named function tool_choice.")
        name = function.get("name")
        if not isinstance(name, str):
            raise invalid("tool_choice.function.name", "Missing tool name.")
        config["toolChoice"] = {"tool": {"name": name}}
    return config


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
            blocks = _reasoning(message, where)
            blocks += _blocks(content, where, ("text", "refusal"))
            blocks += _tool_uses(message.get("tool_calls") or (), where)
        elif role == "tool":
            if isinstance(content, str):
                result = [{"text": content}]
            else:
                result = _blocks(content, where, ("text",)) or [{"text": ""}]
            blocks = [{"toolResult": {"toolUseId": message["tool_call_id"], "content": result}}]
            role = "user"
        else:
            raise unsupported(f"{where}.role", f"Bedrock's Converse API has no `{role}` messages.")
        if not blocks:
            continue
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"] += blocks
        else:
            turns.append({"role": role, "content": blocks})
    return system, turns


def _blocks(content: Any, where: str, allowed: tuple[str, ...]) -> list[dict[str, Any]]:
    # Converse refuses blank text blocks, so empty strings are left out.
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}] if content else []
    out: list[dict[str, Any]] = []
    documents = 0
    for j, part in enumerate(content):
        kind = part["type"]
        at = f"{where}.content[{j}]"
        if kind not in allowed:
            raise unsupported(at, f"Bedrock's Converse API cannot take a `{kind}` part here.")
        if kind == "image_url":
            out.append(_image(part.get("image_url"), f"{at}.image_url"))
        elif kind == "file":
            documents += 1
            out.append(_document(part.get("file"), f"{at}.file", documents))
        else:
            text = part.get(kind)
            if not isinstance(text, str):
                raise invalid(f"{at}.{kind}", f"Missing `{kind}` string.")
            if text:
                out.append({"text": text})
    return out


def _base64(url: Any) -> tuple[str, str]:
    """(bare lower-case media type, base64 data) of a data URL; ("", "") for anything else."""
    parsed = from_data_url(url) if isinstance(url, str) else None
    if parsed is None:
        return "", ""
    return parsed[0].partition(";")[0].lower(), parsed[1]


def _image(image: Any, param: str) -> dict[str, Any]:
    url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str):
        raise invalid(param, "Missing image URL.")
    media_type, data = _base64(url)
    if media_type not in IMAGE_FORMATS:
        raise unsupported_value(
            param,
            "Bedrock's Converse API takes images as base64 data URLs of JPEG, PNG, GIF or "
            "WebP (no http(s) URLs).",
        )
    return {"image": {"format": IMAGE_FORMATS[media_type], "source": {"bytes": data}}}


def _document(file: Any, param: str, number: int) -> dict[str, Any]:
    media_type, data = _base64(file.get("file_data") if isinstance(file, dict) else None)
    if media_type != "application/pdf":
        raise unsupported_value(param, "Bedrock takes files as base64 PDF data URLs only.")
    # The name must be unique in the request; Converse allows letters, digits and a few marks.
    return {"document": {"format": "pdf", "name": f"document {number}", "source": {"bytes": data}}}


def _reasoning(message: Mapping[str, Any], where: str) -> list[dict[str, Any]]:
    """An assistant turn's signed reasoning (`thinking_blocks`, or `reasoning_details`) as
    Converse `reasoningContent` blocks, signatures and redacted bytes intact."""
    out: list[dict[str, Any]] = []
    for block in thinking_blocks(message, where):
        if block["type"] == "thinking":
            text = {"text": block["thinking"], "signature": block["signature"]}
            out.append({"reasoningContent": {"reasoningText": text}})
        else:
            out.append({"reasoningContent": {"redactedContent": block["data"]}})
    return out


def _tool_uses(calls: Any, where: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for j, call in enumerate(calls):
        at = f"{where}.tool_calls[{j}]"
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or call.get("type", "function") != "function":
            raise unsupported(at, "Bedrock's Converse API takes function tool calls only.")
        arguments = from_arguments(function.get("arguments"))
        if arguments is None:
            raise invalid(
                f"{at}.function.arguments", "Tool call arguments must be a JSON object for Bedrock."
            )
        use = {"toolUseId": call.get("id"), "name": function.get("name"), "input": arguments}
        out.append({"toolUse": use})
    return out
