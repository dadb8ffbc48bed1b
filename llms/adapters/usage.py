"""Token counts as upstreams report them -> OpenAI usage the rest of the gateway can trust.

Every adapter reads its upstream's usage through these functions, so that nothing downstream
(the client's usage chunk, metrics, the request log's SQLite INTEGER columns, tpm accounting)
ever sees a count that is not an integer in [0, 2^63). A count that is not one is dropped:
a bad detail count alone, or the whole usage when a prompt or completion count is bad, since
a usage with a made-up count would misstate what the request cost.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from llms.wire import Usage

# SQLite's INTEGER (and most JSON readers' int64) ends here.
COUNT_LIMIT = 2**63
_DETAILS = ("prompt_tokens_details", "completion_tokens_details")


def from_count(value: object) -> int | None:
    """`value` if it is a token count (an integer, or integral float, in [0, 2^63)); else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and 0 <= value < COUNT_LIMIT:
        return value
    return None


def from_counts(
    prompt: object,
    completion: object,
    total: object = None,
    *,
    prompt_details: Mapping[str, object] | None = None,
    completion_details: Mapping[str, object] | None = None,
) -> Usage | None:
    """OpenAI usage of raw counts; None when the prompt or completion count is not a count.

    A total that is missing or not a count is the sum of the two; detail counts that are not
    counts are left out.
    """
    prompt_n = from_count(prompt)
    completion_n = from_count(completion)
    if prompt_n is None or completion_n is None:
        return None
    total_n = from_count(total)
    if total_n is None:
        total_n = from_count(prompt_n + completion_n)
        if total_n is None:
            return None
    usage: Usage = {
        "prompt_tokens": prompt_n,
        "completion_tokens": completion_n,
        "total_tokens": total_n,
    }
    if prompt_details is not None:
        usage["prompt_tokens_details"] = from_details(prompt_details)
    if completion_details is not None:
        usage["completion_tokens_details"] = from_details(completion_details)
    return usage


def from_details(details: Mapping[str, object]) -> dict[str, int]:
    """The entries of a `*_tokens_details` object that are counts."""
    out: dict[str, int] = {}
    for name, value in details.items():
        count = from_count(value)
        if count is not None:
            out[name] = count
    return out


def from_usage(raw: object) -> Usage | None:
    """An OpenAI-shaped `usage` object as an upstream sent it -> trusted usage, or None.

    Missing prompt or completion counts are 0 (as some servers leave one out); other fields
    (a vendor's extras) are kept as they are, and only the counts the gateway reads are checked.
    """
    if not isinstance(raw, dict) or not raw:
        return None
    details: dict[str, Mapping[str, object] | None] = {}
    for name in _DETAILS:
        value = raw.get(name)
        details[name] = value if isinstance(value, dict) else None
    usage = from_counts(
        _or_zero(raw.get("prompt_tokens")),
        _or_zero(raw.get("completion_tokens")),
        raw.get("total_tokens"),
        prompt_details=details["prompt_tokens_details"],
        completion_details=details["completion_tokens_details"],
    )
    if usage is None:
        return None
    out: dict[str, Any] = {
        name: value
        for name, value in raw.items()
        if name not in _DETAILS or details[name] is not None
    }
    out.update(usage)
    return out  # type: ignore[return-value]


def _or_zero(value: object) -> object:
    return 0 if value is None else value
