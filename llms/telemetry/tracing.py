"""OpenTelemetry traces, only when `OTEL_EXPORTER_OTLP_ENDPOINT` (or `..._TRACES_ENDPOINT`) is set.

Each API request is a SERVER span following the GenAI semantic conventions ("chat {model}",
`gen_ai.*`), each provider attempt (retries, fallbacks) a CLIENT child span whose W3C
`traceparent` goes upstream; a client's `traceparent` continues its trace. The SDK (its
TracerProvider, BatchSpanProcessor and OTLP/HTTP exporter, configured by the standard OTEL_* env
vars) is imported only then: unset, nothing here runs and nothing is imported.

The request span is made from the request record (`finish`, a telemetry sink) with the times the
record holds; attempt spans start live (their id is in the header sent upstream). Neither carries
a prompt, an answer or a credential.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from aiohttp import web

from llms import upstream
from llms.config import ProviderConfig
from llms.errors import ConfigError
from llms.telemetry.record import RequestRecord

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Span, Tracer

# The client's trace context and the request's path, set by the middleware (same task, and
# inherited by a resumable stream's pump task); the current attempt's headers for the upstream.
_INCOMING: contextvars.ContextVar[tuple[Context, str] | None] = contextvars.ContextVar(
    "llms_trace_incoming", default=None
)
_OUTGOING: contextvars.ContextVar[Mapping[str, str] | None] = contextvars.ContextVar(
    "llms_trace_outgoing", default=None
)

# The semantic conventions' gen_ai.provider.name for each provider type.
PROVIDER_NAMES = {
    "openai": "openai",
    "azure": "azure.ai.openai",
    "anthropic": "anthropic",
    "gemini": "gcp.gemini",
    "vertex": "gcp.vertex_ai",
    "bedrock": "aws.bedrock",
    "ollama": "ollama",
    "local": "llama.cpp",
    "airefinery": "airefinery",
}


def enabled(env: Mapping[str, str]) -> bool:
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if env.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() == "none":
        return False
    return bool(
        env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )


def operation_of(path: str) -> str:
    if path.endswith("/count_tokens"):
        return "count_tokens"  # not an inference: kept apart from chat's spans
    if path.startswith("/v1/embeddings"):
        return "embeddings"
    if path.startswith("/v1/completions"):
        return "text_completion"
    return "chat"


class _Attempt:
    __slots__ = ("provider", "span")

    def __init__(self, provider: ProviderConfig, span: Span) -> None:
        self.provider = provider
        self.span = span


class Tracing:
    """The tracer, the request records' span sink and routing's attempt hook."""

    def __init__(self, provider: TracerProvider) -> None:
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self.provider = provider
        self.tracer: Tracer = provider.get_tracer("llms")
        self.propagator = TraceContextTextMapPropagator()

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Tracing | None:
        if not enabled(env):
            return None
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.sdk.resources import SERVICE_NAME, Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor
        except ImportError as exc:
            raise ConfigError(
                "OTEL_EXPORTER_OTLP_ENDPOINT is set but the OpenTelemetry SDK is not installed: "
                "pip install 'llms[otel]' (or unset it)."
            ) from exc

        defaults = {} if env.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: "llms"}
        # Resource.create reads OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES, TracerProvider
        # OTEL_TRACES_SAMPLER(_ARG), the exporter OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT / HEADERS
        # / TIMEOUT / COMPRESSION, the processor OTEL_BSP_*.
        provider = TracerProvider(resource=Resource.create(defaults), shutdown_on_exit=False)
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        return cls(provider)

    def install(self, middlewares: list[Any]) -> None:
        """The middleware that reads the client's trace context (after authentication)."""
        middlewares.append(self.middleware)

    async def lifetime(self, _: web.Application) -> AsyncIterator[None]:
        """Attempts' headers go upstream while the app runs; what is left is exported at the end."""
        upstream.trace_headers = _OUTGOING.get
        yield
        upstream.trace_headers = None
        await asyncio.to_thread(self.provider.shutdown)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        parent = self.propagator.extract(request.headers)
        _INCOMING.set((parent, request.path))
        response: web.StreamResponse = await handler(request)
        return response

    # Routing's side (RouteTelemetry calls these with the current record).

    def sending(self, record: RequestRecord, provider: ProviderConfig, now: float) -> None:
        from opentelemetry import trace

        attempts: list[_Attempt] = record.extra.setdefault("trace_attempts", [])  # type: ignore[assignment]
        if attempts:
            _end(attempts[-1].span, _ns(record, now), None)
        operation = _operation(record)
        upstream_model = provider.models.get(record.model, record.model)
        span = self.tracer.start_span(
            f"{operation} {upstream_model}",
            context=trace.set_span_in_context(self._request_span(record)),
            kind=trace.SpanKind.CLIENT,
            start_time=_ns(record, now),
            attributes={
                **_provider_attributes(provider),
                "gen_ai.operation.name": operation,
                "gen_ai.request.model": upstream_model,
                "llms.attempt": len(attempts) + 1,
            },
        )
        attempts.append(_Attempt(provider, span))
        headers: dict[str, str] = {}
        self.propagator.inject(headers, context=trace.set_span_in_context(span))
        _OUTGOING.set(headers)

    def failed(self, record: RequestRecord, error: Any, now: float) -> None:
        attempts: list[_Attempt] = record.extra.get("trace_attempts", [])  # type: ignore[assignment]
        if attempts:
            _end(attempts[-1].span, _ns(record, now), error)

    def _request_span(self, record: RequestRecord) -> Span:
        span: Span | None = record.extra.get("trace_span")  # type: ignore[assignment]
        if span is None:
            from opentelemetry import trace

            incoming = _INCOMING.get()
            span = self.tracer.start_span(
                "chat",
                context=incoming[0] if incoming is not None else None,
                kind=trace.SpanKind.SERVER,
                start_time=int(record.wall * 1e9),
            )
            record.extra["trace_span"] = span
            if incoming is not None:
                record.extra["trace_operation"] = operation_of(incoming[1])
        return span

    # The sink: the request span gets what the record says, then ends with it.

    def finish(self, record: RequestRecord) -> None:
        if _INCOMING.get() is None and "trace_span" not in record.extra:
            return  # not a request the middleware saw (an in-process test's own record)
        span = self._request_span(record)
        operation = _operation(record)
        end = _ns(record, record.ended) if record.ended is not None else None
        failed = record.status >= 400 or record.error_type is not None
        attempts: list[_Attempt] = record.extra.get("trace_attempts", [])  # type: ignore[assignment]
        if attempts:
            last = attempts[-1]
            _end(last.span, end, record if failed else None, record)
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": operation,
            "gen_ai.request.model": record.model,
            "http.response.status_code": record.status,
            "llms.request_id": record.request_id,
            "llms.stream": record.stream,
            "llms.attempts": record.attempts,
        }
        if record.key is not None:
            attributes["llms.key"] = record.key
        if attempts:
            attributes.update(_provider_attributes(attempts[-1].provider))
            attributes["gen_ai.response.model"] = attempts[-1].provider.models.get(
                record.model, record.model
            )
        _answer_attributes(attributes, record)
        span.update_name(f"{operation} {record.model}" if record.model else operation)
        span.set_attributes(attributes)
        if record.first_output is not None:
            span.add_event("gen_ai.first_token", timestamp=_ns(record, record.first_output))
        if failed:
            _set_error(span, record)
        span.end(end_time=end)


def _operation(record: RequestRecord) -> str:
    operation = record.extra.get("trace_operation")
    if operation is None:
        incoming = _INCOMING.get()
        operation = operation_of(incoming[1]) if incoming is not None else "chat"
        record.extra["trace_operation"] = operation
    return str(operation)


def _ns(record: RequestRecord, at: float) -> int:
    """The event loop's time `at` as Unix nanoseconds (the record started at `wall`)."""
    return int((record.wall + (at - record.started)) * 1e9)


def _provider_attributes(provider: ProviderConfig) -> dict[str, Any]:
    name = PROVIDER_NAMES.get(provider.type, provider.type)
    attributes: dict[str, Any] = {
        "gen_ai.provider.name": name,
        "gen_ai.system": name,
        "llms.provider": provider.name,
    }
    url = urlsplit(provider.base_url)
    if url.hostname:
        attributes["server.address"] = url.hostname
        port = url.port or (443 if url.scheme == "https" else 80)
        attributes["server.port"] = port
    return attributes


def _answer_attributes(attributes: dict[str, Any], record: RequestRecord) -> None:
    usage = record.usage
    if usage is not None:
        attributes["gen_ai.usage.input_tokens"] = usage["prompt_tokens"]
        attributes["gen_ai.usage.output_tokens"] = usage["completion_tokens"]
    if record.finish_reason is not None:
        attributes["gen_ai.response.finish_reasons"] = [record.finish_reason]
    if record.first_output is not None:
        attributes["gen_ai.response.time_to_first_chunk"] = record.first_output - record.started


def _set_error(span: Span, error: Any) -> None:
    from opentelemetry.trace import Status, StatusCode

    kind = getattr(error, "error_code", None) or getattr(error, "code", None)
    kind = kind or getattr(error, "error_type", None) or getattr(error, "type", None)
    span.set_attribute("error.type", str(kind or "error"))
    # No description: an upstream's error message may quote the prompt.
    span.set_status(Status(StatusCode.ERROR))


def _end(span: Span, end: int | None, error: Any, record: RequestRecord | None = None) -> None:
    if not span.is_recording():
        return  # already ended (or not sampled)
    if record is not None:
        attributes: dict[str, Any] = {}
        _answer_attributes(attributes, record)
        span.set_attributes(attributes)
        if record.first_output is not None:
            span.add_event("gen_ai.first_token", timestamp=_ns(record, record.first_output))
    if error is not None:
        _set_error(span, error)
    span.end(end_time=end)
