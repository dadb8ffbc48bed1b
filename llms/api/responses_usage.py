"""What a Response reports besides its output: its `usage`, and its `error` when it failed."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from llms.errors import GatewayError

# The codes of OpenAI's `response.error.code` enum that a gateway can mean (the image codes
# aside), plus the two Codex acts on that OpenAI sends outside that enum.
FAILURE_CODES = frozenset(
    (
        "server_error",
        "rate_limit_exceeded",
        "invalid_prompt",
        "context_length_exceeded",
        "insufficient_quota",
    )
)


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def from_usage(usage: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Chat usage -> Responses usage, every detail count an integer (Codex fails to parse a
    `response.completed` whose `cached_tokens` or `reasoning_tokens` is missing or null)."""
    if not usage:
        return None
    prompt = _count(usage.get("prompt_tokens"))
    completion = _count(usage.get("completion_tokens"))
    total = usage.get("total_tokens")
    prompt_details = usage.get("prompt_tokens_details")
    completion_details = usage.get("completion_tokens_details")
    if not isinstance(prompt_details, Mapping):
        prompt_details = {}
    if not isinstance(completion_details, Mapping):
        completion_details = {}
    return {
        "input_tokens": prompt,
        "input_tokens_details": {
            "cached_tokens": _count(prompt_details.get("cached_tokens")),
            "cache_write_tokens": _count(prompt_details.get("cache_write_tokens")),
        },
        "output_tokens": completion,
        "output_tokens_details": {
            "reasoning_tokens": _count(completion_details.get("reasoning_tokens"))
        },
        "total_tokens": _count(total) if isinstance(total, int) else prompt + completion,
    }


def to_failure(error: GatewayError) -> dict[str, Any]:
    """The `error` of a failed Response: `code` one a client acts on (the gateway's own code
    when it is one, else by status: 429 rate_limit_exceeded, other 4xx invalid_prompt, else
    server_error), the message, and the OpenAI `type` and `param`."""
    code = error.code
    if code not in FAILURE_CODES:
        if error.status == 429:
            code = "rate_limit_exceeded"
        elif 400 <= error.status < 500:
            code = "invalid_prompt"
        else:
            code = "server_error"
    return {"code": code, "message": error.message, "type": error.type, "param": error.param}
