"""Accenture's AI Refinery: OpenAI's chat completions, as its SDK (`airefinery-sdk`) sends them.

The SDK posts to `{base_url}/v1/chat/completions` (base URL `https://api.airefinery.accenture.com`,
without `/v1`) with `Authorization: Bearer` and the API key, or a token from an OAuth2
client-credentials grant (the `auth` block: llms/credentials.py), and an `sdk_version` header
naming the SDK release it speaks. Streams are OpenAI's SSE; an error may come as an SSE event
`event: error`, as `{"object": "error", ...}` or `{"error": ...}` in a data line (all three are
the OpenAI converter's stream errors), and a stream may end without `data: [DONE]` once every
choice has finished (the OpenAI converter takes that as a normal end). Error bodies are
OpenAI's, or FastAPI's `{"detail": ...}`: `openai.error_fields` reads both.
"""

from __future__ import annotations

import dataclasses

from llms.adapters.base import StreamContext, UpstreamRequest
from llms.adapters.openai import (
    FRAMING,
    Converter,
    WholeConverter,
    from_error_response,
)
from llms.adapters.openai import build_request as _openai_request
from llms.adapters.openai import build_whole_request as _openai_whole_request
from llms.config import ProviderConfig
from llms.wire import ChatRequest

# The SDK release whose requests these are (its `sdk_version` header).
SDK_VERSION = "1.33.2"


def build_request(
    request: ChatRequest, provider: ProviderConfig, upstream_model: str
) -> UpstreamRequest:
    return _quirks(_openai_request(request, _v1(provider), upstream_model), provider)


def build_whole_request(
    request: ChatRequest, provider: ProviderConfig, upstream_model: str
) -> UpstreamRequest:
    return _quirks(_openai_whole_request(request, _v1(provider), upstream_model), provider)


def _v1(provider: ProviderConfig) -> ProviderConfig:
    """The SDK's base URL is the host; the path is /v1/chat/completions (a base URL already
    ending in /v1 is taken as it is)."""
    base = provider.base_url
    return dataclasses.replace(provider, base_url=base if base.endswith("/v1") else f"{base}/v1")


def _quirks(sent: UpstreamRequest, provider: ProviderConfig) -> UpstreamRequest:
    headers = {"sdk_version": SDK_VERSION, **sent.headers}
    if "Accept" in headers and headers["Accept"] == "text/event-stream":
        headers.setdefault("Cache-Control", "no-cache")
    headers.update(provider.headers)
    return UpstreamRequest(sent.method, sent.url, headers, sent.body)


def new_converter(context: StreamContext) -> Converter:
    return Converter(context)


def new_whole_converter(context: StreamContext) -> WholeConverter:
    return WholeConverter(context)


__all__ = [
    "FRAMING",
    "build_request",
    "build_whole_request",
    "from_error_response",
    "new_converter",
    "new_whole_converter",
]
