"""Azure OpenAI: OpenAI's chat completions, per deployment, with Azure's content filters.

`POST {base_url}/openai/deployments/{deployment}/chat/completions?api-version={api_version}`
(`models` maps a public id to a deployment name), the key in the `api-key` header; with the
`auth` block (Entra ID) an `Authorization: Bearer` token instead (llms/credentials.py).

Azure's content filters, kept as Azure says them: `content_filter_results` on a choice passes
through (both modes), finish_reason `content_filter` is OpenAI's own, and
`prompt_filter_results`, which Azure streams in a first chunk without choices, rides on the
first chunk the client gets (a non-stream answer keeps it at the top, as Azure sends it). A
prompt the filter refuses is Azure's 400 `content_filter` with an `innererror`: a 400
`content_filter` naming `messages` and the categories that were filtered.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import orjson

from llms.adapters.base import Framing, StreamContext, UpstreamRequest, from_http_status
from llms.adapters.openai import Converter, WholeConverter, error_fields
from llms.adapters.openai import build_request as _openai_request
from llms.adapters.openai import build_whole_request as _openai_whole_request
from llms.config import ProviderConfig
from llms.errors import UpstreamHTTPError
from llms.framing import SSEEvent
from llms.wire import ChatRequest, Chunk, Usage

# Decoded text events (OpenAI's own converter takes bytes): StreamConverter reads their data.
FRAMING: Framing = "sse"
_PROMPT_FILTER = "prompt_filter_results"


def build_request(
    request: ChatRequest, provider: ProviderConfig, upstream_model: str
) -> UpstreamRequest:
    return _azure(_openai_request(request, _keyless(provider), upstream_model), provider)


def build_whole_request(
    request: ChatRequest, provider: ProviderConfig, upstream_model: str
) -> UpstreamRequest:
    return _azure(_openai_whole_request(request, _keyless(provider), upstream_model), provider)


def _keyless(provider: ProviderConfig) -> ProviderConfig:
    # The key goes in `api-key`, not OpenAI's Authorization header.
    return dataclasses.replace(provider, api_key=None) if provider.api_key else provider


def _azure(sent: UpstreamRequest, provider: ProviderConfig) -> UpstreamRequest:
    body = orjson.loads(sent.body)
    deployment = quote(str(body["model"]), safe="")
    version = quote(str(provider.options.get("api_version", "2024-10-21")), safe="")
    url = (
        f"{provider.base_url}/openai/deployments/{deployment}/chat/completions"
        f"?api-version={version}"
    )
    headers = dict(sent.headers)
    if provider.api_key:
        headers = {"api-key": provider.api_key, **headers}
    return UpstreamRequest(sent.method, url, headers, sent.body)


def from_error_response(status: int, headers: Mapping[str, str], body: bytes) -> UpstreamHTTPError:
    """Azure's `{"error": {"code", "message", "param", "innererror"}}`; its numeric codes
    ("429", "401") are statuses, not codes."""
    message, code, param = error_fields(body)
    if code is not None and code.isdigit():
        code = None
    if code == "content_filter":
        filtered = _filtered(body)
        if filtered:
            message = f"{(message or 'Azure content filter').rstrip()} (filtered: {filtered})"
        param = "messages"
    return from_http_status(status, headers, message, code=code, param=param)


def _filtered(body: bytes) -> str:
    """The categories Azure's 400 `innererror.content_filter_result` says it filtered."""
    try:
        data = orjson.loads(body)
        result = data["error"]["innererror"]["content_filter_result"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return ""
    if not isinstance(result, dict):
        return ""
    said = []
    for name, verdict in result.items():
        if isinstance(verdict, dict) and verdict.get("filtered"):
            severity = verdict.get("severity")
            said.append(f"{name} ({severity})" if isinstance(severity, str) else str(name))
    return ", ".join(said)


def new_converter(context: StreamContext) -> StreamConverter:
    return StreamConverter(context)


def new_whole_converter(context: StreamContext) -> WholeConverter:
    return WholeConverter(context)


class StreamConverter:
    """OpenAI's stream converter, keeping Azure's `prompt_filter_results` for the first chunk."""

    __slots__ = ("_inner", "_pending")

    def __init__(self, context: StreamContext) -> None:
        self._inner = Converter(context)
        self._pending: Any = None

    @property
    def done(self) -> bool:
        return self._inner.done

    @property
    def usage(self) -> Usage | None:
        return self._inner.usage

    def feed(self, event: SSEEvent) -> list[Chunk]:
        chunks = self._inner.feed(event)
        if not chunks and _PROMPT_FILTER in event.data:
            data = orjson.loads(event.data)
            if isinstance(data, dict):
                self._pending = data.get(_PROMPT_FILTER)
        return self._attach(chunks)

    def close(self) -> list[Chunk]:
        return self._attach(self._inner.close())

    def _attach(self, chunks: list[Chunk]) -> list[Chunk]:
        if chunks and self._pending is not None:
            chunks[0][_PROMPT_FILTER] = self._pending  # type: ignore[literal-required]
            self._pending = None
        return chunks


__all__ = [
    "FRAMING",
    "build_request",
    "build_whole_request",
    "from_error_response",
    "new_converter",
    "new_whole_converter",
]
