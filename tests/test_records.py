"""Every chat request ends in one RequestRecord handed to the telemetry sinks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from llms import create_app
from llms.server import keys
from llms.telemetry.record import RequestRecord
from tests.conftest import gateway_config
from tests.upstreams.openai import FakeOpenAI, Script, chunk, error_script, sse, text_script


class Collector:
    def __init__(self) -> None:
        self.records: list[RequestRecord] = []

    def finish(self, record: RequestRecord) -> None:
        self.records.append(record)


@pytest.fixture
async def setup(fake_openai: FakeOpenAI) -> AsyncIterator[tuple[str, Collector]]:
    config = gateway_config(
        {
            "fake": {
                "type": "openai",
                "base_url": fake_openai.base_url,
                "models": {"m": "up"},
                "timeouts": {"idle_s": 1},
            }
        },  # type: ignore[attr-defined]
        routing={"max_attempts": 1},
    )
    app = create_app(config)
    collector = Collector()
    app[keys.TELEMETRY].sinks.append(collector)
    runner = web.AppRunner(app, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}/v1", collector
    await runner.cleanup()


async def post(base: str, body: dict[str, Any], **headers: str) -> bytes:
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{base}/chat/completions", json=body, headers=headers) as resp,
    ):
        return await resp.read()


async def wait_records(collector: Collector, count: int) -> list[RequestRecord]:
    for _ in range(200):
        if len(collector.records) >= count:
            break
        await asyncio.sleep(0.01)
    return collector.records


BODY = {"model": "m", "messages": [{"role": "user", "content": "x"}]}


@pytest.mark.parametrize("resumable", [False, True])
async def test_stream_records(
    setup: tuple[str, Collector], fake_openai: FakeOpenAI, resumable: bool
) -> None:
    base, collector = setup
    fake_openai.scripts["up"] = text_script(["a", "b", "c"])
    headers = {"X-Stream-Resumable": "true"} if resumable else {}
    await post(base, {**BODY, "stream": True}, **headers)
    (record,) = await wait_records(collector, 1)
    assert (record.model, record.stream, record.resumable, record.provider) == (
        "m",
        True,
        resumable,
        "fake",
    )
    assert (record.status, record.finish_reason, record.error_code) == (200, "stop", None)
    assert record.usage == {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}
    assert record.chunks == 5  # role, three pieces, finish
    assert record.first_output is not None and record.ended is not None
    assert record.started <= record.first_output <= record.ended
    assert record.stream_id and record.request_id


async def test_non_stream_and_failure_records(
    setup: tuple[str, Collector], fake_openai: FakeOpenAI
) -> None:
    base, collector = setup
    fake_openai.scripts["up"] = text_script(["ok"])
    await post(base, BODY)
    fake_openai.scripts["up"] = error_script(503, {"error": {"message": "busy"}})
    await post(base, {**BODY, "stream": True})
    fake_openai.scripts["up"] = Script(
        writes=sse(chunk({"content": "par"})), fault="reset", delay_s=0.05
    )
    await post(base, {**BODY, "stream": True})
    await post(base, {"model": "m", "messages": []})
    done, upstream_503, mid_stream, bad = await wait_records(collector, 4)
    assert (done.stream, done.status, done.finish_reason, done.usage is not None) == (
        False,
        200,
        "stop",
        True,
    )
    assert (upstream_503.status, upstream_503.error_code) == (503, "upstream_unavailable")
    assert (mid_stream.status, mid_stream.error_code, mid_stream.chunks) == (
        200,
        "upstream_disconnected",
        1,
    )
    assert (bad.status, bad.model, bad.error_type) == (400, "", "invalid_request_error")
