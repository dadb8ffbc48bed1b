"""llms.upstream.UpstreamCall against a real aiohttp server on 127.0.0.1: an open stream keeps
nothing of the request it sent (issue 18: every idle stream held its upstream request's body),
and a call is sent once."""

from __future__ import annotations

import asyncio
import gc
import tracemalloc
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from llms.adapters.base import UpstreamRequest
from llms.config import Timeouts
from llms.upstream import UpstreamCall, new_session

BODY_BYTES = 8 * 2**20


@pytest.fixture
async def upstream() -> AsyncIterator[str]:
    """Reads each body to its end without keeping it, then answers a stream that stays open."""

    async def stream(request: web.Request) -> web.StreamResponse:
        size = 0
        while chunk := await request.content.readany():
            size += len(chunk)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(f"data: {size}\n\n".encode())
        await asyncio.sleep(30)  # open and silent: the client closes first
        return response

    app = web.Application(client_max_size=2 * BODY_BYTES)
    app.router.add_post("/stream", stream)
    runner = web.AppRunner(app, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}/stream"
    finally:
        await runner.cleanup()


async def test_an_open_stream_keeps_no_copy_of_the_body_it_sent(upstream: str) -> None:
    loop = asyncio.get_running_loop()
    async with new_session() as session:
        tracemalloc.start()
        try:
            request = UpstreamRequest(
                "POST", upstream, {"Content-Type": "application/json"}, b"x" * BODY_BYTES
            )
            call = UpstreamCall(session, request, Timeouts())
            del request
            await call.open(loop.time() + 10)
            assert call.status == 200
            assert await call.read(loop.time() + 10) == f"data: {BODY_BYTES}\n\n".encode()
            gc.collect()
            held, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        try:
            # The body was made (and sent whole) while traced; the open stream holds none of it.
            assert peak > BODY_BYTES
            assert held < BODY_BYTES // 8, f"{held / 2**20:.1f} MiB held by an open stream"
            with pytest.raises(RuntimeError, match="already sent"):
                await call.open(loop.time() + 10)
        finally:
            call.close()
