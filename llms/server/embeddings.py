"""`POST /v1/embeddings`: OpenAI's Embeddings API, for every model whose providers embed.

Routed as a chat request is (the model's `models` lists, retries, fallback, circuit breakers,
timeouts, the key's models and limits, the request record), through `Router.exchange`: each
attempt is one whole request and answer. The providers of the model that cannot answer this
request are passed over before routing (a protocol without embeddings, as Anthropic's; token
arrays for a provider that takes only text), so they are never asked and their circuits never
hear of it; if none is left, a 400 says why, naming `model` or `input`.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from llms.adapters.base import UpstreamRequest
from llms.adapters.embeddings import EMBEDDERS, Embedder, refine_error
from llms.api.embeddings import from_request, to_answer
from llms.config import ProviderConfig
from llms.errors import InvalidRequest, ServiceUnavailable
from llms.protocols import PROTOCOLS
from llms.server import keys, model_kinds
from llms.server.relay import uncancel
from llms.server.requests import read_json_request
from llms.server.routes import Tracked, json_response


def embedder_of(provider: ProviderConfig) -> Embedder | None:
    """How a provider's protocol embeds; None for one that has no embeddings."""
    return EMBEDDERS.get(PROTOCOLS[provider.type].adapter)


def able(
    model: str, candidates: tuple[ProviderConfig, ...], tokens: bool
) -> tuple[ProviderConfig, ...]:
    """The providers that can take this request, in config order; a 400 if none can."""
    embedding = tuple(p for p in candidates if embedder_of(p) is not None)
    if not embedding:
        names = ", ".join(f"{p.name} ({p.type})" for p in candidates)
        raise InvalidRequest(
            f"The model `{model}` cannot make embeddings: its provider(s) {names} have no "
            "embeddings endpoint.",
            param="model",
            code="model_not_supported",
        )
    if not tokens:
        return embedding
    taking = tuple(p for p in embedding if embedder_of(p).takes_tokens)  # type: ignore[union-attr]
    if not taking:
        names = ", ".join(f"{p.name} ({p.type})" for p in embedding)
        raise InvalidRequest(
            f"Token arrays in `input` are taken only by OpenAI-compatible providers; the "
            f"provider(s) of `{model}`, {names}, take text: send `input` as strings.",
            param="input",
            code="unsupported_value",
        )
    return taking


async def embeddings(request: web.Request) -> web.Response:
    """POST /v1/embeddings: `{"object": "list", "data": [{"embedding"}], "model", "usage"}`."""
    app = request.app
    async with Tracked(request) as tracked:
        record = tracked.record
        body = await read_json_request(request)
        call = from_request(body)
        model: str = body["model"]
        router = tracked.admit(model)
        candidates = able(model, router.providers_for(model), call.tokens)
        loop = asyncio.get_running_loop()

        def build(provider: ProviderConfig, upstream_model: str) -> UpstreamRequest:
            embedder = embedder_of(provider)
            assert embedder is not None
            return embedder.build(call, provider, upstream_model)

        def parse(provider: ProviderConfig, raw: bytes) -> tuple[dict[str, Any], int | None]:
            embedder = embedder_of(provider)
            assert embedder is not None
            # Converted here, in the attempt: an answer that cannot be used moves on.
            embedded = embedder.parse(call, raw)
            answer = to_answer(call, embedded, model)
            record.committed = loop.time()
            return answer, embedded.prompt_tokens

        try:
            (answer, tokens), provider = await router.exchange(
                model, candidates, build, parse, body, refine_error
            )
        except asyncio.CancelledError:
            if not app[keys.SHUTTING_DOWN].is_set():
                record.disconnected = True
                raise
            uncancel()
            raise ServiceUnavailable(
                "The gateway shut down before the embeddings were ready."
            ) from None
        record.provider = provider.name
        if tokens is not None:  # Gemini does not count them
            record.usage = {"prompt_tokens": tokens, "completion_tokens": 0, "total_tokens": tokens}
        record.first_output = loop.time()
        return json_response(answer, headers={"X-Provider": provider.name})


def install(app: web.Application) -> None:
    """The route, and what `GET /v1/models` learns of embedding models (model_kinds.py)."""
    app.router.add_post("/v1/embeddings", embeddings)
    model_kinds.install(app)
