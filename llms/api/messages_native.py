"""Anthropic's Messages API passed through to `anthropic` providers; see llms/native.py.

The client's body goes to the upstream's `/v1/messages` as it is (thinking blocks and their
signatures, `cache_control`, documents with citations, server tools such as
`web_search_20250305`, `container`, `mcp_servers`…), with only `model` rewritten to the
upstream's id; the client's `anthropic-version` and `anthropic-beta` headers are forwarded (the
adapter's version when the client sent none). Events are relayed byte for byte but for
`message_start`, whose `message.model` becomes the client's model name; the message id is the
upstream's. The summary each native chunk carries comes from the Anthropic adapter's own
converter (llms/adapters/anthropic.py), so the commit point, usage and finish reason are the
translated path's. A failure after output is `event: error` with no `message_stop`. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from llms.adapters import anthropic
from llms.adapters.anthropic_request import ANTHROPIC_VERSION, messages_url
from llms.adapters.base import StreamContext, UpstreamRequest, from_json_event
from llms.api.messages_object import error_body
from llms.chunks import StreamMeta
from llms.config import ProviderConfig
from llms.errors import GatewayError, UpstreamHTTPError, UpstreamStreamError
from llms.framing import SSEEvent
from llms.native import NativeEvent, native_chunk
from llms.wire import Chunk, Usage

# The client's headers an Anthropic upstream is sent.
FORWARDED = ("anthropic-version", "anthropic-beta")
# Content blocks the chat side has no words for: output of their own (a server tool's use or
# result, redacted thinking), so the answer commits with them.
_CHAT_BLOCKS = frozenset(("text", "thinking", "tool_use"))


def serves(provider: ProviderConfig) -> bool:
    """Whether `provider` is asked for Messages natively."""
    return provider.type == "anthropic"


class MessagesRoute:
    """One `POST /v1/messages` for Anthropic upstreams (a `NativeRoute`)."""

    __slots__ = ("_body", "_headers", "refusal")

    def __init__(self, body: Mapping[str, Any], headers: Mapping[str, str]) -> None:
        self._body = body
        self._headers = {name: headers[name] for name in FORWARDED if name in headers}
        self.refusal: GatewayError | None = None

    def serves(self, provider: ProviderConfig) -> bool:
        return serves(provider)

    def build_request(
        self, provider: ProviderConfig, upstream_model: str, *, whole: bool
    ) -> UpstreamRequest:
        body = dict(self._body)
        body["model"] = upstream_model
        body["stream"] = not whole
        headers = {
            "anthropic-version": ANTHROPIC_VERSION,
            "content-type": "application/json",
            "accept": "application/json" if whole else "text/event-stream",
            **self._headers,
        }
        if provider.api_key:
            headers["x-api-key"] = provider.api_key
        headers.update(provider.headers)
        return UpstreamRequest("POST", messages_url(provider), headers, orjson.dumps(body))

    def from_error_response(
        self, status: int, headers: Mapping[str, str], body: bytes
    ) -> UpstreamHTTPError:
        return anthropic.from_error_response(status, headers, body)

    def new_converter(self, meta: StreamMeta, *, whole: bool) -> MessagesPassing:
        return MessagesPassing(meta)


class MessagesPassing:
    """The upstream's Messages events -> native chunks (a `NativeConverter`)."""

    log_prefix = "messages."

    __slots__ = ("_inner", "_message", "_meta", "_terminal", "done", "usage")

    def __init__(self, meta: StreamMeta) -> None:
        self._meta = meta
        self._inner = anthropic.Converter(StreamContext(meta, include_usage=True))
        self._terminal: NativeEvent | None = None
        self._message: dict[str, Any] | None = None
        self.done = False
        self.usage: Usage | None = None

    def feed(self, event: SSEEvent | bytes) -> list[Chunk]:
        inner = self._inner
        out = self._feed_whole(event) if isinstance(event, bytes) else self._feed(event)
        self.done = inner.done
        self.usage = inner.usage
        return out

    def _feed(self, event: SSEEvent) -> list[Chunk]:
        out = self._inner.feed(event)  # raises for an `error` event
        kind = event.event
        data = event.data.encode()
        output = False
        if kind == "message_start":
            obj = from_json_event(event.data)
            message = obj.get("message")
            if isinstance(message, dict):
                obj["message"] = {**message, "model": self._meta.model}
                data = orjson.dumps(obj)
        elif kind == "message_stop":
            # Held until the end: written after the record knows how the answer ended.
            self._terminal = (kind, data)
            return out
        elif kind == "content_block_start":
            block = from_json_event(event.data).get("content_block")
            output = isinstance(block, dict) and block.get("type") not in _CHAT_BLOCKS
        carried = native_chunk(self._meta, (kind, data), output=output)
        if not out:
            return [carried]
        # The event rides on the last chunk it made (so it is written after them, once).
        last = out[-1]
        last["native"] = carried["native"]
        if output:
            last["native_output"] = True
        return out

    def close(self) -> list[Chunk]:
        return self._inner.close()  # UpstreamIncomplete without `message_stop`

    def _feed_whole(self, body: bytes) -> list[Chunk]:
        """A non-stream answer: the whole Message, read through the adapter's converter as
        the stream it stands for (for its usage and stop reason)."""
        message = from_json_event(body.decode("utf-8", "replace"))
        if message.get("type") == "error":
            # Raised by the adapter's converter as it raises an `error` event's.
            self._inner.feed(SSEEvent("error", body.decode("utf-8", "replace"), ""))
        if message.get("type") != "message":
            raise UpstreamStreamError("The upstream answered something other than a Message.")
        self._message = {**message, "model": self._meta.model}
        start = {"type": "message_start", "message": {**message, "content": []}}
        delta = {
            "type": "message_delta",
            "delta": {"stop_reason": message.get("stop_reason")},
            "usage": message.get("usage") or {},
        }
        out: list[Chunk] = []
        for kind, obj in (("message_start", start), ("message_delta", delta)):
            out += self._inner.feed(SSEEvent(kind, orjson.dumps(obj).decode(), ""))
        out += self._inner.feed(SSEEvent("message_stop", '{"type":"message_stop"}', ""))
        return out

    def committed(self) -> None:
        """Nothing is kept of a Message."""

    def end_events(self) -> list[NativeEvent]:
        return [] if self._terminal is None else [self._terminal]

    def fail_events(self, error: GatewayError) -> list[NativeEvent]:
        return [("error", orjson.dumps(error_body(error)))]

    def cancel_events(self, reason: GatewayError) -> list[NativeEvent]:
        return self.fail_events(reason)

    def answer(self) -> dict[str, Any]:
        assert self._message is not None
        return self._message
