"""The contract every protocol adapter meets, and what their response sides share.

An adapter translates and nothing else: no I/O, no clock, no aiohttp. `build_request` turns a
validated OpenAI request into the provider's HTTP request; a `Converter` turns the provider's
decoded events (SSE events, NDJSON lines or AWS event-stream messages, per `FRAMING`) into OpenAI
chunks. Shared here: the mapping of an upstream's HTTP status, and the reading of error bodies
and JSON events.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import orjson

from llms.chunks import StreamMeta
from llms.config import ProviderConfig
from llms.errors import UpstreamHTTPError, UpstreamMalformed
from llms.wire import ChatRequest, Chunk, Usage

# "sse_bytes": SSE whose events keep their data as bytes (framing.SSEBytesEvent), for a
# converter that parses each as JSON at once.
Framing = Literal["sse", "sse_bytes", "ndjson", "eventstream"]

# Headers worth passing on to a client that must wait before retrying.
RETRY_HEADERS = ("retry-after", "retry-after-ms")
RATE_LIMIT_PREFIX = "x-ratelimit-"
# llama.cpp's server (a std::runtime_error) and Ollama answer 500 to an image or audio part the
# model cannot take: that is the client's request, not the provider's health.
UNSUPPORTED_INPUT = (
    "image input is not supported",
    "audio input is not supported",
    "this server does not support multimodal",
    "failed to load image or audio file",
    "missing data required for image input",
)


@dataclass(frozen=True, slots=True)
class UpstreamRequest:
    method: str
    url: str
    headers: Mapping[str, str]
    # Kept until it is sent (llms.upstream.UpstreamCall.open), not while the answer streams.
    body: bytes


@dataclass(frozen=True, slots=True)
class StreamContext:
    """What a converter needs to know about the response it builds."""

    meta: StreamMeta
    include_usage: bool


class Converter(Protocol):
    """Turns one provider stream into OpenAI chunks; one instance per upstream attempt."""

    # Read-only to the gateway: a converter may keep them as attributes or properties.
    @property
    def usage(self) -> Usage | None: ...

    @property
    def done(self) -> bool: ...

    def feed(self, event: Any) -> list[Chunk]:
        """Chunks for one decoded event. Raises UpstreamStreamError / UpstreamMalformed."""
        ...

    def close(self) -> list[Chunk]:
        """The upstream body ended: final chunks, or UpstreamIncomplete if it ended early."""
        ...


class Adapter(Protocol):
    FRAMING: Framing

    def build_request(
        self, request: ChatRequest, provider: ProviderConfig, upstream_model: str
    ) -> UpstreamRequest: ...

    def new_converter(self, context: StreamContext) -> Converter: ...

    def from_error_response(
        self, status: int, headers: Mapping[str, str], body: bytes
    ) -> UpstreamHTTPError: ...


class WholeAnswers(Protocol):
    """An adapter that can also ask for a non-stream answer, sent whole (one JSON document)."""

    def build_whole_request(
        self, request: ChatRequest, provider: ProviderConfig, upstream_model: str
    ) -> UpstreamRequest: ...

    def new_whole_converter(self, context: StreamContext) -> Converter: ...


def from_http_status(
    status: int,
    headers: Mapping[str, str],
    message: str | None,
    *,
    code: str | None = None,
    param: str | None = None,
) -> UpstreamHTTPError:
    """Map an upstream's non-2xx status to what the client gets (protocol.md §3.5)."""
    passed = {
        name: value
        for name, value in headers.items()
        if name.lower() in RETRY_HEADERS or name.lower().startswith(RATE_LIMIT_PREFIX)
    }
    text = (message or "").strip()
    if status in (401, 403):
        # The client's own key was fine: the gateway's credentials for the provider were not.
        # The upstream's text is not passed on: it may quote part of the key.
        return UpstreamHTTPError(
            f"The upstream provider rejected the gateway's credentials (HTTP {status}).",
            status=502,
            type="upstream_error",
            code="upstream_auth_failed",
        )
    if status == 404:
        return UpstreamHTTPError(
            text or "The upstream does not know this model.",
            status=404,
            type="invalid_request_error",
            code="model_not_found",
            param="model",
            retryable=True,
        )
    if status == 429:
        return UpstreamHTTPError(
            text or "The upstream is rate limiting requests.",
            status=429,
            type="rate_limit_error",
            code=code or "rate_limit_exceeded",
            headers=passed,
            retryable=True,
        )
    if status in (408, 409):
        return UpstreamHTTPError(
            text or f"The upstream answered HTTP {status}.",
            status=502,
            type="server_error",
            code="upstream_error",
            retryable=True,
        )
    if 400 <= status < 500:
        return UpstreamHTTPError(
            text or f"The upstream rejected the request (HTTP {status}).",
            status=400 if status == 422 else status,
            type="invalid_request_error",
            code=code,
            param=param,
        )
    if status == 500 and any(words in text.lower() for words in UNSUPPORTED_INPUT):
        # A 400, not retryable: never retried, never counted against the provider's circuit.
        return UpstreamHTTPError(
            f"The model cannot take this input: {text}",
            status=400,
            type="invalid_request_error",
            code="unsupported_value",
            param="messages",
        )
    client_status = {503: 503, 529: 503, 504: 504}.get(status, 502)
    return UpstreamHTTPError(
        text or f"The upstream failed (HTTP {status}).",
        status=client_status,
        type="server_error",
        code="upstream_unavailable" if client_status == 503 else "upstream_error",
        headers=passed,
        retryable=True,
    )


def from_error_text(body: bytes) -> str | None:
    """The message of an error body that is not JSON: its text, stripped, at most 500 characters."""
    return body.decode("utf-8", "replace").strip()[:500] or None


def from_json_event(data: str) -> dict[str, Any]:
    """The JSON object an SSE event carries; UpstreamMalformed if it carries anything else."""
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise UpstreamMalformed(
            f"The upstream sent an event that is not JSON: {data[:200]!r}"
        ) from None
    if not isinstance(obj, dict):
        raise UpstreamMalformed("The upstream sent an event that is not a JSON object.")
    return obj
