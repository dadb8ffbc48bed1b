"""Internal chunks -> Anthropic's Messages API: its stream events, its Message, its errors.

`MessageBuilder` is fed the chunk batches of one answer and returns the events to send, in
Anthropic's order (docs: responses-and-messages.md §2.2): `message_start` (usage present), then
content blocks strictly one after another — `content_block_start`, deltas for that block only,
`content_block_stop` — thinking (`thinking_delta`, one `signature_delta` when a signature is
known), text (`text_delta`) and one `tool_use` block per tool call (`input_json_delta`, every
fragment of the arguments kept), then `message_delta` (stop reason, cumulative usage) and
`message_stop`. A failure after output is `event: error` and no `message_stop`. The Message it
keeps (`.message`) holds the very blocks the events described: it is the non-stream answer.

Decisions where Anthropic's format has no counterpart: a chat `refusal` is text (and
`content_filter` the stop reason `refusal`); whitespace before a block of another kind is never a
block of its own (Anthropic refuses whitespace-only text blocks when a client replays them); an
upstream call id is kept when Anthropic would take it back (`[A-Za-z0-9_-]+`), else `toolu_…`;
the stop reason is `stop_sequence` when the upstream names the stop string (vLLM's choice
`stop_reason`) or the text ends with one of the request's `stop_sequences`. Thinking signatures
come from the delta extension `thinking_blocks` (LiteLLM's shape: `{"type": "thinking",
"signature"}` or `{"type": "redacted_thinking", "data"}`); its thinking text is not read, as
`reasoning_content` carries it.

Pure: the caller gives the message id (`new_message_id()`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from llms.api.messages_object import (
    PING,
    STOP_REASONS,
    TOOL_ID,
    MessageEvent,
    error_body,
    error_status,
    error_type,
    event,
    from_usage,
    new_message_id,
    new_tool_id,
)
from llms.errors import GatewayError, UpstreamMalformed
from llms.wire import Chunk

__all__ = [
    "PING",
    "MessageBuilder",
    "MessageEvent",
    "error_body",
    "error_status",
    "error_type",
    "fold_message",
    "from_usage",
    "new_message_id",
]


@dataclass(slots=True)
class _Block:
    """The open content block; `head` is its delta event's JSON up to the delta's value."""

    index: int
    block: dict[str, Any]
    kind: str
    key: int | str | None = None  # a tool call's chunk index
    pieces: list[str] = field(default_factory=list)
    head: bytes = b""
    signed: bool = False


_DELTAS = {"text": b"text_delta", "thinking": b"thinking_delta", "tool_use": b"input_json_delta"}
_VALUES = {"text": b"text", "thinking": b"thinking", "tool_use": b"partial_json"}
_DELTA = "content_block_delta"
_DELTA_SSE = b"event: content_block_delta\ndata: %s\n\n"


class MessageBuilder:
    """The state machine of one Message: `feed(chunks)` per batch (the first output brings
    `message_start`), then exactly one of `finish()` or `fail(error)`; each returns events.

    `input_tokens` is what `message_start` reports before the upstream's usage is known (an
    estimate; Claude Code reads it); the final usage replaces it in `message_delta`.
    """

    def __init__(
        self,
        message_id: str,
        model: str,
        *,
        input_tokens: int = 0,
        stop_sequences: Iterable[str] = (),
    ) -> None:
        self._stops = tuple(stop for stop in stop_sequences if stop)
        self._usage: dict[str, Any] = {
            "input_tokens": input_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": 0,
        }
        self._message: dict[str, Any] = {
            "id": message_id,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": self._usage,
        }
        self._content: list[dict[str, Any]] = self._message["content"]
        self._open: _Block | None = None
        self._closed_calls: set[int | str] = set()
        self._blank: list[str] = []
        self._blank_kind = ""
        self._finish: str | None = None
        self._stop_string: str | None = None
        self._called = False
        self.started = False
        self.terminal = False
        self.failure: UpstreamMalformed | None = None

    @property
    def message(self) -> dict[str, Any]:
        """The Message as it stands (a live dict: serialise it, do not change it)."""
        if self._open is not None:
            self._sync(self._open)
        return self._message

    def start(self) -> list[MessageEvent]:
        """`message_start` (once): the Message with no content, usage as known so far."""
        if self.started:
            return []
        self.started = True
        head = {**self._message, "content": [], "usage": dict(self._usage)}
        return [event("message_start", orjson.dumps({"type": "message_start", "message": head}))]

    def feed(self, chunks: Iterable[Chunk]) -> list[MessageEvent]:
        """The events for one batch (choice 0 only: Messages has no `n`). Chunks that cannot
        be translated end the message: the events end with `error`, `terminal` is true and
        `failure` holds the error (stop the upstream)."""
        if self.terminal:
            return []
        events = [] if self.started else self.start()
        try:
            self._feed(events, chunks)
        except UpstreamMalformed as error:
            self.failure = error
            events += self.fail(error)
        return events

    def _feed(self, events: list[MessageEvent], chunks: Iterable[Chunk]) -> None:
        for chunk in chunks:
            usage = chunk.get("usage")
            if usage:
                self._usage.update(from_usage(usage))
            for choice in chunk["choices"]:
                if choice["index"] != 0:
                    continue
                delta: Mapping[str, Any] = choice["delta"]
                content = delta.get("content")
                if len(delta) == 1 and content and type(content) is str:
                    self._add_text(events, "text", content)  # the hot path: one token of text
                elif delta:
                    self._add_delta(events, delta)
                if choice["finish_reason"] is not None:
                    self._finish = choice["finish_reason"]
                    named = choice.get("stop_reason")
                    if isinstance(named, str) and named in self._stops:
                        self._stop_string = named

    def _add_delta(self, events: list[MessageEvent], delta: Mapping[str, Any]) -> None:
        reasoning = delta.get("reasoning_content") or delta.get("reasoning")
        if reasoning and isinstance(reasoning, str):
            self._add_text(events, "thinking", reasoning)
        blocks = delta.get("thinking_blocks")
        if not (blocks and isinstance(blocks, list)):
            blocks = None
        elif reasoning:
            # A signature signs the thinking before it (a whole answer: before its text too).
            self._add_thinking_blocks(events, blocks)
            blocks = None
        content = delta.get("content")
        if content and isinstance(content, str):
            self._add_text(events, "text", content)
        refusal = delta.get("refusal")
        if refusal and isinstance(refusal, str):
            self._add_text(events, "text", refusal)
        if blocks is not None:  # else it is the signature of the call that follows (Gemini)
            self._add_thinking_blocks(events, blocks)
        for call in delta.get("tool_calls") or ():
            self._add_call(events, call.get("index", 0), call)
        legacy = delta.get("function_call")
        if isinstance(legacy, dict):
            self._add_call(events, "function_call", {"function": legacy})

    def finish(self) -> list[MessageEvent]:
        """Close the open block; `message_delta` (stop reason, usage) and `message_stop`."""
        if self.terminal:
            return []
        events = self.start()
        self._close(events)
        self._blank = []
        message = self._message
        reason = STOP_REASONS.get(self._finish or "", "end_turn")
        stop_string = None
        if reason == "tool_use" and not self._called:
            reason = "end_turn"  # no tool_use block: a client would look for one in vain
        if reason == "end_turn" and self._called:
            reason = "tool_use"  # calls made: the client runs them, whatever the upstream said
        if reason == "end_turn":
            stop_string = self._stop_string or self._stop_in_text()
            reason = "end_turn" if stop_string is None else "stop_sequence"
        message["stop_reason"], message["stop_sequence"] = reason, stop_string
        self.terminal = True
        delta = {
            "type": "message_delta",
            "delta": {"stop_reason": reason, "stop_sequence": stop_string},
            "usage": self._usage,
        }
        events.append(event("message_delta", orjson.dumps(delta)))
        events.append(event("message_stop", b'{"type":"message_stop"}'))
        return events

    def fail(self, error: GatewayError) -> list[MessageEvent]:
        """`event: error` in Anthropic's shape; no `message_stop` follows."""
        if self.terminal:
            return []
        self.terminal = True
        if self._open is not None:
            self._sync(self._open)
            self._open = None
        return [event("error", orjson.dumps(error_body(error)))]

    # --- blocks ----------------------------------------------------------------------------

    def _add_text(self, events: list[MessageEvent], kind: str, text: str) -> None:
        open_ = self._open
        if open_ is None or open_.kind != kind or open_.signed:
            if not text.strip():
                # Whitespace alone opens no block (the "\n\n" some upstreams send before a call).
                if self._blank_kind != kind:
                    self._blank, self._blank_kind = [], kind
                self._blank.append(text)
                return
            if self._blank_kind == kind:
                text = "".join(self._blank) + text
            self._blank, self._blank_kind = [], ""
            self._close(events)
            block: dict[str, Any] = {"type": kind, kind: ""}
            if kind == "thinking":
                block["signature"] = ""
            open_ = self._begin(events, block)
        open_.pieces.append(text)
        data = open_.head + orjson.dumps(text) + b"}}"
        # The hot path: one event per delta, built without the NamedTuple's Python-level __new__.
        events.append(tuple.__new__(MessageEvent, (_DELTA, data, _DELTA_SSE % data)))

    def _add_thinking_blocks(self, events: list[MessageEvent], blocks: list[Any]) -> None:
        for block in blocks:
            if not isinstance(block, Mapping):
                continue
            if block.get("type") == "thinking":
                signature = block.get("signature")
                if not signature or not isinstance(signature, str):
                    continue
                open_ = self._open
                if open_ is not None and open_.signed and open_.block["signature"] == signature:
                    continue  # the same signature again (an upstream that repeats it)
                if open_ is None or open_.block["type"] != "thinking" or open_.signed:
                    self._blank, self._blank_kind = [], ""
                    self._close(events)
                    open_ = self._begin(
                        events, {"type": "thinking", "thinking": "", "signature": ""}
                    )
                open_.signed = True
                open_.block["signature"] = signature
                delta = {"type": "signature_delta", "signature": signature}
                payload = {"type": "content_block_delta", "index": open_.index, "delta": delta}
                events.append(event("content_block_delta", orjson.dumps(payload)))
            elif block.get("type") == "redacted_thinking":
                data = block.get("data")
                if isinstance(data, str) and data:
                    self._blank, self._blank_kind = [], ""
                    self._close(events)
                    self._begin(events, {"type": "redacted_thinking", "data": data})
                    self._close(events)

    def _add_call(
        self, events: list[MessageEvent], key: int | str, delta: Mapping[str, Any]
    ) -> None:
        function: Mapping[str, Any] = delta.get("function") or {}
        open_ = self._open
        if open_ is None or open_.key != key:
            if key in self._closed_calls:
                raise UpstreamMalformed(
                    "The upstream continued a tool call after other output had followed it."
                )
            self._blank, self._blank_kind = [], ""
            self._close(events)
            call_id = delta.get("id")
            if not isinstance(call_id, str) or not TOOL_ID.fullmatch(call_id):
                call_id = new_tool_id()
            name = function.get("name")
            block = {
                "type": "tool_use",
                "id": call_id,
                "name": name if isinstance(name, str) else "",
                "input": {},
            }
            open_ = self._begin(events, block, key)
            self._called = True
        arguments = function.get("arguments")
        if isinstance(arguments, str) and arguments:
            open_.pieces.append(arguments)
            data = open_.head + orjson.dumps(arguments) + b"}}"
            events.append(tuple.__new__(MessageEvent, (_DELTA, data, _DELTA_SSE % data)))

    def _begin(
        self, events: list[MessageEvent], block: dict[str, Any], key: int | str | None = None
    ) -> _Block:
        index = len(self._content)
        self._content.append(block)
        payload = {"type": "content_block_start", "index": index, "content_block": block}
        events.append(event("content_block_start", orjson.dumps(payload)))
        kind = block["type"]
        open_ = self._open = _Block(index, block, kind, key)
        if kind in _DELTAS:
            open_.head = b'{"type":"content_block_delta","index":%d,"delta":{"type":"%s","%s":' % (
                index,
                _DELTAS[kind],
                _VALUES[kind],
            )
        return open_

    def _close(self, events: list[MessageEvent]) -> None:
        open_ = self._open
        if open_ is None:
            return
        if open_.block["type"] == "tool_use":
            if not open_.pieces:  # the arguments' JSON is always streamed, even when empty
                open_.pieces.append("{}")
                data = open_.head + b'"{}"}}'
                events.append(event("content_block_delta", data))
            if open_.key is not None:
                self._closed_calls.add(open_.key)
        self._sync(open_)
        events.append(
            event("content_block_stop", b'{"type":"content_block_stop","index":%d}' % open_.index)
        )
        self._open = None

    def _sync(self, open_: _Block) -> None:
        block = open_.block
        kind = block["type"]
        if kind == "tool_use":
            try:
                value = orjson.loads("".join(open_.pieces) or "{}")
            except orjson.JSONDecodeError:
                value = {}  # cut off (max_tokens): the stream holds the fragments as sent
            block["input"] = value if isinstance(value, dict) else {}
        elif kind in ("text", "thinking"):
            block[kind] = "".join(open_.pieces)

    def _stop_in_text(self) -> str | None:
        """The request's stop sequence the answer's text ends with (an upstream that kept it)."""
        if not self._stops or not self._content or self._content[-1]["type"] != "text":
            return None
        text = self._content[-1]["text"]
        return next((stop for stop in self._stops if text.endswith(stop)), None)


def fold_message(
    message_id: str,
    model: str,
    chunks: Iterable[Chunk],
    *,
    input_tokens: int = 0,
    stop_sequences: Iterable[str] = (),
) -> dict[str, Any]:
    """The non-stream answer: a finished generation's chunks -> the Message, by the same rules
    as a stream. Raises the UpstreamMalformed of chunks it cannot translate."""
    builder = MessageBuilder(
        message_id, model, input_tokens=input_tokens, stop_sequences=stop_sequences
    )
    builder.feed(chunks)
    if builder.failure is not None:
        raise builder.failure
    builder.finish()
    return builder.message
