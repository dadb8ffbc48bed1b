"""Several replicas sharing stream state through a real Redis, behind a real nginx.

Two `llms serve` processes (so one can be killed) with `state.redis_url`, nginx in front
(cluster/nginx.conf, round robin), a FakeOpenAI upstream in a thread of this process. A stream
started on one replica is resumed or cancelled on the other; a replica killed mid-stream ends
its streams for every reader with `upstream_lost`, never a hang.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
import time
from typing import Any

import aiohttp
import openai
import orjson
import pytest

from llms.streams.redis import RedisStreams
from tests.cluster import (
    MISSING,
    RESUMABLE,
    SKIP_REASON,
    Cluster,
    ClusterFactory,
    Reader,
    ThreadedUpstream,
    chat,
    redis_port_fixture,  # noqa: F401 (fixtures)
    start_cluster_fixture,  # noqa: F401
    upstream_fixture,  # noqa: F401
)
from tests.upstreams.openai import text_script

pytestmark = pytest.mark.skipif(bool(MISSING), reason=SKIP_REASON)

PIECES = [f"w{i} " for i in range(40)]
TIMEOUT = aiohttp.ClientTimeout(total=30)


def assert_contiguous(reader: Reader) -> None:
    ids = reader.ids()
    assert ids == list(range(1, len(ids) + 1)), f"lost or repeated events: {ids}"


async def resume(
    session: aiohttp.ClientSession, base_url: str, stream_id: str, after: str, **headers: str
) -> aiohttp.ClientResponse:
    return await session.get(
        f"{base_url}/streams/{stream_id}", headers={"Last-Event-ID": after, **headers}
    )


async def test_resume_on_the_same_replica_after_a_disconnect(
    upstream: ThreadedUpstream,
    start_cluster: ClusterFactory,
) -> None:
    upstream.fake.scripts["m-up"] = text_script(PIECES, delay_s=0.02)
    cluster = start_cluster()
    reader = Reader()
    async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
        resp = await session.post(
            f"{cluster.a.base_url}/chat/completions", json=chat(), headers=RESUMABLE
        )
        assert resp.status == 200
        assert resp.headers["X-Replica"] == cluster.a.name
        stream_id = resp.headers["X-Stream-Id"]
        await reader.read(resp, stop_after=5)
        resp.close()  # the connection drops mid-answer
        await asyncio.sleep(0.2)  # the generation goes on meanwhile
        async with await resume(session, cluster.a.base_url, stream_id, reader.last_id) as again:
            assert again.status == 200
            assert again.headers["X-Replica"] == cluster.a.name
            await reader.read(again)
        # Resuming past the end, on either replica: an empty answer at once, never a wait.
        for replica in cluster.replicas:
            started = time.monotonic()
            async with await resume(session, replica.base_url, stream_id, reader.last_id) as end:
                assert end.status == 200
                assert await end.read() == b""
            assert time.monotonic() - started < 3
    assert reader.content() == "".join(PIECES)
    assert_contiguous(reader)
    assert reader.done
    assert not reader.errors()


async def test_resume_through_nginx_lands_on_the_other_replica_unbuffered(
    upstream: ThreadedUpstream,
    start_cluster: ClusterFactory,
) -> None:
    upstream.fake.scripts["slow-up"] = text_script(PIECES, delay_s=0.03)  # ~1.2 s
    cluster = start_cluster()
    finished_before = len(upstream.fake.finished)
    reader = Reader()
    first_chunk: list[float] = []

    def on_chunk(count: int) -> None:
        if count == 2 and not first_chunk:  # the role chunk, then the first piece of content
            first_chunk.append(time.monotonic())
            assert len(upstream.fake.finished) == finished_before, "nginx held the stream back"

    async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
        resp = await session.post(
            f"{cluster.nginx_url}/chat/completions", json=chat("slow"), headers=RESUMABLE
        )
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        assert "Content-Encoding" not in resp.headers
        producer = resp.headers["X-Replica"]
        stream_id = resp.headers["X-Stream-Id"]
        await reader.read(resp, stop_after=6, on_chunk=on_chunk)
        resp.close()
        assert first_chunk, "no content arrived"
        # Round robin: the next request through nginx goes to the other replica (retry in case
        # something else came in between).
        for _ in range(6):
            again = await resume(session, cluster.nginx_url, stream_id, reader.last_id)
            assert again.status == 200
            if again.headers["X-Replica"] != producer:
                break
            again.close()
        else:
            pytest.fail("nginx never sent the resume to the other replica")
        assert again.headers["X-Replica"] == cluster.other(producer).name
        assert again.headers["X-Provider"] == "fake"
        async with again:
            await reader.read(again)
    assert reader.content() == "".join(PIECES)
    assert_contiguous(reader)
    assert reader.done
    upstream_finished = upstream.fake.finished[finished_before]
    assert first_chunk[0] < upstream_finished - 0.5, "the first chunk waited for the upstream"


async def test_killed_producer_gives_readers_upstream_lost_within_5_s(
    upstream: ThreadedUpstream,
    start_cluster: ClusterFactory,
) -> None:
    pieces = [f"k{i} " for i in range(200)]
    upstream.fake.scripts["kill-up"] = text_script(pieces, delay_s=0.03)  # ~6 s
    cluster = start_cluster()
    gone_before = len(upstream.fake.gone)
    async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
        resp = await session.post(
            f"{cluster.a.base_url}/chat/completions", json=chat("kill"), headers=RESUMABLE
        )
        stream_id = resp.headers["X-Stream-Id"]
        producer = Reader()
        await producer.read(resp, stop_after=3)
        follower = Reader()
        async with await resume(session, cluster.b.base_url, stream_id, "0") as on_b:
            assert on_b.headers["X-Replica"] == cluster.b.name
            await follower.read(on_b, stop_after=10)
            cluster.a.proc.send_signal(signal.SIGKILL)
            killed_at = time.monotonic()
            await asyncio.wait_for(follower.read(on_b), timeout=8)
            ended_at = time.monotonic()
        resp.close()
    cluster.a.kill()
    assert ended_at - killed_at < 5, f"the reader waited {ended_at - killed_at:.1f} s"
    assert_contiguous(follower)
    assert follower.done
    assert [e["code"] for e in follower.errors()] == ["upstream_lost"]
    assert follower.events[-2][2].startswith('{"error"')
    assert len(follower.chunks()) >= 10
    # Every event the producer emitted before it died reached the reader: exactly the log.
    logged = cluster.redis.xrange(f"llms:s:{stream_id}")
    assert [int(entry_id.split(b"-")[1]) for entry_id, _ in logged] == follower.ids()
    assert [f[b"d"].decode() for _, f in logged] == [d for _, _, d in follower.events]
    assert "".join(pieces).startswith(follower.content())
    assert await upstream.wait_gone(gone_before, 2) is not None


@pytest.mark.parametrize("seed", [7])
async def test_200_random_disconnects_and_resumes_across_replicas(
    upstream: ThreadedUpstream,
    start_cluster: ClusterFactory,
    seed: int,
) -> None:
    """Random replica, random position: the reassembled answer is byte-identical, always."""
    rng = random.Random(seed)
    pieces = [f"<{i}>" for i in range(120)]
    upstream.fake.scripts["fast-up"] = text_script(pieces, delay_s=0.002)
    cluster = start_cluster(server={"heartbeat_s": 5})
    bases = [cluster.a.base_url, cluster.b.base_url, cluster.nginx_url]
    started = time.monotonic()
    cycles = streams = 0
    served_by: set[str] = set()
    async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
        # The reference: one uninterrupted run.
        whole = Reader()
        async with session.post(
            f"{cluster.a.base_url}/chat/completions", json=chat("fast"), headers=RESUMABLE
        ) as resp:
            await whole.read(resp)
        assert whole.content() == "".join(pieces)
        while cycles < 200:
            streams += 1
            reader = Reader()
            resp = await session.post(
                f"{rng.choice(bases)}/chat/completions", json=chat("fast"), headers=RESUMABLE
            )
            assert resp.status == 200
            stream_id = resp.headers["X-Stream-Id"]
            while True:
                served_by.add(resp.headers["X-Replica"])
                await reader.read(resp, stop_after=len(reader.chunks()) + rng.randint(1, 30))
                if reader.done:
                    break
                resp.close()
                cycles += 1
                resp = await resume(session, rng.choice(bases), stream_id, reader.last_id)
                assert resp.status == 200, await resp.text()
            resp.close()
            assert_contiguous(reader)
            assert reader.content() == whole.content()
            assert _same_but_ids(reader, whole)
    assert served_by == {r.name for r in cluster.replicas}
    assert time.monotonic() - started < 50, f"{cycles} cycles over {streams} streams took too long"


async def test_the_producers_grace_counts_readers_on_the_other_replica(
    upstream: ThreadedUpstream,
    start_cluster: ClusterFactory,
) -> None:
    """The client leaves the producer and follows on the other replica for longer than the
    grace: the producer sees that reader through Redis and keeps generating."""
    upstream.fake.scripts["slow-up"] = text_script(PIECES, delay_s=0.05)  # ~2 s
    cluster = start_cluster(state={"resume_grace_s": 0.3})
    gone_before = len(upstream.fake.gone)
    reader = Reader()
    async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
        resp = await session.post(
            f"{cluster.a.base_url}/chat/completions", json=chat("slow"), headers=RESUMABLE
        )
        stream_id = resp.headers["X-Stream-Id"]
        await reader.read(resp, stop_after=3)
        resp.close()
        async with await resume(session, cluster.b.base_url, stream_id, reader.last_id) as on_b:
            await reader.read(on_b)
    assert reader.content() == "".join(PIECES)
    assert not reader.errors()
    assert_contiguous(reader)
    assert len(upstream.fake.gone) == gone_before


async def test_a_pump_cancelled_while_writing_skips_no_id(redis_port: int) -> None:
    """A cancel that lands while a batch waits for a Redis connection (the others busy with
    blocking reads) still gets that batch written before the final events."""
    streams = RedisStreams(f"redis://127.0.0.1:{redis_port}/0", max_bytes=1 << 20, ttl_s=60)
    try:
        writer = streams.new_log("cancelled-mid-write")
        await writer.append([("chunk", b"{}")])
        follower = asyncio.create_task(streams.new_log("cancelled-mid-write").read(1))
        await asyncio.sleep(0.05)  # it holds the pool's only idle connection in XREAD BLOCK
        pump = asyncio.create_task(writer.append([("chunk", b"{}")]))
        await asyncio.sleep(0)  # the write now waits for a new connection
        pump.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pump
        await writer.append([("error", b"{}"), ("done", b"[DONE]")])
        events = await streams.new_log("cancelled-mid-write").read(0, wait=False)
        assert [e.seq for e in events] == [1, 2, 3, 4]
        assert [e.kind for e in events] == ["chunk", "chunk", "error", "done"]
        follower.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await follower
    finally:
        await streams.redis.delete("llms:s:cancelled-mid-write")
        await streams.redis.aclose()


async def test_closing_the_coordinator_closes_its_redis_connections(redis_port: int) -> None:
    """A replica that shuts down (or an app torn down in tests) leaves no connection open on
    the Redis server: the pool is closed with the client."""
    url = f"redis://127.0.0.1:{redis_port}/0"
    observer = RedisStreams(url, max_bytes=1 << 20, ttl_s=60)
    name = "llms-close-check"

    async def named() -> int:
        listed = await observer.redis.client_list()
        return sum(1 for c in listed if c.get("name") == name)

    try:
        streams = RedisStreams(url, max_bytes=1 << 20, ttl_s=60)
        await streams.start()
        await asyncio.gather(*(streams.redis.client_setname(name) for _ in range(3)))
        assert await named() >= 1
        await streams.close()
        for _ in range(50):
            if await named() == 0:
                break
            await asyncio.sleep(0.02)
        assert await named() == 0
    finally:
        await observer.close()


def _same_but_ids(reader: Reader, whole: Reader) -> bool:
    """Two runs of one script: equal events once each stream's own id and timestamp are set
    aside (the chunk `id` is the stream id, `created` its start)."""

    def strip(data: str) -> Any:
        if not data.startswith("{"):
            return data
        obj = orjson.loads(data)
        obj.pop("id", None)
        obj.pop("created", None)
        return obj

    return [strip(d) for _, _, d in reader.events] == [strip(d) for _, _, d in whole.events]


async def test_cancel_from_the_other_replica_stops_the_producer(
    upstream: ThreadedUpstream,
    start_cluster: ClusterFactory,
) -> None:
    upstream.fake.scripts["cancel-up"] = text_script(PIECES, delay_s=0.05)  # ~2 s
    cluster = start_cluster()
    gone_before = len(upstream.fake.gone)
    async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
        resp = await session.post(
            f"{cluster.a.base_url}/chat/completions", json=chat("cancel"), headers=RESUMABLE
        )
        stream_id = resp.headers["X-Stream-Id"]
        on_a = Reader()
        await on_a.read(resp, stop_after=3)
        on_b = Reader()
        follow = await resume(session, cluster.b.base_url, stream_id, "0")
        await on_b.read(follow, stop_after=3)
        cancelled_at = time.monotonic()
        for _ in range(2):  # idempotent
            async with session.post(f"{cluster.b.base_url}/streams/{stream_id}/cancel") as cancel:
                assert cancel.status == 200
                assert cancel.headers["X-Replica"] == cluster.b.name
                assert (await cancel.json())["status"] == "cancelled"
        await asyncio.wait_for(asyncio.gather(on_a.read(resp), on_b.read(follow)), timeout=5)
        resp.close()
        follow.close()
    gone_at = await upstream.wait_gone(gone_before, 3)
    assert gone_at is not None, "the producer kept its upstream request open after the cancel"
    assert gone_at - cancelled_at < 1.5
    for reader in (on_a, on_b):
        assert [e["code"] for e in reader.errors()] == ["cancelled"]
        assert reader.done
        assert reader.events[-2][2].startswith('{"error"')
        assert_contiguous(reader)
        assert len(reader.chunks()) < len(PIECES)
    assert on_a.events == on_b.events


def assert_openai_error(body: dict[str, Any], code: str) -> None:
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["code"] == code
    assert body["error"]["type"] == "invalid_request_error"
    assert body["error"]["message"]


async def test_ttl_expiry_is_404_on_every_replica(
    upstream: ThreadedUpstream,
    start_cluster: ClusterFactory,
) -> None:
    upstream.fake.scripts["m-up"] = text_script(["x", "y"])
    cluster = start_cluster(state={"stream_ttl_s": 1})
    async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
        async with session.post(
            f"{cluster.a.base_url}/chat/completions", json=chat(), headers=RESUMABLE
        ) as resp:
            stream_id = resp.headers["X-Stream-Id"]
            first = await resp.read()
        finished_at = time.monotonic()
        async with await resume(session, cluster.b.base_url, stream_id, "0") as replay:
            assert replay.status == 200
            assert await replay.read() == first
        expired: dict[str, float] = {}
        deadline = finished_at + 8
        while len(expired) < 2 and time.monotonic() < deadline:
            for replica in cluster.replicas:
                if replica.name in expired:
                    continue
                async with await resume(session, replica.base_url, stream_id, "0") as again:
                    if again.status == 404:
                        assert_openai_error(await again.json(), "stream_not_found")
                        expired[replica.name] = time.monotonic() - finished_at
                    else:
                        assert again.status == 200
                        await again.read()
            await asyncio.sleep(0.1)
    assert set(expired) == {r.name for r in cluster.replicas}, "the stream never expired"
    assert min(expired.values()) > 0.5, expired


async def test_memory_cap_gives_410_for_trimmed_events(
    upstream: ThreadedUpstream,
    start_cluster: ClusterFactory,
) -> None:
    # 0.01 MB caps the Redis log at max(64, 10485 // 256) = 64 entries (MAXLEN ~): 300 chunks
    # leave only the newest ones.
    pieces = [f"c{i:03d}" for i in range(300)]
    upstream.fake.scripts["many-up"] = text_script(pieces, delay_s=0.001)
    cluster = start_cluster(state={"stream_max_mb": 0.01})
    live = Reader()
    async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
        async with session.post(
            f"{cluster.a.base_url}/chat/completions", json=chat("many"), headers=RESUMABLE
        ) as resp:
            stream_id = resp.headers["X-Stream-Id"]
            await live.read(resp)
        assert live.content() == "".join(pieces)  # the live reader kept up and got everything
        assert live.done
        length = cluster.redis.xlen(f"llms:s:{stream_id}")
        assert length < 200, f"the log was not capped: {length} entries"
        for replica in cluster.replicas:
            async with await resume(session, replica.base_url, stream_id, "1") as old:
                assert old.status == 410
                assert_openai_error(await old.json(), "stream_events_expired")
        tail = str(live.ids()[-3])
        async with await resume(session, cluster.b.base_url, stream_id, tail) as recent:
            assert recent.status == 200
            assert (await recent.read()).endswith(b"data: [DONE]\n\n")


async def test_a_stream_is_invisible_to_another_api_key(
    upstream: ThreadedUpstream,
    start_cluster: ClusterFactory,
) -> None:
    upstream.fake.scripts["slow-up"] = text_script(PIECES, delay_s=0.02)
    cluster = start_cluster(
        server={"api_keys": [{"key": "k1", "name": "one"}, {"key": "k2", "name": "two"}]}
    )
    one = {"Authorization": "Bearer k1"}
    two = {"Authorization": "Bearer k2"}
    async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
        async with session.post(
            f"{cluster.a.base_url}/chat/completions",
            json=chat("slow"),
            headers={**RESUMABLE, **one},
        ) as resp:
            assert resp.status == 200
            stream_id = resp.headers["X-Stream-Id"]
            for replica in cluster.replicas:  # while it runs, and on either replica
                async with await resume(session, replica.base_url, stream_id, "0", **two) as other:
                    assert other.status == 404
                    assert_openai_error(await other.json(), "stream_not_found")
                async with session.post(
                    f"{replica.base_url}/streams/{stream_id}/cancel", headers=two
                ) as cancel:
                    assert cancel.status == 404
                async with session.get(f"{replica.base_url}/streams/{stream_id}") as anonymous:
                    assert anonymous.status == 401
            body = await resp.read()
        assert body.endswith(b"data: [DONE]\n\n")
        assert b'"error"' not in body  # the other key's cancel did nothing
        async with await resume(session, cluster.b.base_url, stream_id, "0", **one) as mine:
            assert mine.status == 200
            assert await mine.read() == body


async def test_openai_sdk_in_default_mode_through_nginx_is_unaffected(
    upstream: ThreadedUpstream,
    start_cluster: ClusterFactory,
) -> None:
    upstream.fake.scripts["m-up"] = text_script(["plain", " answer"])
    upstream.fake.scripts["sdk-up"] = text_script([f"s{i} " for i in range(200)], delay_s=0.05)
    cluster: Cluster = start_cluster()
    client = openai.AsyncOpenAI(base_url=cluster.nginx_url, api_key="x", max_retries=0)
    for _ in range(2):  # once on each replica (round robin)
        stream = await client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "x"}], stream=True
        )
        text = "".join([c.choices[0].delta.content or "" async for c in stream])
        assert text == "plain answer"
    async with (
        aiohttp.ClientSession(timeout=TIMEOUT) as session,
        session.post(f"{cluster.nginx_url}/chat/completions", json=chat()) as resp,
    ):
        raw = await resp.read()
    assert resp.headers["Content-Type"].startswith("text/event-stream")
    assert "Content-Encoding" not in resp.headers
    assert raw.startswith(b"data: {")
    assert raw.endswith(b"data: [DONE]\n\n")
    for banned in (b"id:", b"event:", b"retry:", b"\xef\xbb\xbf"):
        assert banned not in raw
    # A disconnect through nginx closes the upstream request promptly.
    gone_before = len(upstream.fake.gone)
    stream = await client.chat.completions.create(
        model="sdk", messages=[{"role": "user", "content": "x"}], stream=True
    )
    seen = 0
    async for _ in stream:
        seen += 1
        if seen == 3:
            break
    await stream.close()
    left_at = time.monotonic()
    gone_at = await upstream.wait_gone(gone_before, 3)
    await client.close()
    assert gone_at is not None, "the upstream never saw the client leave"
    assert gone_at - left_at < 1.0, f"the upstream was closed {gone_at - left_at:.2f} s later"
