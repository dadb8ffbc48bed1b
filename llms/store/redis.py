"""Stored responses in Redis, shared by every replica.

One hash per response, `{prefix}{id}` (default `llms:resp:{id}`), with the fields `owner` (`k:`
and the key's name, or `-` for no key), `created_at`, `status`, `response`, `input_items` and
`history`. The key expires when the record's retention ends (PEXPIRE, set with the write in one
MULTI), so there is nothing to purge. A delete (owner checked) and a background update run as
Lua scripts, each one step in Redis: an update of a record that has just expired must not bring
back a key without an expiry.

There is no total cap here: the per-record cap bounds each record, the expiry bounds how long
it stays, and Redis's own `maxmemory` (with a `volatile-*` eviction policy, every key here
having an expiry) bounds the whole. A Redis failure is a 503 in plain words; its own text,
which may name its address, is only logged.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable, Iterator
from typing import Any, cast

from redis.asyncio import BlockingConnectionPool, Redis
from redis.exceptions import RedisError, ResponseError

from llms.store.responses import (
    MAX_RECORD_MB,
    MIB,
    RETENTION_S,
    ResponseStatus,
    ResponseTooLarge,
    StoredResponse,
    StoreUnavailable,
    check_record,
    is_response_id,
)

log = logging.getLogger("llms.store")

PREFIX = "llms:resp:"
MAX_CONNECTIONS = 64
FIELDS = ("owner", "created_at", "status", "response", "input_items", "history")
# KEYS[1] the record; ARGV: owner, cutoff. 1 when deleted.
DELETE = """
local f = redis.call('HMGET', KEYS[1], 'owner', 'created_at')
if f[1] ~= ARGV[1] or not f[2] or tonumber(f[2]) <= tonumber(ARGV[2]) then return 0 end
return redis.call('DEL', KEYS[1])
"""
# KEYS[1] the record; ARGV: cutoff, cap, response, status.
# {0, 0}: no such record; {1, size}: over the cap, nothing written; {2, size}: written.
UPDATE = """
local created = redis.call('HGET', KEYS[1], 'created_at')
if not created or tonumber(created) <= tonumber(ARGV[1]) then return {0, 0} end
local size = string.len(ARGV[3]) + redis.call('HSTRLEN', KEYS[1], 'input_items')
size = size + redis.call('HSTRLEN', KEYS[1], 'history')
if size > tonumber(ARGV[2]) then return {1, size} end
redis.call('HSET', KEYS[1], 'response', ARGV[3], 'status', ARGV[4])
return {2, size}
"""


def _owner(owner: str | None) -> bytes:
    """The stored form of an owner: a key's name can be anything, so no key is its own mark."""
    return b"-" if owner is None else b"k:" + owner.encode()


class RedisResponseStore:
    """The ResponseStore protocol on Redis.

    Give `url` (the store opens and closes its own connection pool) or `redis`, a client the
    caller owns (e.g. the one the stream state uses), which close() leaves open.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        redis: Redis | None = None,
        prefix: str = PREFIX,
        retention_s: float = RETENTION_S,
        max_record_mb: float = MAX_RECORD_MB,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._owned = redis is None
        if redis is None:
            if url is None:
                raise ValueError("give the Redis url or a client")
            # Blocking: past the cap a command waits for a connection instead of failing.
            pool = BlockingConnectionPool.from_url(url, max_connections=MAX_CONNECTIONS, timeout=10)
            redis = Redis.from_pool(pool)  # closed with the client (aclose)
        if redis.connection_pool.connection_kwargs.get("decode_responses"):
            raise ValueError("the Redis client must return bytes (decode_responses off)")
        self.redis: Redis = redis
        self.prefix = prefix
        self.retention_s = retention_s
        self.max_record_bytes = int(max_record_mb * MIB)
        self._clock = clock
        self._delete = self.redis.register_script(DELETE)
        self._update = self.redis.register_script(UPDATE)
        self._closed = False

    def key(self, response_id: str) -> str:
        return self.prefix + response_id

    # --- life -----------------------------------------------------------------------------------

    async def start(self) -> None:
        with self._translated("start"):
            await self.redis.ping()

    async def close(self) -> None:
        if self._owned and not self._closed:
            self._closed = True
            with contextlib.suppress(RedisError):
                await self.redis.aclose()

    # --- the protocol ---------------------------------------------------------------------------

    async def put(self, record: StoredResponse) -> None:
        check_record(record, self.max_record_bytes)
        key = self.key(record.id)
        left_s = record.created_at + self.retention_s - self._clock()
        with self._translated("put"):
            if left_s <= 0:  # expired already: what it would replace goes too
                await self.redis.delete(key)
                return
            pipe = self.redis.pipeline(transaction=True)
            pipe.delete(key)
            pipe.hset(
                key,
                mapping={
                    "owner": _owner(record.owner),
                    "created_at": record.created_at,
                    "status": record.status,
                    "response": record.response,
                    "input_items": record.input_items,
                    "history": record.history,
                },
            )
            pipe.pexpire(key, math.ceil(left_s * 1000))
            await pipe.execute()

    async def get(self, response_id: str, owner: str | None) -> StoredResponse | None:
        if not is_response_id(response_id):
            return None
        with self._translated("get"):
            values: Any = await self.redis.hmget(self.key(response_id), list(FIELDS))
        stored_owner, created_at, status, response, input_items, history = values
        if stored_owner is None or stored_owner != _owner(owner):
            return None
        if None in (created_at, status, response, input_items, history):
            log.warning(
                "response store: %s is incomplete in Redis; answered as unknown", response_id
            )
            return None
        created = int(created_at)
        if created <= self._cutoff():
            return None
        return StoredResponse(
            id=response_id,
            owner=owner,
            created_at=created,
            status=cast(ResponseStatus, status.decode()),
            response=response,
            input_items=input_items,
            history=history,
        )

    async def delete(self, response_id: str, owner: str | None) -> bool:
        if not is_response_id(response_id):
            return False
        with self._translated("delete"):
            deleted: Any = await self._delete(
                keys=[self.key(response_id)], args=[_owner(owner), repr(self._cutoff())]
            )
        return bool(deleted)

    async def update_response(
        self,
        response_id: str,
        response: bytes,
        status: ResponseStatus,
    ) -> bool:
        if not is_response_id(response_id):
            return False
        args: list[bytes | str | int] = [
            repr(self._cutoff()),
            self.max_record_bytes,
            response,
            status,
        ]
        with self._translated("update"):
            reply: Any = await self._update(keys=[self.key(response_id)], args=args)
        outcome, size = int(reply[0]), int(reply[1])
        if outcome == 1:
            raise ResponseTooLarge(size, self.max_record_bytes)
        return outcome == 2

    async def purge(self) -> int:
        """Nothing to do: every key expires with its record's retention."""
        return 0

    # --- inside ---------------------------------------------------------------------------------

    def _cutoff(self) -> float:
        """A record created at or before this has expired."""
        return self._clock() - self.retention_s

    @contextlib.contextmanager
    def _translated(self, what: str) -> Iterator[None]:
        """Redis failing, in plain words for the client; its own text is logged."""
        try:
            yield
        except ResponseError as exc:  # e.g. out of memory (maxmemory with noeviction)
            log.warning("response store: Redis refused the %s: %s", what, exc)
            raise StoreUnavailable(
                "The gateway's shared response store (Redis) refused the request."
            ) from None
        except RedisError as exc:
            log.warning("response store: Redis failed on %s: %s", what, exc)
            raise StoreUnavailable(
                "The gateway's shared response store (Redis) is not answering."
            ) from None
