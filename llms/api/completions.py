"""Legacy text completions (`POST /v1/completions`) answered through chat: internal chunks ->
`text_completion` chunks, and a folded chat.completion -> one `text_completion` object.

A stream is OpenAI's: `data: <text_completion chunk>` events, an error event after output
(then `data: [DONE]`, as chat's), `data: [DONE]` at its normal end. Each choice's text is its
chat delta's `content`; deltas with no text (the role, reasoning) and no finish are not sent.
Answers from upstreams that serve `/completions` themselves are relayed as they are instead
(llms/api/completions_native.py). Pure: no I/O.
"""

from __future__ import annotations

import secrets
from typing import Any

from llms.api.chat import DONE, encode_chunks, error_event
from llms.errors import GatewayError
from llms.generation import to_json_each
from llms.streams.pump import ChatLog, LogItem
from llms.wire import Chunk, Completion

# The finish reasons a text completion has (a chat-only one, a tool call, reads as `stop`).
_FINISH = frozenset(("stop", "length", "content_filter"))


def new_completion_id() -> str:
    """An unguessable `cmpl-…` id (also the stream id), as OpenAI's text completions have."""
    return "cmpl-" + secrets.token_urlsafe(18)


def _finish(reason: str | None) -> str | None:
    if reason is None or reason in _FINISH:
        return reason
    return "stop"


def from_chunks(batch: list[Chunk]) -> list[dict[str, Any]]:
    """The `text_completion` chunks for a batch of internal chunks (those with text, a
    finish reason or usage; `usage` is on every one when the client asked for it)."""
    out: list[dict[str, Any]] = []
    for item in batch:
        choices = []
        for choice in item["choices"]:
            text = choice["delta"].get("content") or ""
            finish = choice["finish_reason"]
            if text or finish is not None:
                choices.append(
                    {
                        "text": text,
                        "index": choice["index"],
                        "logprobs": None,
                        "finish_reason": _finish(finish),
                    }
                )
        usage = item.get("usage")
        if not choices and not usage:
            continue
        chunk: dict[str, Any] = {
            "id": item["id"],
            "object": "text_completion",
            "created": item["created"],
            "model": item["model"],
            "choices": choices,
        }
        if "usage" in item:
            chunk["usage"] = usage
        out.append(chunk)
    return out


def from_completion(completion: Completion) -> dict[str, Any]:
    """A folded chat.completion as a `text_completion` object."""
    return {
        "id": completion["id"],
        "object": "text_completion",
        "created": completion["created"],
        "model": completion["model"],
        "choices": [
            {
                "text": choice["message"].get("content") or "",
                "index": choice["index"],
                "logprobs": None,
                "finish_reason": _finish(choice["finish_reason"]) or "stop",
            }
            for choice in completion["choices"]
        ],
        "usage": completion["usage"],
    }


class CompletionsEncoder:
    """Legacy completions' stream (a `StreamEncoder`, server/relay.py): stateless."""

    __slots__ = ()

    def chunks(self, batch: list[Chunk]) -> bytes:
        return encode_chunks(from_chunks(batch))  # type: ignore[arg-type]

    def done(self) -> bytes:
        return DONE

    def failed(self, error: GatewayError) -> bytes:
        return error_event(error)


class CompletionsLog(ChatLog):
    """Legacy completions' events in a stream log (resumable mode): chat's, but for the
    chunks, which are `text_completion` ones."""

    __slots__ = ()

    def chunks(self, batch: list[Chunk]) -> tuple[list[LogItem], GatewayError | None]:
        encoded, error = to_json_each(from_chunks(batch))  # type: ignore[arg-type]
        return [("chunk", data) for data in encoded], error


COMPLETIONS = CompletionsEncoder()
COMPLETIONS_LOG = CompletionsLog()
