"""Chat completions' stream is the same bytes however the upstream's events were split into reads.

A fast upstream's whole answer arrives in one read: its chunks are the committed batch, whose
JSON the commit's check made and the chat encoder writes (`generation.EncodedBatch`); chunks of
later reads are encoded by the encoder itself. Both must give the client the same bytes.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import orjson
from aiohttp.test_utils import TestServer

from llms.api.chat import CHAT, encode_chunks
from llms.generation import EncodedBatch, check_committable
from tests.conftest import gateway_config
from tests.upstreams.openai import chunk, sse

Gateway = Callable[..., Awaitable[str]]
TEXTS = ["caf\u00e9 ", "\u65e5\u672c \U0001f642 ", '"quoted" \\ ', "\t\n<b>&\u2014", " end"]


def upstream_events() -> list[bytes]:
    """An answer with a role chunk, non-ASCII and escaped text, a finish and usage."""
    usage = {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8}
    events = [chunk({"role": "assistant", "content": ""})]
    events += [chunk({"content": text}) for text in TEXTS]
    events += [chunk({}, "stop"), {"id": "u", "choices": [], "usage": usage}, "[DONE]"]
    return sse(*events)


async def answer_of(make_gateway: Gateway, split: bool) -> bytes:
    """The client's body when the upstream writes its events at once or one per read."""

    async def answer(request: aiohttp.web.Request) -> aiohttp.web.StreamResponse:
        await request.read()
        response = aiohttp.web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        events = upstream_events()
        for data in events if split else [b"".join(events)]:
            await response.write(data)
            if split:
                await asyncio.sleep(0.02)  # a read of its own at the gateway
        await response.write_eof()
        return response

    app = aiohttp.web.Application()
    app.router.add_post("/v1/chat/completions", answer)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        provider = {"type": "openai", "base_url": str(server.make_url("/v1"))}
        base = await make_gateway(
            gateway_config({"fake": provider | {"models": {"test-model": "up-model"}}})
        )
        body = {
            "model": "test-model",
            "messages": [{"role": "user", "content": "hi"}],
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        async with (
            asyncio.timeout(8),
            aiohttp.ClientSession() as session,
            session.post(f"{base}/chat/completions", json=body) as resp,
        ):
            assert resp.status == 200
            return await resp.read()
    finally:
        await server.close()


def same_ids(body: bytes) -> bytes:
    """The body with its per-request id and creation time fixed."""
    body = re.sub(rb'"id":"chatcmpl-[^"]+"', b'"id":"ID"', body)
    return re.sub(rb'"created":\d+', b'"created":0', body)


async def test_one_read_and_one_read_per_event_give_the_same_bytes(make_gateway: Gateway) -> None:
    whole = await answer_of(make_gateway, split=False)
    split = await answer_of(make_gateway, split=True)
    assert same_ids(whole) == same_ids(split)
    events = [line[6:] for line in whole.split(b"\n\n") if line.startswith(b"data: ")]
    assert events[-1] == b"[DONE]"
    chunks = [orjson.loads(event) for event in events[:-1]]
    content = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert content == "".join(TEXTS)
    assert chunks[-1]["usage"]["total_tokens"] == 8


def test_a_committed_batch_is_written_as_its_chunks_encode() -> None:
    chunks: list[Any] = [
        {"id": "x", "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}
        for text in TEXTS
    ]
    batch = EncodedBatch(chunks, check_committable(chunks))
    assert batch == chunks
    assert CHAT.chunks(batch) == encode_chunks(chunks) == CHAT.chunks(list(chunks))
    assert CHAT.chunks(EncodedBatch([], [])) == encode_chunks([]) == b""
