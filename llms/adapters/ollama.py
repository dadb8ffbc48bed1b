"""Placeholder for the ollama adapter: every request is refused until the adapter lands."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from llms.adapters.base import Framing, StreamContext, UpstreamRequest, from_http_status
from llms.config import ProviderConfig
from llms.errors import InvalidRequest, UpstreamHTTPError
from llms.wire import ChatRequest, Chunk, Usage

FRAMING: Framing = "sse"


def build_request(
    request: ChatRequest, provider: ProviderConfig, upstream_model: str
) -> UpstreamRequest:
    raise InvalidRequest("The ollama protocol is not supported yet.", param="model")


def from_error_response(status: int, headers: Mapping[str, str], body: bytes) -> UpstreamHTTPError:
    return from_http_status(status, headers, body.decode("utf-8", "replace")[:500])


class Converter:
    def __init__(self, context: StreamContext) -> None:
        self.done = False
        self.usage: Usage | None = None

    def feed(self, event: Any) -> list[Chunk]:
        return []

    def close(self) -> list[Chunk]:
        return []


def new_converter(context: StreamContext) -> Converter:
    return Converter(context)


def models_request(provider: ProviderConfig) -> UpstreamRequest:
    return UpstreamRequest("GET", f"{provider.base_url}/api/tags", {}, b"")


def from_models_response(body: bytes) -> list[str]:
    return []
