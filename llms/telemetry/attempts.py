"""Routing's side of the record: attempts, when they were sent and committed, retries, fallbacks.

Router.open does not know the record; the chat handler puts it in `CURRENT_RECORD` (a context
variable, so one value per request's task, inherited by the resumable stream's pump task).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

import orjson

from llms.config import ProviderConfig
from llms.errors import GatewayError
from llms.generation import Generation
from llms.telemetry.metrics import Metrics
from llms.telemetry.record import RequestRecord
from llms.wire import Chunk

if TYPE_CHECKING:
    from llms.telemetry.tracing import Tracing

CURRENT_RECORD: ContextVar[RequestRecord | None] = ContextVar("llms_record", default=None)


class RouteTelemetry:
    """The Router's observer: fills the current request's record and counts retries."""

    def __init__(
        self, metrics: Metrics, *, log_content: bool = False, tracing: Tracing | None = None
    ) -> None:
        self.metrics = metrics
        self.log_content = log_content
        self.tracing = tracing  # None unless OTEL_EXPORTER_OTLP_ENDPOINT is set

    def sending(self, provider: ProviderConfig, request: Mapping[str, Any]) -> None:
        record = CURRENT_RECORD.get()
        if record is None:
            return
        now = asyncio.get_running_loop().time()
        record.attempts += 1
        record.attempt_sent = now
        record.provider = provider.name  # the last one tried, for requests that fail
        if self.tracing is not None:
            self.tracing.sending(record, provider, now)
        if record.upstream_sent is None:
            record.upstream_sent = now
            if self.log_content:
                # A chat's messages, or what an embeddings request embeds.
                prompt = request["messages"] if "messages" in request else request.get("input")
                record.prompt_content = orjson.dumps(prompt).decode()

    def failed(
        self,
        model: str,
        provider: ProviderConfig,
        follower: ProviderConfig,
        error: GatewayError | None = None,
    ) -> None:
        self.metrics.retried(model, provider.name, fallback=follower is not provider)
        if self.tracing is not None:
            record = CURRENT_RECORD.get()
            if record is not None:
                self.tracing.failed(record, error, asyncio.get_running_loop().time())

    def committed(self, generation: Generation) -> None:
        record = CURRENT_RECORD.get()
        if record is None:
            return
        record.committed = asyncio.get_running_loop().time()
        if self.log_content:
            parts: list[str] = []
            record.answer_parts = parts
            _keep_text(generation.first, parts)
            generation.tap = lambda batch: _keep_text(batch, parts)


def _keep_text(chunks: list[Chunk], parts: list[str]) -> None:
    for item in chunks:
        for choice in item["choices"]:
            text = choice["delta"].get("content")
            if text and choice["index"] == 0:
                parts.append(text)
