"""The Response object the Responses API returns, and how its events are framed.

`new_response` lays out every field the Open Responses schema requires (null only where that
schema allows null); `from_usage` and `to_failure` give its `usage` and `error`; the rest
translates chat pieces (logprobs, a custom tool's input) into their Responses form. Also the
API's other bodies (a deletion, a page of input items) and the errors it names.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

import orjson

from llms.errors import GatewayError, InvalidRequest, NotFound


class ResponseEvent(NamedTuple):
    """One streamed event: its type, number, JSON (`data`) and SSE frame (`sse`). A
    NamedTuple: one is made per token, and `tuple.__new__` builds it at a fraction of a frozen
    dataclass's cost (bench `responses`)."""

    type: str
    sequence_number: int
    data: bytes
    sse: bytes


def encode_event(type: str, data: bytes, event_id: int | None = None) -> bytes:
    """The SSE frame `event: <type>\\ndata: <json>\\n\\n`, after `id: <n>` when given (the
    resumable log's form; the default stream never carries `id:`)."""
    head = b"" if event_id is None else b"id: %d\n" % event_id
    return b"%sevent: %s\ndata: %s\n\n" % (head, type.encode(), data)


def new_response(
    response_id: str, model: str, created_at: int, settings: Mapping[str, Any], status: str
) -> dict[str, Any]:
    """A Response with no output yet: the builder's own fields, then the request's echo
    fields (`settings`), OpenAI's defaults for any the settings lack."""
    response: dict[str, Any] = {
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "completed_at": None,
        "error": None,
        "incomplete_details": None,
        "model": model,
        "output": [],
        "usage": None,
        # (A request's settings, complete and without the builder's keys, are taken whole.)
        **(
            {key: value for key, value in settings.items() if key not in _OWN}
            if _OWN.intersection(settings)
            else settings
        ),
    }
    if not ECHO_DEFAULTS.keys() <= response.keys():
        for key, default in ECHO_DEFAULTS.items():
            response.setdefault(key, default)
    return response


# Response keys the builder owns; the settings give every other one.
_OWN = frozenset(
    (
        "id",
        "object",
        "created_at",
        "status",
        "completed_at",
        "error",
        "incomplete_details",
        "model",
        "output",
        "usage",
    )
)
# A Response's echo fields in their order, as OpenAI shows them when the request did not send
# them (the Open Responses schema makes the sampling ones numbers, never null): what a Response
# without settings (e.g. rebuilt from storage) shows, and what a request's settings start from.
ECHO_DEFAULTS: dict[str, Any] = {
    "instructions": None,
    "previous_response_id": None,
    "tools": [],
    "tool_choice": "auto",
    "truncation": "disabled",
    "parallel_tool_calls": True,
    "text": {"format": {"type": "text"}},
    "temperature": 1.0,
    "top_p": 1.0,
    "presence_penalty": 0.0,
    "frequency_penalty": 0.0,
    "top_logprobs": 0,
    "reasoning": None,
    "max_output_tokens": None,
    "max_tool_calls": None,
    "store": True,
    "background": False,
    "service_tier": "default",
    "metadata": {},
    "safety_identifier": None,
    "prompt_cache_key": None,
    "user": None,
}


def tool_names(tools: Iterable[Any]) -> tuple[frozenset[str], dict[str, str]]:
    """(names of custom tools, tool name -> its namespace) from the echoed Responses tools."""
    custom: set[str] = set()
    namespaces: dict[str, str] = {}
    for tool in tools:
        if not isinstance(tool, Mapping):
            continue
        members = tool.get("tools") if tool.get("type") == "namespace" else [tool]
        for member in members or ():
            if isinstance(member, Mapping) and isinstance(member.get("name"), str):
                if member.get("type") == "custom":
                    custom.add(member["name"])
                if tool.get("type") == "namespace":
                    namespaces[member["name"]] = str(tool.get("name"))
    return frozenset(custom), namespaces


def custom_input(arguments: str) -> str:
    """A custom tool's input from the function call it was offered as ({"input": "…"})."""
    try:
        value = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        return arguments
    if isinstance(value, dict) and isinstance(value.get("input"), str):
        return str(value["input"])
    return arguments


def from_annotation(annotation: Any) -> dict[str, Any] | None:
    """A chat `url_citation` annotation -> the Responses one (flat); None for any other."""
    if not isinstance(annotation, Mapping) or annotation.get("type") != "url_citation":
        return None
    cited = annotation.get("url_citation")
    if not isinstance(cited, Mapping):
        return None
    try:
        return {
            "type": "url_citation",
            "start_index": int(cited["start_index"]),
            "end_index": int(cited["end_index"]),
            "title": str(cited.get("title") or ""),
            "url": str(cited["url"]),
        }
    except (KeyError, TypeError, ValueError):
        return None


def from_logprobs(choice: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Chat `logprobs.content` -> Responses logprobs (token, bytes, logprob, top_logprobs)."""
    logprobs = choice.get("logprobs")
    content = logprobs.get("content") if isinstance(logprobs, Mapping) else None
    if not isinstance(content, list):
        return []
    return [_logprob(entry, top=True) for entry in content if isinstance(entry, Mapping)]


def _logprob(entry: Mapping[str, Any], *, top: bool = False) -> dict[str, Any]:
    out = {
        "token": str(entry.get("token", "")),
        "bytes": entry.get("bytes") or [],
        "logprob": entry.get("logprob") if isinstance(entry.get("logprob"), int | float) else 0.0,
    }
    if top:
        tops = entry.get("top_logprobs")
        out["top_logprobs"] = (
            [_logprob(t) for t in tops if isinstance(t, Mapping)] if isinstance(tops, list) else []
        )
    return out


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
    # `type(…) is dict` first: an ABC's isinstance is slow, and parsed JSON is dicts.
    if type(prompt_details) is not dict and not isinstance(prompt_details, Mapping):
        prompt_details = {}
    if type(completion_details) is not dict and not isinstance(completion_details, Mapping):
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


# --- the other objects and errors of the API ----------------------------------------------------


def deleted(response_id: str) -> dict[str, Any]:
    """The body of `DELETE /v1/responses/{id}`."""
    return {"id": response_id, "object": "response.deleted", "deleted": True}


def response_not_found(response_id: str) -> NotFound:
    """404 for `GET`, `DELETE`, `…/input_items` or `…/cancel` of an unknown id."""
    return NotFound(f"Response with id '{response_id}' not found.")


def previous_response_not_found(response_id: str) -> InvalidRequest:
    """400 for an unknown or expired `previous_response_id` (Codex-compatible clients resend
    the whole history on this code)."""
    return InvalidRequest(
        f"Previous response with id '{response_id}' not found.",
        param="previous_response_id",
        code="previous_response_not_found",
    )


def input_items_page(
    items: list[dict[str, Any]],
    *,
    after: str | None = None,
    limit: str | int | None = None,
    order: str | None = None,
) -> dict[str, Any]:
    """`GET /v1/responses/{id}/input_items`: one page of a response's input items (query
    values as given; `order` desc by default, `limit` 1 to 100, default 20)."""
    if order not in (None, "asc", "desc"):
        raise InvalidRequest("Invalid 'order': expected 'asc' or 'desc'.", param="order")
    if limit is None:
        size = 20
    elif isinstance(limit, int) or (isinstance(limit, str) and limit.isascii() and limit.isdigit()):
        size = int(limit)
    else:
        size = 0
    if not 1 <= size <= 100:
        raise InvalidRequest("Invalid 'limit': expected an integer from 1 to 100.", param="limit")
    ordered = items if order == "asc" else items[::-1]
    if after is not None:
        ids = [item.get("id") for item in ordered]
        if after not in ids:
            raise InvalidRequest(f"No input item with id '{after}'.", param="after")
        ordered = ordered[ids.index(after) + 1 :]
    page = ordered[:size]
    return {
        "object": "list",
        "data": page,
        "first_id": page[0]["id"] if page else None,
        "last_id": page[-1]["id"] if page else None,
        "has_more": len(ordered) > size,
    }
