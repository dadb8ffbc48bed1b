"""Stream state in Redis, shared by several replicas.

Per stream `S`:
- `llms:s:{S}` — a Redis Stream of events with explicit ids `0-<seq>` (fields `k` kind, `d` data),
  capped with `MAXLEN ~`, expiring `ttl_s` after its terminal event;
- `llms:s:{S}:meta` — a hash: owner (API key name), provider;
- `llms:s:{S}:lease` — the producing replica's lease, refreshed every second while it pumps;
- `llms:s:{S}:reader` — refreshed by readers on any replica while they follow, so the producer's
  resume grace knows somebody is still there.
Cancel requests travel on the pub/sub channel `llms:cancel`. When a lease lapses with no terminal
event, the first reader to notice appends an `upstream_lost` error and `[DONE]`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from llms.errors import ServiceUnavailable, UpstreamError
from llms.streams.log import TERMINAL, Event, StreamGone

log = logging.getLogger("llms.streams.redis")

LEASE_MS = 3000
REFRESH_S = 1.0
BLOCK_MS = 1000
READ_COUNT = 512
CANCEL_CHANNEL = "llms:cancel"
# Redis caps a stream by entry count; events average a few hundred bytes.
BYTES_PER_EVENT = 256


class UpstreamLost(UpstreamError):
    default_code = "upstream_lost"


def _key(stream_id: str, part: str = "") -> str:
    return f"llms:s:{stream_id}{':' + part if part else ''}"


class RedisLog:
    """One stream's events in Redis (the EventLog protocol)."""

    __slots__ = ("_key", "_max_events", "_redis", "_seq", "_stream_id", "_ttl_s", "finished")

    def __init__(self, redis: Redis, stream_id: str, *, max_bytes: int, ttl_s: float) -> None:
        self._redis = redis
        self._stream_id = stream_id
        self._key = _key(stream_id)
        self._max_events = max(64, max_bytes // BYTES_PER_EVENT)
        self._ttl_s = int(ttl_s) + 1
        self._seq = 0
        self.finished = False

    async def append(self, events: list[tuple[str, bytes]]) -> None:
        if self.finished:
            return
        pipe = self._redis.pipeline(transaction=False)
        for kind, data in events:
            self._seq += 1
            pipe.xadd(
                self._key,
                {"k": kind, "d": data},
                id=f"0-{self._seq}",
                maxlen=self._max_events,
                approximate=True,
            )
            if kind in TERMINAL:
                self.finished = True
                break
        if self.finished:
            for part in ("", "meta"):
                pipe.expire(_key(self._stream_id, part), self._ttl_s)
            pipe.delete(_key(self._stream_id, "lease"))
        try:
            await pipe.execute()
        except ResponseError as exc:
            # An id at or below the top: a reader declared this stream lost (our lease lapsed).
            self.finished = True
            raise UpstreamLost(f"The stream was taken over: {exc}") from None
        except RedisError as exc:
            raise ServiceUnavailable(f"Redis failed: {exc}") from None

    async def read(self, after: int, *, wait: bool = True, cursor: object = None) -> list[Event]:
        redis = self._redis
        while True:
            try:
                if cursor is not None:
                    await redis.set(_key(self._stream_id, "reader"), b"1", px=LEASE_MS)
                # RESP2 shape: [[key, [(b"0-<seq>", {b"k": kind, b"d": data}), …]]]
                reply: Any = await redis.xread(
                    {self._key: f"0-{after}"}, count=READ_COUNT, block=BLOCK_MS if wait else None
                )
            except RedisError as exc:
                raise ServiceUnavailable(f"Redis failed: {exc}") from None
            if reply:
                events = [
                    Event(int(entry_id.split(b"-")[1]), fields[b"k"].decode(), fields[b"d"])
                    for entry_id, fields in reply[0][1]
                ]
                if events[0].seq > after + 1:
                    raise StreamGone(
                        f"The events after {after} were dropped to bound memory.",
                        param="Last-Event-ID",
                    )
                if events[-1].kind in TERMINAL:
                    self.finished = True
                return events
            if self.finished or not wait:
                return []
            await self._declare_lost_if_orphaned()

    async def _declare_lost_if_orphaned(self) -> None:
        """Nothing new for a while: if the producer's lease lapsed, end the stream for everyone."""
        redis = self._redis
        if await redis.exists(_key(self._stream_id, "lease")):
            return
        if not await redis.set(_key(self._stream_id, "lost"), b"1", nx=True, ex=self._ttl_s):
            return
        last: Any = await redis.xrevrange(self._key, count=1)
        seq = int(last[0][0].split(b"-")[1]) if last else 0
        if last and last[0][1][b"k"].decode() in TERMINAL:
            return
        error = UpstreamLost(
            "The gateway replica producing this stream stopped before it ended.",
        )
        self._seq = seq
        log.warning("stream %s: producer lease lapsed; declaring it lost", self._stream_id)
        with contextlib.suppress(UpstreamError):
            await self.append([("error", orjson.dumps(error.to_body())), ("done", b"[DONE]")])
        self.finished = False  # let read() deliver the two events it just appended

    def forget(self, cursor: object) -> None:
        return None


class RedisStreams:
    """Cross-replica coordination: registration, lookup, leases, cancel messages."""

    def __init__(self, url: str, *, max_bytes: int, ttl_s: float) -> None:
        self.redis: Redis = Redis.from_url(url)
        self.replica = secrets.token_hex(6)
        self._max_bytes = max_bytes
        self._ttl_s = ttl_s
        self._leased: set[str] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self.on_cancel: Callable[[str], None] | None = None

    def new_log(self, stream_id: str) -> RedisLog:
        return RedisLog(self.redis, stream_id, max_bytes=self._max_bytes, ttl_s=self._ttl_s)

    async def start(self) -> None:
        await self.redis.ping()
        self._tasks = [
            asyncio.create_task(self._refresh_leases(), name="redis leases"),
            asyncio.create_task(self._listen_for_cancels(), name="redis cancels"),
        ]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._leased:
            with contextlib.suppress(RedisError):
                await self.redis.delete(*(_key(s, "lease") for s in self._leased))
        await self.redis.aclose()

    async def register(self, stream_id: str, owner: str | None) -> None:
        """A new stream pumped here: its owner, and the lease that says it is alive."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.hset(_key(stream_id, "meta"), mapping={"owner": owner or "", "replica": self.replica})
        pipe.expire(_key(stream_id, "meta"), int(self._ttl_s) + 3600)
        pipe.set(_key(stream_id, "lease"), self.replica, px=LEASE_MS)
        await pipe.execute()
        self._leased.add(stream_id)

    def release(self, stream_id: str) -> None:
        self._leased.discard(stream_id)

    async def lookup(self, stream_id: str) -> str | None:
        """The owner of a stream known to Redis ("" for no key), or None if there is none."""
        try:
            meta: Any = await self.redis.hgetall(_key(stream_id, "meta"))
        except RedisError as exc:
            raise ServiceUnavailable(f"Redis failed: {exc}") from None
        if not meta:
            return None
        return _text(meta.get(b"owner", b""))

    async def has_readers(self, stream_id: str) -> bool:
        return bool(await self.redis.exists(_key(stream_id, "reader")))

    async def publish_cancel(self, stream_id: str) -> None:
        await self.redis.publish(CANCEL_CHANNEL, stream_id)

    async def _refresh_leases(self) -> None:
        while True:
            await asyncio.sleep(REFRESH_S)
            if not self._leased:
                continue
            try:
                pipe = self.redis.pipeline(transaction=False)
                for stream_id in self._leased:
                    pipe.set(_key(stream_id, "lease"), self.replica, px=LEASE_MS)
                await pipe.execute()
            except RedisError as exc:
                log.warning("cannot refresh stream leases: %s", exc)

    async def _listen_for_cancels(self) -> None:
        while True:
            try:
                async with self.redis.pubsub() as pubsub:
                    await pubsub.subscribe(CANCEL_CHANNEL)
                    async for message in pubsub.listen():
                        if message.get("type") == "message" and self.on_cancel is not None:
                            self.on_cancel(_text(message["data"]))
            except RedisError as exc:
                log.warning("cancel channel lost (%s); resubscribing", exc)
                await asyncio.sleep(1)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
