"""The Ollama `/api/chat` request for an OpenAI chat request (protocol.md §3.2).

Sampling settings move into `options`, images become raw base64 on the message, tool-call
arguments become objects, tool results carry the function's name; what Ollama cannot honour is
refused with a 400 naming it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from llms.adapters.base import UpstreamRequest
from llms.adapters.messages import from_arguments, from_data_url, invalid, tool_name, unsupported
from llms.config import ProviderConfig
from llms.wire import ChatRequest, Message

# OpenAI effort -> Ollama `think`. Ollama knows low/medium/high/max; the OpenAI levels between
# them round up, so the model never thinks less than the client asked for.
_THINK: dict[str, bool | str] = dict(
    none=False, minimal="low", low="low", medium="medium", high="high", xhigh="max", max="max"
)
_OPTIONS = ("temperature", "top_p", "seed", "frequency_penalty", "presence_penalty")


def build_request(
    request: ChatRequest, provider: ProviderConfig, upstream_model: str
) -> UpstreamRequest:
    """The `/api/chat` request for a validated OpenAI request; always streaming."""
    _refuseunsupported(request)
    body: dict[str, Any] = {
        "model": upstream_model,
        "messages": to_messages(request["messages"]),
        "stream": True,
    }
    options = _options(request)
    if options:
        body["options"] = options
    tools = request.get("tools")
    # Ollama has no tool_choice: "none" is honoured by not offering the tools at all.
    if tools and request.get("tool_choice") != "none":
        for i, tool in enumerate(tools):
            if not isinstance(tool, dict) or tool.get("type") != "function":
                raise unsupported(f"tools[{i}].type", "Ollama accepts only function tools.")
        body["tools"] = tools
    fmt = _format(request.get("response_format"))
    if fmt is not None:
        body["format"] = fmt
    effort = request.get("reasoning_effort")
    if effort is not None:
        if not isinstance(effort, str) or effort not in _THINK:
            raise invalid("reasoning_effort", f"Expected one of {', '.join(_THINK)}.")
        body["think"] = _THINK[effort]
    if request.get("logprobs"):
        body["logprobs"] = True
        top = request.get("top_logprobs")
        if top:
            body["top_logprobs"] = top
    headers = to_headers(provider, "application/x-ndjson", json_body=True)
    return UpstreamRequest("POST", f"{provider.base_url}/api/chat", headers, orjson.dumps(body))


def to_headers(provider: ProviderConfig, accept: str, *, json_body: bool) -> dict[str, str]:
    """The headers of a request to the Ollama server: `accept`, the key, the provider's own."""
    headers = {"Accept": accept}
    if json_body:
        headers["Content-Type"] = "application/json"
    if provider.api_key:
        headers["Authorization"] = f"Bearer {provider.api_key}"
    headers.update(provider.headers)
    return headers


def _refuseunsupported(request: Mapping[str, Any]) -> None:
    """Fields Ollama cannot honour: a 400 naming them beats an answer that means otherwise."""
    n = request.get("n")
    if n is not None and n > 1:
        raise unsupported("n", "Ollama generates one choice per request; `n` must be 1.")
    choice = request.get("tool_choice")
    if choice is not None and choice not in ("auto", "none"):
        raise unsupported("tool_choice", "Ollama cannot force a tool call: use 'auto' or 'none'.")
    if request.get("parallel_tool_calls") is False and request.get("tools"):
        raise unsupported("parallel_tool_calls", "Ollama cannot limit the model to one call.")
    if request.get("logit_bias"):
        raise unsupported("logit_bias", "Ollama does not support `logit_bias`.")
    if request.get("audio") or any(m != "text" for m in request.get("modalities") or ()):
        raise unsupported("modalities", "Ollama answers with text only.")
    for name in ("functions", "function_call"):
        if request.get(name):
            raise unsupported(name, f"`{name}` is deprecated; send `tools` instead.")
    if request.get("web_search_options") is not None:
        raise unsupported("web_search_options", "Ollama models cannot search the web.")


def _options(request: Mapping[str, Any]) -> dict[str, Any]:
    # Unset fields stay unset so the model's own Modelfile parameters apply.
    options: dict[str, Any] = {}
    limit = request.get("max_completion_tokens")
    if limit is None:
        limit = request.get("max_tokens")
    if limit is not None:
        options["num_predict"] = limit
    stop = request.get("stop")
    if stop:
        options["stop"] = [stop] if isinstance(stop, str) else list(stop)
    for name in _OPTIONS:
        value = request.get(name)
        if value is not None:
            options[name] = value
    return options


def _format(response_format: Any) -> Any:
    if response_format is None:
        return None
    kind = response_format.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return "json"
    if kind == "json_schema":
        spec = response_format.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if schema is None:
            return "json"
        if not isinstance(schema, dict):
            raise invalid("response_format.json_schema.schema", "Expected a JSON object.")
        return schema
    raise unsupported("response_format.type", f"Ollama does not support response_format {kind!r}.")


def to_messages(messages: list[Message]) -> list[dict[str, Any]]:
    """OpenAI messages as Ollama messages (roles system, user, assistant, tool)."""
    out: list[dict[str, Any]] = []
    for i, typed in enumerate(messages):
        # Clients send fields beyond the TypedDict (`reasoning_content`): read it as a mapping.
        message: Mapping[str, Any] = typed
        where = f"messages[{i}]"
        role = message.get("role")
        content = message.get("content")
        item: dict[str, Any]
        if role == "user":
            text, images = _user_content(content, where)
            item = {"role": "user", "content": text}
            if images:
                item["images"] = images
        elif role == "assistant":
            item = {"role": "assistant", "content": _text(content, where)}
            reasoning = message.get("reasoning_content") or message.get("reasoning")
            if isinstance(reasoning, str) and reasoning:
                item["thinking"] = reasoning
            calls = message.get("tool_calls")
            if calls:
                item["tool_calls"] = [
                    _tool_call(call, f"{where}.tool_calls[{k}]", k) for k, call in enumerate(calls)
                ]
        elif role in ("tool", "function"):
            # `function` is the deprecated form of a tool result: it names the function itself.
            item = {"role": "tool", "content": _text(content, where)}
            call_id = message.get("tool_call_id")
            if call_id:
                item["tool_call_id"] = call_id
            # The result says which function answered: its own name, else its call's.
            name = message.get("name") or (tool_name(messages, i, call_id) if call_id else None)
            if name:
                item["tool_name"] = name
        else:
            # system and developer: Ollama has one role for both.
            item = {"role": "system", "content": _text(content, where)}
        out.append(item)
    return out


def _text(content: Any, where: str) -> str:
    """A string content, or the text (and refusal) parts joined with newlines."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    texts: list[str] = []
    for j, part in enumerate(content):
        kind = part.get("type")
        if kind in ("text", "refusal"):
            value = part.get(kind)
            if not isinstance(value, str):
                raise invalid(f"{where}.content[{j}].{kind}", f"Expected a string in '{kind}'.")
            texts.append(value)
        else:
            raise unsupported(f"{where}.content[{j}].type", f"Ollama cannot take {kind!r} here.")
    return "\n".join(texts)


def _user_content(content: Any, where: str) -> tuple[str, list[str]]:
    if not isinstance(content, list):
        return _text(content, where), []
    texts: list[Any] = []
    images: list[str] = []
    for j, part in enumerate(content):
        if part.get("type") == "image_url":
            images.append(_image(part.get("image_url"), f"{where}.content[{j}].image_url"))
        else:
            texts.append(part)
    return _text(texts, where) if texts else "", images


def _image(image_url: Any, param: str) -> str:
    """The raw base64 of a `data:image/...;base64,` URL: the only image form Ollama takes."""
    url = image_url.get("url") if isinstance(image_url, dict) else image_url
    if not isinstance(url, str):
        raise invalid(param, "Expected an object with a 'url' string.")
    if url.startswith(("http://", "https://")):
        raise unsupported(param, "Ollama does not fetch image URLs: send a base64 data URL.")
    parsed = from_data_url(url)
    if parsed is None or not parsed[1]:
        raise invalid(param, "Expected a base64 data URL (data:image/png;base64,...).")
    mime, data = parsed
    if mime and not mime.startswith("image/"):
        raise invalid(param, f"Expected an image, got {mime!r}.")
    return data


def _tool_call(call: Any, where: str, index: int) -> dict[str, Any]:
    if not isinstance(call, dict) or call.get("type", "function") != "function":
        raise unsupported(f"{where}.type", "Ollama accepts only function tool calls.")
    function = call.get("function")
    name = function.get("name") if isinstance(function, dict) else None
    if not isinstance(name, str) or not name:
        raise invalid(f"{where}.function.name", "A tool call needs a function name.")
    arguments = from_arguments(function.get("arguments"))  # type: ignore[union-attr]
    if arguments is None:
        raise invalid(f"{where}.function.arguments", "Expected a JSON object, as a string.")
    out: dict[str, Any] = {"function": {"index": index, "name": name, "arguments": arguments}}
    call_id = call.get("id")
    if isinstance(call_id, str) and call_id:
        out["id"] = call_id
    return out
