"""Every event stream names the gateway's heartbeat interval (`X-Heartbeat-Interval`, seconds).

The web UI's watchdog waits three intervals of silence before it calls a connection dead; it
reads the interval here instead of assuming the default 15 s.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import aiohttp

from tests.test_resumable import RESUMABLE, chat, start
from tests.upstreams.openai import FakeOpenAI, text_script


async def test_streams_and_resumes_name_the_heartbeat_interval(
    fake_openai: FakeOpenAI, make_gateway: Callable[..., Awaitable[str]]
) -> None:
    fake_openai.scripts["one"] = text_script(["a", "b"])
    base = await start(fake_openai, make_gateway, server={"heartbeat_s": 2.5})
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{base}/chat/completions", json=chat()) as resp:
            assert resp.headers["X-Heartbeat-Interval"] == "2.5"
            await resp.read()
        async with session.post(f"{base}/chat/completions", json=chat(), headers=RESUMABLE) as resp:
            assert resp.headers["X-Heartbeat-Interval"] == "2.5"
            stream_id = resp.headers["X-Stream-Id"]
            await resp.read()
        async with session.get(f"{base}/streams/{stream_id}") as resp:
            assert resp.status == 200
            assert resp.headers["X-Heartbeat-Interval"] == "2.5"
            assert b"[DONE]" in await resp.read()
        whole = {**chat(), "stream": False}
        async with session.post(f"{base}/chat/completions", json=whole) as resp:
            assert resp.status == 200
            assert "X-Heartbeat-Interval" not in resp.headers  # not an event stream


async def test_the_default_interval_is_named_too(
    fake_openai: FakeOpenAI, make_gateway: Callable[..., Awaitable[str]]
) -> None:
    fake_openai.scripts["one"] = text_script(["a"])
    base = await start(fake_openai, make_gateway)
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{base}/chat/completions", json=chat()) as resp,
    ):
        assert resp.headers["X-Heartbeat-Interval"] == "15"
        await resp.read()
