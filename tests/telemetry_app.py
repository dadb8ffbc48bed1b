"""Helpers for the telemetry tests: the real gateway app on a loopback port, and its metrics."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from llms import create_app
from llms.config import Config
from tests.upstreams.openai import FakeOpenAI


@dataclass
class Running:
    app: web.Application
    root: str  # http://127.0.0.1:<port>

    @property
    def base(self) -> str:
        return self.root + "/v1"


@contextlib.asynccontextmanager
async def running(config: Config) -> AsyncIterator[Running]:
    """The app `llms serve` runs, on a free port, cleaned up (cleanup_ctx included) at exit."""
    app = create_app(config)
    runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=5)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        yield Running(app, f"http://127.0.0.1:{runner.addresses[0][1]}")
    finally:
        await runner.cleanup()


def provider(fake: FakeOpenAI, models: dict[str, str], **extra: Any) -> dict[str, Any]:
    return {
        "type": "openai",
        "base_url": fake.base_url,  # type: ignore[attr-defined]
        "models": models,
        "timeouts": {"idle_s": 5, "first_token_s": 5},
        **extra,
    }


CHAT = {"messages": [{"role": "user", "content": "hi"}]}


async def chat(
    session: aiohttp.ClientSession, base: str, model: str, **kw: Any
) -> tuple[int, bytes]:
    """POST a chat request; (status, whole body)."""
    headers = kw.pop("headers", None)
    body = {**CHAT, "model": model, **kw}
    async with session.post(f"{base}/chat/completions", json=body, headers=headers) as resp:
        return resp.status, await resp.read()


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a Prometheus exposition: (name, labels) -> value."""
    out: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def value(
    found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    """The sum of `name` over the samples whose labels include `labels` (0 if none)."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in found.items() if n == name and wanted <= ls)


async def scrape(session: aiohttp.ClientSession, root: str, **headers: str) -> str:
    async with session.get(f"{root}/metrics", headers=headers) as resp:
        assert resp.status == 200, await resp.text()
        assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return await resp.text()


async def until(check: Callable[[], Any], *, attempts: int = 500, pause: float = 0.01) -> None:
    """Poll `check` (sync or async) until it is truthy; bounded, fails loudly."""
    for _ in range(attempts):
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        await asyncio.sleep(pause)
    raise AssertionError("condition not reached")
