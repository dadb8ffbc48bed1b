"""Ollama's native API: `POST /api/chat` (NDJSON stream) and model discovery (`GET /api/tags`).

The request is the OpenAI one rewritten in Ollama's terms by `ollama_request`. Each NDJSON line
of the answer becomes OpenAI chunks: reasoning (`message.thinking`) before content, every tool
call whole in one chunk, and the final `done: true` line becomes the finish chunk and the usage.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from llms.adapters.base import (
    Framing,
    StreamContext,
    UpstreamRequest,
    from_error_text,
    from_http_status,
)
from llms.adapters.ollama_request import build_request, to_headers
from llms.adapters.usage import from_counts
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
    UpstreamHTTPError,
    UpstreamIncomplete,
    UpstreamMalformed,
    UpstreamStreamError,
)
from llms.wire import Chunk, FinishReason, Usage

__all__ = [
    "FRAMING",
    "Converter",
    "build_request",
    "from_error_response",
    "from_models_response",
    "models_request",
    "new_converter",
]

FRAMING: Framing = "ndjson"

# --- errors and model discovery ------------------------------------------------------------------


def from_error_response(status: int, headers: Mapping[str, str], body: bytes) -> UpstreamHTTPError:
    """Map Ollama's `{"error": "<message>"}` (or a plain-text body) and its status."""
    return from_http_status(status, headers, _error_message(body))


def _error_message(body: bytes) -> str | None:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return from_error_text(body)
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict):
        error = error.get("message")
    return error if isinstance(error, str) else None


def models_request(provider: ProviderConfig) -> UpstreamRequest:
    """`GET /api/tags`: the models the Ollama server has pulled."""
    headers = to_headers(provider, "application/json", json_body=False)
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
        out = self._feed(event)
        if out and self._ctx.include_usage:
            # As OpenAI does: every chunk says `"usage": null` until the usage chunk.
            for item in out:
                item.setdefault("usage", None)
        return out

    def _feed(self, event: bytes) -> list[Chunk]:
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
        # Both counts are `omitempty` in Ollama: missing means 0.
        usage = from_counts(obj.get("prompt_eval_count", 0), obj.get("eval_count", 0))
        self.usage = usage
        out = [finish_chunk(meta, reason)]
        if self._ctx.include_usage and usage is not None:
            out.append(usage_chunk(meta, usage))
        return out


def _string(value: Any) -> str:
    if not isinstance(value, str):
        raise UpstreamMalformed("Ollama sent message text that is not a string.")
    return value


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
