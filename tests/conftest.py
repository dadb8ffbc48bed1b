"""Fixtures: fake providers and the real gateway app, both real servers on 127.0.0.1."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import openai
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from llms import create_app
from llms.config import Config, parse_config
from tests.upstreams.ollama import FakeOllama
from tests.upstreams.openai import FakeOpenAI

Gateway = Callable[..., Awaitable[str]]


@pytest.fixture
async def fake_openai() -> AsyncIterator[FakeOpenAI]:
    fake = FakeOpenAI()
    server = TestServer(fake.app, host="127.0.0.1")
    await server.start_server()
    fake.base_url = str(server.make_url("/v1"))  # type: ignore[attr-defined]
    yield fake
    await server.close()


@pytest.fixture
async def fake_ollama() -> AsyncIterator[FakeOllama]:
    fake = FakeOllama()
    server = TestServer(fake.app, host="127.0.0.1")
    await server.start_server()
    fake.base_url = str(server.make_url("/")).rstrip("/")  # type: ignore[attr-defined]
    yield fake
    await server.close()


def gateway_config(providers: dict[str, Any], **sections: Any) -> Config:
    """A config for tests; the request log is off unless a test turns it on."""
    sections.setdefault("state", {})
    sections["state"].setdefault("request_log", None)
    sections["state"].setdefault("responses", {"store": None})
    return parse_config({"providers": providers, **sections}, source="test-config", env={})


@pytest.fixture
async def make_gateway() -> AsyncIterator[Callable[..., Awaitable[str]]]:
    """Start the real gateway app for a config; returns its base URL (…/v1).

    `handler_cancellation` picks aiohttp's mode: True (as `llms serve` runs) or False (aiohttp's
    default for embedders).
    """
    runners: list[web.AppRunner] = []

    async def start(config: Config, *, handler_cancellation: bool = True) -> str:
        runner = web.AppRunner(
            create_app(config), handler_cancellation=handler_cancellation, shutdown_timeout=5
        )
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        port = runner.addresses[0][1]
        return f"http://127.0.0.1:{port}/v1"

    yield start
    for runner in reversed(runners):
        await runner.cleanup()


@pytest.fixture
async def gateway(fake_openai: FakeOpenAI, make_gateway: Callable[..., Awaitable[str]]) -> str:
    """The gateway in front of one fake OpenAI upstream serving `test-model` (and aliases)."""
    config = gateway_config(
        {
            "fake": {
                "type": "openai",
                "base_url": fake_openai.base_url,  # type: ignore[attr-defined]
                "api_key": "sk-upstream-secret",
                "models": {
                    "test-model": "up-model",
                    "other": "other-up",
                    "ns/name:tag": "up-model",
                },
                "timeouts": {"idle_s": 1.5, "first_token_s": 3, "answer_s": 3},
            }
        },
        routing={"max_attempts": 1},
    )
    return await make_gateway(config)


@pytest.fixture
def client(gateway: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gateway, api_key="unused", max_retries=0)


# The tiers (docs/architecture.md): `process` tests start programs (`llms serve`, redis-server,
# nginx, node) or run for minutes; `browser` tests drive Chromium. `make test-fast` runs the rest.
PROCESS_MODULES = frozenset(
    {
        "test_admin_keys_redis",
        "test_admin_keys_replicas",
        "test_admin_keys_workers",
        "test_bench",
        "test_bench_native",
        "test_cli",
        "test_cli_check",
        "test_cluster",
        "test_completions_node",
        "test_embeddings_node",
        "test_local",
        "test_long_stream",
        "test_node_adapters",
        "test_node_sdk",
        "test_redis_appends",
        "test_tracing_process",
        "test_workers",
    }
)


# `make test` runs the suite on two pytest-xdist workers with `--dist loadfile`: each module
# stays on one worker (its module-scoped servers start once), and the modules below, which load
# the machine (a thousand streams, the bundled model, the benchmark, Lighthouse) or check that a
# stream keeps moving while something heavy runs, count as one file, so that no two of them run
# at the same time.
HEAVY_MODULES = frozenset(
    {
        "test_bench",
        "test_bench_board",
        "test_bench_native",
        "test_completions_local",
        "test_disconnect",
        "test_gateway_local",
        "test_hardening_memory",
        "test_lighthouse",
        "test_local",
        "test_request_log",
    }
)
# A six-minute stream that mostly waits: it starts first, beside the rest, or it ends the run.
FIRST_MODULES = ("test_long_stream", *sorted(HEAVY_MODULES))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    first = {name: i for i, name in enumerate(FIRST_MODULES)}
    items.sort(key=lambda item: first.get(Path(item.path).stem, len(first)))
    for item in items:
        module = item.module.__name__ if item.module is not None else ""  # type: ignore[attr-defined]
        if module.startswith("tests.browser."):
            item.add_marker(pytest.mark.browser)
        elif module.rsplit(".", 1)[-1] in PROCESS_MODULES:
            item.add_marker(pytest.mark.process)


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """`--dist loadfile`, with the heavy modules as one file (xdist's own hook)."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class Scheduling(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return "heavy" if Path(path).stem in HEAVY_MODULES else path

    return Scheduling(config, log)
