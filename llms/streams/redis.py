"""Stream state in Redis, shared by several replicas.

Per stream `S`:
- `llms:s:{S}` — a Redis Stream of events with explicit ids `0-<seq>` (fields `k` kind, `d` data),
  capped with `MAXLEN ~`, expiring `ttl_s` after its terminal event;
- `llms:s:{S}:meta` — a hash: owner (API key name), replica, provider;
- `llms:s:{S}:lease` — the producing replica's lease, refreshed every second while it pumps;
- `llms:s:{S}:reader` — refreshed by readers on any replica while they follow, so the producer's
  resume grace knows somebody is still there;
- `llms:s:{S}:lost` — taken by the one reader that declares the stream lost.
Cancel requests travel on the pub/sub channel `llms:cancel`. When a lease lapses with no terminal
event, the first reader to notice appends an `upstream_lost` error and `[DONE]`.

The producer writes its batches one after the other, each to the end even when the pump is
cancelled while it waits, so the ids in Redis never skip or swap (see RedisLog.append).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable
from typing import Any, NamedTuple

import orjson
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from llms.errors import ServiceUnavailable, UpstreamError
from llms.streams.log import TERMINAL, Event, StreamGone
from llms.streams.memory import FinishedBudget, MemoryLog
from llms.streams.redis_appends import LEASES, UNAVAILABLE, Appends, pack

log = logging.getLogger("llms.streams.redis")

LEASE_MS = 3000
REFRESH_S = 1.0
BLOCK_MS = 1000
MAX_CONNECTIONS = 1024
READ_COUNT = 512
CANCEL_CHANNEL = "llms:cancel"
# Pooled connections go stale when Redis restarts: one idle this long is checked (PING) before
# use, and a command whose connection fails is tried again on a new one, with backoff.
HEALTH_CHECK_S = 5
RETRIES = 3
# Redis caps a stream by entry count; events average a few hundred bytes.
BYTES_PER_EVENT = 256
# While a stream runs, its keys outlive the TTL by this much (a producer that dies unnoticed
# leaves nothing behind for ever).
RUNNING_EXTRA_S = 3600


class UpstreamLost(UpstreamError):
    default_code = "upstream_lost"


class RemoteStream(NamedTuple):
    owner: str  # "" for no key
    provider: str | None


def _unavailable(exc: RedisError) -> ServiceUnavailable:
    """Redis failing, in plain words for the client; its own text (with its address) is logged."""
    log.warning("Redis failed: %s", exc)
    return ServiceUnavailable(UNAVAILABLE)


def _key(stream_id: str, part: str = "") -> str:
    return f"llms:s:{stream_id}{':' + part if part else ''}"


def _seq_of(entry_id: bytes) -> int:
    return int(entry_id.split(b"-")[1])


class RedisLog:
    """One stream's events in Redis (the EventLog protocol)."""

    __slots__ = (
        "_appends",
        "_closed",
        "_max_events",
        "_reader_seen",
        "_redis",
        "_seq",
        "_stream_id",
        "_ttl_s",
        "finished",
        "key",
    )

    def __init__(
        self, redis: Redis, appends: Appends, stream_id: str, *, max_bytes: int, ttl_s: float
    ) -> None:
        self._redis = redis
        self._appends = appends
        self._stream_id = stream_id
        self.key = _key(stream_id)
        self._max_events = max(64, max_bytes // BYTES_PER_EVENT)
        self._ttl_s = int(ttl_s) + 1
        self._seq = 0  # the last seq this log wrote
        self._closed = False  # a terminal event is queued, or the stream was taken over
        self._reader_seen = float("-inf")
        self.finished = False  # a terminal event is in Redis

    async def append(self, events: list[tuple[str, bytes]]) -> None:
        if self._closed or not events:
            return
        batch = []
        for kind, data in events:
            batch.append((kind, data))
            if kind in TERMINAL:
                self._closed = True
                break
        # Written with the other streams' batches of the moment (redis_appends.py), after this
        # log's previous batch. A pump cancelled while it waits here (a cancel, the grace
        # running out) does not stop this write: its last events are queued behind it, so no
        # id is skipped or reordered.
        await asyncio.shield(self._appends.submit(self, batch))

    def pack(self, batch: list[tuple[str, bytes]]) -> tuple[bytes, bytes]:
        """`batch` as the flush script appends it after this log's last event."""
        return pack(self._seq, batch, self._max_events, self._ttl_s)

    def written(self, batch: list[tuple[str, bytes]], *, accepted: bool) -> None:
        """Redis answered for a batch packed by `pack`."""
        if not accepted:
            # An id at or below the top: a reader declared this stream lost (our lease lapsed).
            self._closed = self.finished = True
            log.warning("stream %s: Redis refused the append (taken over)", self._stream_id)
            return
        self._seq += len(batch)
        if batch[-1][0] in TERMINAL:
            self.finished = True

    @staticmethod
    def lost() -> UpstreamLost:
        return UpstreamLost("The stream was taken over after its producer fell silent.")

    async def read(self, after: int, *, wait: bool = True, cursor: object = None) -> list[Event]:
        redis = self._redis
        loop = asyncio.get_running_loop()
        while True:
            # Once the terminal event is in Redis nothing more will come: never block then.
            finished = self.finished
            try:
                if cursor is not None and loop.time() - self._reader_seen >= REFRESH_S:
                    self._reader_seen = loop.time()
                    await redis.set(_key(self._stream_id, "reader"), b"1", px=LEASE_MS)
                # Unparsed (RedisStreams sets no callback for XREAD): RESP3 {key: entries},
                # RESP2 [[key, entries]]; an entry [b"0-<seq>", [b"k", kind, b"d", data]] (the
                # field order every writer of these streams uses, redis_appends.FLUSH).
                reply: Any = await redis.xread(
                    {self.key: f"0-{after}"},
                    count=READ_COUNT,
                    block=BLOCK_MS if wait and not finished else None,
                )
            except RedisError as exc:
                raise _unavailable(exc) from None
            if reply:
                entries = next(iter(reply.values())) if isinstance(reply, dict) else reply[0][1]
                events = [
                    Event.of(int(entry_id[2:]), fields[1].decode(), fields[3])
                    for entry_id, fields in entries
                ]
                if events[0].seq > after + 1:
                    raise StreamGone(
                        f"The events after {after} were dropped to bound memory.",
                        param="Last-Event-ID",
                    )
                if events[-1].kind in TERMINAL:
                    self.finished = True
                return events
            if finished or not wait:
                return []
            try:
                ended = await self._ended_or_orphaned(after)
            except RedisError as exc:
                raise _unavailable(exc) from None
            if ended:
                # The terminal event is at or before `after` (a reader resuming past the end).
                self.finished = True
                return []

    async def _ended_or_orphaned(self, after: int) -> bool:
        """Nothing after `after` for a while. True if the stream ended at or before it; if
        instead the producer's lease lapsed, end the stream for everyone (the next XREAD
        returns the two events)."""
        redis = self._redis
        pipe = redis.pipeline(transaction=False)
        pipe.xrevrange(self.key, count=1)
        pipe.exists(_key(self._stream_id, "lease"))
        replies: Any = await pipe.execute()
        last, leased = replies
        if last and last[0][1][b"k"].decode() in TERMINAL:
            # Ended: before `after`, or just now (then the next XREAD returns the end).
            return _seq_of(last[0][0]) <= after
        if leased:
            return False
        lost = _key(self._stream_id, "lost")
        # Short-lived: if the reader that took it dies before it appends, another one will.
        if not await redis.set(lost, b"1", nx=True, px=LEASE_MS):
            return False  # another reader is declaring it
        top: Any = await redis.xrevrange(self.key, count=1)
        if top and top[0][1][b"k"].decode() in TERMINAL:
            return False  # it ended meanwhile: the next XREAD has the end
        error = UpstreamLost("The gateway replica producing this stream stopped before it ended.")
        declared = await self._appends.declare(
            self.key,
            _seq_of(top[0][0]) if top else 0,
            [("error", orjson.dumps(error.to_body())), ("done", b"[DONE]")],
            self._max_events,
            self._ttl_s,
        )
        if not declared:
            # The producer wrote meanwhile: it is alive after all. Let a later reader try again.
            await redis.delete(lost)
            return False
        log.warning("stream %s: producer lease lapsed; declared it lost", self._stream_id)
        return False

    def forget(self, cursor: object) -> None:
        return None


class ProducerLog:
    """The log of a stream pumped here: written to Redis for every replica, but read from
    memory by this replica's own readers (the usual case: the client stays connected), so
    they cost no Redis round trip and no parsing of what was just written.

    Redis is written first, so memory never runs ahead of what other replicas can see. If
    Redis fails, the events still reach local readers (the pump then ends the stream with the
    error); other replicas see the lease lapse and get `upstream_lost`.
    """

    __slots__ = ("_memory", "_redis")

    def __init__(self, memory: MemoryLog, shared: RedisLog) -> None:
        self._memory = memory
        self._redis = shared

    @property
    def finished(self) -> bool:
        return self._memory.finished

    async def append(self, events: list[tuple[str, bytes]]) -> None:
        try:
            await self._redis.append(events)
        finally:
            await self._memory.append(events)

    async def read(self, after: int, *, wait: bool = True, cursor: object = None) -> list[Event]:
        if self._memory.evicted:  # the budget of finished logs took it: Redis still has them
            return await self._redis.read(after, wait=wait, cursor=cursor)
        return await self._memory.read(after, wait=wait, cursor=cursor)

    def forget(self, cursor: object) -> None:
        self._memory.forget(cursor)


class RedisStreams:
    """Cross-replica coordination: registration, lookup, leases, cancel messages."""

    def __init__(
        self, url: str, *, max_bytes: int, ttl_s: float, finished: FinishedBudget | None = None
    ) -> None:
        # Blocking: past the cap a command waits for a connection instead of failing (each
        # reader on another replica holds one during its XREAD BLOCK).
        pool = BlockingConnectionPool.from_url(
            url,
            max_connections=MAX_CONNECTIONS,
            timeout=10,
            health_check_interval=HEALTH_CHECK_S,
            retry=Retry(ExponentialWithJitterBackoff(base=0.05, cap=1.0), RETRIES),
            retry_on_error=[RedisConnectionError, RedisTimeoutError],
            socket_keepalive=True,
        )
        self.redis: Redis = Redis.from_pool(pool)  # the pool is closed with the client
        # A resuming or mirroring reader's XREAD replies are turned into events directly: redis-py's
        # parsing into (id, dict) tuples first was a third of the reader's CPU per event.
        self.redis.set_response_callback("XREAD", _unparsed)
        self.replica = secrets.token_hex(6)
        self._running_s = int(ttl_s) + RUNNING_EXTRA_S
        self._appends = Appends(
            self.redis, replica=self.replica, lease_ms=LEASE_MS, running_s=self._running_s
        )
        self._leases = self.redis.register_script(LEASES)
        self._max_bytes = max_bytes
        self._finished = finished
        self._ttl_s = ttl_s
        self._leased: set[str] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self.on_cancel: Callable[[str], None] | None = None

    def new_log(self, stream_id: str) -> RedisLog:
        """A log read through Redis (a stream pumped by any replica)."""
        return RedisLog(
            self.redis, self._appends, stream_id, max_bytes=self._max_bytes, ttl_s=self._ttl_s
        )

    def producer_log(self, stream_id: str) -> ProducerLog:
        """The log of a stream pumped by this replica."""
        memory = MemoryLog(self._max_bytes, self._finished)
        return ProducerLog(memory, self.new_log(stream_id))

    async def start(self) -> None:
        await self.redis.ping()
        # Subscribed before the replica serves: no cancel published from now on is missed.
        pubsub = self.redis.pubsub()
        await pubsub.subscribe(CANCEL_CHANNEL)
        self._tasks = [
            asyncio.create_task(self._refresh_leases(), name="redis leases"),
            asyncio.create_task(self._listen_for_cancels(pubsub), name="redis cancels"),
        ]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._appends.close()
        if self._leased:
            with contextlib.suppress(RedisError):
                await self.redis.delete(*(_key(s, "lease") for s in self._leased))
        await self.redis.aclose()

    async def register(self, stream_id: str, owner: str | None) -> None:
        """A new stream pumped here: its owner, and the lease that says it is alive (written
        with the other streams' writes of the moment, redis_appends.py)."""
        await self._appends.register(_key(stream_id), owner or "")
        self._leased.add(stream_id)

    def release(self, stream_id: str) -> None:
        self._leased.discard(stream_id)

    def set_provider(self, stream_id: str, provider: str) -> None:
        """Note which provider answers (readers on other replicas send it as X-Provider); it
        is stored with the next write of this replica."""
        self._appends.note_provider(_key(stream_id), provider)

    async def lookup(self, stream_id: str) -> RemoteStream | None:
        """A stream known to Redis (pumped here or by another replica), or None."""
        try:
            meta: Any = await self.redis.hgetall(_key(stream_id, "meta"))
        except RedisError as exc:
            raise _unavailable(exc) from None
        if not meta:
            return None
        provider = meta.get(b"provider")
        return RemoteStream(_text(meta.get(b"owner", b"")), _text(provider) if provider else None)

    async def ending(self, stream_id: str) -> str | None:
        """None while the stream runs; once ended, the code of its final error event (e.g.
        "cancelled"), or "" if it finished normally."""
        try:
            last: Any = await self.redis.xrevrange(_key(stream_id), count=2)
        except RedisError as exc:
            raise _unavailable(exc) from None
        if not last or last[0][1][b"k"].decode() not in TERMINAL:
            return None
        if len(last) > 1 and last[1][1][b"k"] == b"error":
            with contextlib.suppress(ValueError, KeyError, TypeError):
                return str(orjson.loads(last[1][1][b"d"])["error"]["code"] or "")
        return ""

    async def has_readers(self, stream_id: str) -> bool:
        return bool(await self.redis.exists(_key(stream_id, "reader")))

    async def publish_cancel(self, stream_id: str) -> None:
        try:
            await self.redis.publish(CANCEL_CHANNEL, stream_id)
        except RedisError as exc:
            raise _unavailable(exc) from None

    async def _refresh_leases(self) -> None:
        while True:
            await asyncio.sleep(REFRESH_S)
            if not self._leased:
                continue
            try:
                # The leases, and the expiry of their keys: a stream running for longer than
                # its keys' expiry keeps them.
                keys = [_key(stream_id) for stream_id in self._leased]
                await self._leases(keys=keys, args=[self.replica, LEASE_MS, self._running_s])
            except RedisError as exc:
                log.warning("cannot refresh stream leases: %s", exc)

    async def _listen_for_cancels(self, pubsub: PubSub) -> None:
        try:
            while True:
                try:
                    async for message in pubsub.listen():
                        if message.get("type") == "message" and self.on_cancel is not None:
                            self.on_cancel(_text(message["data"]))
                    raise RedisError("unsubscribed")
                except RedisError as exc:
                    log.warning("cancel channel lost (%s); resubscribing", exc)
                    with contextlib.suppress(RedisError):
                        await pubsub.aclose()  # type: ignore[no-untyped-call]
                    await asyncio.sleep(1)
                    pubsub = self.redis.pubsub()
                    with contextlib.suppress(RedisError):
                        await pubsub.subscribe(CANCEL_CHANNEL)
        finally:
            with contextlib.suppress(RedisError):
                await pubsub.aclose()  # type: ignore[no-untyped-call]


def _unparsed(response: Any, **options: Any) -> Any:
    return response


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
