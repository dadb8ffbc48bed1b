"""Anthropic Messages API (`POST /v1/messages`, SSE with named events), protocol.md §3.3.

The request is built in `anthropic_request`. Streams: `text_delta` -> `content`,
`thinking_delta` -> `reasoning_content`, client `tool_use` blocks -> tool calls numbered by the
gateway, `stop_reason` -> `finish_reason`, usage with cached input counted as prompt tokens.
A thinking block's `signature_delta` and a `redacted_thinking` block reach the client in the
delta extension `thinking_blocks` (`{"type": "thinking", "thinking", "signature"}`, the block's
whole text with its signature, or `{"type": "redacted_thinking", "data"}`), which
`anthropic_request` replays: Anthropic wants them back before a tool_use when thinking is on.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any

import orjson

from llms.adapters.anthropic_request import build_request
from llms.adapters.base import (
    Framing,
    StreamContext,
    from_error_text,
    from_http_status,
    from_json_event,
)
from llms.adapters.usage import from_count, from_counts
from llms.chunks import (
    delta_chunk,
    finish_chunk,
    new_call_id,
    role_chunk,
    tool_call_delta,
    usage_chunk,
)
from llms.errors import (
    UpstreamHTTPError,
    UpstreamIncomplete,
    UpstreamMalformed,
    UpstreamStreamError,
)
from llms.framing import SSEEvent
from llms.wire import Chunk, Delta, FinishReason, Usage

__all__ = ["FRAMING", "Converter", "build_request", "from_error_response", "new_converter"]

FRAMING: Framing = "sse"

FINISH_REASONS: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
# Usage fields, in the order `_usage` reads them: input (without cache), cache reads and writes.
_COUNTS = (
    "input_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
    "output_tokens",
)
# Anthropic's rate-limit headers -> OpenAI's names (protocol.md §1). Its `tokens` headers are the
# tightest of its input and output token limits; those two have no OpenAI name.
RATE_LIMIT_NAMES = {
    f"anthropic-ratelimit-{kind}-{field}": f"x-ratelimit-{field}-{kind}"
    for kind in ("requests", "tokens")
    for field in ("limit", "remaining", "reset")
}
# Anthropic error types that say no more than the status does: not passed on as `code`.
GENERIC_ERROR_TYPES = frozenset(("invalid_request_error", "rate_limit_error", "api_error", "error"))


def from_error_response(status: int, headers: Mapping[str, str], body: bytes) -> UpstreamHTTPError:
    """Map Anthropic's `{"type": "error", "error": {"type", "message"}}`; 529 counts as 503."""
    message, kind = _error_fields(body)
    code = None if kind is None or kind in GENERIC_ERROR_TYPES else kind
    passed = {**headers, **from_rate_limit_headers(headers)}
    return from_http_status(503 if status == 529 else status, passed, message, code=code)


def from_rate_limit_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Anthropic's `anthropic-ratelimit-*` headers under OpenAI's `x-ratelimit-*` names.

    A reset is an instant for Anthropic (RFC 3339) and a duration for OpenAI (`6m0s`): it is
    measured from the upstream's own `Date`, and left out without one rather than passed on in
    a format OpenAI clients do not read.
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    translated: dict[str, str] = {}
    for name, openai_name in RATE_LIMIT_NAMES.items():
        value = lowered.get(name)
        if value is None:
            continue
        if name.endswith("-reset"):
            wait = _seconds_between(lowered.get("date"), value)
            if wait is None:
                continue
            value = _duration(wait)
        translated[openai_name] = value
    return translated


def _seconds_between(date: str | None, reset: str) -> int | None:
    """Whole seconds (rounded up) from an HTTP `Date` to an RFC 3339 instant; None if either
    is not one."""
    try:
        sent = parsedate_to_datetime(date) if date else None
        until = datetime.fromisoformat(reset)
    except (TypeError, ValueError):
        return None
    if sent is None or sent.tzinfo is None or until.tzinfo is None:
        return None
    return max(0, math.ceil((until - sent).total_seconds()))


def _duration(seconds: int) -> str:
    """OpenAI's (Go's) spelling of a duration: `17s`, `6m0s`, `1h6m5s`."""
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"


def _error_fields(body: bytes) -> tuple[str | None, str | None]:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return from_error_text(body), None
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
        "_calls",
        "_counts",
        "_ctx",
        "_opened",
        "_stop",
        "_thinking",
        "_thought",
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
        # The usage fields as last reported, checked when the usage is made of them.
        self._counts: dict[str, object] = dict.fromkeys(_COUNTS, 0)
        self._thinking: int | None = None
        # The open thinking block's text, given back whole with its signature.
        self._thought: list[str] = []
        self.done = False
        self.usage: Usage | None = None

    def feed(self, event: SSEEvent) -> list[Chunk]:
        out = self._feed(event)
        if out and self._ctx.include_usage:
            # As OpenAI does: every chunk says `"usage": null` until the usage chunk.
            for item in out:
                item.setdefault("usage", None)
        return out

    def _feed(self, event: SSEEvent) -> list[Chunk]:
        if event.event == "ping" or self.done:
            return []
        obj = from_json_event(event.data)
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
            if not thinking:
                return []
            self._thought.append(thinking)
            return self._emit({"reasoning_content": thinking})
        if kind == "signature_delta":
            signature = delta.get("signature")
            if not signature or not isinstance(signature, str):
                return []
            return self._emit({"thinking_blocks": [self._signed(signature)]})
        # citations_delta: Anthropic's citations have no place in a chat message.
        return []

    def _signed(self, signature: str) -> dict[str, Any]:
        thought = "".join(self._thought)
        self._thought = []
        return {"type": "thinking", "thinking": thought, "signature": signature}

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
        if kind == "thinking":
            thinking, signature = block.get("thinking"), block.get("signature")
            self._thought = [thinking] if thinking and isinstance(thinking, str) else []
            delta: Delta = {"reasoning_content": self._thought[0]} if self._thought else {}
            if signature and isinstance(signature, str):  # a whole block (not streamed)
                delta["thinking_blocks"] = [self._signed(signature)]
            return self._emit(delta) if delta else []
        if kind == "redacted_thinking" and block.get("data"):
            redacted = {"type": "redacted_thinking", "data": block["data"]}
            return self._emit({"thinking_blocks": [redacted]})
        # Server tool blocks are not part of the OpenAI answer.
        return []

    def _count(self, usage: dict[str, Any]) -> None:
        # Every usage object is cumulative: the last value of each field wins (null: unchanged).
        for name in _COUNTS:
            value = usage.get(name)
            if value is not None:
                self._counts[name] = value
        details = usage.get("output_tokens_details")
        if isinstance(details, dict):
            thinking = from_count(details.get("thinking_tokens"))
            if thinking is not None:
                self._thinking = thinking
        self.usage = self._usage()

    def _usage(self) -> Usage | None:
        """The usage so far; None if a count Anthropic sent is not a count."""
        counts = [from_count(self._counts[name]) for name in _COUNTS]
        if None in counts:
            return None
        fresh, read, write, output = (n or 0 for n in counts)
        # Anthropic's input_tokens excludes cache reads and writes; OpenAI's prompt includes them.
        prompt_details = {"cached_tokens": read}
        if write:
            prompt_details["cache_write_tokens"] = write
        thinking = self._thinking
        return from_counts(
            fresh + read + write,
            output,
            prompt_details=prompt_details,
            completion_details=None if thinking is None else {"reasoning_tokens": thinking},
        )

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
        if self._ctx.include_usage and self.usage is not None:
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
