"""Module-level request handlers. State comes from the app's AppKeys, never from globals."""

from __future__ import annotations

import asyncio

import orjson
from aiohttp import web

from llms.chunks import StreamMeta, fold
from llms.errors import ModelNotFound, ServiceUnavailable
from llms.server import keys
from llms.server.auth import KEY, authorize_model
from llms.server.relay import relay
from llms.server.requests import parse_chat_request
from llms.wire import Chunk, ModelCard


def json_response(
    data: object, *, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=orjson.dumps(data), status=status, content_type="application/json", headers=headers
    )


async def chat_completions(request: web.Request) -> web.StreamResponse:
    app = request.app
    if app[keys.SHUTTING_DOWN].is_set():
        raise ServiceUnavailable("The gateway is shutting down.", headers={"Retry-After": "1"})
    chat = parse_chat_request(await request.read())
    model = chat["model"]
    authorize_model(request.get(KEY), model)
    router = app[keys.ROUTER]
    router.providers_for(model)
    meta = StreamMeta(model=model)
    active = app[keys.ACTIVE]
    task = asyncio.current_task()
    assert task is not None
    active.add(task)
    try:
        if chat.get("stream"):
            options = chat.get("stream_options") or {}
            return await relay(
                request,
                router,
                chat,
                meta,
                include_usage=bool(options.get("include_usage")),
                heartbeat_s=app[keys.CONFIG].server.heartbeat_s,
                shutting_down=app[keys.SHUTTING_DOWN],
            )
        generation = await router.open(chat, meta, include_usage=True)
        try:
            chunks: list[Chunk] = list(generation.first)
            while (batch := await generation.next()) is not None:
                chunks += batch
        finally:
            generation.close()
        completion = fold(chunks, meta)
        if completion["usage"] is None and generation.converter.usage is not None:
            completion["usage"] = generation.converter.usage
        return json_response(completion, headers={"X-Provider": generation.provider.name})
    finally:
        active.discard(task)


def _visible_models(request: web.Request) -> list[ModelCard]:
    app = request.app
    key = request.get(KEY)
    created = app[keys.STARTED_AT]
    cards: list[ModelCard] = []
    for model, providers in app[keys.ROUTER].routes.items():
        if key is not None and key.models is not None and model not in key.models:
            continue
        cards.append(
            {"id": model, "object": "model", "created": created, "owned_by": providers[0].name}
        )
    return cards


async def list_models(request: web.Request) -> web.Response:
    return json_response({"object": "list", "data": _visible_models(request)})


async def retrieve_model(request: web.Request) -> web.Response:
    model = request.match_info["model"]
    for card in _visible_models(request):
        if card["id"] == model:
            return json_response(card)
    raise ModelNotFound(model)


async def health(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


async def ready(request: web.Request) -> web.Response:
    """200 once providers are known; 503 while one is starting or the gateway is stopping."""
    app = request.app
    providers = app[keys.PROVIDERS].snapshot()
    starting = any(p["state"] == "starting" for p in providers.values())
    shutting_down = app[keys.SHUTTING_DOWN].is_set()
    status = "starting" if starting else "shutting_down" if shutting_down else "ready"
    return json_response(
        {"status": status, "providers": providers}, status=503 if starting or shutting_down else 200
    )
