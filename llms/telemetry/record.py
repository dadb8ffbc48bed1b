"""The record of one chat request, filled along the chunk's path and finished once."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Protocol

from llms.errors import GatewayError
from llms.wire import Chunk, Usage

log = logging.getLogger("llms.telemetry")

# Token counts are no generation: metrics count them on their own (llms_token_counts_total).
COUNT_TOKENS = "/v1/messages/count_tokens"


@dataclass(slots=True)
class RequestRecord:
    """Times are the event loop's clock (seconds); `wall` is the Unix time it started."""

    request_id: str
    model: str
    stream: bool
    started: float
    wall: float
    key: str | None = None
    # What the key's requests leave behind belongs to (ApiKey.owner); its name, if unset.
    owner: str | None = None
    resumable: bool = False
    provider: str | None = None
    status: int = 200
    first_output: float | None = None
    ended: float | None = None
    chunks: int = 0
    usage: Usage | None = None
    finish_reason: str | None = None
    error_type: str | None = None
    error_code: str | None = None
    stream_id: str | None = None
    disconnected: bool = False
    # Routing (set through Router's observer): attempts made, when the first attempt's request
    # was sent, when the committed attempt's was sent, and when that attempt committed.
    attempts: int = 0
    upstream_sent: float | None = None
    attempt_sent: float | None = None
    committed: float | None = None
    # Only with `state.log_content`: the request's messages (JSON) and the answer's text.
    prompt_content: str | None = None
    answer_parts: list[str] | None = None
    # The API's path (`/v1/embeddings`, `/v1/messages/count_tokens`, ...), set by Tracked.
    endpoint: str | None = None
    extra: dict[str, object] = field(default_factory=dict)

    def failed(self, error: GatewayError, *, status: int | None = None) -> None:
        self.status = status if status is not None else error.status
        self.error_type = error.type
        self.error_code = error.code


class Sink(Protocol):
    """Receives every finished record. Must not block: it runs on the request path."""

    def finish(self, record: RequestRecord) -> None: ...


class Sinks:
    """Fans a finished record out to every sink; one that fails is logged and the rest still run."""

    def __init__(self, sinks: list[Sink] | None = None) -> None:
        self.sinks: list[Sink] = list(sinks or [])

    def finish(self, record: RequestRecord) -> None:
        for sink in self.sinks:
            try:
                sink.finish(record)
            except Exception:
                # Telemetry runs as an answer ends: a bug in one sink must neither turn that
                # answer into a 500 nor cost the other sinks (metrics, request log) the record.
                log.exception(
                    "telemetry: %s failed on request %s", type(sink).__name__, record.request_id
                )


def finish_reason_of(chunks: list[Chunk]) -> str | None:
    """The last finish reason in a batch (the final batch of a stream holds it)."""
    for item in reversed(chunks):
        for choice in item["choices"]:
            reason = choice["finish_reason"]
            if reason is not None:
                return str(reason)
    return None
