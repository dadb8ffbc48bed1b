"""Stored responses: the record, the store protocol both backends follow, and their errors.

A stored response is what `GET /v1/responses/{id}`, `…/input_items` and a `previous_response_id`
continuation need, as opaque JSON bytes the store never parses. Only the owner that created it
(the API key's name; None when the gateway has no keys) can see it: any other owner is told it
does not exist. A record is invisible from `retention_s` after its `created_at` and is removed
soon after (SQLite: by `purge()`, run periodically; Redis: by the key's expiry).
"""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass
from typing import Literal, Protocol

from llms.errors import PayloadTooLarge, ServiceUnavailable

ResponseStatus = Literal["queued", "in_progress", "completed", "failed", "cancelled", "incomplete"]
STATUSES: frozenset[str] = frozenset(
    ("queued", "in_progress", "completed", "failed", "cancelled", "incomplete")
)
RETENTION_S = 30 * 86400.0
MAX_RECORD_MB = 16.0
# What an id may look like: the gateway's own (`resp_` + hex) and those of upstreams that serve
# Responses natively, relayed in passthrough. Anything else is unknown without asking the store.
ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")
MIB = 1024 * 1024


def new_response_id() -> str:
    """A fresh id in OpenAI's form, `resp_` and 48 hex digits: like OpenAI's, it starts with
    the time (14 digits of microseconds since the epoch), then 136 random bits. Ids made
    later sort later, so a stored response's index entry lands beside the last ones: SQLite's
    commit of a batch of answers rewrote one index page per answer with random ids (77 pages
    of WAL for 41 answers, 34 with ordered ids)."""
    return f"resp_{time.time_ns() // 1000:014x}{secrets.token_hex(17)}"


def is_response_id(text: str) -> bool:
    """Whether `text` can name a stored response (a bad one is answered as unknown)."""
    return ID.fullmatch(text) is not None


@dataclass(frozen=True, slots=True)
class StoredResponse:
    """One response as stored.

    `response`: the Response object (the final one, or the latest while it runs in the
    background); `input_items`: this request's input items (a JSON list); `history`: the turns
    before them, the conversation a `previous_response_id` continued (`{"earlier": [items]}`),
    so that continuing this response is one read: earlier turns, input items, the response's
    output. (Records stored before 2026-12-03 hold the whole conversation there, as a list.)
    All three are JSON bytes the store keeps as they are.
    """

    id: str
    owner: str | None
    created_at: int
    status: ResponseStatus
    response: bytes
    input_items: bytes
    history: bytes

    @property
    def size(self) -> int:
        """The bytes it holds: what the per-record and total caps count."""
        return len(self.response) + len(self.input_items) + len(self.history)


class ResponseTooLarge(PayloadTooLarge):
    """A record over the per-record cap: the client's 413 (the conversation is what is large)."""

    default_code = "response_too_large"

    def __init__(self, size: int, cap: int) -> None:
        super().__init__(
            f"This response and its conversation take {size / MIB:.1f} MiB; the gateway stores "
            f"at most {cap / MIB:.1f} MiB for one response. Send `store: false`, or start a new "
            "conversation instead of continuing this one with `previous_response_id`."
        )
        self.size = size
        self.cap = cap


class StoreUnavailable(ServiceUnavailable):
    """The response store cannot be read or written right now (503); the cause is logged."""

    default_code = "store_unavailable"


class ResponseStore(Protocol):
    """Where responses are kept: SQLite in one file (`SQLiteResponseStore`, the embedded
    default, shared by `--workers`) or Redis (`RedisResponseStore`, shared by replicas).

    Every method may raise StoreUnavailable; `put` and `update_response` also ResponseTooLarge.
    """

    async def start(self) -> None:
        """Open the store (before serving); StoreUnavailable when it cannot be opened."""

    async def put(self, record: StoredResponse) -> None:
        """Insert the record, or replace the one with its id."""

    async def get(self, response_id: str, owner: str | None) -> StoredResponse | None:
        """The record, or None when it is unknown, expired, or another owner's."""

    async def delete(self, response_id: str, owner: str | None) -> bool:
        """Remove the owner's record; False when there was none to remove (as for get)."""

    async def update_response(
        self,
        response_id: str,
        response: bytes,
        status: ResponseStatus,
    ) -> bool:
        """Progress of a background response: its latest Response object and status. False
        when the record is gone or expired.

        The gateway's own call, so no owner: the id came from a record this gateway put.
        """

    async def purge(self) -> int:
        """Remove the records past the retention now; how many (Redis: 0, keys expire)."""

    async def close(self) -> None:
        """Stop periodic work and close the connection; safe to call twice."""


def check_record(record: StoredResponse, max_record_bytes: int) -> None:
    """ValueError for a record the gateway should never build; ResponseTooLarge over the cap."""
    if not is_response_id(record.id):
        raise ValueError(f"not a response id: {record.id[:140]!r}")
    if record.owner == "":
        raise ValueError("an owner is a key's name (non-empty) or None")
    if record.status not in STATUSES:
        raise ValueError(f"not a response status: {record.status!r}")
    if record.size > max_record_bytes:
        raise ResponseTooLarge(record.size, max_record_bytes)
