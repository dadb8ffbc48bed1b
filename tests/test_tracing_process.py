"""Traces from a real `llms serve` process (one process, and `--workers 2`) with the standard
OTEL_* env vars set, to the test's OTLP/HTTP receiver; and none without them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.test_cli import Served, child_env, start_serve, write_config
from tests.upstreams.openai import FakeOpenAI
from tests.upstreams.otlp import TOKEN, OTLPReceiver, otlp_receiver

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"


@pytest.fixture
async def receiver() -> AsyncIterator[OTLPReceiver]:
    async with otlp_receiver() as receiver:
        yield receiver


@asynccontextmanager
async def serve(
    fake: FakeOpenAI, tmp_path: Path, env: dict[str, str], *args: str
) -> AsyncIterator[Served]:
    config: dict[str, Any] = {
        "state": {"request_log": None, "responses": {"store": None}},
        "providers": {
            "fake": {
                "type": "openai",
                "base_url": fake.base_url,  # type: ignore[attr-defined]
                "models": {"test-model": "up-model"},
            }
        },
    }
    served = start_serve(write_config(tmp_path / "config.json", config), tmp_path, *args, env=env)
    try:
        await asyncio.to_thread(served.wait_ready, 60)
        yield served
    finally:
        await asyncio.to_thread(served.stop, 15)


async def chat(served: Served) -> None:
    body = {"model": "test-model", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    headers = {"traceparent": f"00-{TRACE}-{PARENT}-01"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{served.base_url}/chat/completions", json=body, headers=headers) as r,
    ):
        assert r.status == 200
        assert b"[DONE]" in await r.read()


@pytest.mark.parametrize("workers", [(), ("--workers", "2")], ids=["one", "workers"])
async def test_llms_serve_exports_the_request_and_attempt_spans(
    receiver: OTLPReceiver, fake_openai: FakeOpenAI, tmp_path: Path, workers: tuple[str, ...]
) -> None:
    env = child_env(
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
        OTEL_EXPORTER_OTLP_HEADERS=f"authorization=Bearer%20{TOKEN}",
        OTEL_SERVICE_NAME="gateway-under-test",
        OTEL_BSP_SCHEDULE_DELAY="100",
    )
    async with serve(fake_openai, tmp_path, env, *workers) as served:
        for _ in range(2):
            await chat(served)
        spans = await receiver.wait_for(4)
    assert receiver.rejected == 0
    servers = [s for s in spans if s.kind == 2]
    clients = [s for s in spans if s.kind == 3]
    assert len(servers) == len(clients) == 2
    for server in servers:
        assert server.name == "chat test-model" and server.service == "gateway-under-test"
        assert server.trace_id == TRACE and server.parent_id == PARENT
        assert server.attributes["gen_ai.usage.output_tokens"] == 4
    assert {c.parent_id for c in clients} == {s.span_id for s in servers}
    sent = {r.headers["traceparent"] for r in fake_openai.received}
    assert sent == {f"00-{TRACE}-{c.span_id}-01" for c in clients}


async def test_llms_serve_without_the_env_var_sends_nothing(
    receiver: OTLPReceiver, fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    env = child_env(OTEL_SERVICE_NAME="gateway-under-test", OTEL_BSP_SCHEDULE_DELAY="100")
    env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
    env.pop("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", None)
    async with serve(fake_openai, tmp_path, env) as served:
        await chat(served)
    # The process has exited (its shutdown would have flushed any batch): nothing arrived, and
    # nothing went upstream but the request itself.
    assert receiver.spans == [] and receiver.payloads == []
    assert "traceparent" not in fake_openai.received[-1].headers
