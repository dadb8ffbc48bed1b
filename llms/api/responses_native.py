"""The Responses API passed through to upstreams that serve it (`"responses": true` on an
`openai` provider: OpenAI, vLLM, Ollama's OpenAI API, LM Studio); see llms/native.py.

The request goes to `{base_url}/responses` as the client wrote it, but for what the gateway
keeps itself: the model is the upstream's, `store` is false (the gateway stores the response,
under its own id, as for any provider), `previous_response_id` is expanded into the stored
conversation's items and `background` is the gateway's to run. A stored response also asks for
`reasoning.encrypted_content`, so its reasoning can be replayed by a later turn.

The upstream's events are relayed with `sequence_number` renumbered (a background response's
log already holds the gateway's `response.created` and `response.queued`, whose copies from the
upstream are dropped) and every Response object in them rewritten: the gateway's response id,
the client's model name, and the client's `store`, `background` and `previous_response_id`.
Item ids are the upstream's. The terminal `response.completed` (or `.incomplete`) is held until
the stored copy is kept; a failure is the gateway's `response.failed`, with the items finished
so far. Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from llms.adapters import openai
from llms.adapters.base import UpstreamRequest, from_json_event
from llms.adapters.usage import from_counts
from llms.api.responses import ResponseBuilder
from llms.api.responses_object import to_failure
from llms.chunks import StreamMeta
from llms.config import ProviderConfig
from llms.errors import (
    GatewayError,
    UpstreamHTTPError,
    UpstreamIncomplete,
    UpstreamMalformed,
    UpstreamStreamError,
)
from llms.framing import SSEEvent
from llms.native import NativeEvent, native_chunk
from llms.wire import Chunk, Delta, FinishReason, Usage

ENCRYPTED_REASONING = "reasoning.encrypted_content"
# Events that carry the whole Response object.
_WHOLE = frozenset(
    (
        "response.created",
        "response.queued",
        "response.in_progress",
        "response.completed",
        "response.incomplete",
        "response.failed",
    )
)
_TERMINAL = frozenset(("response.completed", "response.incomplete"))
_REASONING_DELTAS = frozenset(
    ("response.reasoning_text.delta", "response.reasoning_summary_text.delta")
)
# Items the chat side has words for; any other (a built-in tool's call) is output of its own.
_CHAT_ITEMS = frozenset(("message", "reasoning", "function_call"))
# Tool types a chat upstream can be given (the others are built-in tools).
TRANSLATED_TOOLS = frozenset(("function", "custom", "namespace"))


def serves(provider: ProviderConfig) -> bool:
    """Whether `provider` is asked for Responses natively."""
    return provider.type == "openai" and bool(provider.options.get("responses"))


def translatable(body: Mapping[str, Any]) -> dict[str, Any]:
    """The body without its built-in tools (and a `tool_choice` naming one): what a chat
    upstream could be asked, for the request's own checks and the echo of its settings."""
    out = dict(body)
    tools = body.get("tools")
    if isinstance(tools, list):
        out["tools"] = [
            t for t in tools if not isinstance(t, dict) or t.get("type") in TRANSLATED_TOOLS
        ]
    choice = body.get("tool_choice")
    if isinstance(choice, dict) and choice.get("type") not in ("function", "custom"):
        out.pop("tool_choice")
    return out


class ResponsesRoute:
    """One `POST /v1/responses` for the providers that serve it (a `NativeRoute`)."""

    __slots__ = ("_body", "_builder", "_history", "refusal")

    def __init__(
        self,
        body: Mapping[str, Any],
        history: list[dict[str, Any]] | None,
        builder: ResponseBuilder,
    ) -> None:
        self._body = body
        self._history = history
        self._builder = builder
        self.refusal: GatewayError | None = None

    def serves(self, provider: ProviderConfig) -> bool:
        return serves(provider)

    def build_request(
        self, provider: ProviderConfig, upstream_model: str, *, whole: bool
    ) -> UpstreamRequest:
        settings = self._builder.response
        body = dict(self._body)
        for name in ("previous_response_id", "background", "stream_options"):
            body.pop(name, None)
        if not whole and isinstance(self._body.get("stream_options"), dict):
            body["stream_options"] = self._body["stream_options"]
        body["model"] = upstream_model
        body["stream"] = not whole
        body["store"] = False
        if self._history is not None:
            body["input"] = [*self._history, *_items(self._body.get("input"))]
        if settings.get("store") or settings.get("background"):
            include = [*(self._body.get("include") or ())]
            if ENCRYPTED_REASONING not in include:
                body["include"] = [*include, ENCRYPTED_REASONING]
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json" if whole else "text/event-stream",
        }
        if provider.api_key:
            headers["Authorization"] = f"Bearer {provider.api_key}"
        headers.update(provider.headers)
        return UpstreamRequest(
            "POST", f"{provider.base_url}/responses", headers, orjson.dumps(body)
        )

    def from_error_response(
        self, status: int, headers: Mapping[str, str], body: bytes
    ) -> UpstreamHTTPError:
        return openai.from_error_response(status, headers, body)

    def new_converter(self, meta: StreamMeta, *, whole: bool) -> ResponsesPassing:
        return ResponsesPassing(self._builder, meta, whole=whole)


def _items(value: Any) -> list[Any]:
    """A request's `input` as items (a string is one user message)."""
    if isinstance(value, str):
        return [{"type": "message", "role": "user", "content": value}]
    return list(value) if isinstance(value, list) else []


class ResponsesPassing:
    """The upstream's Responses events -> native chunks (a `NativeConverter`)."""

    log_prefix = ""

    __slots__ = (
        "_adopted",
        "_builder",
        "_calls",
        "_echo",
        "_meta",
        "_output",
        "_queued",
        "_seq",
        "_terminal",
        "_whole",
        "done",
        "response",
        "usage",
    )

    def __init__(self, builder: ResponseBuilder, meta: StreamMeta, *, whole: bool) -> None:
        self._builder = builder
        self._meta = meta
        self._whole = whole
        own = builder.response
        # What every Response object the client sees says of the gateway's own response.
        self._echo = {
            "id": own["id"],
            # The gateway's clock: retention and listings go by it.
            "created_at": own["created_at"],
            "model": own["model"],
            "store": own.get("store"),
            "background": own.get("background"),
            "previous_response_id": own.get("previous_response_id"),
        }
        # A queued (background) response's log already opened with the gateway's events.
        self._queued = own.get("status") == "queued"
        self._seq = builder.sequence_number
        self._output: list[dict[str, Any]] = []
        self._calls = 0
        self._terminal: NativeEvent | None = None
        self._adopted = False
        self.response: dict[str, Any] | None = None
        self.done = False
        self.usage: Usage | None = None

    # --- the converter -------------------------------------------------------------------

    def feed(self, event: SSEEvent | bytes) -> list[Chunk]:
        if isinstance(event, bytes):
            return self._feed_whole(event)
        if event.data == "[DONE]":
            return []
        obj = from_json_event(event.data)
        kind = obj.get("type")
        if not isinstance(kind, str):
            raise UpstreamMalformed("The upstream sent a Responses event without a type.")
        if kind == "error":
            raise _stream_error(obj)
        if kind in _WHOLE:
            response = obj.get("response")
            if not isinstance(response, dict):
                raise UpstreamMalformed(f"The upstream sent `{kind}` without its response.")
            if kind == "response.failed":
                raise _stream_error(response)
            self._take(response)
            obj["response"] = self.response
            if self._queued and kind in ("response.created", "response.queued"):
                return []  # the gateway's own opened the log
        obj["sequence_number"] = self._seq
        self._seq += 1
        data = orjson.dumps(obj)
        if kind in _TERMINAL:
            return [self._end((kind, data))]
        return [self._summary(kind, obj, (kind, data))]

    def close(self) -> list[Chunk]:
        if self.done:
            return []
        raise UpstreamIncomplete("The upstream ended the stream before `response.completed`.")

    def _take(self, response: dict[str, Any]) -> None:
        """The upstream's Response object, rewritten, as the current one."""
        rewritten = {**response, **self._echo}
        if rewritten.get("status") not in _TERMINAL_STATUS:
            # The items finished so far (a failure reports them); the event keeps its own.
            rewritten = {**rewritten, "output": self._output}
        self.response = rewritten
        self._adopt()

    def _end(self, event: NativeEvent) -> Chunk:
        """The terminal event: held until the API has kept the response (`end_events`)."""
        response = self.response
        assert response is not None
        self._terminal = event
        self.done = True
        self.usage = _usage(response.get("usage"))
        finish: FinishReason = "stop"
        if response.get("status") == "incomplete":
            finish = "length"
        elif any(_is_call(item) for item in response.get("output") or ()):
            finish = "tool_calls"
        return native_chunk(self._meta, None, finish=finish, usage=self.usage)

    def _summary(self, kind: str, obj: dict[str, Any], event: NativeEvent) -> Chunk:
        """The native chunk of a non-terminal event: what it means for the bookkeeping."""
        meta = self._meta
        delta: Delta | None = None
        output = False
        if kind == "response.output_text.delta":
            text = obj.get("delta")
            delta = {"content": text} if isinstance(text, str) else None
        elif kind in _REASONING_DELTAS:
            text = obj.get("delta")
            delta = {"reasoning_content": text} if isinstance(text, str) else None
        elif kind == "response.refusal.delta":
            text = obj.get("delta")
            delta = {"refusal": text} if isinstance(text, str) else None
        elif kind == "response.output_item.added":
            item = obj.get("item")
            if isinstance(item, dict):
                output = item.get("type") not in _CHAT_ITEMS
                if _is_call(item):
                    delta = {"tool_calls": [self._call(item)]}
        elif kind == "response.output_item.done":
            item = obj.get("item")
            if isinstance(item, dict):
                self._output.append(item)
                output = item.get("type") not in _CHAT_ITEMS
        return native_chunk(meta, event, delta, output=output)

    def _call(self, item: Mapping[str, Any]) -> Any:
        index = self._calls
        self._calls += 1
        return {
            "index": index,
            "id": item.get("call_id") or "",
            "type": "function",
            "function": {"name": item.get("name") or "", "arguments": ""},
        }

    def _feed_whole(self, body: bytes) -> list[Chunk]:
        """A non-stream answer: the whole Response object."""
        obj = from_json_event(body.decode("utf-8", "replace"))
        status = obj.get("status")
        if status == "failed":
            raise _stream_error(obj)
        if status not in _TERMINAL_STATUS:
            raise UpstreamMalformed(f"The upstream answered a Response whose status is {status!r}.")
        self._take(obj)
        return [self._end(("response", b""))]

    # --- the native side -------------------------------------------------------------------

    def committed(self) -> None:
        self._adopted = True
        self._adopt()

    def _adopt(self) -> None:
        if self._adopted and self.response is not None:
            self._builder.adopt(self.response, self._seq)

    def end_events(self) -> list[NativeEvent]:
        return [] if self._terminal is None else [self._terminal]

    def fail_events(self, error: GatewayError) -> list[NativeEvent]:
        if self._terminal is not None:
            return []
        self._terminal = ("response.failed", b"")
        response = dict(self.response or self._builder.response)
        response.update(status="failed", error=to_failure(error), output=self._output)
        self.response = response
        self._adopt()
        event = {"type": "response.failed", "response": response, "sequence_number": self._seq}
        self._seq += 1
        return [("response.failed", orjson.dumps(event))]

    def cancel_events(self, reason: GatewayError) -> list[NativeEvent]:
        if self._terminal is None:
            self._terminal = ("end", b"")
            self.response = {**(self.response or self._builder.response), "status": "cancelled"}
            self._adopt()
        return [("end", b"")]

    def answer(self) -> dict[str, Any]:
        assert self.response is not None
        return self.response


_TERMINAL_STATUS = frozenset(("completed", "incomplete"))


def _is_call(item: Any) -> bool:
    return isinstance(item, dict) and item.get("type") == "function_call"


def _usage(raw: Any) -> Usage | None:
    """A Response's usage as the record keeps it (chat's names)."""
    if not isinstance(raw, dict):
        return None
    prompt_details = raw.get("input_tokens_details")
    completion_details = raw.get("output_tokens_details")
    return from_counts(
        raw.get("input_tokens"),
        raw.get("output_tokens"),
        raw.get("total_tokens"),
        prompt_details=prompt_details if isinstance(prompt_details, dict) else None,
        completion_details=completion_details if isinstance(completion_details, dict) else None,
    )


def _stream_error(obj: Mapping[str, Any]) -> UpstreamStreamError:
    """An upstream's `error` event (flat, or nested under `error`) or a failed Response's."""
    error = obj.get("error")
    source: Mapping[str, Any] = error if isinstance(error, dict) else obj
    message = source.get("message")
    code = source.get("code")
    failure = UpstreamStreamError(
        message if isinstance(message, str) and message else "The upstream reported an error.",
        code=code if isinstance(code, str) else None,
    )
    # A server-side failure is worth another provider while nothing reached the client.
    if code in (None, "server_error", "rate_limit_exceeded") or (
        isinstance(code, str) and code.endswith("overloaded")
    ):
        failure.retryable = True
        failure.status = 502
    return failure
