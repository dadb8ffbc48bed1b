"""A client that leaves stops the upstream: measured at the fake provider, in both aiohttp modes."""

from __future__ import annotations

import asyncio
import gc
import random
import time
from collections.abc import Awaitable, Callable

import aiohttp
import pytest

from llms.routing import Generation
from llms.server.relay import ClientStream
from tests.conftest import gateway_config
from tests.upstreams.openai import FakeOpenAI, Script, chunk, sse, text_script

CHAT = {"model": "test-model", "messages": [{"role": "user", "content": "hi"}], "stream": True}


async def start(
    fake: FakeOpenAI,
    make_gateway: Callable[..., Awaitable[str]],
    *,
    handler_cancellation: bool,
    heartbeat_s: float = 0.1,
) -> str:
    config = gateway_config(
        {
            "fake": {
                "type": "openai",
                "base_url": fake.base_url,  # type: ignore[attr-defined]
                "models": {"test-model": "up-model"},
                "timeouts": {"idle_s": 30, "first_token_s": 30},
            }
        },
        server={"heartbeat_s": heartbeat_s},
    )
    return await make_gateway(config, handler_cancellation=handler_cancellation)


async def leave_after_first_content(base: str) -> float:
    """Read until the first content chunk, then drop the connection; returns when it left."""
    async with aiohttp.ClientSession() as session:
        resp = await session.post(f"{base}/chat/completions", json=CHAT)
        while b'"content":"' not in await resp.content.readuntil(b"\n\n"):
            pass
        left = time.monotonic()
        resp.close()  # closes the TCP connection
        return left


async def wait_gone(fake: FakeOpenAI, count: int = 1, limit: float = 5.0) -> float:
    deadline = time.monotonic() + limit
    while len(fake.gone) < count and time.monotonic() < deadline:
        await asyncio.sleep(0.005)
    assert len(fake.gone) >= count, "the upstream never saw the gateway leave"
    return fake.gone[count - 1]


async def test_disconnect_while_upstream_is_silent_closes_it_within_200ms(
    fake_openai: FakeOpenAI, make_gateway: Callable[..., Awaitable[str]]
) -> None:
    # One content chunk, then the upstream "thinks" for an hour without sending a byte.
    fake_openai.scripts["up-model"] = Script(
        writes=sse(chunk({"role": "assistant", "content": "x"})), fault="stall"
    )
    base = await start(fake_openai, make_gateway, handler_cancellation=True)
    left = await leave_after_first_content(base)
    gone = await wait_gone(fake_openai)
    assert gone - left < 0.2, f"upstream closed {gone - left:.3f} s after the client left"


async def test_disconnect_while_streaming_closes_upstream_within_200ms(
    fake_openai: FakeOpenAI, make_gateway: Callable[..., Awaitable[str]]
) -> None:
    fake_openai.scripts["up-model"] = text_script([f"t{i} " for i in range(200)], delay_s=0.05)
    base = await start(fake_openai, make_gateway, handler_cancellation=True)
    left = await leave_after_first_content(base)
    gone = await wait_gone(fake_openai)
    assert gone - left < 0.2, f"upstream closed {gone - left:.3f} s after the client left"
    assert not fake_openai.finished


async def test_without_handler_cancellation_the_next_write_or_heartbeat_notices(
    fake_openai: FakeOpenAI, make_gateway: Callable[..., Awaitable[str]]
) -> None:
    # aiohttp's default mode (for people embedding create_app): the disconnect surfaces at the
    # next write to the client, a chunk or a heartbeat (0.1 s here), and the upstream is closed.
    fake_openai.scripts["up-model"] = Script(
        writes=sse(chunk({"role": "assistant", "content": "x"})), fault="stall"
    )
    base = await start(fake_openai, make_gateway, handler_cancellation=False)
    left = await leave_after_first_content(base)
    gone = await wait_gone(fake_openai)
    assert gone - left < 1.0, f"upstream closed {gone - left:.3f} s after the client left"


async def test_disconnect_before_headers_closes_upstream(
    fake_openai: FakeOpenAI, make_gateway: Callable[..., Awaitable[str]]
) -> None:
    fake_openai.scripts["up-model"] = text_script(["late"], header_delay_s=30)
    base = await start(fake_openai, make_gateway, handler_cancellation=True, heartbeat_s=30)
    async with aiohttp.ClientSession() as session:
        task = asyncio.create_task(session.post(f"{base}/chat/completions", json=CHAT))
        while not fake_openai.received:
            await asyncio.sleep(0.01)
        left = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    gone = await wait_gone(fake_openai)
    assert gone - left < 0.2


def live(kind: type) -> int:
    gc.collect()
    return sum(1 for obj in gc.get_objects() if isinstance(obj, kind))


async def test_100_aborted_streams_leave_nothing_behind(
    fake_openai: FakeOpenAI, make_gateway: Callable[..., Awaitable[str]]
) -> None:
    fake_openai.scripts["up-model"] = text_script([f"t{i} " for i in range(100)], delay_s=0.01)
    base = await start(fake_openai, make_gateway, handler_cancellation=True)
    tasks_before = len(asyncio.all_tasks())
    rng = random.Random(7)

    async def aborted() -> None:
        async with aiohttp.ClientSession() as session:
            resp = await session.post(f"{base}/chat/completions", json=CHAT)
            for _ in range(rng.randint(1, 20)):
                await resp.content.readuntil(b"\n\n")
            resp.close()

    for _ in range(10):
        await asyncio.gather(*(aborted() for _ in range(10)))
    await wait_gone(fake_openai, count=100)
    deadline = time.monotonic() + 5
    while (
        fake_openai.active or len(asyncio.all_tasks()) > tasks_before
    ) and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert fake_openai.active == 0, "upstream requests still open"
    assert len(asyncio.all_tasks()) <= tasks_before, "tasks left behind"
    assert live(Generation) == 0
    assert live(ClientStream) == 0
    # The gateway can still serve afterwards.
    fake_openai.scripts["up-model"] = text_script(["still", " fine"])
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{base}/chat/completions", json=CHAT) as resp,
    ):
        assert (await resp.read()).endswith(b"data: [DONE]\n\n")
