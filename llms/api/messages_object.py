"""The Messages API's objects apart from the stream's state machine: its events' framing,
its usage, its ids and its error shape (docs: responses-and-messages.md §2.2, §2.3).

Pure: ids come from `llms.chunks.new_item_id`, nothing else touches the outside.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, NamedTuple

from llms.chunks import new_item_id
from llms.errors import GatewayError

PING = b'event: ping\ndata: {"type":"ping"}\n\n'
"""Anthropic's heartbeat event (the Messages stream's `: keep-alive`)."""

STOP_REASONS = {
    "length": "max_tokens",
    "content_filter": "refusal",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
}
# Anthropic's error type per HTTP status (docs.anthropic.com/en/api/errors); 503 goes out as 529.
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}
TOOL_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")


def new_message_id() -> str:
    return new_item_id("msg_", 96)


def new_tool_id() -> str:
    return new_item_id("toolu_", 96)


def error_type(error: GatewayError) -> str:
    """Anthropic's error type for `error` (by its status; other 4xx are invalid requests)."""
    return ERROR_TYPES.get(error.status) or (
        "invalid_request_error" if error.status < 500 else "api_error"
    )


def error_status(error: GatewayError) -> int:
    """The HTTP status to answer with: the gateway's, but 529 for overloaded (a 503)."""
    return 529 if error.status == 503 else error.status


def error_body(error: GatewayError, request_id: str | None = None) -> dict[str, Any]:
    """`{"type": "error", "error": {"type", "message"}}` (+ `request_id` when given): the body of
    an HTTP error and the data of an in-stream `error` event."""
    body: dict[str, Any] = {
        "type": "error",
        "error": {"type": error_type(error), "message": error.message},
    }
    if request_id is not None:
        body["request_id"] = request_id
    return body


def from_usage(usage: Mapping[str, Any]) -> dict[str, Any]:
    """Chat usage -> Anthropic's: `input_tokens` excludes cache reads and writes (which chat's
    `prompt_tokens` includes); reasoning tokens are `output_tokens_details.thinking_tokens`."""
    details = usage.get("prompt_tokens_details") or {}
    read = details.get("cached_tokens") or 0
    write = details.get("cache_write_tokens") or 0
    out: dict[str, Any] = {
        "input_tokens": max(usage.get("prompt_tokens", 0) - read - write, 0),
        "cache_creation_input_tokens": write,
        "cache_read_input_tokens": read,
        "output_tokens": usage.get("completion_tokens", 0),
    }
    reasoning = (usage.get("completion_tokens_details") or {}).get("reasoning_tokens")
    if isinstance(reasoning, int):
        out["output_tokens_details"] = {"thinking_tokens": reasoning}
    return out


class MessageEvent(NamedTuple):
    """One streamed event: its type, its JSON (`data`) and its SSE frame (`sse`). A NamedTuple,
    not a frozen dataclass: one is made per relayed delta, and a frozen dataclass's __init__
    cost 0.75 µs of the encoder's 1.9 µs per chunk (bench `messages`, issue 13)."""

    type: str
    data: bytes
    sse: bytes


def event(type: str, data: bytes) -> MessageEvent:
    return MessageEvent(type, data, b"event: %s\ndata: %s\n\n" % (type.encode(), data))
