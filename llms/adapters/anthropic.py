"""Anthropic Messages API (`POST /v1/messages`, SSE with named events), protocol.md §3.3.

Requests: system/developer messages become `system`; user, assistant and tool turns become content
blocks (consecutive same-role turns merged, so the tool results of one turn share a user message);
tools, tool_choice, stop, sampling and `reasoning_effort` (-> `thinking`) are translated; a
parameter Anthropic cannot honour is refused with a 400 naming it. Streams: `text_delta` ->
`content`, `thinking_delta` -> `reasoning_content`, client `tool_use` blocks -> tool calls numbered
by the gateway, `stop_reason` -> `finish_reason`, usage with cached input counted as prompt tokens.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import orjson

from llms.adapters.base import Framing, StreamContext, UpstreamRequest, from_http_status
from llms.chunks import (
    delta_chunk,
    finish_chunk,
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
from llms.framing import SSEEvent
from llms.wire import ChatRequest, Chunk, Delta, FinishReason, Usage

FRAMING: Framing = "sse"

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
FINISH_REASONS: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
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
# Anthropic error types that say no more than the status does: not passed on as `code`.
GENERIC_ERROR_TYPES = frozenset(("invalid_request_error", "rate_limit_error", "api_error", "error"))


def _unsupported(param: str, message: str, code: str = "unsupported_parameter") -> InvalidRequest:
    return InvalidRequest(message, param=param, code=code)


def build_request(
    request: ChatRequest, provider: ProviderConfig, upstream_model: str
) -> UpstreamRequest:
    """The streaming `/v1/messages` request for a validated OpenAI chat request."""
    raw = cast(Mapping[str, Any], request)
    _refuse_unsupported(raw)
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
            raise _unsupported(
                "temperature",
                f"Anthropic accepts `temperature` from 0 to 1, got {temperature}.",
                "unsupported_value",
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
            raise _unsupported(
                modified,
                f"Anthropic's extended thinking (`reasoning_effort`) cannot be combined with a "
                f"modified `{modified}`.",
                "unsupported_value",
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
    return UpstreamRequest("POST", f"{provider.base_url}/v1/messages", headers, orjson.dumps(body))


def _refuse_unsupported(raw: Mapping[str, Any]) -> None:
    n = raw.get("n")
    if n is not None and n != 1:
        raise _unsupported("n", "Anthropic returns one choice per request: `n` must be 1.")
    for name in UNSUPPORTED:
        if raw.get(name):
            raise _unsupported(name, f"The Anthropic Messages API has no `{name}` parameter.")
    if raw.get("seed") is not None:
        raise _unsupported("seed", "The Anthropic Messages API has no `seed` parameter.")
    if any(m != "text" for m in raw.get("modalities") or ()):
        raise _unsupported("modalities", "Anthropic models answer with text only.")
    fmt = raw.get("response_format")
    if fmt and fmt.get("type") != "text":
        raise _unsupported(
            "response_format",
            f"The Anthropic Messages API has no JSON output mode (`{fmt.get('type')}`); "
            "describe the format in the prompt or use a tool.",
        )


def _thinking_budget(effort: Any) -> int | None:
    if effort is None:
        return None
    if not isinstance(effort, str) or effort not in THINKING_BUDGETS:
        raise InvalidRequest(
            f"Invalid 'reasoning_effort': expected one of {', '.join(THINKING_BUDGETS)}.",
            param="reasoning_effort",
            code="invalid_value",
        )
    return THINKING_BUDGETS[effort]


def _add_tools(raw: Mapping[str, Any], body: dict[str, Any]) -> None:
    tools = raw.get("tools")
    choice = raw.get("tool_choice")
    if not tools:
        if choice not in (None, "none", "auto"):
            raise _unsupported("tool_choice", "`tool_choice` requires `tools`.", "invalid_value")
        return
    specs = []
    for i, tool in enumerate(tools):
        if tool.get("type") != "function":
            raise _unsupported(f"tools[{i}].type", "Anthropic takes function tools only.")
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
        raise _unsupported("tool_choice", "Anthropic supports only a named function tool_choice.")
    name = function.get("name")
    if not isinstance(name, str):
        raise _unsupported("tool_choice.function.name", "Missing tool name.", "invalid_value")
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
            blocks = _blocks(content, where, ("text", "refusal"))
            blocks += _tool_uses(message.get("tool_calls") or (), where)
        elif role == "tool":
            result = content if isinstance(content, str) else _blocks(content, where, ("text",))
            blocks = [
                {"type": "tool_result", "tool_use_id": message["tool_call_id"], "content": result}
            ]
            role = "user"
        else:
            raise _unsupported(f"{where}.role", f"Anthropic has no `{role}` messages.")
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
            raise _unsupported(at, f"Anthropic cannot take a `{kind}` part here.")
        if kind == "image_url":
            out.append(_image(part.get("image_url"), f"{at}.image_url"))
        elif kind == "file":
            out.append(_document(part.get("file"), f"{at}.file"))
        else:
            text = part.get(kind)
            if not isinstance(text, str):
                raise _unsupported(f"{at}.{kind}", f"Missing `{kind}` string.", "invalid_value")
            if text:
                out.append({"type": "text", "text": text})
    return out


def _image(image: Any, param: str) -> dict[str, Any]:
    url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str):
        raise _unsupported(param, "Missing image URL.", "invalid_value")
    if url.startswith(("https://", "http://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    media_type, data = _data_url(url)
    if media_type not in IMAGE_TYPES:
        raise _unsupported(
            param,
            "Anthropic takes http(s) URLs and base64 data URLs of JPEG, PNG, GIF or WebP images.",
            "unsupported_value",
        )
    return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}


def _document(file: Any, param: str) -> dict[str, Any]:
    data_url = file.get("file_data") if isinstance(file, dict) else None
    media_type, data = _data_url(data_url if isinstance(data_url, str) else "")
    if media_type != "application/pdf":
        raise _unsupported(
            param, "Anthropic takes files as base64 PDF data URLs only.", "unsupported_value"
        )
    return {
        "type": "document",
        "source": {"type": "base64", "media_type": media_type, "data": data},
    }


def _data_url(url: str) -> tuple[str, str]:
    """(media type, base64 data) of a `data:<type>;base64,<data>` URL; ("", "") otherwise."""
    if not url.startswith("data:"):
        return "", ""
    header, _, data = url[5:].partition(",")
    if not header.endswith(";base64"):
        return "", ""
    return header.partition(";")[0].lower(), data


def _tool_uses(calls: Any, where: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for j, call in enumerate(calls):
        at = f"{where}.tool_calls[{j}]"
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or call.get("type", "function") != "function":
            raise _unsupported(at, "Anthropic takes function tool calls only.")
        arguments = function.get("arguments") or "{}"
        if isinstance(arguments, str):
            try:
                arguments = orjson.loads(arguments)
            except orjson.JSONDecodeError:
                arguments = None
        if not isinstance(arguments, dict):
            raise _unsupported(
                f"{at}.function.arguments",
                "Tool call arguments must be a JSON object for Anthropic.",
                "invalid_value",
            )
        block = {"type": "tool_use", "id": call.get("id"), "name": function.get("name")}
        block["input"] = arguments
        out.append(block)
    return out


def from_error_response(status: int, headers: Mapping[str, str], body: bytes) -> UpstreamHTTPError:
    """Map Anthropic's `{"type": "error", "error": {"type", "message"}}`; 529 counts as 503."""
    message, kind = _error_fields(body)
    code = None if kind is None or kind in GENERIC_ERROR_TYPES else kind
    return from_http_status(503 if status == 529 else status, headers, message, code=code)


def _error_fields(body: bytes) -> tuple[str | None, str | None]:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body.decode("utf-8", "replace").strip()[:500] or None, None
    error = data.get("error", data) if isinstance(data, dict) else data
    if isinstance(error, dict):
        message, kind = error.get("message"), error.get("type")
        return (
            message if isinstance(message, str) else None,
            kind if isinstance(kind, str) else None,
        )
    return (error if isinstance(error, str) else None), None


def new_converter(context: StreamContext) -> Converter:
    return Converter(context)


class Converter:
    """Turns one Anthropic event stream into OpenAI chunks (a single choice)."""

    __slots__ = (
        "_cache_read",
        "_cache_write",
        "_calls",
        "_ctx",
        "_input",
        "_opened",
        "_output",
        "_stop",
        "_thinking",
        "_tools",
        "done",
        "usage",
    )

    def __init__(self, context: StreamContext) -> None:
        self._ctx = context
        self._opened = False
        # Content block index -> gateway tool-call index, for client tool_use blocks only
        # (server tool blocks also get input_json_delta, which the client must not see).
        self._tools: dict[int, int] = {}
        self._calls = 0
        self._stop: str | None = None
        self._input = self._cache_read = self._cache_write = self._output = 0
        self._thinking: int | None = None
        self.done = False
        self.usage: Usage | None = None

    def feed(self, event: SSEEvent) -> list[Chunk]:
        if event.event == "ping" or self.done:
            return []
        try:
            obj = orjson.loads(event.data)
        except orjson.JSONDecodeError:
            raise UpstreamMalformed(
                f"The upstream sent an event that is not JSON: {event.data[:200]!r}"
            ) from None
        if not isinstance(obj, dict):
            raise UpstreamMalformed("The upstream sent an event that is not a JSON object.")
        kind = obj.get("type", event.event)
        if kind == "content_block_delta":
            return self._delta(obj)
        if kind == "content_block_start":
            return self._block(obj)
        if kind == "message_start":
            message = obj.get("message")
            if isinstance(message, dict) and isinstance(message.get("usage"), dict):
                self._count(message["usage"])
            if self._opened:
                return []
            self._opened = True
            return [role_chunk(self._ctx.meta)]
        if kind == "message_delta":
            delta = obj.get("delta")
            if isinstance(delta, dict) and delta.get("stop_reason"):
                self._stop = delta["stop_reason"]
            if isinstance(obj.get("usage"), dict):
                self._count(obj["usage"])
            return []
        if kind == "message_stop":
            return self._finish()
        if kind == "error":
            raise _stream_error(obj)
        return []

    def close(self) -> list[Chunk]:
        if self.done:
            return []
        raise UpstreamIncomplete("The upstream ended the stream before `message_stop`.")

    def _emit(self, delta: Delta) -> list[Chunk]:
        item = delta_chunk(self._ctx.meta, delta)
        if self._opened:
            return [item]
        self._opened = True
        return [role_chunk(self._ctx.meta), item]

    def _delta(self, obj: dict[str, Any]) -> list[Chunk]:
        delta = obj.get("delta")
        if not isinstance(delta, dict):
            raise UpstreamMalformed("The upstream sent a content_block_delta without a delta.")
        kind = delta.get("type")
        if kind == "text_delta":
            text = delta.get("text")
            return self._emit({"content": text}) if text else []
        if kind == "input_json_delta":
            index = self._tools.get(obj.get("index", -1))
            partial = delta.get("partial_json")
            if index is None or not partial:
                return []
            return self._emit({"tool_calls": [tool_call_delta(index, arguments=partial)]})
        if kind == "thinking_delta":
            thinking = delta.get("thinking")
            return self._emit({"reasoning_content": thinking}) if thinking else []
        # signature_delta and citations_delta: only needed to replay a turn to Anthropic.
        return []

    def _block(self, obj: dict[str, Any]) -> list[Chunk]:
        block = obj.get("content_block")
        if not isinstance(block, dict):
            raise UpstreamMalformed("The upstream sent a content_block_start without a block.")
        kind = block.get("type")
        if kind == "tool_use":
            index = self._calls
            self._calls += 1
            whole = block.get("input")
            if whole:
                # The whole input came with the start: later input_json_delta would repeat it.
                arguments = orjson.dumps(whole).decode()
            else:
                arguments = ""
                self._tools[obj.get("index", -1)] = index
            call = tool_call_delta(
                index,
                id=block.get("id") or new_call_id(),
                name=block.get("name"),
                arguments=arguments,
            )
            return self._emit({"tool_calls": [call]})
        if kind == "text" and block.get("text"):
            return self._emit({"content": block["text"]})
        if kind == "thinking" and block.get("thinking"):
            return self._emit({"reasoning_content": block["thinking"]})
        # redacted_thinking and server tool blocks are not part of the OpenAI answer.
        return []

    def _count(self, usage: dict[str, Any]) -> None:
        # Every usage object is cumulative: the last value of each field wins.
        value = usage.get("input_tokens")
        if isinstance(value, int):
            self._input = value
        value = usage.get("cache_read_input_tokens")
        if isinstance(value, int):
            self._cache_read = value
        value = usage.get("cache_creation_input_tokens")
        if isinstance(value, int):
            self._cache_write = value
        value = usage.get("output_tokens")
        if isinstance(value, int):
            self._output = value
        details = usage.get("output_tokens_details")
        if isinstance(details, dict) and isinstance(details.get("thinking_tokens"), int):
            self._thinking = details["thinking_tokens"]
        self.usage = self._usage()

    def _usage(self) -> Usage:
        # Anthropic's input_tokens excludes cache reads and writes; OpenAI's prompt includes them.
        prompt = self._input + self._cache_read + self._cache_write
        prompt_details = {"cached_tokens": self._cache_read}
        if self._cache_write:
            prompt_details["cache_write_tokens"] = self._cache_write
        usage: Usage = {
            "prompt_tokens": prompt,
            "completion_tokens": self._output,
            "total_tokens": prompt + self._output,
            "prompt_tokens_details": prompt_details,
        }
        if self._thinking is not None:
            usage["completion_tokens_details"] = {"reasoning_tokens": self._thinking}
        return usage

    def _finish(self) -> list[Chunk]:
        self.done = True
        meta = self._ctx.meta
        reason = FINISH_REASONS.get(self._stop or "end_turn", "stop")
        if reason == "stop" and self._calls:
            reason = "tool_calls"
        out = [] if self._opened else [role_chunk(meta)]
        self._opened = True
        out.append(finish_chunk(meta, reason))
        if self.usage is None:
            self.usage = self._usage()
        if self._ctx.include_usage:
            out.append(usage_chunk(meta, self.usage))
        return out


def _stream_error(obj: dict[str, Any]) -> UpstreamStreamError:
    error = obj.get("error")
    message = kind = None
    if isinstance(error, dict):
        message, kind = error.get("message"), error.get("type")
    failure = UpstreamStreamError(
        message if isinstance(message, str) and message else "The upstream reported an error.",
        code=kind if isinstance(kind, str) else None,
    )
    # An overloaded or failing Anthropic is worth another attempt while nothing has reached the
    # client (routing never retries after the commit); overloaded is a 503 like HTTP 529.
    if kind in ("overloaded_error", "api_error"):
        failure.retryable = True
        if kind == "overloaded_error":
            failure.status = 503
    return failure
