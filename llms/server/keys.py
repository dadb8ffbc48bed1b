"""The application's typed state slots (`web.AppKey`s); create_app fills them."""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import web

from llms.config import Config
from llms.local import LocalServer
from llms.providers import Providers
from llms.routing import Router
from llms.server.limits import Limits
from llms.streams.pump import StreamRegistry
from llms.telemetry.metrics import Metrics
from llms.telemetry.record import Sinks
from llms.telemetry.tracing import Tracing
from llms.telemetry.usage import RequestLog

CONFIG = web.AppKey("config", Config)
SESSION = web.AppKey("session", aiohttp.ClientSession)
ROUTER = web.AppKey("router", Router)
LOCAL = web.AppKey("local", dict[str, LocalServer])
PROVIDERS = web.AppKey("providers", Providers)
ACTIVE = web.AppKey("active", set[asyncio.Task[object]])
SHUTTING_DOWN = web.AppKey("shutting_down", asyncio.Event)
STARTED_AT = web.AppKey("started_at", int)
STREAMS = web.AppKey("streams", StreamRegistry)
TELEMETRY = web.AppKey("telemetry", Sinks)
METRICS = web.AppKey("metrics", Metrics)
TRACING = web.AppKey("tracing", Tracing)  # only with OTEL_EXPORTER_OTLP_ENDPOINT
REQUEST_LOG: web.AppKey[RequestLog | None] = web.AppKey("request_log")
LIMITS = web.AppKey("limits", Limits)
# Router resources that need no key (the web UI's static pages).
PUBLIC = web.AppKey("public", frozenset[object])
