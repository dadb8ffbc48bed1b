"""Which models are embedding models and which read images, as their upstreams tell:
`"type": "embedding"` and `"input_modalities"` in `GET /v1/models`.

Ollama says so in `POST /api/show` (`capabilities: ["embedding"]`), Gemini in `GET models/{m}`
(`supportedGenerationMethods` with `embedContent` and without `generateContent`); the questions
and answers are llms/adapters/embeddings.py's. A background task asks about each (provider,
upstream model) of the routing table once, discovered Ollama models included; a question that
failed is asked again in the next round (1 s after a change of the table, then doubling up to a
minute). A model is an embedding model when one of its providers says so. It reads images
when every provider of it says so (Ollama's `capabilities` list "vision"), and reads text only
when every provider says it does not or is the bundled model (SmolLM2 reads text only); else
its card does not say.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from llms.adapters.embeddings import KIND_QUESTIONS, ModelKind
from llms.config import ProviderConfig
from llms.errors import GatewayError
from llms.protocols import PROTOCOLS
from llms.server import keys
from llms.upstream import fetch

log = logging.getLogger("llms.model_kinds")

ASK_TIMEOUT_S = 10.0
UNSAID = ModelKind(embeds=False, images=None)
ROUND_MAX_S = 60.0


class ModelKinds:
    """What the upstreams said: (provider name, upstream model) -> embeds only."""

    def __init__(self) -> None:
        self.known: dict[tuple[str, str], ModelKind] = {}

    def _kinds(self, model: str, providers: tuple[ProviderConfig, ...]) -> list[ModelKind | None]:
        known = self.known
        return [known.get((p.name, p.models.get(model, model))) for p in providers]

    def is_embedding(self, model: str, providers: tuple[ProviderConfig, ...]) -> bool:
        return any(kind is not None and kind.embeds for kind in self._kinds(model, providers))

    def takes_images(self, model: str, providers: tuple[ProviderConfig, ...]) -> bool | None:
        """True when every provider of `model` reads images, False when none does, else None."""
        said = {
            False if PROTOCOLS[p.type].bundled else (None if kind is None else kind.images)
            for p, kind in zip(providers, self._kinds(model, providers), strict=True)
        }
        return said.pop() if len(said) == 1 else None


MODEL_KINDS = web.AppKey("model_kinds", ModelKinds)


def install(app: web.Application) -> None:
    app[MODEL_KINDS] = ModelKinds()
    app.cleanup_ctx.append(_learning)


async def _learning(app: web.Application) -> AsyncIterator[None]:
    asks = any(PROTOCOLS[p.type].adapter in KIND_QUESTIONS for p in app[keys.CONFIG].providers)
    task = asyncio.create_task(_learn_forever(app)) if asks else None
    yield
    if task is not None:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def _learn_forever(app: web.Application) -> None:
    registry = app[keys.PROVIDERS]
    kinds = app[MODEL_KINDS]
    delay = 1.0
    table: object = None
    while True:
        if registry.routes is not table:  # a new routing table: new models to ask about
            table = registry.routes
            delay = 1.0
        for model, providers in list(registry.routes.items()):
            for provider in providers:
                await _ask(app, kinds, provider, provider.models.get(model, model))
        await asyncio.sleep(delay)
        delay = min(ROUND_MAX_S, delay * 2)


async def _ask(
    app: web.Application, kinds: ModelKinds, provider: ProviderConfig, model: str
) -> None:
    question = KIND_QUESTIONS.get(PROTOCOLS[provider.type].adapter)
    key = (provider.name, model)
    if question is None or key in kinds.known:
        return
    build, read = question
    timeouts = dataclasses.replace(
        provider.timeouts, first_token_s=min(provider.timeouts.first_token_s, ASK_TIMEOUT_S)
    )
    try:
        sent = build(app[keys.PROVIDERS].resolve(provider), model)
        status, _, body = await fetch(app[keys.SESSION], sent, timeouts)
        if status == 200:
            kinds.known[key] = read(body) or UNSAID
        elif 400 <= status < 500 and status not in (408, 429):
            kinds.known[key] = UNSAID  # it will not say: not asked again
    except GatewayError as error:
        log.debug("provider %s: what %s is stays unknown (%s)", provider.name, model, error.message)
