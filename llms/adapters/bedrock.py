"""AWS Bedrock's Converse API: `POST /model/{modelId}/converse-stream` (and `/converse`).

`build_request` (from `bedrock_request`) turns an OpenAI chat request into a Converse request
(signed later, with the time: llms/credentials_aws.py). The stream is AWS's binary event stream
(`framing.EventStreamDecoder`): `messageStart`, `contentBlockStart` / `contentBlockDelta` /
`contentBlockStop` (text, a `toolUse`'s input JSON in pieces, `reasoningContent` text, signature
or redacted bytes), `messageStop` (the stop reason) and `metadata` (usage, metrics). An
`exception` message (`throttlingException`, `modelStreamErrorException`, `validationException`,
`serviceUnavailableException`…) is an error with the status its HTTP form has: throttling is a
retryable 429. The non-stream `/converse` answer is replayed as the events of the equivalent
stream, through the same converter.

Reasoning signatures and redacted reasoning reach the client in the delta extension
`thinking_blocks` (the shape the Messages API and LiteLLM read), and come back the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from llms.adapters.base import (
    Framing,
    StreamContext,
    from_error_text,
    from_http_status,
)
from llms.adapters.bedrock_request import build_request, build_whole_request
from llms.adapters.usage import from_count, from_counts
from llms.chunks import delta_chunk, finish_chunk, role_chunk, tool_call_delta, usage_chunk
from llms.errors import UpstreamHTTPError, UpstreamIncomplete, UpstreamMalformed
from llms.framing import EventStreamMessage
from llms.wire import Chunk, Delta, FinishReason, Usage

__all__ = [
    "FRAMING",
    "Converter",
    "WholeConverter",
    "build_request",
    "build_whole_request",
    "from_error_response",
    "new_converter",
    "new_whole_converter",
]

FRAMING: Framing = "eventstream"

FINISH_REASONS: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "tool_use": "tool_calls",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
}
# The events before which the role chunk goes out (metadata alone carries no answer).
_STARTS = frozenset(("messageStart", "contentBlockStart", "contentBlockDelta", "messageStop"))
# AWS error names (HTTP `x-amzn-ErrorType`, or a stream's `:exception-type`, lower-cased, without
# `exception`) -> the HTTP status Bedrock gives them.
STATUSES = {
    "validation": 400,
    "accessdenied": 403,
    "unrecognizedclient": 403,
    "invalidsignature": 403,
    "expiredtoken": 403,
    "resourcenotfound": 404,
    "modeltimeout": 408,
    "throttling": 429,
    "modelnotready": 429,
    "servicequotaexceeded": 429,
    "modelerror": 424,
    "modelstreamerror": 424,
    "internalserver": 500,
    "serviceunavailable": 503,
}


# --- errors -----------------------------------------------------------------------------------


def _error_name(raw: str) -> str:
    """`ThrottlingException:http://internal.amazon.com/...` -> `throttling`."""
    name = raw.partition(":")[0].strip().lower()
    return name.removesuffix("exception")


def _failure(name: str, status: int, headers: Mapping[str, str], message: str | None) -> Any:
    if status == 424:
        # The model failed while answering: the provider's failure, worth another try.
        return UpstreamHTTPError(
            message or "The model failed while answering.",
            status=502,
            type="server_error",
            code="upstream_error",
            retryable=True,
        )
    code = None if status in (401, 403, 404, 429) or status >= 500 else f"{name}_exception"
    return from_http_status(status, headers, message, code=code if name else None)


def from_error_response(status: int, headers: Mapping[str, str], body: bytes) -> UpstreamHTTPError:
    """AWS's JSON error (`{"message": …}` or `{"Message": …}`, the type in `x-amzn-ErrorType`)."""
    lowered = {k.lower(): v for k, v in headers.items()}
    message: str | None = None
    name = _error_name(lowered.get("x-amzn-errortype", ""))
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        data = None
    if isinstance(data, dict):
        text = data.get("message", data.get("Message"))
        message = text if isinstance(text, str) else None
        if not name and isinstance(data.get("__type"), str):
            name = _error_name(data["__type"].rpartition("#")[2])
    else:
        message = from_error_text(body)
    if name == "servicequotaexceeded":
        status = 429
    error: UpstreamHTTPError = _failure(name, status, headers, message)
    return error


def stream_exception(message: EventStreamMessage) -> UpstreamHTTPError:
    """An `exception` (or `error`) message of the stream, as the error its HTTP form would be."""
    headers = message.headers
    found = headers.get(":exception-type") or headers.get(":error-code")
    raw = found if isinstance(found, str) else ""
    name = _error_name(raw)
    text: str | None = None
    try:
        data = orjson.loads(message.payload) if message.payload else None
    except orjson.JSONDecodeError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("message"), str):
        text = data["message"]
    elif isinstance(headers.get(":error-message"), str):
        text = str(headers[":error-message"])
    status = STATUSES.get(name, 500)
    error: UpstreamHTTPError = _failure(name, status, {}, text or f"Bedrock reported {raw}.")
    return error


# --- the stream -------------------------------------------------------------------------------


def from_converse_usage(usage: Mapping[str, Any]) -> Usage | None:
    """OpenAI usage of Converse's: the prompt counts cache reads and writes, cached the reads."""
    counts = [
        from_count(usage.get(name) or 0)
        for name in ("inputTokens", "cacheReadInputTokens", "cacheWriteInputTokens")
    ]
    if any(n is None for n in counts):
        return None
    read = counts[1] or 0
    return from_counts(
        sum(n or 0 for n in counts),
        usage.get("outputTokens"),
        usage.get("totalTokens"),
        prompt_details={"cached_tokens": read},
    )


def new_converter(context: StreamContext) -> Converter:
    return Converter(context)


def new_whole_converter(context: StreamContext) -> WholeConverter:
    return WholeConverter(context)


class Converter:
    """One Converse stream -> OpenAI chunks (one choice)."""

    __slots__ = ("_calls", "_ctx", "_started", "_stopped", "done", "usage")

    def __init__(self, context: StreamContext) -> None:
        self._ctx = context
        self._started = False
        self._stopped = False
        # contentBlockIndex -> the tool call index it is
        self._calls: dict[int, int] = {}
        self.done = False
        self.usage: Usage | None = None

    def feed(self, message: EventStreamMessage) -> list[Chunk]:
        kind = message.headers.get(":message-type", "event")
        if kind in ("exception", "error"):
            raise stream_exception(message)
        name = message.headers.get(":event-type")
        if not isinstance(name, str):
            raise UpstreamMalformed("The upstream sent an event without its `:event-type`.")
        try:
            obj = orjson.loads(message.payload) if message.payload else {}
        except orjson.JSONDecodeError:
            raise UpstreamMalformed(f"The upstream's `{name}` event is not JSON.") from None
        if not isinstance(obj, dict):
            raise UpstreamMalformed(f"The upstream's `{name}` event is not a JSON object.")
        return self.event(name, obj)

    def event(self, name: str, obj: dict[str, Any]) -> list[Chunk]:
        """Chunks for one Converse stream event, by its name."""
        if self.done:
            return []
        out: list[Chunk] = []
        meta = self._ctx.meta
        if not self._started and name in _STARTS:
            self._started = True
            out.append(role_chunk(meta))
        if name == "contentBlockStart":
            start = obj.get("start")
            use = start.get("toolUse") if isinstance(start, dict) else None
            if isinstance(use, dict):
                index = len(self._calls)
                self._calls[_block_index(obj)] = index
                call = tool_call_delta(index, id=use.get("toolUseId"), name=use.get("name"))
                out.append(delta_chunk(meta, {"tool_calls": [call]}))
        elif name == "contentBlockDelta":
            delta = self._delta(obj)
            if delta:
                out.append(delta_chunk(meta, delta))
        elif name == "messageStop":
            self._stopped = True
            reason = obj.get("stopReason")
            finish = FINISH_REASONS.get(reason, "stop") if isinstance(reason, str) else "stop"
            if finish == "stop" and self._calls:
                finish = "tool_calls"
            out.append(finish_chunk(meta, finish))
        elif name == "metadata":
            usage = obj.get("usage")
            if isinstance(usage, dict):
                self.usage = from_converse_usage(usage) or self.usage
        if out and self._ctx.include_usage:
            for item in out:
                item["usage"] = None
        return out

    def _delta(self, obj: dict[str, Any]) -> Delta | None:
        delta = obj.get("delta")
        if not isinstance(delta, dict):
            raise UpstreamMalformed("The upstream sent a contentBlockDelta without its delta.")
        text = delta.get("text")
        if isinstance(text, str):
            return {"content": text} if text else None
        use = delta.get("toolUse")
        if isinstance(use, dict):
            index = self._calls.get(_block_index(obj))
            if index is None:
                raise UpstreamMalformed("The upstream sent tool input for a block it never began.")
            piece = use.get("input")
            if not isinstance(piece, str) or not piece:
                return None
            return {"tool_calls": [tool_call_delta(index, arguments=piece)]}
        reasoning = delta.get("reasoningContent")
        if isinstance(reasoning, dict):
            if isinstance(reasoning.get("text"), str) and reasoning["text"]:
                return {"reasoning_content": reasoning["text"]}
            signature = reasoning.get("signature")
            if isinstance(signature, str) and signature:
                block = {"type": "thinking", "thinking": "", "signature": signature}
                return {"thinking_blocks": [block]}
            redacted = reasoning.get("redactedContent")
            if isinstance(redacted, str) and redacted:
                block = {"type": "redacted_thinking", "data": redacted}
                return {"thinking_blocks": [block]}
        return None

    def close(self) -> list[Chunk]:
        """The body ended: complete once `messageStop` came (`metadata` follows it)."""
        if self.done:
            return []
        if not self._stopped:
            raise UpstreamIncomplete("The upstream ended the stream before it finished the answer.")
        self.done = True
        if self._ctx.include_usage and self.usage is not None:
            return [usage_chunk(self._ctx.meta, self.usage)]
        return []


def _block_index(obj: Mapping[str, Any]) -> int:
    index = obj.get("contentBlockIndex")
    if not isinstance(index, int) or isinstance(index, bool):
        raise UpstreamMalformed("The upstream sent a content block event without its index.")
    return index


class WholeConverter:
    """A whole `/converse` answer, replayed as the events of the equivalent stream."""

    __slots__ = ("_stream",)

    def __init__(self, context: StreamContext) -> None:
        self._stream = Converter(context)

    @property
    def usage(self) -> Usage | None:
        return self._stream.usage

    @property
    def done(self) -> bool:
        return self._stream.done

    def feed(self, body: bytes) -> list[Chunk]:
        try:
            answer = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise UpstreamMalformed("The upstream's answer is not JSON.") from None
        output = answer.get("output") if isinstance(answer, dict) else None
        message = output.get("message") if isinstance(output, dict) else None
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, list):
            raise UpstreamMalformed("The upstream's answer has no output message.")
        stream = self._stream
        out = stream.event("messageStart", {"role": "assistant"})
        for index, block in enumerate(content):
            if not isinstance(block, dict):
                raise UpstreamMalformed("The upstream sent a content block that is not an object.")
            for name, event in _events_of(index, block):
                out += stream.event(name, event)
        out += stream.event("messageStop", {"stopReason": answer.get("stopReason")})
        out += stream.event("metadata", {"usage": answer.get("usage")})
        return out

    def close(self) -> list[Chunk]:
        return self._stream.close()


def _events_of(index: int, block: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The stream events that carry one content block of a whole answer."""
    at = {"contentBlockIndex": index}
    if isinstance(block.get("text"), str):
        return [("contentBlockDelta", {**at, "delta": {"text": block["text"]}})]
    use = block.get("toolUse")
    if isinstance(use, dict):
        start = {"toolUseId": use.get("toolUseId"), "name": use.get("name")}
        arguments = orjson.dumps(use.get("input") or {}).decode()
        return [
            ("contentBlockStart", {**at, "start": {"toolUse": start}}),
            ("contentBlockDelta", {**at, "delta": {"toolUse": {"input": arguments}}}),
        ]
    reasoning = block.get("reasoningContent")
    if isinstance(reasoning, dict):
        text = reasoning.get("reasoningText")
        deltas: list[dict[str, Any]] = []
        if isinstance(text, dict):
            deltas.append({"text": text.get("text") or ""})
            deltas.append({"signature": text.get("signature") or ""})
        if isinstance(reasoning.get("redactedContent"), str):
            deltas.append({"redactedContent": reasoning["redactedContent"]})
        return [("contentBlockDelta", {**at, "delta": {"reasoningContent": d}}) for d in deltas]
    return []
