"""The Responses API's routes: `POST /v1/responses` on every model, and the stored responses.

A request is translated onto chat completions (llms/api/responses_request.py), routed like any
chat request (retries, fallback, circuits, deadlines), and its chunks become Responses events
(llms/api/responses.py) through the same relay. With `store` (the default) the response, its
input and the conversation so far are kept (llms/store/) for `GET /v1/responses/{id}`,
`…/input_items` and `previous_response_id`; only the key that created one can see it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from typing import Any, cast

import orjson
from aiohttp import web

from llms.api.responses import ResponseBuilder
from llms.api.responses_object import (
    deleted,
    input_items_page,
    new_response_id,
    previous_response_not_found,
    response_not_found,
)
from llms.api.responses_request import ResponsesCall, from_request
from llms.api.responses_stream import ResponsesEncoder, from_completion
from llms.chunks import StreamMeta
from llms.errors import GatewayError, InvalidRequest
from llms.server import keys
from llms.server.auth import KEY
from llms.server.bodies import read_chat_body
from llms.server.relay import relay
from llms.server.requests import parse_json_object
from llms.server.routes import Tracked, complete, json_response
from llms.store import ResponseStore, StoredResponse, new_response_store
from llms.store.responses import ResponseTooLarge, StoreUnavailable
from llms.telemetry.usage import path_of
from llms.wire import ChatRequest

log = logging.getLogger("llms.responses")


class Stored:
    """The app's response store once it is open (None: `state.responses.store` is null, or
    the store could not be opened and the gateway serves without it, as it said in the log)."""

    __slots__ = ("store",)

    def __init__(self) -> None:
        self.store: ResponseStore | None = None


STORED = web.AppKey("stored_responses", Stored)


def now() -> int:
    return int(time.time())


async def create_response(request: web.Request) -> web.StreamResponse:
    """POST /v1/responses: stream (`event: response.*`) or one Response object."""
    app = request.app
    async with Tracked(request) as tracked:
        record = tracked.record
        server = app[keys.CONFIG].server
        body = cast(
            dict[str, Any],
            await read_chat_body(
                request,
                parse_json_object,  # type: ignore[arg-type]
                timeout_s=server.request_timeout_s,
                max_nodes=server.max_json_nodes,
            ),
        )
        owner = tracked.key.name if tracked.key is not None else None
        history = await _history(app, body, owner)
        call = from_request(body, history)
        router = tracked.admit(call.model)
        chat = cast(ChatRequest, call.chat)
        if call.background:
            raise InvalidRequest(
                "Background responses are not served by this gateway yet; send the request "
                "without `background` (streamed, it can still be read as it is generated).",
                param="background",
                code="unsupported_parameter",
            )
        store = app[STORED].store if call.store else None
        builder = ResponseBuilder(new_response_id(), call.model, now(), call)
        meta = StreamMeta(model=call.model)
        record.stream_id = meta.id
        try:
            if not call.stream:
                completion, provider = await complete(app, router, chat, meta, record)
                builder.start()
                builder.feed([from_completion(completion)])
                builder.finish(completed_at=now())
                if store is not None:
                    await _save(store, call, builder, owner, history)
                return json_response(builder.response, headers={"X-Provider": provider})
            record.stream = True
            app[keys.METRICS].stream_started()

            async def save() -> None:
                if store is not None:
                    await _save(store, call, builder, owner, history)

            return await relay(
                request,
                router,
                chat,
                meta,
                include_usage=True,
                heartbeat_s=server.heartbeat_s,
                shutting_down=app[keys.SHUTTING_DOWN],
                record=record,
                encoder=ResponsesEncoder(builder, now),
                on_end=save,
            )
        except GatewayError as error:
            # An adapter's 400 names a chat field: name the Responses field it came from.
            error.param = call.responses_param(error.param)
            raise


async def _history(
    app: web.Application, body: dict[str, Any], owner: str | None
) -> list[dict[str, Any]] | None:
    """The stored conversation a `previous_response_id` continues (None without one)."""
    previous = body.get("previous_response_id")
    if not isinstance(previous, str):
        return None  # absent, or of the wrong type (from_request says so)
    store = app[STORED].store
    found = None if store is None else await store.get(previous, owner)
    if found is None:
        raise previous_response_not_found(previous)
    history: list[dict[str, Any]] = orjson.loads(found.history)
    return history


async def _save(
    store: ResponseStore,
    call: ResponsesCall,
    builder: ResponseBuilder,
    owner: str | None,
    history: list[dict[str, Any]] | None,
) -> None:
    """Keep the response, its input and the conversation with its output; a store that fails
    costs the client its stored copy (logged), never the answer it already has."""
    response = builder.response
    conversation = [*(history or ()), *call.input_items, *response["output"]]
    try:
        await store.put(
            StoredResponse(
                id=response["id"],
                owner=owner,
                created_at=response["created_at"],
                status=response["status"],
                response=orjson.dumps(response),
                input_items=orjson.dumps(call.input_items),
                history=orjson.dumps(conversation),
            )
        )
    except (ResponseTooLarge, StoreUnavailable) as error:
        log.warning("response %s was not stored: %s", response["id"], error.message)


async def _stored(request: web.Request) -> tuple[ResponseStore, StoredResponse]:
    """The store and the stored response the path names, if this key created it; else 404."""
    response_id = request.match_info["id"]
    store = request.app[STORED].store
    key = request.get(KEY)
    owner = key.name if key is not None else None
    found = None if store is None else await store.get(response_id, owner)
    if store is None or found is None:
        raise response_not_found(response_id)
    return store, found


async def retrieve_response(request: web.Request) -> web.Response:
    """GET /v1/responses/{id}: the stored Response object."""
    if request.query.get("stream", "").lower() == "true":
        raise InvalidRequest(
            "Only background responses can be streamed again, and this gateway does not serve "
            "background responses yet.",
            param="stream",
            code="unsupported_parameter",
        )
    _, found = await _stored(request)
    return web.Response(body=found.response, content_type="application/json")


async def delete_response(request: web.Request) -> web.Response:
    """DELETE /v1/responses/{id}: forget it (its conversation can no longer be continued)."""
    store, found = await _stored(request)
    await store.delete(found.id, found.owner)
    return json_response(deleted(found.id))


async def list_input_items(request: web.Request) -> web.Response:
    """GET /v1/responses/{id}/input_items: its input items, a page at a time."""
    _, found = await _stored(request)
    query = request.query
    page = input_items_page(
        orjson.loads(found.input_items),
        after=query.get("after"),
        limit=query.get("limit"),
        order=query.get("order"),
    )
    return json_response(page)


async def cancel_response(request: web.Request) -> web.Response:
    """POST /v1/responses/{id}/cancel: only background responses can be cancelled."""
    await _stored(request)
    raise InvalidRequest(
        "Only background responses can be cancelled; this one ran in the foreground.",
        code="invalid_request",
    )


def install(app: web.Application) -> None:
    """The routes, and the store `state.responses` configures (opened with the app)."""
    config = app[keys.CONFIG]
    settings = config.state.responses
    stored = app[STORED] = Stored()
    if settings.store is not None:
        store = new_response_store(
            redis_url=config.state.redis_url,
            sqlite_path=path_of(settings.store),
            retention_s=settings.retention_days * 86400,
            max_record_mb=settings.max_record_mb,
            max_total_mb=settings.max_total_mb,
        )

        async def opened(app: web.Application) -> AsyncIterator[None]:
            try:
                await store.start()
            except StoreUnavailable as error:
                log.warning("serving without stored responses: %s", error.message)
            else:
                stored.store = store
            yield
            await store.close()

        app.cleanup_ctx.append(opened)
    app.router.add_post("/v1/responses", create_response)
    app.router.add_get("/v1/responses/{id}", retrieve_response)
    app.router.add_delete("/v1/responses/{id}", delete_response)
    app.router.add_get("/v1/responses/{id}/input_items", list_input_items)
    app.router.add_post("/v1/responses/{id}/cancel", cancel_response)
