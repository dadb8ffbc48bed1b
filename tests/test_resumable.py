"""Resumable streams in one process: ids, resume after a drop, cancel, grace, TTL, caps, owners."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import openai
import orjson
import pytest

from llms.framing import SSEDecoder
from tests.conftest import gateway_config
from tests.upstreams.openai import FakeOpenAI, error_script, text_script

RESUMABLE = {"X-Stream-Resumable": "true"}
PIECES = [f"w{i} " for i in range(40)]


def chat(model: str = "m") -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": True}


async def start(
    fake: FakeOpenAI, make_gateway: Callable[..., Awaitable[str]], **sections: Any
) -> str:
    url = fake.base_url  # type: ignore[attr-defined]
    providers = {
        "a": {"type": "openai", "base_url": url, "models": {"m": "one"}, "timeouts": {"idle_s": 5}},
        "b": {"type": "openai", "base_url": url, "models": {"m": "two"}, "timeouts": {"idle_s": 5}},
    }
    return await make_gateway(gateway_config(providers, **sections))


class Reader:
    """Reads SSE with the WHATWG decoder, keeping every event's id."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, str]] = []  # (id, event, data)
        self.decoder = SSEDecoder()

    async def read(self, resp: aiohttp.ClientResponse, stop_after: int | None = None) -> None:
        async for data in resp.content.iter_any():
            for event in self.decoder.feed(data):
                self.events.append((event.id, event.event, event.data))
                if stop_after is not None and len(self.chunks()) >= stop_after:
                    return

    def chunks(self) -> list[dict[str, Any]]:
        return [
            orjson.loads(d) for _, kind, d in self.events if kind == "message" and d.startswith("{")
        ]

    def content(self) -> str:
        return "".join(
            c["delta"].get("content") or "" for p in self.chunks() for c in p.get("choices", [])
        )

    @property
    def last_id(self) -> str:
        return self.events[-1][0]


async def test_resumable_events_carry_ids_and_default_mode_does_not(
    fake_openai: FakeOpenAI, make_gateway: Callable[..., Awaitable[str]]
) -> None:
    fake_openai.scripts["one"] = text_script(["a", "b"])
    base = await start(fake_openai, make_gateway)
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{base}/chat/completions", json=chat(), headers=RESUMABLE) as resp:
            body = await resp.read()
        assert body.startswith(b"id: 1\ndata: {")
        assert body.endswith(b"data: [DONE]\n\n")
        ids = [int(line[4:]) for line in body.split(b"\n") if line.startswith(b"id: ")]
        assert ids == list(range(1, len(ids) + 1))
        async with session.post(f"{base}/chat/completions", json=chat()) as resp:
            plain = await resp.read()
        assert b"id:" not in plain
        assert b"event:" not in plain


async def test_resume_after_a_drop_loses_and_repeats_nothing(
    fake_openai: FakeOpenAI, make_gateway: Callable[..., Awaitable[str]]
) -> None:
    fake_openai.scripts["one"] = text_script(PIECES, delay_s=0.02)
    base = await start(fake_openai, make_gateway)
    reader = Reader()
    async with aiohttp.ClientSession() as session:
        resp = await session.post(f"{base}/chat/completions", json=chat(), headers=RESUMABLE)
        stream_id = resp.headers["X-Stream-Id"]
        await reader.read(resp, stop_after=5)
        resp.close()  # the connection drops mid-answer
        await asyncio.sleep(0.2)  # the generation goes on meanwhile
        async with session.get(
            f"{base}/streams/{stream_id}", headers={"Last-Event-ID": reader.last_id}
        ) as again:
            assert again.status == 200
            await reader.read(again)
    assert reader.content() == "".join(PIECES)
    ids = [int(i) for i, _, _ in reader.events]
    assert ids == list(range(1, len(ids) + 1))  # no gap, no repeat
    assert reader.events[-1][2] == "[DONE]"
    assert not fake_openai.gone  # the upstream was never interrupted


async def test_replay_from_the_start_and_by_query_and_several_readers(
    fake_openai: FakeOpenAI, make_gateway: Callable[..., Awaitable[str]]
) -> None:
    fake_openai.scripts["one"] = text_script(PIECES[:10], delay_s=0.02)
    base = await start(fake_openai, make_gateway)
    async with aiohttp.ClientSession() as session:
        resp = await session.post(f"{base}/chat/completions", json=chat(), headers=RESUMABLE)
        stream_id = resp.headers["X-Stream-Id"]
        readers = [Reader(), Reader(), Reader()]
        extra = [
            await session.get(f"{base}/streams/{stream_id}"),
            await session.get(f"{base}/streams/{stream_id}?last_event_id=3"),
        ]
        await asyncio.gather(
            readers[0].read(resp), readers[1].read(extra[0]), readers[2].read(extra[1])
        )
    assert readers[0].events == readers[1].events
    assert readers[2].events == readers[0].events[3:]


async def test_cancel_from_another_connection(
    fake_openai: FakeOpenAI, make_gateway: Callable[..., Awaitable[str]]
) -> None:
    fake_openai.scripts["one"] = text_script(PIECES, delay_s=0.05)
    base = await start(fake_openai, make_gateway)
    reader = Reader()
    async with aiohttp.ClientSession() as session:
        resp = await session.post(f"{base}/chat/completions", json=chat(), headers=RESUMABLE)
        stream_id = resp.headers["X-Stream-Id"]
        await reader.read(resp, stop_after=3)
        for _ in range(2):  # idempotent
            async with session.post(f"{base}/streams/{stream_id}/cancel") as cancel:
                assert cancel.status == 200
                assert (await cancel.json())["status"] == "cancelled"
        await reader.read(resp)
    errors = [orjson.loads(d)["error"] for _, _, d in reader.events if d.startswith('{"error"')]
    assert [e["code"] for e in errors] == ["cancelled"]
    assert reader.events[-1][2] == "[DONE]"
    for _ in range(100):
        if fake_openai.gone:
            break
        await asyncio.sleep(0.01)
    assert fake_openai.gone, "the upstream kept generating after the cancel"


async def test_grace_period_then_the_generation_stops(
    fake_openai: FakeOpenAI, make_gateway: Callable[..., Awaitable[str]]
) -> None:
    fake_openai.scripts["one"] = text_script(PIECES, delay_s=0.05)
    base = await start(fake_openai, make_gateway, state={"resume_grace_s": 0.3})
    reader = Reader()
    async with aiohttp.ClientSession() as session:
        resp = await session.post(f"{base}/chat/completions", json=chat(), headers=RESUMABLE)
        stream_id = resp.headers["X-Stream-Id"]
        await reader.read(resp, stop_after=2)
        resp.close()
        for _ in range(200):
            if fake_openai.gone:
                break
            await asyncio.sleep(0.01)
        assert fake_openai.gone, "nobody came back, yet the upstream kept generating"
        async with session.get(
            f"{base}/streams/{stream_id}", headers={"Last-Event-ID": reader.last_id}
        ) as again:
            await reader.read(again)
    assert orjson.loads(reader.events[-2][2])["error"]["code"] == "abandoned"


async def test_ttl_expiry_is_404_and_other_keys_see_nothing(
    fake_openai: FakeOpenAI, make_gateway: Callable[..., Awaitable[str]]
) -> None:
    fake_openai.scripts["one"] = text_script(["x"])
    base = await start(
        fake_openai,
        make_gateway,
        state={"stream_ttl_s": 0.3},
        server={"api_keys": [{"key": "k1", "name": "one"}, {"key": "k2", "name": "two"}]},
    )
    async with aiohttp.ClientSession() as session:
        async with session.post(
            f"{base}/chat/completions",
            json=chat(),
            headers={**RESUMABLE, "Authorization": "Bearer k1"},
        ) as resp:
            stream_id = resp.headers["X-Stream-Id"]
            await resp.read()
        for key, status in (("k1", 200), ("k2", 404)):
            async with session.get(
                f"{base}/streams/{stream_id}", headers={"Authorization": f"Bearer {key}"}
            ) as again:
                assert again.status == status
                await again.read()
            async with session.post(
                f"{base}/streams/{stream_id}/cancel", headers={"Authorization": f"Bearer {key}"}
            ) as cancel:
                assert cancel.status == status
        await asyncio.sleep(0.5)
        async with session.get(
            f"{base}/streams/{stream_id}", headers={"Authorization": "Bearer k1"}
        ) as gone:
            assert gone.status == 404
            assert (await gone.json())["error"]["code"] == "stream_not_found"


async def test_memory_cap_gives_410_for_dropped_events(
    fake_openai: FakeOpenAI, make_gateway: Callable[..., Awaitable[str]]
) -> None:
    fake_openai.scripts["one"] = text_script(["y" * 4000 for _ in range(20)], delay_s=0.01)
    base = await start(fake_openai, make_gateway, state={"stream_max_mb": 0.02})  # ~20 KiB
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{base}/chat/completions", json=chat(), headers=RESUMABLE) as resp:
            stream_id = resp.headers["X-Stream-Id"]
            full = await resp.read()
        assert full.count(b"yyyy") >= 20  # the live reader got everything
        async with session.get(
            f"{base}/streams/{stream_id}", headers={"Last-Event-ID": "1"}
        ) as old:
            assert old.status == 410
            assert (await old.json())["error"]["code"] == "stream_events_expired"
        async with session.get(
            f"{base}/streams/{stream_id}", headers={"Last-Event-ID": "21"}
        ) as recent:
            assert recent.status == 200
            assert (await recent.read()).endswith(b"data: [DONE]\n\n")


async def test_failure_before_output_is_an_http_error_and_status_events_report_fallback(
    fake_openai: FakeOpenAI, make_gateway: Callable[..., Awaitable[str]]
) -> None:
    fake_openai.scripts["one"] = error_script(503, {"error": {"message": "busy"}})
    fake_openai.scripts["two"] = error_script(400, {"error": {"message": "bad"}})
    base = await start(fake_openai, make_gateway, routing={"max_attempts": 1})
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{base}/chat/completions", json=chat(), headers=RESUMABLE) as resp,
    ):
        assert resp.status == 503
        assert (await resp.json())["error"]["message"] == "busy"
    fake_openai.scripts["two"] = text_script(["rescued"])
    base = await start(fake_openai, make_gateway, routing={"max_attempts": 2})
    reader = Reader()
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{base}/chat/completions", json=chat(), headers=RESUMABLE) as resp,
    ):
        assert resp.status == 200
        assert resp.headers.get("X-Stream-Id")
        await reader.read(resp)
    statuses = [orjson.loads(d) for _, kind, d in reader.events if kind == "status"]
    assert statuses == [
        {
            "status": "falling_back",
            "provider": "a",
            "next_provider": "b",
            "attempt": 1,
            "delay_s": 0.0,
            "reason": "busy",
        }
    ]
    assert reader.content() == "rescued"


async def test_sdk_in_default_mode_is_unaffected(
    fake_openai: FakeOpenAI, make_gateway: Callable[..., Awaitable[str]]
) -> None:
    fake_openai.scripts["one"] = text_script(["plain"])
    base = await start(fake_openai, make_gateway)
    client = openai.AsyncOpenAI(base_url=base, api_key="x", max_retries=0)
    stream = await client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "x"}], stream=True
    )
    assert "".join([c.choices[0].delta.content or "" async for c in stream]) == "plain"


@pytest.mark.parametrize("seed", [1])
async def test_many_random_drops_and_resumes(
    fake_openai: FakeOpenAI, make_gateway: Callable[..., Awaitable[str]], seed: int
) -> None:
    """200 disconnect-and-resume cycles at random positions reassemble the exact answer."""
    rng = random.Random(seed)
    pieces = [f"<{i}>" for i in range(120)]
    fake_openai.scripts["one"] = text_script(pieces, delay_s=0.002)
    base = await start(fake_openai, make_gateway, server={"heartbeat_s": 5})
    cycles = 0
    async with aiohttp.ClientSession() as session:
        while cycles < 200:
            reader = Reader()
            resp = await session.post(f"{base}/chat/completions", json=chat(), headers=RESUMABLE)
            stream_id = resp.headers["X-Stream-Id"]
            while True:
                await reader.read(resp, stop_after=len(reader.chunks()) + rng.randint(1, 30))
                if reader.events and reader.events[-1][2] == "[DONE]":
                    break
                resp.close()
                cycles += 1
                resp = await session.get(
                    f"{base}/streams/{stream_id}", headers={"Last-Event-ID": reader.last_id}
                )
            resp.close()
            ids = [int(i) for i, _, _ in reader.events]
            assert ids == list(range(1, len(ids) + 1))
            assert reader.content() == "".join(pieces)


async def test_upstream_429_in_resumable_mode_is_an_http_429(
    fake_openai: FakeOpenAI, make_gateway: Callable[..., Awaitable[str]]
) -> None:
    # Upstream header names arrive as multidict istr: the recorded failure must still encode.
    fake_openai.scripts["one"] = error_script(
        429, {"error": {"message": "slow down"}}, {"Retry-After": "30"}
    )
    url = fake_openai.base_url  # type: ignore[attr-defined]
    provider = {"type": "openai", "base_url": url, "models": {"m": "one"}}
    base = await make_gateway(gateway_config({"a": provider}))
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session,
        session.post(f"{base}/chat/completions", json=chat(), headers=RESUMABLE) as resp,
    ):
        assert resp.status == 429
        assert resp.headers["Retry-After"] == "30"
        assert (await resp.json())["error"]["message"] == "slow down"


async def test_client_chosen_stream_id_cancels_before_the_first_byte(
    fake_openai: FakeOpenAI, make_gateway: Callable[..., Awaitable[str]]
) -> None:
    # The upstream "thinks" for a long time: no byte has reached the client yet.
    fake_openai.scripts["one"] = text_script(["late"], header_delay_s=30)
    base = await start(fake_openai, make_gateway)
    stream_id = "ui-" + "a1b2c3d4e5f6a7b8c9d0"
    headers = {**RESUMABLE, "X-Stream-Id": stream_id}
    async with aiohttp.ClientSession() as session:
        post = asyncio.create_task(
            session.post(f"{base}/chat/completions", json=chat(), headers=headers)
        )
        while not fake_openai.received:
            await asyncio.sleep(0.01)
        async with session.post(f"{base}/streams/{stream_id}/cancel") as cancel:
            assert (await cancel.json())["status"] == "cancelled"
        resp = await post
        body = await resp.read()
        assert resp.headers["X-Stream-Id"] == stream_id
        assert b'"code":"cancelled"' in body
        assert body.endswith(b"data: [DONE]\n\n")
        for _ in range(100):
            if fake_openai.gone:
                break
            await asyncio.sleep(0.01)
        assert fake_openai.gone, "the upstream kept going after the cancel"
        async with session.post(f"{base}/chat/completions", json=chat(), headers=headers) as again:
            assert again.status == 409
            assert (await again.json())["error"]["param"] == "X-Stream-Id"
        bad = {**RESUMABLE, "X-Stream-Id": "short"}
        async with session.post(f"{base}/chat/completions", json=chat(), headers=bad) as resp:
            assert resp.status == 400
