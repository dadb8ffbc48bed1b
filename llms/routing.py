"""Which provider answers, with retries and fallback, until the first chunk is committed.

A request's providers are tried in config order. A retryable failure before anything is committed
moves on (same provider again after `retry_delay`, or the next one at once). The commit point is
the first chunk that carries output (content, reasoning, a tool call, a refusal, a finish or
usage): role-only and empty chunks are held back until then, so a provider that fails after
sending only those can still be replaced. After the commit, failures are the caller's to report.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import random
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

import aiohttp
import orjson

from llms.adapters import ADAPTERS, WHOLE_ANSWERS
from llms.adapters.base import Converter, StreamContext
from llms.chunks import StreamMeta
from llms.config import ProviderConfig
from llms.errors import (
    GatewayError,
    ModelNotFound,
    ServiceUnavailable,
    UpstreamError,
    UpstreamMalformed,
    UpstreamTimeout,
)
from llms.framing import BodyDecoder, NDJSONDecoder, SSEDecoder
from llms.providers import CircuitBreaker, Providers
from llms.telemetry.redact import redact_error, secrets_of
from llms.upstream import UpstreamCall
from llms.wire import ChatRequest, Chunk

log = logging.getLogger("llms.routing")

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


def should_fall_back(error: GatewayError) -> bool:
    """Retryable failures, and those worth the next provider only (malformed output)."""
    return should_retry(error) or (isinstance(error, UpstreamError) and error.next_provider)


def to_json_each(chunks: list[Chunk]) -> tuple[list[bytes], UpstreamMalformed | None]:
    """Each chunk as JSON, up to the first one that cannot be encoded, and that failure."""
    out: list[bytes] = []
    dumps = orjson.dumps
    for item in chunks:
        try:
            out.append(dumps(item))
        except orjson.JSONEncodeError:
            # orjson refuses objects nested over 255 levels (it parses up to 1024).
            return out, UpstreamMalformed(
                "The upstream sent a chunk the gateway cannot encode (nested too deeply)."
            )
    return out, None


def check_committable(chunks: list[Chunk]) -> None:
    """Raise UpstreamMalformed for chunks that could not reach a client whole: a choice
    `index` that is not an integer, or one that cannot be encoded. Checked once, at the commit,
    so a provider sending them is replaced; after it, the encoders notice what they cannot take."""
    for item in chunks:
        for choice in item["choices"]:
            if type(choice["index"]) is not int:
                raise UpstreamMalformed(
                    "The upstream sent a choice whose `index` is not an integer."
                )
    _, error = to_json_each(chunks)
    if error is not None:
        raise error


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
        "_pending",
        "first",
        "on_failure",
        "provider",
        "tap",
    )

    def __init__(
        self,
        call: UpstreamCall,
        decoder: SSEDecoder | NDJSONDecoder | BodyDecoder,
        converter: Converter,
        provider: ProviderConfig,
    ) -> None:
        self._call = call
        self._decoder = decoder
        self._converter = converter
        self._loop = asyncio.get_running_loop()
        self._idle = provider.timeouts.idle_s
        total = provider.timeouts.total_s
        self._end_by = math.inf if total is None else self._loop.time() + total
        self._ended = False
        self._pending: GatewayError | None = None
        self.provider = provider
        self.first: list[Chunk] = []
        # Told about a failure after the commit (the provider's circuit breaker listens).
        self.on_failure: Callable[[GatewayError], None] | None = None
        # Sees every later batch (the request log keeps the answer with `state.log_content`).
        self.tap: Callable[[list[Chunk]], None] | None = None

    @property
    def converter(self) -> Converter:
        return self._converter

    async def next(self) -> list[Chunk] | None:
        """The chunks of the next upstream read; None once the stream has ended normally."""
        try:
            pending = self._pending
            if pending is not None:
                self._pending = None
                raise pending
            if self._ended:
                return None
            batch = await self._next()
            if batch is not None and self.tap is not None:
                self.tap(batch)
            return batch
        except GatewayError as error:
            if self.on_failure is not None:
                self.on_failure(error)
            raise

    async def _next(self) -> list[Chunk] | None:
        call = self._call
        while True:
            data = await call.read(min(self._loop.time() + self._idle, self._end_by))
            out: list[Chunk] = []
            self._convert(data, out)
            if out:
                return out
            if self._ended:
                return None

    def _convert(self, data: bytes, out: list[Chunk]) -> None:
        """Decode and convert one read (b"" = the end of the body) into `out`.

        A provider error after some chunks of the same read is held in `_pending` and raised
        on the next call, so the chunks before it are delivered however the bytes were split.
        """
        converter = self._converter
        try:
            if data:
                for event in self._decoder.feed(data):
                    out += converter.feed(event)
                    if converter.done:
                        self.close()
                        return
                return
            for event in self._decoder.flush():
                out += converter.feed(event)
            if not converter.done:
                out += converter.close()
            self.close()
        except GatewayError as error:
            self._fail(error, out)
        except Exception:
            # Converters are pure functions of the upstream's bytes, so whatever they raise
            # on a shape nobody foresaw (an `index` that is a list…) is the upstream's fault.
            log.warning(
                "provider %s sent a chunk its converter cannot take",
                self.provider.name,
                exc_info=True,
            )
            self._fail(
                UpstreamMalformed(
                    "The upstream sent a chunk of a shape the gateway cannot translate."
                ),
                out,
            )

    def _fail(self, error: GatewayError, out: list[Chunk]) -> None:
        """End the attempt; the error is raised now, or after the chunks already in `out`."""
        self.close()
        if not out:
            raise error
        self._pending = error

    async def commit(self, deadline: float) -> None:
        """Read until the first chunk that carries output (or the end); fills `first`.

        A failure before any output propagates (so routing may try another provider); after
        output, even within the same read, it is delivered after that output.
        """
        call = self._call
        held = self.first
        while True:
            try:
                data = await call.read(deadline)
            except UpstreamTimeout:
                # Before the first output this is the first-token (or answer) deadline, not
                # silence between chunks.
                raise UpstreamTimeout("The upstream did not answer in time.") from None
            batch: list[Chunk] = []
            self._convert(data, batch)
            held += batch
            committed = any(carries_output(item) for item in held)
            if self._pending is not None and not committed:
                error, self._pending = self._pending, None
                raise error
            if committed or self._ended:
                check_committable(held)
                return

    def close(self) -> None:
        self._ended = True
        self._call.close()


StatusCallback = Callable[[dict[str, Any]], Awaitable[None]]


class RouteObserver(Protocol):
    """Told what routing does (telemetry counts attempts, retries and fallbacks with it)."""

    def sending(self, provider: ProviderConfig, request: ChatRequest) -> None:
        """An attempt's upstream request is about to be sent."""

    def failed(self, model: str, provider: ProviderConfig, follower: ProviderConfig) -> None:
        """An attempt failed and `follower` is tried next (the same provider: a retry)."""

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
    ) -> Generation:
        """Try providers until one commits, or raise the last error.

        Every attempt together must commit before `routing.timeouts.first_token_s`. With
        `whole` (a non-stream client), providers that can answer non-stream are asked to, and
        the whole answer is the commit; the attempts together then have `answer_s`.
        """
        candidates = self.providers_for(meta.model)
        registry = self.providers
        max_attempts = self.config.routing.max_attempts
        loop = asyncio.get_running_loop()
        routing_timeouts = self.config.routing.timeouts
        deadline = loop.time() + (
            max(routing_timeouts.answer_s, routing_timeouts.first_token_s)
            if whole
            else routing_timeouts.first_token_s
        )
        observer = self.observer
        last: GatewayError | None = None
        attempt = 0
        skipped = 0
        position = 0
        spent: set[str] = set()  # providers not to be asked again (they sent malformed output)
        while attempt < max_attempts and skipped < len(candidates):
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
            attempt += 1
            try:
                generation = await self._attempt(
                    provider, request, meta, include_usage, deadline, whole
                )
            except GatewayError as error:
                if counts_against_provider(error):
                    breaker.failed(registry.now())
                else:
                    breaker.succeeded()
                last = error
                if not should_fall_back(error) or attempt >= max_attempts:
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
                    wait = retry_delay(attempt - 1, error)
                    if wait is None or loop.time() + wait >= deadline:
                        break
                    delay = wait
                if observer is not None:
                    observer.failed(meta.model, provider, follower)
                log.info(
                    "provider %s failed (%s); attempt %d", provider.name, error.message, attempt
                )
                if on_status is not None:
                    await on_status(
                        {
                            "status": "retrying" if follower is provider else "falling_back",
                            "provider": provider.name,
                            "next_provider": follower.name,
                            "attempt": attempt,
                            "delay_s": round(delay, 3),
                            "reason": error.message,
                        }
                    )
                if delay:
                    await asyncio.sleep(delay)
                continue
            breaker.succeeded()
            generation.on_failure = functools.partial(
                _report_failure, registry, breaker, self._secrets
            )
            if observer is not None:
                observer.committed(generation)
            return generation
        if last is None:
            now = registry.now()
            wait = min(registry.breakers[p.name].retry_after(now) for p in candidates)
            raise ServiceUnavailable(
                f"Every provider of `{meta.model}` is failing; they are given time to recover.",
                code="providers_unavailable",
                headers={"Retry-After": str(max(1, math.ceil(wait)))},
            )
        raise last

    async def _attempt(
        self,
        provider: ProviderConfig,
        request: ChatRequest,
        meta: StreamMeta,
        include_usage: bool,
        deadline: float,
        whole: bool = False,
    ) -> Generation:
        resolved = self.providers.resolve(provider)
        adapter = ADAPTERS[provider.type]
        answers_whole = WHOLE_ANSWERS.get(provider.type) if whole else None
        upstream_model = provider.models[meta.model]
        timeouts = provider.timeouts
        if answers_whole is not None:
            upstream_request = answers_whole.build_whole_request(request, resolved, upstream_model)
            first_s = timeouts.answer_s
        else:
            upstream_request = adapter.build_request(request, resolved, upstream_model)
            first_s = timeouts.first_token_s
        loop = asyncio.get_running_loop()
        deadline = min(deadline, loop.time() + first_s)
        if timeouts.total_s is not None:
            deadline = min(deadline, loop.time() + timeouts.total_s)
        call = UpstreamCall(self._session, upstream_request, timeouts)
        if self.observer is not None:
            self.observer.sending(provider, request)
        try:
            await call.open(deadline)
            if call.status >= 300:
                body = await call.read_error_body(deadline)
                raise adapter.from_error_response(call.status, call.headers, body)
            context = StreamContext(meta, include_usage)
            decoder: SSEDecoder | NDJSONDecoder | BodyDecoder
            if answers_whole is not None:
                decoder = BodyDecoder(int(self.config.server.max_answer_mb * 2**20))
                converter = answers_whole.new_whole_converter(context)
            else:
                decoder = SSEDecoder() if adapter.FRAMING == "sse" else NDJSONDecoder()
                converter = adapter.new_converter(context)
            generation = Generation(call, decoder, converter, provider)
            await generation.commit(deadline)
        except BaseException as exc:
            call.close()
            if isinstance(exc, GatewayError):
                redact_error(exc, self._secrets)
            raise
        return generation


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
    return error.status not in (404, 429)
