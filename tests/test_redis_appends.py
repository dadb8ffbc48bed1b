"""Redis mode's group commit (llms/streams/redis_appends.py), against a real redis-server.

The batches of every stream pumped at the same moment go to Redis in one pipeline: each stream's
events still land in order with contiguous ids, a refused append (a reader took the stream over)
ends that stream only, and Redis failing fails every waiting append with the 503, never a hang.
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest
import redis.asyncio as aioredis

from cluster.run import free_port
from llms.errors import ServiceUnavailable
from llms.streams.redis import RedisStreams, UpstreamLost
from tests.cluster import (
    MISSING,
    SKIP_REASON,
    redis_port_fixture,  # noqa: F401 (fixture)
)

pytestmark = pytest.mark.skipif(bool(MISSING), reason=SKIP_REASON)

STREAMS = 64
CHUNKS = 10


def _chunk(stream: int, n: int) -> bytes:
    return b'{"s":%d,"n":%d}' % (stream, n)


async def _connections_received(client: aioredis.Redis) -> int:
    return int((await client.info("stats"))["total_connections_received"])


async def test_streams_appending_at_once_share_round_trips_and_keep_their_order(
    redis_port: int,
) -> None:
    """64 pumps writing at once: every stream's events whole, in order, ids 1..n; and they
    shared the replica's connection (one pipeline in flight), where one write per batch took a
    pooled connection each (up to one per stream)."""
    url = f"redis://127.0.0.1:{redis_port}/0"
    streams = RedisStreams(url, max_bytes=1 << 20, ttl_s=60)
    observer = aioredis.Redis.from_url(url)
    names = [f"appends-order-{i}" for i in range(STREAMS)]

    async def pump(i: int) -> None:
        event_log = streams.new_log(names[i])
        for n in range(CHUNKS):
            await event_log.append([("chunk", _chunk(i, n))])
        await event_log.append([("done", b"[DONE]")])
        assert event_log.finished

    try:
        await streams.redis.ping()
        before = await _connections_received(observer)
        await asyncio.gather(*(pump(i) for i in range(STREAMS)))
        opened = await _connections_received(observer) - before
        assert opened <= 2, f"{opened} connections for {STREAMS} streams writing at once"
        for i, name in enumerate(names):
            events = await streams.new_log(name).read(0, wait=False)
            assert [e.seq for e in events] == list(range(1, CHUNKS + 2))
            assert [e.data for e in events] == [*(_chunk(i, n) for n in range(CHUNKS)), b"[DONE]"]
    finally:
        await streams.redis.delete(*(f"llms:s:{name}" for name in names))
        await streams.close()
        await observer.aclose()


async def test_a_refused_append_ends_its_stream_only(redis_port: int) -> None:
    """A reader declared stream A lost (its events are past A's top): A's append is refused
    with upstream_lost and A writes nothing more; B, in the same pipeline, is written."""
    url = f"redis://127.0.0.1:{redis_port}/0"
    streams = RedisStreams(url, max_bytes=1 << 20, ttl_s=60)
    try:
        a, b = streams.new_log("appends-lost-a"), streams.new_log("appends-lost-b")
        await asyncio.gather(a.append([("chunk", b"a1")]), b.append([("chunk", b"b1")]))
        # What a reader does when the producer's lease lapsed (RedisLog._ended_or_orphaned).
        await streams.redis.xadd("llms:s:appends-lost-a", {"k": "error", "d": b"{}"}, id="0-2")
        await streams.redis.xadd("llms:s:appends-lost-a", {"k": "done", "d": b"[DONE]"}, id="0-3")
        results = await asyncio.gather(
            a.append([("chunk", b"a2")]), b.append([("chunk", b"b2")]), return_exceptions=True
        )
        assert isinstance(results[0], UpstreamLost), results
        assert results[1] is None, results
        assert a.finished
        await a.append([("chunk", b"a3"), ("done", b"[DONE]")])  # nothing more is written
        await b.append([("done", b"[DONE]")])
        got_a = await streams.new_log("appends-lost-a").read(0, wait=False)
        got_b = await streams.new_log("appends-lost-b").read(0, wait=False)
        assert [(e.kind, e.data) for e in got_a] == [
            ("chunk", b"a1"),
            ("error", b"{}"),
            ("done", b"[DONE]"),
        ]
        assert [(e.seq, e.data) for e in got_b] == [(1, b"b1"), (2, b"b2"), (3, b"[DONE]")]
    finally:
        await streams.redis.delete("llms:s:appends-lost-a", "llms:s:appends-lost-b")
        await streams.close()


async def test_redis_not_answering_fails_every_waiting_append_with_503() -> None:
    """Nothing listens at the address: each waiting append gets the 503 in plain words (no
    address), none waits for ever, and a later append is tried again."""
    port = free_port()
    streams = RedisStreams(f"redis://127.0.0.1:{port}/0", max_bytes=1 << 20, ttl_s=60)
    try:
        logs = [streams.new_log(f"appends-down-{i}") for i in range(3)]
        results = await asyncio.wait_for(
            asyncio.gather(
                *(log.append([("chunk", b"{}")]) for log in logs), return_exceptions=True
            ),
            timeout=60,  # a guard against a hang, not a timing
        )
        for result in results:
            assert isinstance(result, ServiceUnavailable), results
            assert "Redis" in result.message
            assert str(port) not in result.message
        assert not any(log.finished for log in logs)
        with pytest.raises(ServiceUnavailable):
            await asyncio.wait_for(logs[0].append([("chunk", b"{}")]), timeout=60)
    finally:
        with contextlib.suppress(Exception):
            await streams.close()
