"""Which provider answers, with retries and fallback, until the first chunk is committed.

A request's providers are tried in config order. A retryable failure before anything is committed
moves on (same provider again after `retry_delay`, or the next one at once). The commit point is
the first chunk that carries output (see llms/generation.py): an attempt that fails before it can
still be replaced. After the commit, the `Generation` is the caller's, and so are its failures.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol, TypeVar

import aiohttp

from llms.adapters import ADAPTERS, WHOLE_ANSWERS
from llms.adapters.base import StreamContext, UpstreamRequest
from llms.chunks import RANDOM, StreamMeta
from llms.config import ProviderConfig
from llms.errors import (
    GatewayError,
    ModelNotFound,
    ServiceUnavailable,
    UpstreamError,
    UpstreamHTTPError,
    UpstreamMalformed,
)
from llms.framing import (
    BodyDecoder,
    Decoder,
    EventStreamDecoder,
    NDJSONDecoder,
    SSEBytesDecoder,
    SSEDecoder,
)
from llms.generation import Generation
from llms.native import NativeRoute
from llms.providers import CircuitBreaker, Providers
from llms.telemetry.record import RequestRecord
from llms.telemetry.redact import redact_error, secrets_of
from llms.upstream import UpstreamCall
from llms.wire import ChatRequest

log = logging.getLogger("llms.routing")

T = TypeVar("T")

RETRY_DELAY_CAP_S = 8.0
RETRY_BASE_S = 0.25


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
    rand: Callable[[], float] = RANDOM.random,
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


def should_fall_back(error: GatewayError) -> bool:
    """Retryable failures, and those worth the next provider only (malformed output)."""
    return should_retry(error) or (isinstance(error, UpstreamError) and error.next_provider)


StatusCallback = Callable[[dict[str, Any]], Awaitable[None]]


class RouteObserver(Protocol):
    """Told what routing does (telemetry counts attempts, retries and fallbacks with it)."""

    def sending(self, provider: ProviderConfig, request: Mapping[str, Any]) -> None:
        """An attempt's upstream request (the client's: chat, or embeddings) is about to be sent."""

    def failed(
        self,
        model: str,
        provider: ProviderConfig,
        follower: ProviderConfig,
        error: GatewayError | None = None,
    ) -> None:
        """An attempt failed (`error`) and `follower` is tried next (the same provider: a retry)."""

    def committed(self, generation: Generation) -> None:
        """An attempt committed: its first output is in `generation.first`."""


class Router:
    """Opens generations: providers in config order, retries, fallback, circuit breakers."""

    def __init__(
        self,
        providers: Providers,
        session: aiohttp.ClientSession,
        observer: RouteObserver | None = None,
    ) -> None:
        self.providers = providers
        self.config = providers.config
        self._session = session
        self.observer = observer
        # Credentials never reach a client or a log through an upstream's error message.
        self._secrets = secrets_of(self.config)

    @property
    def routes(self) -> dict[str, tuple[ProviderConfig, ...]]:
        return self.providers.routes

    def providers_for(self, model: str) -> tuple[ProviderConfig, ...]:
        providers = self.providers.routes.get(model)
        if not providers:
            raise ModelNotFound(model)
        return providers

    async def open(
        self,
        request: ChatRequest,
        meta: StreamMeta,
        include_usage: bool,
        on_status: StatusCallback | None = None,
        *,
        whole: bool = False,
        record: RequestRecord | None = None,
        native: NativeRoute | None = None,
    ) -> Generation:
        """Try providers until one commits, or raise the last error.

        Every attempt together must commit before `routing.timeouts.first_token_s`. With
        `whole` (a non-stream client), providers that can answer non-stream are asked to, and
        the whole answer is the commit; the attempts together then have `answer_s`. The
        committed generation fills `record` (its provider now, the rest as the answer goes).
        `native`: the client's own request, for the providers that speak its API (passthrough,
        llms/native.py); with a `refusal`, only those are tried.
        """
        candidates = self.providers_for(meta.model)
        if native is not None and native.refusal is not None:
            candidates = tuple(p for p in candidates if native.serves(p))
            if not candidates:
                raise native.refusal
        routing_timeouts = self.config.routing.timeouts
        deadline = asyncio.get_running_loop().time() + (
            max(routing_timeouts.answer_s, routing_timeouts.first_token_s)
            if whole
            else routing_timeouts.first_token_s
        )

        def attempt(provider: ProviderConfig, deadline: float) -> Awaitable[Generation]:
            return self._attempt(provider, request, meta, include_usage, deadline, whole, native)

        generation, provider = await self.route(
            meta.model, candidates, deadline, attempt, on_status
        )
        registry = self.providers
        generation.on_failure = functools.partial(
            _report_failure, registry, registry.breakers[provider.name], self._secrets
        )
        if record is not None:
            record.provider = provider.name
            generation.record = record
        if self.observer is not None:
            self.observer.committed(generation)
        return generation

    async def route(
        self,
        model: str,
        candidates: tuple[ProviderConfig, ...],
        deadline: float,
        attempt: Callable[[ProviderConfig, float], Awaitable[T]],
        on_status: StatusCallback | None = None,
    ) -> tuple[T, ProviderConfig]:
        """`attempt(provider, deadline)` with each of `candidates` in turn (retries, fallback,
        circuit breakers) until one returns; its result and provider, or the last error.

        What one attempt is belongs to the caller: a chat generation up to its commit (`open`),
        or a whole request and answer (`exchange`, for embeddings).
        """
        registry = self.providers
        max_attempts = self.config.routing.max_attempts
        loop = asyncio.get_running_loop()
        observer = self.observer
        last: GatewayError | None = None
        attempts = 0
        skipped = 0
        position = 0
        spent: set[str] = set()  # providers not to be asked again (they sent malformed output)
        while attempts < max_attempts and skipped < len(candidates):
            provider = candidates[position % len(candidates)]
            position += 1
            if provider.name in spent:
                skipped += 1
                continue
            breaker = registry.breakers[provider.name]
            if not breaker.allow(registry.now()):
                skipped += 1
                continue
            skipped = 0
            attempts += 1
            try:
                result = await attempt(provider, deadline)
            except GatewayError as error:
                if counts_against_provider(error):
                    breaker.failed(registry.now())
                else:
                    breaker.succeeded()
                last = error
                if not should_fall_back(error) or attempts >= max_attempts:
                    break
                if not should_retry(error):
                    spent.add(provider.name)
                follower = next_candidate(candidates, position, spent)
                if follower is None:
                    break
                delay = 0.0
                if follower is provider:
                    if error.status == 404:
                        break  # the same provider will not know the model a moment later
                    wait = retry_delay(attempts - 1, error)
                    if wait is None or loop.time() + wait >= deadline:
                        break
                    delay = wait
                if observer is not None:
                    observer.failed(model, provider, follower, error)
                log.info(
                    "provider %s failed (%s); attempt %d", provider.name, error.message, attempts
                )
                if on_status is not None:
                    await on_status(
                        {
                            "status": "retrying" if follower is provider else "falling_back",
                            "provider": provider.name,
                            "next_provider": follower.name,
                            "attempt": attempts,
                            "delay_s": round(delay, 3),
                            "reason": error.message,
                        }
                    )
                if delay:
                    await asyncio.sleep(delay)
                continue
            breaker.succeeded()
            return result, provider
        if last is None:
            now = registry.now()
            wait = min(registry.breakers[p.name].retry_after(now) for p in candidates)
            raise ServiceUnavailable(
                f"Every provider of `{model}` is failing; they are given time to recover.",
                code="providers_unavailable",
                headers={"Retry-After": str(max(1, math.ceil(wait)))},
            )
        raise last

    async def exchange(
        self,
        model: str,
        candidates: tuple[ProviderConfig, ...],
        build: Callable[[ProviderConfig, str], UpstreamRequest],
        parse: Callable[[ProviderConfig, bytes], T],
        content: Mapping[str, Any],
        refine: Callable[[int, UpstreamHTTPError], UpstreamHTTPError] | None = None,
    ) -> tuple[T, ProviderConfig]:
        """A request answered whole (not a chat stream: embeddings), routed as chat is.

        `build(provider, upstream_model)` makes each attempt's request (the provider with its
        current address), `parse(provider, body)` reads its 2xx answer (UpstreamMalformed for
        one it cannot use, which moves on to the next provider); a non-2xx answer is the
        provider's adapter's error. The attempts together have `routing.timeouts.answer_s`, each
        its provider's `answer_s` (and `total_s`); the answer is bounded by
        `server.max_answer_mb`. `content` is the request, for the observer. `refine(status,
        error)` may replace the adapter's error for an upstream status this request reads
        otherwise.
        """
        loop = asyncio.get_running_loop()
        routing_timeouts = self.config.routing.timeouts
        limit = int(self.config.server.max_answer_mb * 2**20)

        async def attempt(provider: ProviderConfig, deadline: float) -> T:
            sent = build(self.providers.resolve(provider), provider.models[model])
            timeouts = provider.timeouts
            now = loop.time()
            deadline = min(deadline, now + max(timeouts.answer_s, timeouts.first_token_s))
            if timeouts.total_s is not None:
                deadline = min(deadline, now + timeouts.total_s)
            if self.observer is not None:
                self.observer.sending(provider, content)
            try:
                authoriser = self.providers.authorisers.get(provider.name)
                async with UpstreamCall(self._session, sent, timeouts, authoriser) as call:
                    await call.open(deadline)
                    if call.status >= 300:
                        error = await call.read_error_body(deadline)
                        mapped = ADAPTERS[provider.type].from_error_response(
                            call.status, call.headers, error
                        )
                        raise mapped if refine is None else refine(call.status, mapped)
                    return parse(provider, await _read_whole(call, deadline, limit))
            except GatewayError as exc:
                redact_error(exc, self._secrets)
                raise

        deadline = loop.time() + max(routing_timeouts.answer_s, routing_timeouts.first_token_s)
        return await self.route(model, candidates, deadline, attempt)

    async def _attempt(
        self,
        provider: ProviderConfig,
        request: ChatRequest,
        meta: StreamMeta,
        include_usage: bool,
        deadline: float,
        whole: bool = False,
        native: NativeRoute | None = None,
    ) -> Generation:
        resolved = self.providers.resolve(provider)
        adapter = ADAPTERS[provider.type]
        answers_whole = WHOLE_ANSWERS.get(provider.type) if whole else None
        upstream_model = provider.models[meta.model]
        timeouts = provider.timeouts
        if native is not None and native.serves(provider):
            # The client's own request, to an upstream that speaks its API (llms/native.py).
            upstream_request = native.build_request(resolved, upstream_model, whole=whole)
            first_s = timeouts.answer_s if whole else timeouts.first_token_s
        elif answers_whole is not None:
            upstream_request = answers_whole.build_whole_request(request, resolved, upstream_model)
            first_s = timeouts.answer_s
        else:
            upstream_request = adapter.build_request(request, resolved, upstream_model)
            first_s = timeouts.first_token_s
        loop = asyncio.get_running_loop()
        deadline = min(deadline, loop.time() + first_s)
        if timeouts.total_s is not None:
            deadline = min(deadline, loop.time() + timeouts.total_s)
        authoriser = self.providers.authorisers.get(provider.name)
        call = UpstreamCall(self._session, upstream_request, timeouts, authoriser)
        if self.observer is not None:
            self.observer.sending(provider, request)
        try:
            await call.open(deadline)
            if call.status >= 300:
                body = await call.read_error_body(deadline)
                mapping = adapter if native is None or not native.serves(provider) else native
                raise mapping.from_error_response(call.status, call.headers, body)
            context = StreamContext(meta, include_usage)
            decoder: Decoder
            if native is not None and native.serves(provider):
                max_bytes = int(self.config.server.max_answer_mb * 2**20)
                decoder = BodyDecoder(max_bytes) if whole else SSEDecoder()
                passing = native.new_converter(meta, whole=whole)
                generation = Generation(call, decoder, passing, provider, native=passing)
                await generation.commit(deadline)
                return generation
            if answers_whole is not None:
                decoder = BodyDecoder(int(self.config.server.max_answer_mb * 2**20))
                converter = answers_whole.new_whole_converter(context)
            else:
                framing = adapter.FRAMING
                decoder = (
                    SSEBytesDecoder()
                    if framing == "sse_bytes"
                    else SSEDecoder()
                    if framing == "sse"
                    else EventStreamDecoder()
                    if framing == "eventstream"
                    else NDJSONDecoder()
                )
                converter = adapter.new_converter(context)
            generation = Generation(call, decoder, converter, provider, chat_json=meta.chat_json)
            await generation.commit(deadline)
        except BaseException as exc:
            call.close()
            if isinstance(exc, GatewayError):
                redact_error(exc, self._secrets)
            raise
        return generation


async def _read_whole(call: UpstreamCall, deadline: float, limit: int) -> bytes:
    """A whole 2xx body, at most `limit` bytes (else 502 `upstream_too_large`)."""
    parts: list[bytes] = []
    size = 0
    while data := await call.read(deadline):
        size += len(data)
        if size > limit:
            raise UpstreamMalformed(
                f"The upstream's answer is larger than {limit / 2**20:g} MiB, the most an answer "
                "may hold (server.max_answer_mb).",
                code="upstream_too_large",
            )
        parts.append(data)
    return b"".join(parts)


def next_candidate(
    candidates: tuple[ProviderConfig, ...], position: int, spent: set[str]
) -> ProviderConfig | None:
    """The provider tried after `position`, skipping spent ones; None when all are spent."""
    for step in range(len(candidates)):
        candidate = candidates[(position + step) % len(candidates)]
        if candidate.name not in spent:
            return candidate
    return None


def _report_failure(
    registry: Providers, breaker: CircuitBreaker, secrets: tuple[str, ...], error: GatewayError
) -> None:
    redact_error(error, secrets)
    if counts_against_provider(error):
        breaker.failed(registry.now())


def counts_against_provider(error: GatewayError) -> bool:
    """Failures that say the provider is unhealthy (not the client's fault, not rate limiting)."""
    if isinstance(error, ServiceUnavailable):
        return True
    if not isinstance(error, UpstreamError) or not (error.retryable or error.next_provider):
        return False
    # 4xx: not the provider's health (404, 429, a request this provider cannot serve).
    return error.status >= 500
