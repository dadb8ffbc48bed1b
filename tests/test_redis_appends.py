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
from llms.streams.redis_appends import FLUSH, pack
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


async def _calls(client: aioredis.Redis) -> dict[str, int]:
    stats = await client.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(s["calls"]) for name, s in stats.items()}


async def test_a_flush_is_one_command_carrying_registrations_providers_and_batches(
    redis_port: int,
) -> None:
    """64 streams registered, given a provider and appended at once: their meta, leases and
    events are all in Redis, written by a few EVALSHA (one per flush), not one command each;
    a terminal batch sets the expiry and ends the lease."""
    url = f"redis://127.0.0.1:{redis_port}/0"
    streams = RedisStreams(url, max_bytes=1 << 20, ttl_s=60)
    observer = aioredis.Redis.from_url(url)
    names = [f"flush-one-{i}" for i in range(STREAMS)]

    async def pump(i: int) -> None:
        await streams.register(names[i], f"key-{i}")
        streams.set_provider(names[i], f"provider-{i}")
        event_log = streams.new_log(names[i])
        await event_log.append([("chunk", _chunk(i, 0)), ("chunk", _chunk(i, 1))])
        if i % 2 == 0:
            await event_log.append([("done", b"[DONE]")])

    try:
        await streams.redis.ping()
        await observer.config_resetstat()
        await asyncio.gather(*(pump(i) for i in range(STREAMS)))
        calls = await _calls(observer)
        assert calls.get("xadd") == STREAMS * 2 + STREAMS // 2, calls
        # One per flush: registrations, then the first batches, then the ends (and the script
        # loaded once); never one per stream.
        assert 1 <= calls.get("evalsha", 0) <= 8, calls
        for name in ("hset", "set", "expire"):
            assert calls.get(name, 0) >= STREAMS, (name, calls)  # run by the script
        for i, name in enumerate(names):
            meta = await observer.hgetall(f"llms:s:{name}:meta")
            assert meta[b"owner"] == f"key-{i}".encode()
            assert meta[b"replica"] == streams.replica.encode()
            assert meta[b"provider"] == f"provider-{i}".encode()
            ended = i % 2 == 0
            assert await observer.exists(f"llms:s:{name}:lease") == (0 if ended else 1)
            ttls = [await observer.ttl(f"llms:s:{name}{part}") for part in ("", ":meta")]
            # Running: the meta outlives the TTL (the lease refresher extends both); ended: both
            # expire after it.
            assert all(0 < t <= 61 for t in ttls) if ended else ttls[1] > 3600, (name, ttls)
            events = await streams.new_log(name).read(0, wait=False)
            expected = [_chunk(i, 0), _chunk(i, 1), *([b"[DONE]"] if ended else [])]
            assert [e.data for e in events] == expected
            assert [e.seq for e in events] == list(range(1, len(expected) + 1))
    finally:
        await observer.delete(*(f"llms:s:{n}{p}" for n in names for p in ("", ":meta", ":lease")))
        await streams.close()
        await observer.aclose()


async def test_the_script_is_loaded_again_after_redis_forgot_it(redis_port: int) -> None:
    """Redis restarted (its scripts are gone): the next flush loads the script again and
    appends, nothing is lost or refused."""
    url = f"redis://127.0.0.1:{redis_port}/0"
    streams = RedisStreams(url, max_bytes=1 << 20, ttl_s=60)
    try:
        event_log = streams.new_log("flush-noscript")
        await event_log.append([("chunk", b"1")])
        await streams.redis.script_flush()
        await event_log.append([("chunk", b"2"), ("done", b"[DONE]")])
        events = await streams.new_log("flush-noscript").read(0, wait=False)
        assert [(e.seq, e.data) for e in events] == [(1, b"1"), (2, b"2"), (3, b"[DONE]")]
    finally:
        await streams.redis.delete("llms:s:flush-noscript")
        await streams.close()


async def test_a_flush_run_twice_is_accepted_once_and_other_events_at_its_ids_are_refused(
    redis_port: int,
) -> None:
    """redis-py sends a command again when its connection failed, maybe after Redis ran it:
    the same flush run twice writes its events once and is accepted (the stream goes on);
    different events at ids already taken (a reader declared the stream lost) are refused."""
    url = f"redis://127.0.0.1:{redis_port}/0"
    client = aioredis.Redis.from_url(url)
    flush = client.register_script(FLUSH)
    key = "llms:s:flush-twice"
    head, events = pack(0, [("chunk", b"a\n1 2"), ("chunk", b"")], 64, 61)
    args = [0, 0, "replica", 3600, 3000, head, events]
    try:
        assert await flush(keys=[key], args=args) == b"1"
        assert await flush(keys=[key], args=args) == b"1"
        entries = await client.xrange(key)
        assert [(e[0], e[1][b"k"], e[1][b"d"]) for e in entries] == [
            (b"0-1", b"chunk", b"a\n1 2"),
            (b"0-2", b"chunk", b""),
        ]
        head, events = pack(0, [("chunk", b"a\n1 2"), ("chunk", b"other")], 64, 61)
        assert await flush(keys=[key], args=[*args[:5], head, events]) == b"0"
        head, events = pack(1, [("error", b"{}"), ("done", b"[DONE]")], 64, 61)
        assert await flush(keys=[key], args=[*args[:5], head, events]) == b"0"
        assert await client.xlen(key) == 2
    finally:
        await client.delete(key)
        await client.aclose()


@pytest.mark.parametrize("protocol", [2, 3])
async def test_a_reader_reads_the_events_in_either_protocol(redis_port: int, protocol: int) -> None:
    """XREAD's reply is read unparsed (no redis-py callback): RESP2's list and RESP3's map give
    the same events, data with spaces and newlines whole."""
    url = f"redis://127.0.0.1:{redis_port}/0?protocol={protocol}"
    streams = RedisStreams(url, max_bytes=1 << 20, ttl_s=60)
    name = f"read-resp{protocol}"
    try:
        await streams.new_log(name).append([("chunk", b"a b\nc"), ("done", b"[DONE]")])
        events = await streams.new_log(name).read(1, wait=True)
        assert streams.redis.connection_pool.connection_kwargs["protocol"] == protocol
        assert [(e.seq, e.kind, e.data) for e in events] == [(2, "done", b"[DONE]")]
        events = await streams.new_log(name).read(0, wait=False)
        assert [(e.seq, e.kind, e.wire) for e in events] == [
            (1, "chunk", b"id: 1\ndata: a b\nc\n\n"),
            (2, "done", b"id: 2\ndata: [DONE]\n\n"),
        ]
    finally:
        await streams.redis.delete(f"llms:s:{name}")
        await streams.close()
