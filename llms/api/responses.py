"""Internal chunks -> the Responses API's events and its Response object.

`ResponseBuilder` is fed the chunk batches of one answer and returns the events to send, in
OpenAI's order (docs: responses-and-messages.md §1.4): a `reasoning` item before the message,
the message's `output_text` (and `refusal`) parts, one `function_call` item per tool call, each
item opened with `output_item.added` and closed with balanced `.done` events, `sequence_number`
+1 per event. The Response object it keeps (`.response`) holds the very item dicts the events
described, so streamed ids and the final output never differ; it is the non-stream answer,
what `GET /v1/responses/{id}` shows and what storage keeps. Signed thinking (Anthropic's,
Bedrock's, Gemini's thought signatures: the `thinking_blocks` delta extension) is a reasoning
item's `encrypted_content`, always sent, so a client that replays its reasoning items (the
Agents SDK, Codex) gives it back to the upstream that needs it.

Pure: the caller gives the id, the creation time and the completion time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from llms.api.responses_input import signed_thinking
from llms.api.responses_object import (
    ResponseEvent,
    custom_input,
    deleted,
    encode_event,
    from_annotation,
    from_logprobs,
    from_usage,
    input_items_page,
    new_response,
    previous_response_not_found,
    response_not_found,
    to_failure,
    tool_names,
)
from llms.api.responses_request import ResponsesCall
from llms.chunks import new_call_id, new_item_id
from llms.errors import GatewayError, UpstreamMalformed
from llms.store.responses import new_response_id
from llms.wire import Chunk

__all__ = [
    "ResponseBuilder",
    "ResponseEvent",
    "deleted",
    "encode_event",
    "fold_response",
    "from_usage",
    "input_items_page",
    "new_response_id",
    "previous_response_not_found",
    "response_not_found",
]

Status = Literal["queued", "in_progress", "completed", "incomplete", "failed", "cancelled"]
INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}
_NO_LOGPROBS: list[dict[str, Any]] = []  # shared, never changed
_NO_PIECES: list[str] = []  # shared, never changed


@dataclass(slots=True)
class _Text:
    """The open message or reasoning item and its open content part."""

    output_index: int
    item: dict[str, Any]
    part: dict[str, Any] | None = None
    part_index: int = -1
    pieces: list[str] = field(default_factory=list)
    logprobs: list[dict[str, Any]] = field(default_factory=list)
    # The open part's delta event type and its JSON up to the delta (the hot path: one
    # event per token, so its bytes are assembled, not a dict dumped).
    delta_type: str = ""
    head: bytes = b""
    # `event: <delta_type>\ndata: ` + head: the SSE frame up to the delta.
    prefix: bytes = b""


@dataclass(slots=True)
class _Call:
    output_index: int
    item: dict[str, Any]
    pieces: list[str] = field(default_factory=list)
    head: bytes = b""


class ResponseBuilder:
    """The state machine of one Response: `start()`, `feed(chunks)` per batch, then exactly
    one of `finish()`, `fail(error)` or `cancel()`; each returns the events to send.

    `reasoning="summary"` streams reasoning as summary parts (`reasoning_summary_*` events,
    which the Open Responses schema also knows) instead of `reasoning_text` ones. The default
    keeps OpenAI's `response.reasoning_text.*` names for raw reasoning, not Open Responses'
    `response.reasoning.*`: openai-python's event union and Codex know only OpenAI's.
    """

    def __init__(
        self,
        response_id: str,
        model: str,
        created_at: int,
        call_or_settings: ResponsesCall | Mapping[str, Any],
        *,
        status: Status = "in_progress",
        reasoning: Literal["text", "summary"] = "text",
    ) -> None:
        settings = (
            call_or_settings.settings
            if isinstance(call_or_settings, ResponsesCall)
            else call_or_settings
        )
        self._custom, self._namespaces = tool_names(settings.get("tools") or ())
        self._summary = reasoning == "summary"
        self._response = new_response(response_id, model, created_at, settings, status)
        self._output: list[dict[str, Any]] = self._response["output"]
        self._seq = 0
        self._text: _Text | None = None
        self._calls: dict[int | str, _Call] = {}
        self._closed: set[int | str] = set()
        self._blank: list[str] = []  # leading whitespace of an item not yet opened
        self._blank_kind = ""
        self._finish: str | None = None
        self._usage: Mapping[str, Any] | None = None
        self._queued = status == "queued"
        self._announced = False
        self.terminal = False
        self.failure: UpstreamMalformed | None = None
        # The JSON of the Response as its terminal event carried it (None before, and for an
        # upstream's own Response adopted in passthrough): what storage keeps, not made twice.
        self.final_json: bytes | None = None

    # --- the public steps -----------------------------------------------------------------

    @property
    def response(self) -> dict[str, Any]:
        """The Response object as it stands (a live dict: serialise it, do not change it)."""
        if self._text is not None and self._text.part is not None:
            self._sync(self._text)
        for call in self._calls.values():
            self._sync_call(call)
        return self._response

    @property
    def sequence_number(self) -> int:
        """The number the next event gets."""
        return self._seq

    def start(self, *, in_progress: bool = True) -> list[ResponseEvent]:
        """`response.created` (+ `response.queued` for a queued response), then
        `response.in_progress` unless `in_progress` is false (call `in_progress()` later)."""
        # One encoding of the Response for the events that carry it unchanged (created,
        # queued, and in_progress when its status already says so).
        body = orjson.dumps(self.response)
        events = [self._whole("response.created", body)]
        if self._queued:
            events.append(self._whole("response.queued", body))
        if in_progress:
            events += self.in_progress(body)
        return events

    def in_progress(self, body: bytes | None = None) -> list[ResponseEvent]:
        """`response.in_progress` (status `in_progress`), once; `body`: the Response's JSON
        when already made, used if the status was `in_progress` already."""
        if self.terminal or self._announced:
            return []
        self._announced = True
        if self._response["status"] != "in_progress":
            self._response["status"] = "in_progress"
            body = None
        return [self._whole("response.in_progress", body)]

    def feed(self, chunks: Iterable[Chunk]) -> list[ResponseEvent]:
        """The events for one batch of chunks (only choice 0: the Responses API has no `n`).

        Chunks that cannot be translated end the response here: the events end with
        `response.failed`, `terminal` is true and `failure` holds the error (stop the upstream).
        """
        if self.terminal:
            return []
        events: list[ResponseEvent] = []
        try:
            self._feed(events, chunks)
        except UpstreamMalformed as error:
            # The events already numbered must still go out: the failure follows them.
            self.failure = error
            events += self.fail(error)
        return events

    def frames(self, chunks: list[Chunk]) -> bytes:
        """The stream's hot path, for a relay that needs only bytes: the SSE frames of a batch,
        exactly as `feed` would make them. A chunk that is one more piece of the open
        output_text part and nothing else becomes its delta frame directly (no event object,
        list or data slice); any other chunk goes through `feed`."""
        out: list[bytes] = []
        frame = out.extend  # a frame's three pieces: joined once, at the end
        dumps = orjson.dumps
        tails, known = _TEXT_TAILS, len(_TEXT_TAILS)
        prefix, pieces = self._text_prefix()
        add_piece = pieces.append
        seq = self._seq  # kept here on the fast path, given back before `feed` and at the end
        try:
            for chunk in chunks:
                if prefix is not None:
                    choices = chunk["choices"]
                    if len(choices) == 1 and not chunk.get("usage") and "service_tier" not in chunk:
                        choice = choices[0]
                        delta = choice["delta"]
                        if (
                            len(delta) == 1
                            and choice["index"] == 0
                            and choice["finish_reason"] is None
                            and not choice.get("logprobs")
                        ):
                            text = delta.get("content")
                            if text and type(text) is str:
                                add_piece(text)
                                frame(
                                    (
                                        prefix,
                                        dumps(text),
                                        tails[seq] if seq < known else _TEXT_TAIL % seq,
                                    )
                                )
                                seq += 1
                                continue
                self._seq = seq
                seq = -1  # `feed` numbers its events itself
                out += [event.sse for event in self.feed((chunk,))]
                seq = self._seq
                prefix, pieces = self._text_prefix()
                add_piece = pieces.append
        finally:
            if seq >= 0:
                self._seq = seq
        return b"".join(out)

    def _text_prefix(self) -> tuple[bytes | None, list[str]]:
        """The open output_text part's frame prefix and pieces, for `frames` (None: none open,
        or the response ended)."""
        open_ = self._text
        if (
            open_ is None
            or open_.part is None
            or open_.delta_type != _OUTPUT_TEXT_DELTA
            or self.terminal
        ):
            return None, _NO_PIECES
        return open_.prefix, open_.pieces

    def _feed(self, events: list[ResponseEvent], chunks: Iterable[Chunk]) -> None:
        for chunk in chunks:
            usage = chunk.get("usage")
            if usage:
                self._usage = usage
            tier = chunk.get("service_tier")
            if tier and isinstance(tier, str):
                self._response["service_tier"] = tier
            for choice in chunk["choices"]:
                if choice["index"] != 0:
                    continue
                delta: Mapping[str, Any] = choice["delta"]
                if len(delta) == 1 and not choice.get("logprobs"):
                    # Most deltas are one piece of text and nothing else (bench `responses`).
                    content = delta.get("content")
                    if content and isinstance(content, str):
                        self._add_text(events, "output_text", content, _NO_LOGPROBS)
                        if choice["finish_reason"] is not None:
                            self._finish = choice["finish_reason"]
                        continue
                # Truthiness first: most deltas carry one short text and nothing else.
                reasoning = delta.get("reasoning_content") or delta.get("reasoning")
                if reasoning and isinstance(reasoning, str):
                    self._add_text(events, "reasoning", reasoning, _NO_LOGPROBS)
                signed = delta.get("thinking_blocks")
                if signed and isinstance(signed, list):
                    self._add_signed(events, signed)
                content = delta.get("content")
                if content and isinstance(content, str):
                    logprobs = from_logprobs(choice) if choice.get("logprobs") else _NO_LOGPROBS
                    self._add_text(events, "output_text", content, logprobs)
                annotations = delta.get("annotations")
                if annotations and isinstance(annotations, list):
                    self._add_annotations(events, annotations)
                refusal = delta.get("refusal")
                if refusal and isinstance(refusal, str):
                    self._add_text(events, "refusal", refusal, _NO_LOGPROBS)
                for call in delta.get("tool_calls") or ():
                    self._add_call(events, call.get("index", 0), call)
                legacy = delta.get("function_call")
                if legacy is not None and isinstance(legacy, Mapping):
                    self._add_call(events, "function_call", {"function": legacy})
                if choice["finish_reason"] is not None:
                    self._finish = choice["finish_reason"]

    def finish(self, *, completed_at: int | None = None) -> list[ResponseEvent]:
        """Close the open items; `response.completed`, or `response.incomplete` when the
        upstream stopped at the token limit or its content filter."""
        if self.terminal:
            return []
        reason = INCOMPLETE.get(self._finish or "")
        item_status = "incomplete" if reason else "completed"
        events: list[ResponseEvent] = []
        self._close_text(events, item_status)
        self._close_calls(events, item_status)
        response = self._response
        response["usage"] = from_usage(self._usage)
        if reason:
            response["status"] = "incomplete"
            response["incomplete_details"] = {"reason": reason}
        else:
            response["status"] = "completed"
            response["completed_at"] = completed_at or response["created_at"]
        self.terminal = True
        events.append(self._whole(f"response.{response['status']}", self._final()))
        return events

    def fail(self, error: GatewayError) -> list[ResponseEvent]:
        """`response.failed` with the output so far (its open items `incomplete`, never given
        an `output_item.done`: Codex would run a half-streamed call) and `error`."""
        if self.terminal:
            return []
        self._abandon()
        self._response["status"] = "failed"
        self._response["error"] = to_failure(error)
        return [self._whole("response.failed", self._final())]

    def cancel(self) -> list[ResponseEvent]:
        """Status `cancelled`, open items `incomplete`. No event: neither OpenAI's nor the Open
        Responses event list has one for it, so the stream simply ends."""
        if not self.terminal:
            self._abandon()
            self._response["status"] = "cancelled"
        return []

    def adopt(self, response: dict[str, Any], sequence_number: int) -> None:
        """Take an upstream's own Response object as this response (native passthrough,
        api/responses_native.py): it is then what `response` shows and storage keeps;
        `sequence_number` is the next event's."""
        self._response = response
        self._seq = sequence_number
        self._announced = True
        self.final_json = None

    def error_event(self, error: GatewayError) -> ResponseEvent:
        """The in-stream `error` event, in OpenAI's flat shape and Open Responses' nested one
        at once (each validator ignores the other's keys)."""
        body = error.to_body()["error"]
        return self._event(
            "error", **{key: body[key] for key in ("code", "message", "param")}, error=body
        )

    # --- items ---------------------------------------------------------------------------------

    def _add_text(
        self, events: list[ResponseEvent], kind: str, text: str, logprobs: list[dict[str, Any]]
    ) -> None:
        open_ = self._text
        if (
            kind == "output_text"
            and open_ is not None
            and open_.part is not None
            and open_.delta_type == _OUTPUT_TEXT_DELTA
        ):
            # The hot path, one per token: the open message's output_text part grows; the
            # frame is one format of its precomputed prefix, `data` a slice of it.
            open_.pieces.append(text)
            if logprobs:
                open_.logprobs += logprobs
            seq = self._seq
            self._seq = seq + 1
            sse = b'%s%s,"logprobs":%s,"sequence_number":%d}\n\n' % (
                open_.prefix,
                orjson.dumps(text),
                orjson.dumps(logprobs) if logprobs else b"[]",
                seq,
            )
            data = sse[_OUTPUT_TEXT_FRAME:-2]
            events.append(tuple.__new__(ResponseEvent, (_OUTPUT_TEXT_DELTA, seq, data, sse)))
            return
        item_type = "reasoning" if kind == "reasoning" else "message"
        if open_ is None or open_.item["type"] != item_type:
            if not text.strip():
                # No item of whitespace alone (the "\n\n" some upstreams send before a call).
                if self._blank_kind != item_type:
                    self._blank, self._blank_kind = [], item_type
                self._blank.append(text)
                return
            if self._blank_kind == item_type:
                text = "".join(self._blank) + text
            self._blank, self._blank_kind = [], ""
            self._close_text(events, "completed")
            self._close_calls(events, "completed")
            open_ = self._open_text(events, item_type)
        if kind == "reasoning":
            kind = "summary_text" if self._summary else "reasoning_text"
        if open_.part is None or open_.part["type"] != kind:
            self._close_part(events, open_)
            self._open_part(events, open_, kind)
        open_.pieces.append(text)
        body = open_.head + orjson.dumps(text)
        if kind == "output_text":  # `logprobs` is required on a text delta, even empty
            open_.logprobs += logprobs
            body += b',"logprobs":' + (orjson.dumps(logprobs) if logprobs else b"[]")
        events.append(self._delta(open_.delta_type, body))

    def _add_signed(self, events: list[ResponseEvent], blocks: list[Any]) -> None:
        """Signed or redacted thinking (the `thinking_blocks` delta extension) as a reasoning
        item's `encrypted_content`, closing the item: the signature on the open reasoning item
        (whose text it signs), else on an item of its own (redacted thinking, Gemini's
        signature of a call); `signed_thinking` says how it goes back upstream."""
        for block in blocks:
            encrypted = signed_thinking(block) if isinstance(block, Mapping) else None
            if encrypted is None:
                continue
            open_ = self._text
            if (
                block["type"] != "thinking"
                or open_ is None
                or open_.item["type"] != "reasoning"
                or "encrypted_content" in open_.item
            ):
                self._blank, self._blank_kind = [], ""
                self._close_text(events, "completed")
                self._close_calls(events, "completed")
                open_ = self._open_text(events, "reasoning")
            open_.item["encrypted_content"] = encrypted
            self._close_text(events, "completed")

    def _add_annotations(self, events: list[ResponseEvent], annotations: list[Any]) -> None:
        """Chat `annotations` (web search citations) on the open text part; dropped when no
        text part is open (they index into a text)."""
        open_ = self._text
        if open_ is None or open_.part is None or open_.part["type"] != "output_text":
            return
        for annotation in annotations:
            mapped = from_annotation(annotation)
            if mapped is None:
                continue
            index = len(open_.part["annotations"])
            open_.part["annotations"].append(mapped)
            events.append(
                self._event(
                    "response.output_text.annotation.added",
                    **self._where(open_),
                    annotation_index=index,
                    annotation=mapped,
                )
            )

    def _open_text(self, events: list[ResponseEvent], item_type: str) -> _Text:
        if item_type == "message":
            item: dict[str, Any] = {
                "id": new_item_id("msg_"),
                "type": "message",
                "status": "in_progress",
                "content": [],
                "role": "assistant",
            }
        else:
            item = {"id": new_item_id("rs_"), "type": "reasoning", "summary": []}
            if not self._summary:
                item["content"] = []
        self._text = _Text(len(self._output), item)
        self._output.append(item)
        events.append(
            self._event(
                "response.output_item.added", output_index=self._text.output_index, item=item
            )
        )
        return self._text

    def _open_part(self, events: list[ResponseEvent], open_: _Text, part_type: str) -> None:
        part: dict[str, Any] = {
            "type": part_type,
            "refusal" if part_type == "refusal" else "text": "",
        }
        if part_type == "output_text":
            part.update(annotations=[], logprobs=[])
        parts = open_.item["summary" if part_type == "summary_text" else "content"]
        open_.part, open_.part_index = part, len(parts)
        parts.append(part)
        kind = "reasoning_summary_part" if part_type == "summary_text" else "content_part"
        events.append(self._event(f"response.{kind}.added", **self._where(open_), part=part))
        open_.delta_type = _DELTAS[part_type]
        open_.head = _head(open_.delta_type, self._where(open_))
        open_.prefix = b"event: %s\ndata: %s" % (open_.delta_type.encode(), open_.head)

    def _close_part(self, events: list[ResponseEvent], open_: _Text) -> None:
        part = open_.part
        if part is None:
            return
        self._sync(open_)
        where = self._where(open_)
        kind = part["type"]
        if kind == "output_text":
            events.append(
                self._event(
                    "response.output_text.done",
                    **where,
                    text=part["text"],
                    logprobs=part["logprobs"],
                )
            )
        elif kind == "refusal":
            events.append(self._event("response.refusal.done", **where, refusal=part["refusal"]))
        elif kind == "reasoning_text":
            events.append(self._event("response.reasoning_text.done", **where, text=part["text"]))
        if kind == "summary_text":
            events.append(
                self._event("response.reasoning_summary_text.done", **where, text=part["text"])
            )
            events.append(self._event("response.reasoning_summary_part.done", **where, part=part))
        else:
            events.append(self._event("response.content_part.done", **where, part=part))
        open_.part, open_.pieces, open_.logprobs = None, [], []

    def _close_text(self, events: list[ResponseEvent], status: str) -> None:
        open_ = self._text
        if open_ is None:
            return
        self._close_part(events, open_)
        if open_.item["type"] == "message":
            open_.item["status"] = status
        events.append(
            self._event(
                "response.output_item.done", output_index=open_.output_index, item=open_.item
            )
        )
        self._text = None

    def _add_call(
        self, events: list[ResponseEvent], key: int | str, delta: Mapping[str, Any]
    ) -> None:
        function: Mapping[str, Any] = delta.get("function") or {}
        call = self._calls.get(key)
        if call is None:
            if key in self._closed:
                raise UpstreamMalformed(
                    "The upstream continued a tool call after other output had followed it."
                )
            self._blank, self._blank_kind = [], ""
            self._close_text(events, "completed")
            name = function.get("name") or ""
            custom = name in self._custom
            item: dict[str, Any] = {
                "id": new_item_id("ctc_" if custom else "fc_"),
                "type": "custom_tool_call" if custom else "function_call",
                "status": "in_progress",
                "input" if custom else "arguments": "",
                "call_id": delta.get("id") or new_call_id(),
                "name": name,
            }
            if name in self._namespaces:
                item["namespace"] = self._namespaces[name]
            call = self._calls[key] = _Call(len(self._output), item)
            call.head = _head(
                "response.function_call_arguments.delta",
                {"item_id": item["id"], "output_index": call.output_index},
            )
            self._output.append(item)
            events.append(
                self._event("response.output_item.added", output_index=call.output_index, item=item)
            )
        elif function.get("name") and not call.item["name"]:
            call.item["name"] = function["name"]
        arguments = function.get("arguments")
        if isinstance(arguments, str) and arguments:
            call.pieces.append(arguments)
            if call.item["type"] == "function_call":
                body = call.head + orjson.dumps(arguments)
                events.append(self._delta("response.function_call_arguments.delta", body))

    def _close_calls(self, events: list[ResponseEvent], status: str) -> None:
        for key, call in self._calls.items():
            item, where = call.item, {"item_id": call.item["id"], "output_index": call.output_index}
            if item["type"] == "function_call":
                if not call.pieces:  # a call without arguments still sends a JSON object
                    call.pieces.append("{}")
                    events.append(
                        self._event("response.function_call_arguments.delta", **where, delta="{}")
                    )
                self._sync_call(call)
                events.append(
                    self._event(
                        "response.function_call_arguments.done",
                        **where,
                        arguments=item["arguments"],
                        name=item["name"],
                    )
                )
            else:
                # A custom tool's input is decoded from its JSON wrapper once it is whole.
                self._sync_call(call)
                if item["input"]:
                    events.append(
                        self._event(
                            "response.custom_tool_call_input.delta", **where, delta=item["input"]
                        )
                    )
                events.append(
                    self._event(
                        "response.custom_tool_call_input.done", **where, input=item["input"]
                    )
                )
            item["status"] = status
            events.append(
                self._event("response.output_item.done", output_index=call.output_index, item=item)
            )
            self._closed.add(key)
        self._calls.clear()

    def _abandon(self) -> None:
        """Ends the open items without events (a failure or a cancel): `incomplete`."""
        open_ = self._text
        if open_ is not None and open_.part is not None:
            self._sync(open_)
        if open_ is not None and open_.item["type"] == "message":
            open_.item["status"] = "incomplete"
        for call in self._calls.values():
            self._sync_call(call)
            call.item["status"] = "incomplete"
        self._text, self._calls = None, {}
        self._response["usage"] = from_usage(self._usage)
        self.terminal = True

    # --- helpers -------------------------------------------------------------------------

    def _sync(self, open_: _Text) -> None:
        part = open_.part
        if part is None:
            return
        part["refusal" if part["type"] == "refusal" else "text"] = "".join(open_.pieces)
        if part["type"] == "output_text":
            part["logprobs"] = list(open_.logprobs)

    def _sync_call(self, call: _Call) -> None:
        joined = "".join(call.pieces)
        if call.item["type"] == "function_call":
            call.item["arguments"] = joined
        else:
            call.item["input"] = custom_input(joined)

    def _where(self, open_: _Text) -> dict[str, Any]:
        index = (
            "summary_index"
            if open_.part is not None and open_.part["type"] == "summary_text"
            else "content_index"
        )
        return {
            "item_id": open_.item["id"],
            "output_index": open_.output_index,
            index: open_.part_index,
        }

    def _whole(self, type: str, body: bytes | None = None) -> ResponseEvent:
        """An event carrying the whole Response (`body`: its JSON, when already made); the
        bytes orjson makes of `{"type", "response", "sequence_number"}`."""
        if body is None:
            body = orjson.dumps(self.response)
        seq = self._seq
        name = type.encode()
        data = b'{"type":"%s","response":%s,"sequence_number":%d}' % (name, body, seq)
        self._seq = seq + 1
        sse = b"event: %s\ndata: %s\n\n" % (name, data)
        return tuple.__new__(ResponseEvent, (type, seq, data, sse))

    def _final(self) -> bytes:
        """The terminal Response's JSON, kept (`final_json`) for its stored copy."""
        body = self.final_json = orjson.dumps(self.response)
        return body

    def _delta(self, type: str, body: bytes) -> ResponseEvent:
        """A delta event from its assembled JSON `body` (without the sequence number)."""
        seq = self._seq
        data = b'%s,"sequence_number":%d}' % (body, seq)
        self._seq = seq + 1
        sse = b"event: %s\ndata: %s\n\n" % (type.encode(), data)
        return tuple.__new__(ResponseEvent, (type, seq, data, sse))

    def _event(self, type: str, **fields: Any) -> ResponseEvent:
        seq = self._seq
        self._seq = seq + 1
        data = orjson.dumps({"type": type, **fields, "sequence_number": seq})
        sse = b"event: %s\ndata: %s\n\n" % (type.encode(), data)
        return tuple.__new__(ResponseEvent, (type, seq, data, sse))


_OUTPUT_TEXT_DELTA = "response.output_text.delta"
# An output_text delta frame after its delta, on `frames`' fast path.
_TEXT_TAIL = b',"logprobs":[],"sequence_number":%d}\n\n'
# The first tails made once (~60 KiB a process): most answers are shorter, and a format per
# token was a third of the fast path's cost.
_TEXT_TAILS = [_TEXT_TAIL % seq for seq in range(1024)]
# Where `data` starts in an output_text delta's frame.
_OUTPUT_TEXT_FRAME = len(b"event: %s\ndata: " % _OUTPUT_TEXT_DELTA.encode())
_DELTAS = {
    "output_text": _OUTPUT_TEXT_DELTA,
    "refusal": "response.refusal.delta",
    "reasoning_text": "response.reasoning_text.delta",
    "summary_text": "response.reasoning_summary_text.delta",
}


def _head(type: str, where: Mapping[str, Any]) -> bytes:
    """The JSON of a delta event up to its `delta` value: `{"type":…,<where>,"delta":`."""
    return orjson.dumps({"type": type, **where})[:-1] + b',"delta":'


def fold_response(
    response_id: str,
    model: str,
    created_at: int,
    call_or_settings: ResponsesCall | Mapping[str, Any],
    chunks: Iterable[Chunk],
    *,
    completed_at: int | None = None,
) -> dict[str, Any]:
    """The non-stream answer: the whole chunk list of a finished generation -> the Response."""
    builder = ResponseBuilder(response_id, model, created_at, call_or_settings)
    builder.start()
    builder.feed(chunks)
    builder.finish(completed_at=completed_at)
    return builder.response
