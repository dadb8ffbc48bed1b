"""The Responses API's routes: `POST /v1/responses` on every model, and the stored responses.

A request is translated onto chat completions (llms/api/responses_request.py), routed like any
chat request (retries, fallback, circuits, deadlines), and its chunks become Responses events
(llms/api/responses.py) through the same relay. With `store` (the default) the response, its
input and the conversation so far are kept (llms/store/) for `GET /v1/responses/{id}`,
`…/input_items` and `previous_response_id`; only the key that created one can see it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import orjson
from aiohttp import web

from llms.api.responses import ResponseBuilder
from llms.api.responses_native import ResponsesRoute, serves, translatable
from llms.api.responses_object import (
    deleted,
    input_items_page,
    previous_response_not_found,
    response_not_found,
)
from llms.api.responses_request import ResponsesCall, from_request
from llms.api.responses_stream import ResponsesEncoder, ResponsesLog
from llms.chunks import StreamMeta, from_completion
from llms.errors import GatewayError, InvalidRequest, NotFound
from llms.native import passed_through
from llms.routing import Router
from llms.server import keys
from llms.server.auth import KEY
from llms.server.bodies import BODIES
from llms.server.fields import event_id
from llms.server.relay import relay, relay_log
from llms.server.requests import read_json_request
from llms.server.routes import Tracked, complete_any, json_response
from llms.server.siblings import Handler, asking_siblings
from llms.store import ResponseStore, StoredResponse, new_response_id, new_response_store
from llms.store.responses import ResponseTooLarge, StoreUnavailable
from llms.streams.pump import Cancelled, PumpHooks, Stream
from llms.telemetry.usage import path_of
from llms.wire import ChatRequest

log = logging.getLogger("llms.responses")

RUNNING = frozenset(("queued", "in_progress"))
AFTER = web.RequestKey("responses_after", int)
CANCEL_WAIT_S = 5.0
# From this many input items, tools and continued conversation items (~10 µs each), a
# request is translated off the event loop, as a large body is parsed (bodies.py).
OFF_LOOP_ITEMS = 1000


class Stored:
    """The app's response store once it is open (None: `state.responses.store` is null, or
    the store could not be opened and the gateway serves without it, as it said in the log)."""

    __slots__ = ("_forgetting", "cancelling", "events", "store")

    def __init__(self) -> None:
        self.store: ResponseStore | None = None
        self._forgetting: set[asyncio.Task[bool]] = set()
        # The handlers that need the process holding a stream (wrapped to ask sibling workers).
        self.events: Handler = _events
        self.cancelling: Handler = _cancel

    def forget_later(self, delay_s: float, response_id: str, owner: str | None) -> None:
        """Delete a response after `delay_s` (a background one sent with `store: false`)."""
        asyncio.get_running_loop().call_later(delay_s, self._forget, response_id, owner)

    def _forget(self, response_id: str, owner: str | None) -> None:
        if self.store is None:
            return
        task = asyncio.get_running_loop().create_task(self.store.delete(response_id, owner))
        self._forgetting.add(task)
        task.add_done_callback(self._forgotten)

    def _forgotten(self, task: asyncio.Task[bool]) -> None:
        self._forgetting.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("a background response was not deleted: %s", task.exception())


STORED = web.AppKey("stored_responses", Stored)


def now() -> int:
    return int(time.time())


async def create_response(request: web.Request) -> web.StreamResponse:
    """POST /v1/responses: stream (`event: response.*`) or one Response object."""
    app = request.app
    async with Tracked(request) as tracked:
        record = tracked.record
        server = app[keys.CONFIG].server
        body = await read_json_request(request)
        owner = tracked.key.owner if tracked.key is not None else None
        history = await _history(app, body, owner)
        natively = _served_natively(app, body)
        call, refusal = await _translated_or_native(app, body, history, natively)
        router = tracked.admit(call.model)
        chat = cast(ChatRequest, call.chat)
        if call.background:
            builder = ResponseBuilder(new_response_id(), call.model, now(), call, status="queued")
            route = _route(natively, body, history, builder, refusal)
            return await _background(request, tracked, call, builder, route, router, owner, history)
        store = app[STORED].store if call.store else None
        response_id = new_response_id()
        builder = ResponseBuilder(response_id, call.model, now(), call)
        route = _route(natively, body, history, builder, refusal)
        kept = None if store is None else _Kept(store, call, builder, owner, history)
        # The upstream's chunks are named by the response (their ids never reach the client),
        # and so is the request's log row.
        meta = StreamMeta(id=response_id, model=call.model, chat_json=False)
        record.stream_id = meta.id
        try:
            if not call.stream:
                completion, _, provider = await complete_any(app, router, chat, meta, record, route)
                if completion is not None:
                    builder.start()
                    builder.feed([from_completion(completion)])
                    builder.finish(completed_at=now())
                # else the builder holds the upstream's own Response (passthrough)
                if kept is not None:
                    await kept.save()
                return json_response(builder.response, headers={"X-Provider": provider})
            record.stream = True
            app[keys.METRICS].stream_started()

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
                on_end=None if kept is None else kept.save,
                native=route,
            )
        except GatewayError as error:
            # An adapter's 400 names a chat field: name the Responses field it came from.
            if not passed_through(route, router.providers_for(call.model), record.provider):
                error.param = call.responses_param(error.param)
            raise


async def _translated(
    app: web.Application, body: dict[str, Any], history: list[dict[str, Any]] | None
) -> ResponsesCall:
    """`from_request`, in a thread when the request is large: 95 000 input items took the
    loop 2 s, stalling every stream."""
    size = len(history or ())
    for name in ("input", "tools"):
        value = body.get(name)
        size += len(value) if isinstance(value, list) else 0
    if size < OFF_LOOP_ITEMS:
        return from_request(body, history)
    async with app[BODIES].parsing:
        return await asyncio.to_thread(from_request, body, history)


def _served_natively(app: web.Application, body: dict[str, Any]) -> bool:
    """Whether a provider of the request's model serves Responses itself (passthrough)."""
    model = body.get("model")
    if not isinstance(model, str):
        return False
    return any(serves(p) for p in app[keys.ROUTER].routes.get(model, ()))


async def _translated_or_native(
    app: web.Application,
    body: dict[str, Any],
    history: list[dict[str, Any]] | None,
    natively: bool,
) -> tuple[ResponsesCall, InvalidRequest | None]:
    """The translated call, and why only a native provider can answer (None: any can).

    A built-in tool is a 400 for translated providers only: with a provider that serves
    Responses itself, the call is made of the request without it (for its checks and echoed
    settings) and the request goes to that provider as the client wrote it."""
    try:
        return await _translated(app, body, history), None
    except InvalidRequest as error:
        if not natively or not (error.param or "").startswith(("tools", "tool_choice")):
            raise
        return await _translated(app, translatable(body), history), error


def _route(
    natively: bool,
    body: dict[str, Any],
    history: list[dict[str, Any]] | None,
    builder: ResponseBuilder,
    refusal: InvalidRequest | None,
) -> ResponsesRoute | None:
    if not natively:
        return None
    route = ResponsesRoute(body, history, builder)
    route.refusal = refusal
    return route


async def _background(
    request: web.Request,
    tracked: Tracked,
    call: ResponsesCall,
    builder: ResponseBuilder,
    route: ResponsesRoute | None,
    router: Router,
    owner: str | None,
    history: list[dict[str, Any]] | None,
) -> web.StreamResponse:
    """`background: true`: the generation runs as a resumable stream named by the response id,
    apart from any connection; the stored response follows it (queued, in_progress, then its
    end), so it can be polled, resumed (`?stream=true&starting_after=N`) and cancelled from
    any worker or replica. With `store: false` it is kept only for `state.stream_ttl_s`."""
    app = request.app
    store = app[STORED].store
    if store is None:
        raise InvalidRequest(
            "Background responses need the response store, which is off on this gateway "
            "(state.responses.store).",
            param="background",
            code="unsupported_parameter",
        )
    record = tracked.record
    chat = cast(ChatRequest, call.chat)
    response_id = builder.response["id"]
    meta = StreamMeta(id=response_id, model=call.model, chat_json=False)
    record.stream_id = response_id
    record.stream = record.resumable = True
    kept = _Kept(store, call, builder, owner, history)
    queued = kept.record()
    await store.put(queued)
    hooks = _Progress(app, kept)
    stream = await app[keys.STREAMS].start(
        router,
        chat,
        meta,
        include_usage=True,
        record=record,
        on_done=app[keys.TELEMETRY].finish,
        encoder=ResponsesLog(builder, now),
        hooks=hooks,
        native=route,
    )
    tracked.hand_over(stream)
    if call.stream:
        app[keys.METRICS].stream_started()
        return await relay_log(request, stream, 0, heartbeat_s=app[keys.CONFIG].server.heartbeat_s)
    return web.Response(body=queued.response, content_type="application/json")


@dataclass(frozen=True, slots=True)
class _Kept:
    """A response's stored copy: the response as its builder has it, this request's input, and
    the turns before them (`history`, the conversation `previous_response_id` continued), so
    that continuing this response is one read (`_history`)."""

    store: ResponseStore
    call: ResponsesCall
    builder: ResponseBuilder
    owner: str | None
    history: list[dict[str, Any]] | None

    def record(self) -> StoredResponse:
        builder = self.builder
        response = builder.response
        final = builder.final_json if builder.terminal else None
        return StoredResponse(
            id=response["id"],
            owner=self.owner,
            created_at=response["created_at"],
            status=response["status"],
            response=orjson.dumps(response) if final is None else final,
            input_items=orjson.dumps(self.call.input_items),
            history=orjson.dumps({"earlier": self.history or ()}),
        )

    async def save(self) -> None:
        """Keep it; a store that fails costs the client its stored copy (logged), never the
        answer it already has."""
        try:
            await self.store.put(self.record())
        except (ResponseTooLarge, StoreUnavailable) as error:
            log.warning("response %s was not stored: %s", self.call_id, error.message)

    @property
    def call_id(self) -> str:
        return str(self.builder.response["id"])


class _Progress(PumpHooks):
    """Keeps a background response's stored copy as its stream goes."""

    def __init__(self, app: web.Application, kept: _Kept) -> None:
        self._app = app
        self._kept = kept

    async def committed(self) -> None:
        kept = self._kept
        response = dict(kept.builder.response, status="in_progress")
        await kept.store.update_response(response["id"], orjson.dumps(response), "in_progress")

    async def ending(self) -> None:
        kept = self._kept
        response = kept.builder.response
        await kept.store.update_response(response["id"], orjson.dumps(response), response["status"])
        if not kept.call.store:
            # Kept while the stream can be read, as OpenAI keeps a background response.
            ttl_s = self._app[keys.CONFIG].state.stream_ttl_s
            self._app[STORED].forget_later(ttl_s, response["id"], kept.owner)


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
    return conversation(found)


def conversation(found: StoredResponse) -> list[dict[str, Any]]:
    """The conversation a stored response ends: the turns before it, its input, its output.
    Its `history` holds `{"earlier": [items]}`, the turns before; a record stored before
    2026-12-03 holds the whole conversation there, as a list."""
    kept = orjson.loads(found.history)
    if isinstance(kept, list):
        return kept
    output = orjson.loads(found.response)["output"]
    return [*kept["earlier"], *orjson.loads(found.input_items), *output]


async def _stored(request: web.Request) -> tuple[ResponseStore, StoredResponse]:
    """The store and the stored response the path names, if this key created it; else 404."""
    response_id = request.match_info["id"]
    store = request.app[STORED].store
    key = request.get(KEY)
    owner = key.owner if key is not None else None
    found = None if store is None else await store.get(response_id, owner)
    if store is None or found is None:
        raise response_not_found(response_id)
    return store, found


async def retrieve_response(request: web.Request) -> web.StreamResponse:
    """GET /v1/responses/{id}: the stored Response object (a background one as it stands);
    with `?stream=true`, a background response's events after `starting_after`, then live."""
    query = request.query
    streamed = query.get("stream", "false").lower()
    if streamed not in ("true", "false"):
        raise InvalidRequest("Invalid 'stream': expected true or false.", param="stream")
    # Checked with or without `stream`: a bad value is never silently ignored.
    after = (
        event_id(query["starting_after"], "starting_after") + 1 if "starting_after" in query else 0
    )
    if streamed == "false":
        _, found = await _stored(request)
        return web.Response(body=found.response, content_type="application/json")
    request[AFTER] = after
    try:
        return await request.app[STORED].events(request)
    except NotFound as error:
        if error.code != "stream_not_found":
            raise
        raise _not_streamable(request.match_info["id"]) from None


async def _events(request: web.Request) -> web.StreamResponse:
    """A background response's events after `request[AFTER]`, then live; `stream_not_found`
    when this process does not hold them (with several workers, its siblings are asked)."""
    key = request.get(KEY)
    owner = key.owner if key is not None else None
    stream = await request.app[keys.STREAMS].get(request.match_info["id"], owner)
    heartbeat_s = request.app[keys.CONFIG].server.heartbeat_s
    return await relay_log(request, stream, request[AFTER], heartbeat_s=heartbeat_s)


def _not_streamable(response_id: str) -> NotFound:
    return NotFound(
        f"Response with id '{response_id}' has no events to stream: only a background response "
        "can be streamed again, while the gateway keeps its events (state.stream_ttl_s).",
        param="response_id",
        code="response_not_found",
    )


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


async def cancel_response(request: web.Request) -> web.StreamResponse:
    """POST /v1/responses/{id}/cancel: stop a background response wherever it runs (its
    upstream is closed); the Response with status `cancelled`, or as it ended if it already
    had. Only background responses can be cancelled."""
    try:
        return await request.app[STORED].cancelling(request)
    except NotFound as error:
        if error.code != "stream_not_found":
            raise
        # Nobody holds its stream (it just ended, or its worker died): as it stands.
        store, found = await _stored(request)
        return await _settled(store, found)


async def _cancel(request: web.Request) -> web.StreamResponse:
    """Cancel a background response whose stream this process holds (`stream_not_found` when
    it does not: with several workers, its siblings are asked)."""
    store, found = await _stored(request)
    if not orjson.loads(found.response).get("background"):
        raise InvalidRequest(
            "Only background responses can be cancelled; this one ran in the foreground.",
            param="response_id",
            code="invalid_request",
        )
    if found.status in RUNNING:
        registry = request.app[keys.STREAMS]
        stream = await registry.get(found.id, found.owner)
        # Cancelled once: a second task.cancel() interrupts the pump while it stores and logs
        # the end (two cancels at once left the response `queued` and its readers waiting
        # for ever).
        if not _stopping(stream):
            await registry.cancel(stream, Cancelled("The response was cancelled."))
    return await _settled(store, found)


def _stopping(stream: Stream) -> bool:
    """Whether the stream's pump is already being stopped (a cancel, the grace, shutdown)."""
    task = stream.task
    return stream.reason is not None or (task is not None and task.cancelling() > 0)


async def _settled(store: ResponseStore, found: StoredResponse) -> web.Response:
    """The stored response once it is no longer running: its pump stores the end before
    logging it; waited for briefly (a pump on a replica that died never will)."""
    loop = asyncio.get_running_loop()
    until = loop.time() + CANCEL_WAIT_S
    while found.status in RUNNING and loop.time() < until:
        await asyncio.sleep(0.02)
        found = await store.get(found.id, found.owner) or found
    return web.Response(body=found.response, content_type="application/json")


async def compact_response(request: web.Request) -> web.StreamResponse:
    """POST /v1/responses/compact: not served. Its own 404 says so, where the path would
    otherwise be taken for a response id and get a 405 that names GET and DELETE."""
    raise NotFound(
        "Compaction (POST /v1/responses/compact) is not served by this gateway: continue the "
        "conversation with 'previous_response_id', or send it whole in 'input'.",
        code="unknown_url",
    )


def install(
    app: web.Application,
    siblings: Callable[[], Sequence[Path]] | None = None,
    *,
    alone: bool = False,
) -> None:
    """The routes, and the store `state.responses` configures (opened with the app).

    `siblings`: with `--workers N` in memory mode, the other workers, asked for a background
    response's stream this one does not hold (as for `/v1/streams/{id}`). `alone`: no other
    worker shares the SQLite file, so stored answers are written behind their end (a stream
    does not wait for the disk; this process's reads of the id wait for it instead).
    """
    config = app[keys.CONFIG]
    settings = config.state.responses
    stored = app[STORED] = Stored()
    if siblings is not None:
        stored.events = asking_siblings(_events, siblings)
        stored.cancelling = asking_siblings(_cancel, siblings)
    if settings.store is not None:
        store = new_response_store(
            redis_url=config.state.redis_url,
            sqlite_path=path_of(settings.store),
            retention_s=settings.retention_days * 86400,
            max_record_mb=settings.max_record_mb,
            max_total_mb=settings.max_total_mb,
            alone=alone,
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
    app.router.add_post("/v1/responses/compact", compact_response)
    app.router.add_get("/v1/responses/{id}", retrieve_response)
    app.router.add_delete("/v1/responses/{id}", delete_response)
    app.router.add_get("/v1/responses/{id}/input_items", list_input_items)
    app.router.add_post("/v1/responses/{id}/cancel", cancel_response)
