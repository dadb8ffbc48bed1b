"""Ollama's native API: `POST /api/chat` (NDJSON stream) and model discovery (`GET /api/tags`).

The request is the OpenAI one rewritten in Ollama's terms (protocol.md §3.2): sampling settings
move into `options`, images become raw base64 on the message, tool-call arguments become
objects, tool results carry the function's name. Each NDJSON line of the answer becomes OpenAI
chunks: reasoning (`message.thinking`) before content, every tool call whole in one chunk, and
the final `done: true` line becomes the finish chunk and the usage.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from llms.adapters.base import Framing, StreamContext, UpstreamRequest, from_http_status
from llms.chunks import (
    delta_chunk,
    finish_chunk,
    make_usage,
    new_call_id,
    role_chunk,
    tool_call_delta,
    usage_chunk,
)
from llms.config import ProviderConfig
from llms.errors import (
    InvalidRequest,
    UpstreamHTTPError,
    UpstreamIncomplete,
    UpstreamMalformed,
    UpstreamStreamError,
)
from llms.wire import ChatRequest, Chunk, FinishReason, Message, Usage

FRAMING: Framing = "ndjson"

# OpenAI effort -> Ollama `think`. Ollama knows low/medium/high/max; the OpenAI levels between
# them round up, so the model never thinks less than the client asked for.
_THINK: dict[str, bool | str] = dict(
    none=False, minimal="low", low="low", medium="medium", high="high", xhigh="max", max="max"
)
_OPTIONS = ("temperature", "top_p", "seed", "frequency_penalty", "presence_penalty")
_BASE64_MARK = ";base64"


def _unsupported(param: str, message: str) -> InvalidRequest:
    return InvalidRequest(message, param=param, code="unsupported_parameter")


def _invalid(param: str, message: str) -> InvalidRequest:
    return InvalidRequest(message, param=param, code="invalid_value")


# --- the request ---------------------------------------------------------------------------------


def build_request(
    request: ChatRequest, provider: ProviderConfig, upstream_model: str
) -> UpstreamRequest:
    """The `/api/chat` request for a validated OpenAI request; always streaming."""
    _refuse_unsupported(request)
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
                raise _unsupported(f"tools[{i}].type", "Ollama accepts only function tools.")
        body["tools"] = tools
    fmt = _format(request.get("response_format"))
    if fmt is not None:
        body["format"] = fmt
    effort = request.get("reasoning_effort")
    if effort is not None:
        if not isinstance(effort, str) or effort not in _THINK:
            raise _invalid("reasoning_effort", f"Expected one of {', '.join(_THINK)}.")
        body["think"] = _THINK[effort]
    if request.get("logprobs"):
        body["logprobs"] = True
        top = request.get("top_logprobs")
        if top:
            body["top_logprobs"] = top
    headers = _headers(provider, "application/x-ndjson", json_body=True)
    return UpstreamRequest("POST", f"{provider.base_url}/api/chat", headers, orjson.dumps(body))


def _headers(provider: ProviderConfig, accept: str, *, json_body: bool) -> dict[str, str]:
    headers = {"Accept": accept}
    if json_body:
        headers["Content-Type"] = "application/json"
    if provider.api_key:
        headers["Authorization"] = f"Bearer {provider.api_key}"
    headers.update(provider.headers)
    return headers


def _refuse_unsupported(request: Mapping[str, Any]) -> None:
    """Fields Ollama cannot honour: a 400 naming them beats an answer that means otherwise."""
    n = request.get("n")
    if n is not None and n > 1:
        raise _unsupported("n", "Ollama generates one choice per request; `n` must be 1.")
    choice = request.get("tool_choice")
    if choice is not None and choice not in ("auto", "none"):
        raise _unsupported("tool_choice", "Ollama cannot force a tool call: use 'auto' or 'none'.")
    if request.get("parallel_tool_calls") is False and request.get("tools"):
        raise _unsupported("parallel_tool_calls", "Ollama cannot limit the model to one call.")
    if request.get("logit_bias"):
        raise _unsupported("logit_bias", "Ollama does not support `logit_bias`.")
    if request.get("audio") or any(m != "text" for m in request.get("modalities") or ()):
        raise _unsupported("modalities", "Ollama answers with text only.")
    for name in ("functions", "function_call"):
        if request.get(name):
            raise _unsupported(name, f"`{name}` is deprecated; send `tools` instead.")
    if request.get("web_search_options") is not None:
        raise _unsupported("web_search_options", "Ollama models cannot search the web.")


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
            raise _invalid("response_format.json_schema.schema", "Expected a JSON object.")
        return schema
    raise _unsupported("response_format.type", f"Ollama does not support response_format {kind!r}.")


def to_messages(messages: list[Message]) -> list[dict[str, Any]]:
    """OpenAI messages as Ollama messages (roles system, user, assistant, tool)."""
    out: list[dict[str, Any]] = []
    # tool_call_id -> function name, so a tool result can say which function answered.
    names: dict[str, str] = {}
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
                    _tool_call(call, f"{where}.tool_calls[{k}]", k, names)
                    for k, call in enumerate(calls)
                ]
        elif role in ("tool", "function"):
            # `function` is the deprecated form of a tool result: it names the function itself.
            item = {"role": "tool", "content": _text(content, where)}
            call_id = message.get("tool_call_id")
            if call_id:
                item["tool_call_id"] = call_id
            name = message.get("name") or names.get(call_id or "")
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
                raise _invalid(f"{where}.content[{j}].{kind}", f"Expected a string in '{kind}'.")
            texts.append(value)
        else:
            raise _unsupported(f"{where}.content[{j}].type", f"Ollama cannot take {kind!r} here.")
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
        raise _invalid(param, "Expected an object with a 'url' string.")
    if url.startswith(("http://", "https://")):
        raise _unsupported(param, "Ollama does not fetch image URLs: send a base64 data URL.")
    head, comma, data = url.partition(",")
    mime = head[5 : -len(_BASE64_MARK)] if head.endswith(_BASE64_MARK) else None
    if not (comma and head.startswith("data:") and mime is not None and data):
        raise _invalid(param, "Expected a base64 data URL (data:image/png;base64,...).")
    if mime and not mime.startswith("image/"):
        raise _invalid(param, f"Expected an image, got {mime!r}.")
    return data


def _tool_call(call: Any, where: str, index: int, names: dict[str, str]) -> dict[str, Any]:
    if not isinstance(call, dict) or call.get("type", "function") != "function":
        raise _unsupported(f"{where}.type", "Ollama accepts only function tool calls.")
    function = call.get("function")
    name = function.get("name") if isinstance(function, dict) else None
    if not isinstance(name, str) or not name:
        raise _invalid(f"{where}.function.name", "A tool call needs a function name.")
    raw = function.get("arguments") or "{}"  # type: ignore[union-attr]
    try:
        arguments = orjson.loads(raw) if isinstance(raw, str) else raw
    except orjson.JSONDecodeError:
        arguments = None
    if not isinstance(arguments, dict):
        raise _invalid(f"{where}.function.arguments", "Expected a JSON object, as a string.")
    out: dict[str, Any] = {"function": {"index": index, "name": name, "arguments": arguments}}
    call_id = call.get("id")
    if isinstance(call_id, str) and call_id:
        out["id"] = call_id
        names[call_id] = name
    return out


# --- errors and model discovery ------------------------------------------------------------------


def from_error_response(status: int, headers: Mapping[str, str], body: bytes) -> UpstreamHTTPError:
    """Map Ollama's `{"error": "<message>"}` (or a plain-text body) and its status."""
    return from_http_status(status, headers, _error_message(body))


def _error_message(body: bytes) -> str | None:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body.decode("utf-8", "replace").strip()[:500] or None
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict):
        error = error.get("message")
    return error if isinstance(error, str) else None


def models_request(provider: ProviderConfig) -> UpstreamRequest:
    """`GET /api/tags`: the models the Ollama server has pulled."""
    headers = _headers(provider, "application/json", json_body=False)
    return UpstreamRequest("GET", f"{provider.base_url}/api/tags", headers, b"")


def from_models_response(body: bytes) -> list[str]:
    """Model names from `{"models": [{"name": "llama3.2:latest", ...}]}`, in server order."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise UpstreamMalformed("Ollama's model list is not JSON.") from None
    models = data.get("models", ()) if isinstance(data, dict) else ()
    # Go encodes an empty list as null.
    models = [] if models is None else models
    if not isinstance(models, list):
        raise UpstreamMalformed("Ollama's model list has no `models` array.")
    names: list[str] = []
    for item in models:
        name = item.get("name") or item.get("model") if isinstance(item, dict) else None
        if not isinstance(name, str) or not name:
            raise UpstreamMalformed("An entry of Ollama's model list has no name.")
        names.append(name)
    return list(dict.fromkeys(names))


# --- the stream ----------------------------------------------------------------------------------


def new_converter(context: StreamContext) -> Converter:
    return Converter(context)


class Converter:
    """Turns one `/api/chat` NDJSON stream into OpenAI chunks; ends at the `done: true` line."""

    __slots__ = ("_calls", "_ctx", "_ids", "_started", "done", "usage")

    def __init__(self, context: StreamContext) -> None:
        self._ctx = context
        self._started = False
        self._calls = 0
        self._ids: set[str] = set()
        self.done = False
        self.usage: Usage | None = None

    def feed(self, event: bytes) -> list[Chunk]:
        if self.done:
            return []
        try:
            obj = orjson.loads(event)
        except orjson.JSONDecodeError:
            raise UpstreamMalformed(
                f"Ollama sent a line that is not JSON: {event[:200]!r}"
            ) from None
        if not isinstance(obj, dict):
            raise UpstreamMalformed("Ollama sent a line that is not a JSON object.")
        error = obj.get("error")
        if error:
            if isinstance(error, dict):
                error = error.get("message") or "Ollama reported an error."
            raise UpstreamStreamError(str(error))
        meta = self._ctx.meta
        out: list[Chunk] = []
        if not self._started:
            self._started = True
            out.append(role_chunk(meta))
        message = obj.get("message")
        if message is not None:
            if not isinstance(message, dict):
                raise UpstreamMalformed("Ollama sent a `message` that is not an object.")
            thinking = message.get("thinking")
            if thinking:
                out.append(delta_chunk(meta, {"reasoning_content": _string(thinking)}))
            content = message.get("content")
            logprobs = _logprobs(obj.get("logprobs"))
            if content or logprobs:
                item = delta_chunk(meta, {"content": _string(content or "")})
                item["choices"][0]["logprobs"] = logprobs
                out.append(item)
            calls = message.get("tool_calls")
            if calls:
                out += self._tool_chunks(calls)
        if obj.get("done") is True:
            out += self._finish(obj)
        return out

    def close(self) -> list[Chunk]:
        if self.done:
            return []
        raise UpstreamIncomplete("Ollama ended the stream before its final `done: true` line.")

    def _tool_chunks(self, calls: Any) -> list[Chunk]:
        if not isinstance(calls, list):
            raise UpstreamMalformed("Ollama sent `tool_calls` that is not a list.")
        meta = self._ctx.meta
        out: list[Chunk] = []
        for call in calls:
            function = call.get("function") if isinstance(call, dict) else None
            name = function.get("name") if isinstance(function, dict) else None
            if not isinstance(name, str) or not name:
                raise UpstreamMalformed("Ollama sent a tool call without a function name.")
            args = function.get("arguments")  # type: ignore[union-attr]
            if args is None:
                arguments = "{}"
            elif isinstance(args, str):
                arguments = args
            else:
                arguments = orjson.dumps(args).decode()
            call_id = call.get("id")
            # Older servers send no id; a repeated one would make tool results ambiguous.
            if not isinstance(call_id, str) or not call_id or call_id in self._ids:
                call_id = new_call_id()
            self._ids.add(call_id)
            delta = tool_call_delta(self._calls, id=call_id, name=name, arguments=arguments)
            out.append(delta_chunk(meta, {"tool_calls": [delta]}))
            self._calls += 1
        return out

    def _finish(self, obj: dict[str, Any]) -> list[Chunk]:
        self.done = True
        meta = self._ctx.meta
        reason: FinishReason = "stop"
        if obj.get("done_reason") == "length":
            reason = "length"
        elif self._calls:
            reason = "tool_calls"
        usage = make_usage(_count(obj.get("prompt_eval_count")), _count(obj.get("eval_count")))
        self.usage = usage
        out = [finish_chunk(meta, reason)]
        if self._ctx.include_usage:
            out.append(usage_chunk(meta, usage))
        return out


def _string(value: Any) -> str:
    if not isinstance(value, str):
        raise UpstreamMalformed("Ollama sent message text that is not a string.")
    return value


def _count(value: Any) -> int:
    # Both counts are `omitempty` in Ollama: missing means 0.
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _logprobs(items: Any) -> dict[str, Any] | None:
    """Ollama's per-line `logprobs` in OpenAI's `choices[].logprobs` shape."""
    if not items or not isinstance(items, list):
        return None
    content = [
        {**_token(item), "top_logprobs": [_token(top) for top in item.get("top_logprobs") or ()]}
        for item in items
    ]
    return {"content": content, "refusal": None}


def _token(item: Any) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise UpstreamMalformed("Ollama sent a `logprobs` entry that is not an object.")
    return {
        "token": item.get("token", ""),
        "logprob": item.get("logprob"),
        "bytes": item.get("bytes"),
    }
