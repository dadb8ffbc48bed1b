"""create_app(config): the one composition root. Tests build exactly the app the CLI runs."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web
from redis.exceptions import RedisError

from llms.adapters import ollama
from llms.config import Config, ProviderConfig
from llms.errors import ConfigError, GatewayError, ServiceUnavailable
from llms.local import LocalServer
from llms.providers import Providers
from llms.routing import Router
from llms.server import keys, routes
from llms.server.auth import KEY, OPEN_PATHS, authenticate
from llms.server.middleware import add_request_id, assign_request_id, errors_middleware
from llms.server.ui import DIST as UI_DIST
from llms.server.ui import add_ui_routes
from llms.streams.memory import MemoryLog
from llms.streams.pump import StreamRegistry
from llms.streams.redis import RedisStreams
from llms.telemetry import api
from llms.telemetry.attempts import RouteTelemetry
from llms.telemetry.logs import AccessLog
from llms.telemetry.metrics import Metrics
from llms.telemetry.record import Sink, Sinks
from llms.telemetry.usage import RequestLog
from llms.upstream import fetch, new_session

log = logging.getLogger("llms.server")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
DISCOVERY_REFRESH_S = 60.0
DISCOVERY_RETRY_S = 10.0


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    assign_request_id(request)
    if request.path not in OPEN_PATHS:
        key = authenticate(request.app[keys.CONFIG].server.api_keys, request)
        if key is not None:
            request[KEY] = key
    return await handler(request)


def create_app(config: Config, *, ui_dist: Path = UI_DIST) -> web.Application:
    """The gateway as an aiohttp application (`ui_dist`: where the built web UI is).

    Run it with `handler_cancellation=True` (as `llms serve` and aiohttp's test server do) so a
    client that disconnects while the upstream is silent stops the upstream at once; otherwise
    the disconnect is noticed at the next write or heartbeat.
    """
    app = web.Application(
        client_max_size=int(config.server.max_body_mb * 1024 * 1024),
        middlewares=[errors_middleware, auth_middleware],
    )
    app[keys.CONFIG] = config
    app[keys.LOCAL] = {}
    app[keys.PROVIDERS] = Providers(config)
    app[keys.ACTIVE] = set()
    app[keys.SHUTTING_DOWN] = asyncio.Event()
    app[keys.STARTED_AT] = int(time.time())
    max_bytes = int(config.state.stream_max_mb * 1024 * 1024)
    state = config.state
    if state.redis_url:
        remote = RedisStreams(state.redis_url, max_bytes=max_bytes, ttl_s=state.stream_ttl_s)
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
            lambda _stream_id: MemoryLog(max_bytes),
            grace_s=state.resume_grace_s,
            ttl_s=state.stream_ttl_s,
        )
    app[keys.STREAMS] = registry
    metrics = app[keys.METRICS] = Metrics(app[keys.PROVIDERS])
    request_log = RequestLog.from_config(config, metrics.request_log_dropped.inc)
    app[keys.REQUEST_LOG] = request_log
    sinks: list[Sink] = [metrics, AccessLog()]
    if request_log is not None:
        sinks.append(request_log)
        app.cleanup_ctx.append(_request_log(request_log))
    app[keys.TELEMETRY] = Sinks(sinks)
    app.cleanup_ctx.append(_local_models)
    app.cleanup_ctx.append(_upstream_session)
    app.cleanup_ctx.append(_discovery)
    app.on_shutdown.append(_drain)
    app.on_response_prepare.append(add_request_id)
    app.router.add_post("/v1/chat/completions", routes.chat_completions)
    app.router.add_get("/v1/models", routes.list_models)
    app.router.add_get("/v1/models/{model:.+}", routes.retrieve_model)
    app.router.add_get("/v1/streams/{id}", routes.resume_stream)
    app.router.add_post("/v1/streams/{id}/cancel", routes.cancel_stream)
    app.router.add_get("/health", routes.health)
    app.router.add_get("/ready", routes.ready)
    app.router.add_get("/metrics", api.metrics)
    app.router.add_get("/api/usage", api.usage)
    add_ui_routes(app, ui_dist)
    return app


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
    observer = RouteTelemetry(app[keys.METRICS], log_content=app[keys.CONFIG].state.log_content)
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
            options = provider.options
            servers[provider.name] = LocalServer(
                options["model"],
                model_path=options.get("model_path"),
                n_ctx=options.get("n_ctx", 4096),
                threads=options.get("threads"),
                parallel=options.get("parallel", 2),
            )
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
