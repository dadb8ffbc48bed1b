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

import asyncio
import copy
import gc
import itertools
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import psutil
import pytest

from cluster.run import find_binary, free_port, kill_group, start_redis, wait_for_redis
from llms.errors import InvalidRequest
from llms.server.bodies import BodyBudget, ParsedBody, check_json_nodes
from llms.streams.log import StreamGone
from llms.streams.memory import FinishedBudget, MemoryLog
from tests.conftest import gateway_config
from tests.test_cli import ThreadedUpstream, start_serve, write_config
from tests.upstreams.openai import FakeOpenAI, Script, chunk, error_script, sse, text_script

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
        "a": {
            "type": "openai",
            "base_url": url,
            "models": {"m": "one", "quick": "two"},
            "timeouts": {"idle_s": 5},
        }
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


# --- 7: the work of one request is bounded, and big bodies are parsed off the event loop -------


async def test_too_many_json_values_is_a_400_naming_the_field(
    fake_openai: FakeOpenAI, make_gateway: Callable[..., Awaitable[str]]
) -> None:
    base = await start(fake_openai, make_gateway, server={"max_json_nodes": 100})
    many = [{"role": "user", "content": "hi"}] * 40  # 121 values and keys in `messages`
    async with aiohttp.ClientSession() as session:
        for body, param in (
            ({"model": "m", "messages": many}, "messages"),
            (chat(extra_field={f"k{i}": i for i in range(60)}), "extra_field"),
            (
                chat(stop=[",", "]"], metadata={"a": "{[,:]}" * 80}, prompt_cache_key="[,]" * 80),
                None,
            ),  # text is no values: fine
        ):
            async with session.post(f"{base}/chat/completions", json=body) as resp:
                if param is None:
                    assert resp.status == 200, await resp.text()
                    await resp.read()
                    continue
                assert resp.status == 400
                assert_openai_error(await resp.json(), "too_many_json_values", param)


MESSAGES = 1_080_000  # 31 MiB: the body
KEYS = 1_700_000


async def test_a_huge_legal_body_does_not_stall_a_running_stream(
    fake_openai: FakeOpenAI, make_gateway: Callable[..., Awaitable[str]]
) -> None:
    fake_openai.scripts["one"] = text_script(["t"] * 2000, delay_s=0.02)  # 40 s if not stopped
    base = await start(fake_openai, make_gateway)
    hi = {"role": "user", "content": "hi"}
    bodies = [
        (orjson.dumps({"model": "m", "messages": [hi] * MESSAGES}), 400),
        (orjson.dumps({**chat(), "unknown": {f"key{i:07}": 0 for i in range(KEYS)}}), 400),
        # A body of text: big, legal, and few values (its commas and brackets are in a string).
        (
            orjson.dumps(
                chat("quick", messages=[{"role": "user", "content": "[a, b]: {c} " * 2_500_000}])
            ),
            200,
        ),
    ]
    arrivals: list[float] = []
    loop = asyncio.get_running_loop()
    async with aiohttp.ClientSession() as session:

        async def follow() -> None:
            async with session.post(f"{base}/chat/completions", json=chat()) as resp:
                async for _ in resp.content.iter_any():
                    arrivals.append(loop.time())

        following = asyncio.create_task(follow())
        while len(arrivals) < 5:
            await asyncio.sleep(0.01)
        started = loop.time()
        for raw, status in bodies:
            async with session.post(
                f"{base}/chat/completions",
                data=raw,
                headers={"Content-Type": "application/json"},
            ) as resp:
                assert resp.status == status, await resp.text()
                await resp.read()
        ended = loop.time()
        following.cancel()
    assert arrivals[-1] > ended - 1.0, "the stream did not run while the bodies were processed"
    during = [t for t in arrivals if started <= t <= ended]
    gaps = [b - a for a, b in itertools.pairwise(during)]
    print(f"{len(during)} events in {ended - started:.1f} s, longest gap {max(gaps):.3f} s")
    # A hang check, not a timing: the loop blocked on one body stalled every stream 3-7 s.
    assert max(gaps) < 1.0


# --- 8: request bodies in flight share one budget ----------------------------------------------

BODY_TEXT = "b" * 40_000  # a body of about 40 KB


async def test_bodies_in_flight_past_the_budget_get_429_and_come_back_when_answered(
    fake_openai: FakeOpenAI, make_gateway: Callable[..., Awaitable[str]]
) -> None:
    # Two bodies fit in 0.1 MiB, not three.
    fake_openai.scripts["one"] = text_script(["a", "b"], delay_s=0.1)
    fake_openai.scripts["two"] = error_script(400, {"error": {"message": "no", "type": "x"}})
    base = await start(fake_openai, make_gateway, server={"max_bodies_in_flight_mb": 0.1})
    big = [{"role": "user", "content": BODY_TEXT}]
    async with aiohttp.ClientSession() as session:

        async def ask(model: str = "m", **headers: str) -> tuple[int, dict[str, str], bytes]:
            async with session.post(
                f"{base}/chat/completions", json=chat(model, messages=big), headers=headers
            ) as resp:
                return resp.status, dict(resp.headers), await resp.read()

        first = [asyncio.create_task(ask()), asyncio.create_task(ask(**RESUMABLE))]
        while len(fake_openai.received) < 2:
            await asyncio.sleep(0.01)
        status, headers, body = await ask()
        assert status == 429
        assert headers["Retry-After"] == "1"
        error = orjson.loads(body)
        assert_openai_error(error, "server_busy")
        assert error["error"]["type"] == "rate_limit_error"
        assert "server.max_bodies_in_flight_mb" in error["error"]["message"]
        for task in first:
            status, _, body = await task
            assert status == 200
            assert body.endswith(b"data: [DONE]\n\n")
        # Every way a request ends gives its share back: answered, streamed, resumable,
        # refused by the gateway, failed upstream, and a client that left mid-stream.
        for _ in range(3):
            assert (await ask())[0] == 200
            assert (await ask(**RESUMABLE))[0] == 200
            assert (await ask("nope"))[0] == 404
            assert (await ask("quick"))[0] == 400
            async with session.post(
                f"{base}/chat/completions", json=chat(messages=big), headers=RESUMABLE
            ) as left:
                await left.content.readany()
        await asyncio.sleep(1.5)  # the last ones, left mid-stream, end in the background
        both = await asyncio.gather(ask(), ask())
        assert [status for status, _, _ in both] == [200, 200]


BODY_MB = 16
BODIES_MB = 64  # four 16 MiB bodies in flight, not five
BODY_REQUESTS = 10
# The bound on the RSS growth of `llms serve` with 10 requests of 16 MiB prompts whose answers
# stall: four are admitted; each holds its parsed prompt and the upstream request built from it
# (2 x 16 MiB), and the allocator may keep what a body's reading and parsing used meanwhile.
# Without the budget all ten are admitted, each holding about 4 x its body (+ 640 MiB).
BODIES_RSS_BOUND_MB = BODIES_MB * 4


@pytest.mark.process
@pytest.mark.timeout(60)
async def test_bodies_in_flight_hold_no_more_than_the_budget_in_a_real_process(
    tmp_path: Path,
) -> None:
    upstream = ThreadedUpstream()
    first = sse(chunk({"role": "assistant", "content": "x"}))
    upstream.fake.default = Script(writes=first, fault="stall")  # answers that never end
    upstream.start()
    config = {
        "server": {"max_bodies_in_flight_mb": BODIES_MB},
        "state": {"request_log": None},
        "routing": {"max_attempts": 1},
        "providers": {
            "up": {
                "type": "openai",
                "base_url": upstream.base_url,
                "models": ["m"],
                "timeouts": {"idle_s": 50},
            }
        },
    }
    served = start_serve(write_config(tmp_path / "config.json", config), tmp_path)
    prompt = "p" * (BODY_MB * 2**20 - 1000)
    raw = orjson.dumps(chat(messages=[{"role": "user", "content": prompt}]))
    del prompt
    try:
        served.wait_ready()
        process = psutil.Process(served.proc.pid)
        url = f"http://127.0.0.1:{served.port}/v1/chat/completions"
        baseline = process.memory_info().rss
        async with aiohttp.ClientSession() as session:
            answers = [
                await session.post(url, data=raw, headers={"Content-Type": "application/json"})
                for _ in range(BODY_REQUESTS)
            ]
            for resp in answers:
                if resp.status == 200:
                    await resp.content.readany()  # the first chunk: the answer is under way
            growth_mb = (process.memory_info().rss - baseline) / 2**20
            print(f"RSS baseline {baseline / 2**20:.0f} MiB, growth {growth_mb:.0f} MiB")
            assert sorted(resp.status for resp in answers) == [200] * 4 + [429] * 6
            for resp in answers:
                if resp.status == 429:
                    assert resp.headers["Retry-After"] == "1"
                    assert_openai_error(await resp.json(), "server_busy")
            assert growth_mb < BODIES_RSS_BOUND_MB
            for resp in answers:
                resp.close()
        assert served.alive()
    finally:
        served.kill()  # not a shutdown test: its answers stall for ever
        upstream.stop()


# --- 14: a Redis restart -----------------------------------------------------------------------


@needs_redis
async def test_after_a_redis_restart_the_next_requests_succeed(
    fake_openai: FakeOpenAI,
    make_gateway: Callable[..., Awaitable[str]],
    redis_server: RedisServer,
) -> None:
    fake_openai.scripts["one"] = text_script(["a", "b", "c"])
    state = {"redis_url": redis_server.url}
    # Two replicas: B reads A's streams through Redis (lookups, XREAD).
    base, other = [await start(fake_openai, make_gateway, state=state) for _ in range(2)]
    async with aiohttp.ClientSession() as session:

        async def resumable() -> str:
            async with session.post(
                f"{base}/chat/completions", json=chat(), headers=RESUMABLE
            ) as resp:
                body = await resp.read()
                assert resp.status == 200, body
            assert b'"error"' not in body, body
            assert body.endswith(b"data: [DONE]\n\n")
            return resp.headers["X-Stream-Id"]

        async def replay(gateway: str, stream_id: str) -> None:
            async with session.get(
                f"{gateway}/streams/{stream_id}", headers={"Last-Event-ID": "1"}
            ) as again:
                body = await again.read()
                assert again.status == 200, body
            assert b'"error"' not in body, body
            assert body.endswith(b"data: [DONE]\n\n")

        # Several pooled connections on both replicas, all made stale by the restart.
        ids = await asyncio.gather(*(resumable() for _ in range(4)))
        await asyncio.gather(*(replay(other, stream_id) for stream_id in ids))
        redis_server.stop()
        redis_server.start()
        for _ in range(4):
            stream_id = await resumable()
            await replay(base, stream_id)
            await replay(other, stream_id)


# --- unit checks of the two budgets' bookkeeping and of the JSON count -------------------------


def test_json_values_are_counted_outside_strings_and_name_their_field() -> None:
    text = '{"model": "m", "note": "a, b: [c] {d} \\" , ]", "x\\"y": [1, 2.5e3, true, null, {}]}'
    check_json_nodes(text.encode(), 12)  # the object, its 3 keys and 3 values, 5 in the array
    with pytest.raises(InvalidRequest) as caught:
        check_json_nodes(text.encode(), 11)
    assert caught.value.param == 'x\\"y'
    assert caught.value.code == "too_many_json_values"
    check_json_nodes(b'"' + b"[1, 2], " * 1000 + b'"', 1)  # one string: one value


def test_a_parsed_body_gives_its_share_back_once_when_it_is_collected() -> None:
    budget = BodyBudget(1000)
    budget.take(300, 0)
    budget.take(200, 0)
    first, second = ParsedBody({"model": "m"}), ParsedBody({"model": "n"})
    first.hold(budget, 300)
    second.hold(budget, 200)
    copied = [copy.copy(first), copy.deepcopy(first), dict(first)]
    assert all(type(one) is dict and one == {"model": "m"} for one in copied)
    del copied  # copies hold no share: nothing comes back twice
    assert budget.held == 500
    del first
    assert budget.held == 200
    second["self"] = second  # kept by a cycle alone: back when the collector runs
    del second
    assert budget.held == 200
    gc.collect()
    assert budget.held == 0
    never = ParsedBody({"model": "m"})  # read, but failed before it held anything
    del never
    assert budget.held == 0


async def test_a_finished_log_leaves_the_budget_when_it_is_collected() -> None:
    budget = FinishedBudget(1100)
    logs = [MemoryLog(10_000, budget) for _ in range(3)]
    for log in logs:
        await log.append([("chunk", b"x" * 300), ("done", b"[DONE]")])  # 334 bytes
    assert (len(budget), budget.size) == (3, 3 * 334)
    del logs[1]  # expired: the registry let it go
    gc.collect()
    assert (len(budget), budget.size) == (2, 2 * 334)
    extra = MemoryLog(10_000, budget)
    await extra.append([("chunk", b"y" * 600), ("done", b"[DONE]")])  # 634 bytes: one must go
    assert [log.evicted for log in (*logs, extra)] == [True, False, False]
    assert budget.size == 334 + 634
    with pytest.raises(StreamGone):
        await logs[0].read(0)
    assert await logs[0].read(2) == []  # past its end: nothing is missing
    assert len(await logs[1].read(0)) == 2
