"""Module-level request handlers. State comes from the app's AppKeys, never from globals."""

from __future__ import annotations

import asyncio
import re
import time
from contextvars import Token
from types import TracebackType
from typing import Any

import orjson
from aiohttp import web

from llms.chunks import Fold, StreamMeta
from llms.config import ApiKey
from llms.errors import (
    GatewayError,
    InvalidRequest,
    ModelNotFound,
    ServiceUnavailable,
    UpstreamTimeout,
)
from llms.managed.gate import LEASE
from llms.native import NativeRoute
from llms.routing import Router
from llms.server import keys
from llms.server.auth import KEY, authorize_model
from llms.server.fields import event_id
from llms.server.limits import UNLIMITED, Lease
from llms.server.middleware import REQUEST_ID
from llms.server.model_kinds import MODEL_KINDS
from llms.server.relay import relay, relay_log, uncancel
from llms.server.requests import read_chat_request
from llms.streams.pump import Cancelled, Stream
from llms.telemetry.attempts import CURRENT_RECORD
from llms.telemetry.record import RequestRecord
from llms.wire import ChatRequest, Chunk, Completion, ModelCard

# A client-chosen stream id: long enough to be unguessable, safe in a URL and a Redis key.
STREAM_ID = re.compile(r"[A-Za-z0-9_-]{16,80}")


def chosen_stream_id(request: web.Request, meta: StreamMeta, record: RequestRecord) -> str | None:
    """A resumable stream's id as the client chose it (`X-Stream-Id`, so that it can cancel
    before any byte arrives), checked and given to the stream and its record; None if unset."""
    chosen = request.headers.get("X-Stream-Id")
    if chosen is not None:
        if not STREAM_ID.fullmatch(chosen):
            raise InvalidRequest(
                "X-Stream-Id must be 16 to 80 letters, digits, '-' or '_'.",
                param="X-Stream-Id",
                code="invalid_value",
            )
        meta.id = record.stream_id = chosen
    return chosen


def json_response(
    data: object, *, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=orjson.dumps(data), status=status, content_type="application/json", headers=headers
    )


class Tracked:
    """One API request's bookkeeping: its record (telemetry, the request log), its place among
    the in-flight requests a shutdown drains, and its key's limits lease.

    `async with Tracked(request) as t:` — an error leaving the block is recorded as the status
    sent (a bug as the middleware's 500); the record is finished and the lease released on the
    way out, unless `handed_over` (a resumable stream's pump finishes them instead).
    """

    __slots__ = ("_current", "_loop", "_task", "app", "handed_over", "key", "lease", "record")

    def __init__(self, request: web.Request) -> None:
        self.app = request.app
        self._loop = asyncio.get_running_loop()
        self.key: ApiKey | None = request.get(KEY)
        key = self.key
        self.record = RequestRecord(
            request_id=request[REQUEST_ID],
            model="",
            stream=False,
            started=self._loop.time(),
            wall=time.time(),
            key=key.name if key is not None else None,
            owner=key.owner if key is not None else None,
            endpoint=request.path,
        )
        self.handed_over = False
        self.lease: Lease = UNLIMITED
        managed = request.get(LEASE)
        if managed is not None:  # a managed key's request, counted when it was authenticated
            managed.adopt(self.record)
            self.lease = managed
        task = asyncio.current_task()
        assert task is not None
        self._task = task
        self._current: Token[RequestRecord | None] | None = None

    def hand_over(self, stream: Stream) -> None:
        """A resumable stream's pump finishes the request now: the key's slot is held while
        it generates, whoever reads it, and released with its usage when it ends."""
        self.handed_over = True
        pumping = stream.task
        assert pumping is not None
        lease, record = self.lease, self.record
        pumping.add_done_callback(lambda _: lease.release(record.usage))

    async def __aenter__(self) -> Tracked:
        self._current = CURRENT_RECORD.set(self.record)  # routing's observer fills it
        self.app[keys.ACTIVE].add(self._task)
        if self.app[keys.SHUTTING_DOWN].is_set():
            error = ServiceUnavailable(
                "The gateway is shutting down.", headers={"Retry-After": "1"}
            )
            await self.__aexit__(type(error), error, None)
            raise error
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        record = self.record
        if isinstance(exc, GatewayError):
            record.failed(exc)
        elif isinstance(exc, Exception):
            # A bug: the middleware answers 500 internal_error; the record says what was sent.
            record.failed(GatewayError("internal", code="internal_error"))
        if self._current is not None:
            CURRENT_RECORD.reset(self._current)
            self._current = None
        self.app[keys.ACTIVE].discard(self._task)
        if not self.handed_over:
            self.lease.release(record.usage)
            record.ended = self._loop.time()
            self.app[keys.TELEMETRY].finish(record)

    def admit(self, model: str) -> Router:
        """The key may use `model`, the gateway serves it, and the key's limits admit one more
        request (its lease is held until the answer ends); the router to answer with."""
        self.record.model = model
        key = self.key
        authorize_model(key, model)
        router = self.app[keys.ROUTER]
        router.providers_for(model)
        if self.lease is UNLIMITED:
            self.lease = self.app[keys.LIMITS].admit(key)
        return router


async def chat_completions(request: web.Request) -> web.StreamResponse:
    """POST /v1/chat/completions: stream (default or resumable mode) or one JSON answer."""
    app = request.app
    async with Tracked(request) as tracked:
        record = tracked.record
        server = app[keys.CONFIG].server
        chat = await read_chat_request(request)
        router = tracked.admit(chat["model"])
        meta = StreamMeta(model=chat["model"])
        record.stream_id = meta.id
        if not chat.get("stream"):
            completion, provider = await complete(app, router, chat, meta, record)
            return json_response(completion, headers={"X-Provider": provider})
        record.stream = True
        app[keys.METRICS].stream_started()
        include_usage = bool((chat.get("stream_options") or {}).get("include_usage"))
        heartbeat_s = server.heartbeat_s
        if request.headers.get("X-Stream-Resumable", "").lower() == "true":
            return await _resumable(request, tracked, router, chat, meta, include_usage)
        return await relay(
            request,
            router,
            chat,
            meta,
            include_usage=include_usage,
            heartbeat_s=heartbeat_s,
            shutting_down=app[keys.SHUTTING_DOWN],
            record=record,
        )


async def _resumable(
    request: web.Request,
    tracked: Tracked,
    router: Router,
    chat: ChatRequest,
    meta: StreamMeta,
    include_usage: bool,
) -> web.StreamResponse:
    """A resumable stream: its pump started, then relayed from its log from the start.

    A function of its own so that chat_completions' frame, which a default-mode stream keeps
    while it is open, holds no closure cells or locals of this path."""
    app = request.app
    record = tracked.record
    record.resumable = True
    chosen = chosen_stream_id(request, meta, record)
    stream = await app[keys.STREAMS].start(
        router,
        chat,
        meta,
        include_usage=include_usage,
        record=record,
        on_done=app[keys.TELEMETRY].finish,
        chosen_id=chosen is not None,
    )
    tracked.hand_over(stream)
    return await relay_log(request, stream, 0, heartbeat_s=app[keys.CONFIG].server.heartbeat_s)


async def complete(
    app: web.Application, router: Router, chat: ChatRequest, meta: StreamMeta, record: RequestRecord
) -> tuple[Completion, str]:
    """A non-stream answer: one chat.completion (asked whole of the upstream, or folded), and
    the name of the provider that gave it (see `complete_any`)."""
    completion, _, provider = await complete_any(app, router, chat, meta, record)
    assert completion is not None  # no native route: always a completion
    return completion, provider


async def complete_any(
    app: web.Application,
    router: Router,
    chat: ChatRequest,
    meta: StreamMeta,
    record: RequestRecord,
    native: NativeRoute | None = None,
) -> tuple[Completion | None, dict[str, Any] | None, str]:
    """A non-stream answer: one chat.completion (asked whole of the upstream, or folded), or,
    from an attempt that went native (llms/native.py), the upstream's own answer object; and
    the name of the provider that gave it.

    Bounded in size (`server.max_answer_mb`, else 502 `upstream_too_large`) and in time: the
    whole answer by `timeouts.answer_s` (else 504), not only its first chunk. The generation
    keeps the record (provider, chunks, first output, usage, finish reason).
    """
    config = app[keys.CONFIG]
    folding = Fold(meta, max_bytes=int(config.server.max_answer_mb * 2**20))
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        generation = await router.open(
            chat, meta, include_usage=True, whole=True, record=record, native=native
        )
        provider = generation.provider
        passing = generation.native
        if passing is not None:
            passing.committed()
        # As routing bounds an answer asked whole: every attempt together, and this provider's
        # (never shorter than the first-token deadline its commit was given).
        routing, timeouts = config.routing.timeouts, provider.timeouts
        answer_s = min(
            max(routing.answer_s, routing.first_token_s),
            max(timeouts.answer_s, timeouts.first_token_s),
        )
        deadline = asyncio.timeout_at(started + answer_s)
        try:
            async with deadline:
                await generation.collect(folding.add if passing is None else _drop)
        except TimeoutError:
            if not deadline.expired():
                raise
            raise UpstreamTimeout(
                f"The upstream did not finish its answer within {answer_s:g} s (timeouts.answer_s)."
            ) from None
        finally:
            await generation.aclose()
    except asyncio.CancelledError:
        if not app[keys.SHUTTING_DOWN].is_set():
            record.disconnected = True
            raise
        uncancel()
        raise ServiceUnavailable("The gateway shut down before the answer was ready.") from None
    if passing is not None:
        return None, passing.answer(), provider.name
    completion = folding.completion()
    if completion["usage"] is None and record.usage is not None:
        completion["usage"] = record.usage
    return completion, None, provider.name


def _drop(batch: list[Chunk]) -> None:
    """A native answer's chunks: its converter keeps the answer itself."""


def _visible_models(request: web.Request) -> list[ModelCard]:
    app = request.app
    key = request.get(KEY)
    created = app[keys.STARTED_AT]
    kinds = app.get(MODEL_KINDS)
    cards: list[ModelCard] = []
    for model, providers in app[keys.ROUTER].routes.items():
        if key is not None and key.models is not None and model not in key.models:
            continue
        card: ModelCard = {
            "id": model,
            "object": "model",
            "created": created,
            "owned_by": providers[0].name,
        }
        if kinds is not None:
            if kinds.is_embedding(model, providers):
                card["type"] = "embedding"
            images = kinds.takes_images(model, providers)
            if images is not None:
                card["input_modalities"] = ["text", "image"] if images else ["text"]
        cards.append(card)
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


async def _stream_of(request: web.Request) -> Stream:
    key = request.get(KEY)
    owner = key.owner if key is not None else None
    return await request.app[keys.STREAMS].get(request.match_info["id"], owner)


async def resume_stream(request: web.Request) -> web.StreamResponse:
    """GET /v1/streams/{id}: replay after `Last-Event-ID` (or `?last_event_id=`), then follow."""
    stream = await _stream_of(request)
    request.app[keys.METRICS].resumes.inc()
    after = event_id(request.headers.get("Last-Event-ID", request.query.get("last_event_id", "0")))
    heartbeat_s = request.app[keys.CONFIG].server.heartbeat_s
    return await relay_log(request, stream, after, heartbeat_s=heartbeat_s)


async def cancel_stream(request: web.Request) -> web.Response:
    """POST /v1/streams/{id}/cancel: stop the generation; idempotent."""
    stream = await _stream_of(request)
    request.app[keys.METRICS].cancels.inc()
    stopped = await request.app[keys.STREAMS].cancel(stream, Cancelled("The stream was cancelled."))
    return json_response(
        {
            "id": stream.id,
            "object": "chat.completion.stream",
            "status": "cancelled" if stopped or stream.reason is not None else "finished",
        }
    )
