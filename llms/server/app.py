"""create_app(config): the one composition root. Tests build exactly the app the CLI runs."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import hdrs, web
from aiohttp.typedefs import Middleware
from redis.exceptions import RedisError

from llms.adapters import ollama
from llms.config import Config, ProviderConfig
from llms.errors import ConfigError, GatewayError, ServiceUnavailable
from llms.local import LocalServer
from llms.managed import gate
from llms.providers import Providers
from llms.routing import Router
from llms.server import admin, completions, embeddings, keys, messages, openapi, responses, routes
from llms.server.auth import KEY, authenticate, needs_key
from llms.server.bodies import BODIES, BodyBudget
from llms.server.cors import Cors
from llms.server.limits import Limits
from llms.server.middleware import add_request_id, assign_request_id, errors_middleware
from llms.server.siblings import asking_siblings
from llms.server.ui import DIST as UI_DIST
from llms.server.ui import SECURITY_HEADERS, add_ui_routes
from llms.server.worker import Worker
from llms.streams.memory import FinishedBudget, MemoryLog
from llms.streams.pump import StreamRegistry
from llms.streams.redis import RedisStreams
from llms.telemetry import api
from llms.telemetry.attempts import RouteTelemetry
from llms.telemetry.logs import AccessLog, quiet_malformed_requests
from llms.telemetry.metrics import Metrics
from llms.telemetry.record import Sink, Sinks
from llms.telemetry.tracing import Tracing
from llms.telemetry.usage import RequestLog
from llms.upstream import fetch, new_session

log = logging.getLogger("llms.server")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# aiohttp's default; a request with more header lines gets a 400.
MAX_HEADERS = 128
LINGERING_S = 10.0  # aiohttp's default
DISCOVERY_REFRESH_S = 60.0
DISCOVERY_RETRY_S = 10.0


@web.middleware
def auth_middleware(request: web.Request, handler: Handler) -> Awaitable[web.StreamResponse]:
    """Config keys checked here, and the handler's coroutine handed back for the middleware
    outside to await: no frame of this one is kept while the answer streams (~0.25 KiB per
    open stream). With the admin API on, `_managed_auth` (a coroutine: it awaits the key)."""
    assign_request_id(request)
    app = request.app
    server = app[keys.CONFIG].server
    if server.admin_key is not None:
        return _managed_auth(request, handler, server.admin_key)
    if server.api_keys and needs_key(request, server.open_metrics, app[keys.PUBLIC]):
        key = authenticate(server.api_keys, request)
        if key is not None:
            request[KEY] = key
    return handler(request)


async def _managed_auth(
    request: web.Request, handler: Handler, admin_key: str
) -> web.StreamResponse:
    """With the admin API on: /admin takes only the admin key; elsewhere a managed key or a
    config key (a model request of a managed key holds a lease, freed if no handler took it)."""
    app = request.app
    server = app[keys.CONFIG].server
    if admin.is_admin_path(request.path):
        await admin.check_admin(request, admin_key, server.api_keys)
        return await handler(request)
    if not needs_key(request, server.open_metrics, app[keys.PUBLIC]):
        return await handler(request)
    key = await gate.authenticate(request, lambda: authenticate(server.api_keys, request))
    if key is not None:
        request[KEY] = key
    try:
        return await handler(request)
    finally:
        gate.release_unadopted(request)


def server_options(config: Config) -> dict[str, Any]:
    """The `web.AppRunner` (or `web.Server`) arguments the gateway needs from aiohttp.

    `handler_cancellation`: a client that disconnects while the upstream is silent stops the
    upstream at once (without it the disconnect is noticed at the next write or heartbeat).
    `keepalive_timeout`: aiohttp closes a connection whose request headers have not all
    arrived this long after it opened (or after its previous response): the slowloris bound.
    Longer request lines or header fields than `server.max_header_kb` get a 400.
    `lingering_time`: the rest of a body not read by the handler is drained (so the client
    sees its early answer) for at most this long. Also quiets aiohttp's log of malformed requests.
    """
    server = config.server
    header_bytes = int(server.max_header_kb * 1024)
    # A request that does not parse as HTTP costs one debug line, not an ERROR with its bytes
    # (embedders that configure their own logging get this too).
    quiet_malformed_requests()
    return {
        "handler_cancellation": True,
        "keepalive_timeout": server.request_timeout_s,
        "max_line_size": header_bytes,
        "max_field_size": header_bytes,
        "max_headers": MAX_HEADERS,
        # After an early answer (a 408, a 401), the unread rest of a body is drained this long.
        "lingering_time": min(LINGERING_S, server.request_timeout_s),
    }


def create_app(
    config: Config, *, ui_dist: Path = UI_DIST, worker: Worker | None = None
) -> web.Application:
    """The gateway as an aiohttp application (`ui_dist`: where the built web UI is; `worker`:
    this process is one worker of `llms serve --workers N`).

    Run it with `web.AppRunner(app, **server_options(config))`, as `llms serve` does.
    """
    server = config.server
    middlewares: list[Middleware] = [errors_middleware]
    cors = Cors(server.cors_origins) if server.cors_origins else None
    if cors is not None:
        middlewares.append(cors.middleware())
    middlewares.append(auth_middleware)
    tracing = Tracing.from_env(os.environ)  # None (nothing imported) unless OTEL_* asks
    if tracing is not None:
        tracing.install(middlewares)
    app = web.Application(
        client_max_size=int(server.max_body_mb * 1024 * 1024), middlewares=middlewares
    )
    app[keys.CONFIG] = config
    app[keys.LIMITS] = Limits()
    app[BODIES] = BodyBudget(int(server.max_bodies_in_flight_mb * 1024 * 1024))
    app[keys.LOCAL] = {}
    app[keys.PROVIDERS] = Providers(config)
    app[keys.ACTIVE] = set()
    app[keys.SHUTTING_DOWN] = asyncio.Event()
    app[keys.STARTED_AT] = int(time.time())
    max_bytes = int(config.state.stream_max_mb * 1024 * 1024)
    state = config.state
    finished = FinishedBudget(int(state.finished_streams_mb * 1024 * 1024))
    if state.redis_url:
        remote = RedisStreams(
            state.redis_url, max_bytes=max_bytes, ttl_s=state.stream_ttl_s, finished=finished
        )
        registry = StreamRegistry(
            remote.producer_log,
            grace_s=state.resume_grace_s,
            ttl_s=state.stream_ttl_s,
            remote=remote,
        )
        remote.on_cancel = registry.cancel_local
        app.cleanup_ctx.append(_redis(remote))
        app.on_response_prepare.append(_replica_header(remote.replica))
    else:
        registry = StreamRegistry(
            lambda _stream_id: MemoryLog(max_bytes, finished),
            grace_s=state.resume_grace_s,
            ttl_s=state.stream_ttl_s,
        )
    app[keys.STREAMS] = registry
    metrics_dir = None if worker is None else str(worker.metrics_dir)
    metrics = app[keys.METRICS] = Metrics(app[keys.PROVIDERS], metrics_dir)
    request_log = RequestLog.from_config(config, metrics.request_log_dropped.inc)
    app[keys.REQUEST_LOG] = request_log
    sinks: list[Sink] = [metrics, AccessLog()]
    if request_log is not None:
        sinks.append(request_log)
        app.cleanup_ctx.append(_request_log(request_log))
    if tracing is not None:
        sinks.append(tracing)
        app[keys.TRACING] = tracing
        app.cleanup_ctx.append(tracing.lifetime)
    app[keys.TELEMETRY] = Sinks(sinks)
    if worker is None:
        app.cleanup_ctx.append(_local_models)
    else:
        worker.install(app)  # the supervisor runs the bundled models
    app.cleanup_ctx.append(_upstream_session)
    app.cleanup_ctx.append(_discovery)
    app.on_shutdown.append(_drain)
    app.on_response_prepare.append(add_request_id)
    app.on_response_prepare.append(_security_headers)
    if cors is not None:
        app.on_response_prepare.append(cors.add_headers)
    app.router.add_post("/v1/chat/completions", routes.chat_completions)
    # Memory mode with several workers: another worker may hold a stream; it is asked.
    siblings = worker.siblings if worker is not None and not state.redis_url else None
    responses.install(app, siblings, alone=worker is None)
    messages.install(app)
    embeddings.install(app)
    completions.install(app)
    app.router.add_get("/v1/models", routes.list_models)
    app.router.add_get("/v1/models/{model:.+}", routes.retrieve_model)
    resume: Handler = routes.resume_stream
    cancel: Handler = routes.cancel_stream
    if worker is not None and not state.redis_url:
        # Memory mode: another worker may hold the stream; it is asked (Redis mode shares them).
        resume = asking_siblings(resume, worker.siblings)
        cancel = asking_siblings(cancel, worker.siblings)
    app.router.add_get("/v1/streams/{id}", resume)
    app.router.add_post("/v1/streams/{id}/cancel", cancel)
    app.router.add_get("/health", routes.health)
    app.router.add_get("/ready", routes.ready)
    app.router.add_get("/metrics", api.metrics)
    app.router.add_get("/api/usage", api.usage)
    app.router.add_get("/openapi.json", openapi.document)
    if server.admin_key is not None:
        gate.install(app, config)  # managed keys: their store, limits and spend
        admin.install(app)
    before = len(app.router.resources())
    add_ui_routes(app, ui_dist)
    # The web UI's static pages need no key: the page asks for one, its API calls send it.
    app[keys.PUBLIC] = frozenset(list(app.router.resources())[before:])
    return app


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: nosniff everywhere; the UI's headers on every UI response."""
    if request.match_info.route.resource in request.app[keys.PUBLIC]:
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
    else:
        # An istr name: a str one costs each open stream's headers one more object.
        response.headers.setdefault(hdrs.X_CONTENT_TYPE_OPTIONS, "nosniff")


def _redis(remote: RedisStreams) -> Callable[[web.Application], AsyncIterator[None]]:
    async def connect(app: web.Application) -> AsyncIterator[None]:
        try:
            await remote.start()
        except RedisError as exc:
            raise ConfigError(f"state.redis_url: cannot reach Redis: {exc}") from None
        yield
        await remote.close()

    return connect


def _request_log(request_log: RequestLog) -> Callable[[web.Application], AsyncIterator[None]]:
    async def run(app: web.Application) -> AsyncIterator[None]:
        await request_log.start()
        yield
        await request_log.stop()

    return run


def _replica_header(
    replica: str,
) -> Callable[[web.Request, web.StreamResponse], Awaitable[None]]:
    async def add(request: web.Request, response: web.StreamResponse) -> None:
        response.headers["X-Replica"] = replica  # which of several replicas answered

    return add


async def _upstream_session(app: web.Application) -> AsyncIterator[None]:
    session = new_session()
    app[keys.SESSION] = session
    observer = RouteTelemetry(
        app[keys.METRICS],
        log_content=app[keys.CONFIG].state.log_content,
        tracing=app.get(keys.TRACING),
    )
    app[keys.ROUTER] = Router(app[keys.PROVIDERS], session, observer)
    yield
    await session.close()


async def _local_models(app: web.Application) -> AsyncIterator[None]:
    """Start each bundled model in the background: the gateway serves while they load."""
    servers = app[keys.LOCAL]
    registry = app[keys.PROVIDERS]
    states = registry.states
    for provider in app[keys.CONFIG].providers:
        if provider.type == "local":
            servers[provider.name] = LocalServer.from_options(provider.options)
            registry.add_source(provider.name, servers[provider.name])
            states[provider.name] = "starting"

    async def start(name: str, server: LocalServer) -> None:
        try:
            await server.start()
        except ServiceUnavailable as error:
            states[name] = "unavailable"
            log.warning("provider %r: %s", name, error.message)
        else:
            states[name] = "ok"
            log.info("provider %r: the bundled model is ready at %s", name, server.base_url)

    starting = [asyncio.create_task(start(name, server)) for name, server in servers.items()]
    yield
    for task in starting:
        task.cancel()
    await asyncio.gather(*starting, return_exceptions=True)
    await asyncio.gather(*(server.stop() for server in servers.values()), return_exceptions=True)


async def _discovery(app: web.Application) -> AsyncIterator[None]:
    """Ollama entries without `models`: list the server's models now and every minute."""
    tasks = [
        asyncio.create_task(_discover_forever(app, provider))
        for provider in app[keys.CONFIG].providers
        if provider.options.get("discover")
    ]
    yield
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def _discover_forever(app: web.Application, provider: ProviderConfig) -> None:
    registry = app[keys.PROVIDERS]
    session = app[keys.SESSION]
    adapter = ollama
    registry.states[provider.name] = "starting"
    while True:
        try:
            status, headers, body = await fetch(
                session, adapter.models_request(provider), provider.timeouts
            )
            if status != 200:
                raise adapter.from_error_response(status, headers, body)
            names = adapter.from_models_response(body)
        except GatewayError as error:
            if registry.states.get(provider.name) != "unreachable":
                log.warning(
                    "provider %r: cannot list models (%s); retrying", provider.name, error.message
                )
            registry.states[provider.name] = "unreachable"
            await asyncio.sleep(DISCOVERY_RETRY_S)
            continue
        # `llama3.2:latest` is also served as `llama3.2`, as the Ollama CLI does.
        models = {name.removesuffix(":latest"): name for name in names}
        models.update({name: name for name in names})
        if registry.set_models(provider.name, models):
            log.info(
                "provider %r serves %s", provider.name, ", ".join(sorted(names)) or "no models"
            )
        registry.states[provider.name] = "ok"
        await asyncio.sleep(DISCOVERY_REFRESH_S)


async def _drain(app: web.Application) -> None:
    """On shutdown: let in-flight requests finish for `server.drain_s`, then end them."""
    active = app[keys.ACTIVE]
    if active:
        log.info(
            "draining %d in-flight request(s) for up to %g s",
            len(active),
            app[keys.CONFIG].server.drain_s,
        )
        await asyncio.wait(set(active), timeout=app[keys.CONFIG].server.drain_s)
    app[keys.SHUTTING_DOWN].set()
    # Resumable streams end with an error event their readers still receive.
    await app[keys.STREAMS].close(
        ServiceUnavailable("The gateway shut down before the answer ended.")
    )
    await asyncio.sleep(0)
    remaining = set(active)
    for task in remaining:
        task.cancel()
    if remaining:
        await asyncio.wait(remaining, timeout=2)
