"""Google Gemini's native API: `POST {base}/models/{model}:streamGenerateContent?alt=sse`.

`build_request` (from `gemini_request`) turns an OpenAI chat request into a
`GenerateContentRequest` (protocol.md §3.4); the `Converter` turns its
`data: <GenerateContentResponse>` events into OpenAI chunks. Gemini has no `[DONE]`: a stream is
complete when every candidate seen carried a `finishReason` (or the prompt was blocked) and the
body then ends. Finish chunks go out when the reason arrives; the usage chunk waits for the end of
the body, since `usageMetadata` may come in a later event. The `thoughtSignature` of a
`functionCall` part (Gemini 3 wants it back with that call) reaches the client with the call, in
the delta extension `thinking_blocks` (`{"type": "thinking", "thinking": "", "signature"}`), as
Anthropic's signed thinking does; `gemini_request` puts it back on the call's part. Signatures
of text parts are optional to replay and left out.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import orjson

from llms.adapters.base import (
    Framing,
    StreamContext,
    from_error_text,
    from_http_status,
    from_json_event,
)
from llms.adapters.gemini_request import build_request
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
from llms.wire import Chunk, FinishReason, Usage

__all__ = [
    "FRAMING",
    "Converter",
    "build_request",
    "from_error_response",
    "from_usage_metadata",
    "new_converter",
]

FRAMING: Framing = "sse"

_FILTERED = frozenset(("SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII"))
_FILTERED |= {"IMAGE_SAFETY", "IMAGE_PROHIBITED_CONTENT", "IMAGE_RECITATION"}


# --- errors -----------------------------------------------------------------------------------


def from_error_response(status: int, headers: Mapping[str, str], body: bytes) -> UpstreamHTTPError:
    """Gemini's `{"error": {"code", "message", "status", "details"}}` (also wrapped in a list)."""
    error = _error_object(body)
    if error is None:
        return from_http_status(status, headers, from_error_text(body))
    message = error.get("message")
    code = error.get("status")
    details = error.get("details")
    details = details if isinstance(details, list) else []
    headers = dict(headers)
    if any(isinstance(d, dict) and d.get("reason") == "API_KEY_INVALID" for d in details):
        # Gemini says 400 for a bad key; the client's request was fine, the gateway's key was not.
        status = 401
    if status == 429:
        code = None  # OpenAI clients look for rate_limit_exceeded
        if not any(k.lower() in ("retry-after", "retry-after-ms") for k in headers):
            delay = _retry_delay(details)
            if delay is not None:
                headers["Retry-After"] = str(delay)
    return from_http_status(
        status,
        headers,
        message if isinstance(message, str) else None,
        code=code.lower() if isinstance(code, str) else None,
    )


def _error_object(body: bytes) -> dict[str, Any] | None:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if isinstance(data, list) and data:
        data = data[0]
    error = data.get("error") if isinstance(data, dict) else None
    return error if isinstance(error, dict) else None


def _retry_delay(details: list[Any]) -> int | None:
    """Whole seconds from a google.rpc.RetryInfo detail (`"retryDelay": "37.5s"`)."""
    for detail in details:
        if isinstance(detail, dict) and str(detail.get("@type", "")).endswith("RetryInfo"):
            delay = detail.get("retryDelay")
            if isinstance(delay, str) and delay.endswith("s"):
                try:
                    return max(0, math.ceil(float(delay[:-1])))
                except ValueError:
                    return None
    return None


def _stream_error(error: Any) -> UpstreamStreamError:
    if not isinstance(error, dict):
        return UpstreamStreamError(str(error) or "The upstream reported an error.")
    message = error.get("message")
    status = error.get("status")
    return UpstreamStreamError(
        message if isinstance(message, str) and message else "The upstream reported an error.",
        code=status.lower() if isinstance(status, str) else None,
    )


# --- the stream -------------------------------------------------------------------------------


def from_usage_metadata(metadata: Mapping[str, Any]) -> Usage | None:
    """OpenAI usage from `usageMetadata`: thoughts count as completion tokens.

    None if a count Gemini sent is not one (a missing count, as Gemini leaves out zeros, is 0).
    """
    prompt, candidates, thoughts = (
        from_count(metadata.get(name) or 0)
        for name in ("promptTokenCount", "candidatesTokenCount", "thoughtsTokenCount")
    )
    if prompt is None or candidates is None or thoughts is None:
        return None
    return from_counts(
        prompt,
        candidates + thoughts,
        metadata.get("totalTokenCount") or None,  # 0 or missing: the sum
        prompt_details={"cached_tokens": metadata.get("cachedContentTokenCount") or 0},
        completion_details={"reasoning_tokens": thoughts},
    )


def new_converter(context: StreamContext) -> Converter:
    return Converter(context)


class Converter:
    """One Gemini stream -> OpenAI chunks; candidates become choices by their `index`."""

    __slots__ = ("_ctx", "_finished", "_tools", "done", "usage")

    def __init__(self, context: StreamContext) -> None:
        self._ctx = context
        # candidate index -> tool calls emitted so far; a key means its role chunk went out
        self._tools: dict[int, int] = {}
        self._finished: set[int] = set()
        self.done = False
        self.usage: Usage | None = None

    def feed(self, event: SSEEvent) -> list[Chunk]:
        if event.event != "message" or self.done:
            return []
        obj = from_json_event(event.data)
        if "error" in obj:
            raise _stream_error(obj["error"])
        metadata = obj.get("usageMetadata")
        if isinstance(metadata, dict):
            # Each event's metadata counts everything so far: the last good one stands.
            self.usage = from_usage_metadata(metadata) or self.usage
        out: list[Chunk] = []
        candidates = obj.get("candidates")
        if candidates:
            for candidate in candidates:
                if not isinstance(candidate, dict):
                    raise UpstreamMalformed("The upstream sent a candidate that is not an object.")
                self._candidate(candidate, out)
        elif not self._tools:
            feedback = obj.get("promptFeedback")
            if isinstance(feedback, dict) and feedback.get("blockReason"):
                self._start(0, out)
                self._finish(0, "content_filter", out)
        if out and self._ctx.include_usage:
            for item in out:
                item["usage"] = None
        return out

    def close(self) -> list[Chunk]:
        """The body ended: complete only if every candidate seen has finished."""
        if self.done:
            return []
        if not self._tools or len(self._finished) < len(self._tools):
            raise UpstreamIncomplete("The upstream ended the stream before it finished the answer.")
        self.done = True
        if self._ctx.include_usage and self.usage is not None:
            return [usage_chunk(self._ctx.meta, self.usage)]
        return []

    def _start(self, index: int, out: list[Chunk]) -> None:
        if index not in self._tools:
            self._tools[index] = 0
            out.append(role_chunk(self._ctx.meta, index))

    def _finish(self, index: int, reason: FinishReason, out: list[Chunk]) -> None:
        self._finished.add(index)
        out.append(finish_chunk(self._ctx.meta, reason, index))

    def _candidate(self, candidate: dict[str, Any], out: list[Chunk]) -> None:
        index = candidate.get("index") or 0
        if index in self._finished:
            return
        self._start(index, out)
        meta = self._ctx.meta
        content = candidate.get("content")
        parts = content.get("parts") if isinstance(content, dict) else None
        for part in parts or ():
            text = part.get("text")
            if text:
                if part.get("thought"):
                    out.append(delta_chunk(meta, {"reasoning_content": text}, index=index))
                else:
                    out.append(delta_chunk(meta, {"content": text}, index=index))
            call = part.get("functionCall")
            if isinstance(call, dict):
                args = call.get("args")
                delta = tool_call_delta(
                    self._tools[index],
                    id=call.get("id") or new_call_id(),
                    name=call.get("name") or "",
                    arguments=orjson.dumps({} if args is None else args).decode(),
                )
                self._tools[index] += 1
                signature = part.get("thoughtSignature")
                if signature and isinstance(signature, str):
                    signed = {"type": "thinking", "thinking": "", "signature": signature}
                    out.append(
                        delta_chunk(
                            meta, {"thinking_blocks": [signed], "tool_calls": [delta]}, index=index
                        )
                    )
                else:
                    out.append(delta_chunk(meta, {"tool_calls": [delta]}, index=index))
        reason = candidate.get("finishReason")
        if reason:
            self._finish(index, self._finish_reason(reason, index), out)

    def _finish_reason(self, reason: str, index: int) -> FinishReason:
        if reason == "MAX_TOKENS":
            return "length"
        if reason in _FILTERED:
            return "content_filter"
        # STOP, and the rest (OTHER, LANGUAGE, MALFORMED_FUNCTION_CALL...) as a normal end.
        return "tool_calls" if self._tools[index] else "stop"
