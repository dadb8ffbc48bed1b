"""Issue 11, items 6, 7, 8, 12, 14: budgets and bounds on what clients and Redis can cost.

- finished resumable streams share one byte budget (`state.finished_streams_mb`): the oldest
  go first, and resuming one of them is a 410, never a short answer;
- a request body's JSON values are capped (`server.max_json_nodes`) and big bodies are parsed
  off the event loop: a hostile body never stalls the other streams;
- request bodies in flight share one budget (`server.max_bodies_in_flight_mb`, 429 past it),
  and a request keeps no copy of its raw body while it is answered;
- `Last-Event-ID` is ASCII digits below 2**63, else a 400;
- after a Redis restart, pooled connections are checked and retried, not failed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import psutil
import pytest

from cluster.run import find_binary, free_port, kill_group, start_redis, wait_for_redis
from tests.conftest import gateway_config
from tests.test_cli import ThreadedUpstream, start_serve, write_config
from tests.upstreams.openai import FakeOpenAI, text_script

RESUMABLE = {"X-Stream-Resumable": "true"}
REDIS_SERVER = find_binary("redis-server")
needs_redis = pytest.mark.skipif(REDIS_SERVER is None, reason="redis-server is not installed")


def chat(model: str = "m", **extra: Any) -> dict[str, Any]:
    return {
        "model": model,
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
        **extra,
    }


async def start(
    fake: FakeOpenAI, make_gateway: Callable[..., Awaitable[str]], **sections: Any
) -> str:
    url = fake.base_url  # type: ignore[attr-defined]
    providers = {
        "a": {"type": "openai", "base_url": url, "models": {"m": "one"}, "timeouts": {"idle_s": 5}}
    }
    sections.setdefault("routing", {"max_attempts": 1})
    return await make_gateway(gateway_config(providers, **sections))


def assert_openai_error(body: dict[str, Any], code: str, param: str | None = None) -> None:
    error = body["error"]
    assert set(error) >= {"message", "type", "param", "code"}
    assert error["code"] == code, error
    assert error["message"]
    if param is not None:
        assert error["param"] == param, error


class RedisServer:
    """A real redis-server on a free loopback port, restartable on the same port."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.proc: Any = None

    def start(self) -> None:
        with (self.workdir / "redis.out").open("ab") as out:
            self.proc = start_redis(self.workdir, self.port, binary=REDIS_SERVER, log=out)
        wait_for_redis(self.port, self.proc)

    def stop(self) -> None:
        if self.proc is not None:
            kill_group(self.proc)
            self.proc = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


# --- 12: Last-Event-ID -------------------------------------------------------------------------


async def test_last_event_id_is_ascii_digits_below_2_63(
    fake_openai: FakeOpenAI, make_gateway: Callable[..., Awaitable[str]]
) -> None:
    fake_openai.scripts["one"] = text_script(["a", "b"])
    base = await start(fake_openai, make_gateway)
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{base}/chat/completions", json=chat(), headers=RESUMABLE) as resp:
            stream_id = resp.headers["X-Stream-Id"]
            await resp.read()
        for bad in ("²", "١٢", "9" * 5000, str(2**63), str(2**64), "-1", "1.0", ""):
            for where in ("header", "query"):
                if where == "header":
                    get = session.get(f"{base}/streams/{stream_id}", headers={"Last-Event-ID": bad})
                else:
                    get = session.get(f"{base}/streams/{stream_id}", params={"last_event_id": bad})
                async with get as again:
                    assert again.status == 400, (bad[:20], where)
                    assert_openai_error(await again.json(), "invalid_value", "Last-Event-ID")
        for good, first in (
            (str(2**63 - 1), b""),
            ("0" * 30 + "2", b"id: 3\n"),
            (" 3 ", b"id: 4\n"),
        ):
            async with session.get(
                f"{base}/streams/{stream_id}", headers={"Last-Event-ID": good}
            ) as again:
                assert again.status == 200, good
                assert (await again.read()).startswith(first)


@needs_redis
async def test_last_event_id_of_2_64_in_redis_mode_is_400(
    fake_openai: FakeOpenAI,
    make_gateway: Callable[..., Awaitable[str]],
    redis_server: RedisServer,
) -> None:
    fake_openai.scripts["one"] = text_script(["a", "b"])
    base = await start(fake_openai, make_gateway, state={"redis_url": redis_server.url})
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{base}/chat/completions", json=chat(), headers=RESUMABLE) as resp:
            stream_id = resp.headers["X-Stream-Id"]
            await resp.read()
        for bad in (str(2**64), str(2**63), "²"):
            async with session.get(
                f"{base}/streams/{stream_id}", headers={"Last-Event-ID": bad}
            ) as again:
                assert again.status == 400, bad
                assert_openai_error(await again.json(), "invalid_value", "Last-Event-ID")


# --- 6: the budget of finished streams ---------------------------------------------------------

PIECE = "y" * 10_000


async def finish_streams(session: aiohttp.ClientSession, base: str, count: int) -> list[str]:
    """`count` resumable streams read to their end, one after the other; their ids."""
    ids = []
    for _ in range(count):
        async with session.post(f"{base}/chat/completions", json=chat(), headers=RESUMABLE) as resp:
            assert resp.status == 200
            ids.append(resp.headers["X-Stream-Id"])
            assert (await resp.read()).endswith(b"data: [DONE]\n\n")
    return ids


async def test_finished_streams_share_a_budget_and_an_evicted_one_is_410(
    fake_openai: FakeOpenAI, make_gateway: Callable[..., Awaitable[str]]
) -> None:
    fake_openai.scripts["one"] = text_script([PIECE] * 10)  # about 100 KB of events each
    base = await start(fake_openai, make_gateway, state={"finished_streams_mb": 0.25})
    async with aiohttp.ClientSession() as session:
        ids = await finish_streams(session, base, 6)
        # 0.25 MiB holds two of them: the oldest went first.
        for stream_id in ids[:4]:
            async with session.get(f"{base}/streams/{stream_id}") as gone:
                assert gone.status == 410
                assert_openai_error(await gone.json(), "stream_evicted", "Last-Event-ID")
        for stream_id in ids[4:]:
            async with session.get(f"{base}/streams/{stream_id}") as kept:
                assert kept.status == 200
                body = await kept.read()
            assert body.count(PIECE.encode()) == 10
            assert body.endswith(b"data: [DONE]\n\n")
        # Resuming an evicted stream past its end is no loss: nothing is missing.
        async with session.get(
            f"{base}/streams/{ids[0]}", headers={"Last-Event-ID": "100"}
        ) as past:
            assert past.status == 200


@needs_redis
async def test_in_redis_mode_an_evicted_stream_is_replayed_from_redis(
    fake_openai: FakeOpenAI,
    make_gateway: Callable[..., Awaitable[str]],
    redis_server: RedisServer,
) -> None:
    fake_openai.scripts["one"] = text_script([PIECE] * 10)
    base = await start(
        fake_openai,
        make_gateway,
        state={"finished_streams_mb": 0.25, "redis_url": redis_server.url},
    )
    async with aiohttp.ClientSession() as session:
        ids = await finish_streams(session, base, 4)
        async with session.get(f"{base}/streams/{ids[0]}") as again:
            assert again.status == 200
            body = await again.read()
        assert body.count(PIECE.encode()) == 10
        assert body.endswith(b"data: [DONE]\n\n")


FINISHED_MB = 16
FINISHED_STREAMS = 60  # 2 MiB each: 120 MiB of events, 7.5 times the budget
# The bound on the RSS growth of `llms serve` once every stream is finished and still within its
# TTL: the budget, one stream past it (the newest is never evicted), what the allocator keeps of
# the freed events and the warm-up of 60 requests. Without the budget it holds all 120 MiB.
FINISHED_RSS_BOUND_MB = FINISHED_MB + 40


@pytest.mark.process
@pytest.mark.timeout(60)
async def test_finished_streams_hold_no_more_than_the_budget_in_a_real_process(
    tmp_path: Path,
) -> None:
    upstream = ThreadedUpstream()
    upstream.fake.default = text_script(["z" * 65536] * 32)
    upstream.start()
    config = {
        "state": {"request_log": None, "finished_streams_mb": FINISHED_MB},
        "routing": {"max_attempts": 1},
        "providers": {"up": {"type": "openai", "base_url": upstream.base_url, "models": ["m"]}},
    }
    served = start_serve(write_config(tmp_path / "config.json", config), tmp_path)
    try:
        served.wait_ready()
        process = psutil.Process(served.proc.pid)
        base = f"http://127.0.0.1:{served.port}/v1"
        async with aiohttp.ClientSession() as session:
            await finish_streams(session, base, 2)  # warm up before the baseline
            baseline = process.memory_info().rss
            ids = await finish_streams(session, base, FINISHED_STREAMS)
            growth_mb = (process.memory_info().rss - baseline) / 2**20
            print(f"RSS baseline {baseline / 2**20:.0f} MiB, growth {growth_mb:.0f} MiB")
            assert growth_mb < FINISHED_RSS_BOUND_MB
            async with session.get(f"{base}/streams/{ids[0]}") as gone:
                assert gone.status == 410
            async with session.get(f"{base}/streams/{ids[-1]}") as kept:
                assert (await kept.read()).endswith(b"data: [DONE]\n\n")
        assert served.alive()
    finally:
        served.stop()
        upstream.stop()
