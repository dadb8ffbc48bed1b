"""Which provider answers, with retries and fallback, until the first chunk is committed.

A request's providers are tried in config order. A retryable failure before anything is committed
moves on (same provider again after `retry_delay`, or the next one at once). The commit point is
the first chunk that carries output (content, reasoning, a tool call, a refusal, a finish or
usage): role-only and empty chunks are held back until then, so a provider that fails after
sending only those can still be replaced. After the commit, failures are the caller's to report.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import random
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import aiohttp

from llms.adapters import ADAPTERS
from llms.adapters.base import Converter, StreamContext
from llms.chunks import StreamMeta
from llms.config import Config, ProviderConfig
from llms.errors import (
    GatewayError,
    ModelNotFound,
    ServiceUnavailable,
    UpstreamError,
)
from llms.framing import NDJSONDecoder, SSEDecoder
from llms.upstream import UpstreamCall
from llms.wire import ChatRequest, Chunk

log = logging.getLogger("llms.routing")

RETRY_DELAY_CAP_S = 8.0
RETRY_BASE_S = 0.25


class BaseURLSource(Protocol):
    """Where a provider with a dynamic address (the local model) is reachable now."""

    @property
    def base_url(self) -> str | None: ...


def should_retry(error: GatewayError) -> bool:
    """Connect errors, timeouts, 408/409/429/5xx and an upstream "model not found" are retryable."""
    if isinstance(error, ServiceUnavailable):
        return True
    return isinstance(error, UpstreamError) and error.retryable


def retry_delay(
    attempt: int,
    error: GatewayError,
    *,
    cap: float = RETRY_DELAY_CAP_S,
    rand: Callable[[], float] = random.random,
) -> float | None:
    """Seconds to wait before retrying the same provider; None when waiting would exceed `cap`.

    The upstream's `retry-after-ms` / `Retry-After` (seconds) wins; otherwise exponential backoff
    with full jitter.
    """
    headers = {k.lower(): v for k, v in error.headers.items()}
    hinted: float | None = None
    try:
        if "retry-after-ms" in headers:
            hinted = float(headers["retry-after-ms"]) / 1000
        elif "retry-after" in headers:
            hinted = float(headers["retry-after"])
    except ValueError:
        hinted = None
    if hinted is not None:
        return max(0.0, hinted) if hinted <= cap else None
    return rand() * min(cap, RETRY_BASE_S * 2.0**attempt)


def carries_output(chunk: Chunk) -> bool:
    """True for a chunk past which the answer is committed to this provider."""
    if chunk.get("usage"):
        return True
    for choice in chunk["choices"]:
        if choice["finish_reason"] is not None:
            return True
        delta: Mapping[str, Any] = choice["delta"]
        if (
            delta.get("content")
            or delta.get("reasoning_content")
            or delta.get("tool_calls")
            or delta.get("refusal")
        ):
            return True
    return False


class Generation:
    """One committed upstream stream: `first` holds the chunks up to the commit point."""

    __slots__ = (
        "_call",
        "_converter",
        "_decoder",
        "_end_by",
        "_ended",
        "_idle",
        "_loop",
        "attempts",
        "first",
        "provider",
    )

    def __init__(
        self,
        call: UpstreamCall,
        decoder: SSEDecoder | NDJSONDecoder,
        converter: Converter,
        provider: ProviderConfig,
        attempts: int,
    ) -> None:
        self._call = call
        self._decoder = decoder
        self._converter = converter
        self._loop = asyncio.get_running_loop()
        self._idle = provider.timeouts.idle_s
        total = provider.timeouts.total_s
        self._end_by = math.inf if total is None else self._loop.time() + total
        self._ended = False
        self.provider = provider
        self.attempts = attempts
        self.first: list[Chunk] = []

    @property
    def converter(self) -> Converter:
        return self._converter

    async def next(self) -> list[Chunk] | None:
        """The chunks of the next upstream read; None once the stream has ended normally."""
        if self._ended:
            return None
        converter = self._converter
        decoder = self._decoder
        call = self._call
        while True:
            data = await call.read(min(self._loop.time() + self._idle, self._end_by))
            out: list[Chunk] = []
            if not data:
                self._ended = True
                for event in decoder.flush():
                    out += converter.feed(event)
                if not converter.done:
                    out += converter.close()
                call.close()
                return out or None
            for event in decoder.feed(data):
                out += converter.feed(event)
                if converter.done:
                    self._ended = True
                    call.close()
                    return out
            if out:
                return out

    async def commit(self, deadline: float) -> None:
        """Read until the first chunk that carries output (or the end); fills `first`."""
        converter = self._converter
        decoder = self._decoder
        call = self._call
        held = self.first
        while True:
            data = await call.read(deadline)
            if not data:
                self._ended = True
                for event in decoder.flush():
                    held += converter.feed(event)
                if not converter.done:
                    held += converter.close()
                call.close()
                return
            committed = False
            for event in decoder.feed(data):
                items = converter.feed(event)
                held += items
                if not committed:
                    committed = any(carries_output(item) for item in items)
                if converter.done:
                    self._ended = True
                    call.close()
                    return
            if committed:
                return

    def close(self) -> None:
        self._ended = True
        self._call.close()


class Router:
    """Resolves public models to providers and opens generations."""

    def __init__(
        self,
        config: Config,
        session: aiohttp.ClientSession,
        dynamic: Mapping[str, BaseURLSource] | None = None,
    ) -> None:
        self.config = config
        self.routes = config.routes()
        self._session = session
        self._dynamic = dict(dynamic or {})

    def providers_for(self, model: str) -> tuple[ProviderConfig, ...]:
        providers = self.routes.get(model)
        if not providers:
            raise ModelNotFound(model)
        return providers

    def _resolve(self, provider: ProviderConfig) -> ProviderConfig:
        source = self._dynamic.get(provider.name)
        if source is None:
            return provider
        url = source.base_url
        if url is None:
            raise ServiceUnavailable(
                f"Provider {provider.name!r} (the bundled model) is not ready yet.",
                headers={"Retry-After": "2"},
            )
        return dataclasses.replace(provider, base_url=url)

    async def open(self, request: ChatRequest, meta: StreamMeta, include_usage: bool) -> Generation:
        """Try providers until one commits, or raise the last error."""
        providers = self.providers_for(meta.model)
        max_attempts = self.config.routing.max_attempts
        loop = asyncio.get_running_loop()
        last: GatewayError | None = None
        attempt = 0
        while attempt < max_attempts:
            provider = providers[attempt % len(providers)]
            attempt += 1
            try:
                return await self._attempt(provider, request, meta, include_usage, attempt, loop)
            except GatewayError as error:
                last = error
                if not should_retry(error) or attempt >= max_attempts:
                    break
                log.info(
                    "provider %s failed (%s); attempt %d", provider.name, error.message, attempt
                )
                if providers[attempt % len(providers)] is provider:
                    delay = retry_delay(attempt - 1, error)
                    if delay is None:
                        break
                    await asyncio.sleep(delay)
        assert last is not None
        raise last

    async def _attempt(
        self,
        provider: ProviderConfig,
        request: ChatRequest,
        meta: StreamMeta,
        include_usage: bool,
        attempt: int,
        loop: asyncio.AbstractEventLoop,
    ) -> Generation:
        resolved = self._resolve(provider)
        adapter = ADAPTERS[provider.type]
        upstream_request = adapter.build_request(request, resolved, provider.models[meta.model])
        timeouts = provider.timeouts
        deadline = loop.time() + timeouts.first_token_s
        if timeouts.total_s is not None:
            deadline = min(deadline, loop.time() + timeouts.total_s)
        call = UpstreamCall(self._session, upstream_request, timeouts)
        try:
            await call.open(deadline)
            if call.status >= 300:
                body = await call.read_error_body(deadline)
                raise adapter.from_error_response(call.status, call.headers, body)
            decoder = SSEDecoder() if adapter.FRAMING == "sse" else NDJSONDecoder()
            converter = adapter.new_converter(StreamContext(meta, include_usage))
            generation = Generation(call, decoder, converter, provider, attempt)
            await generation.commit(deadline)
        except BaseException:
            call.close()
            raise
        return generation
