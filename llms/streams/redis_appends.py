"""Group commit of Redis mode's writes: the producers' appends, registrations and providers.

Every stream pumped by this replica writes each batch of events to Redis before its local readers
see it. Here the batches of every stream waiting at the same moment go to Redis together, while
the previous write is in flight, as **one** command: `EVALSHA` of the `FLUSH` script below, whose
arguments are each stream's batch packed into one string. The script does what a pipeline of
`XADD`s did (explicit ids `0-<seq>`, `MAXLEN ~`, the expiry and the lease's end after a terminal
event) and answers with one character per stream: accepted or refused. One command instead of one
per event is what removed most of redis-py's per-command Python work (packing each `XADD`, parsing
each reply), which was most of Redis mode's cost per chunk (issue 18). New streams' registrations
and providers ride in the same command.

A stream has at most one batch in each flush: its next batch's ids depend on whether this one was
accepted (a refused append means a reader took the stream over; a failed connection means nothing
was written), so it waits for the next flush, as it waited for the previous write before.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import TYPE_CHECKING, Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from llms.errors import ServiceUnavailable
from llms.streams.log import TERMINAL

if TYPE_CHECKING:
    from llms.streams.redis import RedisLog

log = logging.getLogger("llms.streams.redis")

Batch = list[tuple[str, bytes]]
UNAVAILABLE = "The gateway's shared stream store (Redis) is not answering."

# KEYS: the r streams registered, the p streams whose provider is noted, the n streams appended
# to (`llms:s:<id>`; their `:meta` and `:lease` keys are derived). ARGV: r, p, this replica, the
# running streams' meta expiry (s), the lease (ms); r owners; p providers; then per appended
# stream its head "<last seq> <MAXLEN> <expiry s, 0 unless the batch ends the stream>" and its
# events, each "<kind> <length>\n<data>". Answers one character per appended stream: 1 accepted,
# 0 refused (its first id is at or below the top: a reader took the stream over). An append
# refused whose events are exactly what is at its ids was this very command, run again after
# its connection failed (redis-py retries): accepted.
FLUSH = """
local r, p = tonumber(ARGV[1]), tonumber(ARGV[2])
for i = 1, r do
  local key = KEYS[i]
  redis.call('HSET', key .. ':meta', 'owner', ARGV[5 + i], 'replica', ARGV[3])
  redis.call('EXPIRE', key .. ':meta', ARGV[4])
  redis.call('SET', key .. ':lease', ARGV[3], 'PX', ARGV[5])
end
for i = 1, p do
  redis.call('HSET', KEYS[r + i] .. ':meta', 'provider', ARGV[5 + r + i])
end
local out = {}
local first = 5 + r + p
for i = 1, #KEYS - r - p do
  local key = KEYS[r + p + i]
  local seq, maxlen, ttl = string.match(ARGV[first + 2 * i - 1], '^(%d+) (%d+) (%d+)$')
  seq = tonumber(seq)
  local events = ARGV[first + 2 * i]
  local pos, ok = 1, '1'
  while pos <= #events do
    local _, stop, kind, length = string.find(events, '^(%S+) (%d+)\\n', pos)
    local last = stop + tonumber(length)
    local data = string.sub(events, stop + 1, last)
    seq = seq + 1
    local id = '0-' .. seq
    local added = redis.pcall('XADD', key, 'MAXLEN', '~', maxlen, id, 'k', kind, 'd', data)
    if type(added) == 'table' and added.err then
      local there = redis.pcall('XRANGE', key, id, id)  -- an error: no entries, refused
      local fields = there[1] and there[1][2]
      if not (fields and fields[2] == kind and fields[4] == data) then
        ok = '0'
        break
      end
    end
    pos = last + 1
  end
  if ok == '1' and ttl ~= '0' then
    redis.call('EXPIRE', key, ttl)
    redis.call('EXPIRE', key .. ':meta', ttl)
    redis.call('DEL', key .. ':lease')
  end
  out[i] = ok
end
return table.concat(out)
"""

# KEYS: the streams this replica pumps. ARGV: the replica, the lease (ms), their keys' expiry (s).
LEASES = """
for i = 1, #KEYS do
  redis.call('SET', KEYS[i] .. ':lease', ARGV[1], 'PX', ARGV[2])
  redis.call('EXPIRE', KEYS[i] .. ':meta', ARGV[3])
  redis.call('EXPIRE', KEYS[i], ARGV[3])
end
return #KEYS
"""

ACCEPTED = ord("1")


def pack(seq: int, batch: Batch, max_events: int, ttl_s: int) -> tuple[bytes, bytes]:
    """A batch's head and events as FLUSH takes them."""
    ending = ttl_s if batch[-1][0] in TERMINAL else 0
    head = b"%d %d %d" % (seq, max_events, ending)
    return head, b"".join([b"%s %d\n%s" % (k.encode(), len(d), d) for k, d in batch])


class _Pending:
    __slots__ = ("batch", "done", "log")

    def __init__(self, event_log: RedisLog, batch: Batch, done: asyncio.Future[None]) -> None:
        self.log = event_log
        self.batch = batch
        self.done = done


def _retrieve(future: asyncio.Future[None]) -> None:
    """Its exception was seen by whoever awaited it, or by nobody (the pump was cancelled)."""
    if not future.cancelled():
        future.exception()


class Appends:
    """The replica's queue of writes; one flush in flight at a time."""

    __slots__ = (
        "_flush_script",
        "_flusher",
        "_lease_ms",
        "_loop",
        "_providers",
        "_queue",
        "_registrations",
        "_replica",
        "_running_s",
    )

    def __init__(self, redis: Redis, *, replica: str, lease_ms: int, running_s: int) -> None:
        self._flush_script = redis.register_script(FLUSH)
        self._replica = replica
        self._lease_ms = lease_ms
        self._running_s = running_s
        self._queue: deque[_Pending] = deque()
        self._registrations: list[tuple[str, str, asyncio.Future[None]]] = []
        self._providers: dict[str, str] = {}
        self._flusher: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _future(self) -> asyncio.Future[None]:
        """A future for a queued write; the flusher runs (again) if it was idle."""
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        if self._flusher is None:
            # Started on the next turn of the loop, so the writes of every pump woken in this
            # one are queued by then.
            self._flusher = loop.create_task(self._flush(), name="redis appends")
        done: asyncio.Future[None] = loop.create_future()
        done.add_done_callback(_retrieve)
        return done

    def submit(self, event_log: RedisLog, batch: Batch) -> asyncio.Future[None]:
        """Queue `batch` for `event_log`; the future is done once Redis answered for it."""
        done = self._future()
        self._queue.append(_Pending(event_log, batch, done))
        return done

    def register(self, key: str, owner: str) -> asyncio.Future[None]:
        """Queue a new stream's meta (owner, replica) and lease; done once Redis has them."""
        done = self._future()
        self._registrations.append((key, owner, done))
        return done

    def note_provider(self, key: str, provider: str) -> None:
        """Store the stream's provider with the next flush (a failure is only logged)."""
        self._future().set_result(None)  # nobody waits for it
        self._providers[key] = provider

    async def declare(self, key: str, top: int, batch: Batch, max_events: int, ttl_s: int) -> bool:
        """Append `batch` after `top` now, outside the queue (a reader ending an orphaned
        stream); False if refused."""
        head, events = pack(top, batch, max_events, ttl_s)
        reply: Any = await self._flush_script(
            keys=[key], args=[0, 0, self._replica, self._running_s, self._lease_ms, head, events]
        )
        return bool(reply[0] == ACCEPTED)

    async def close(self) -> None:
        flusher = self._flusher
        if flusher is not None:
            flusher.cancel()
            await asyncio.gather(flusher, return_exceptions=True)

    async def _flush(self) -> None:
        taken: list[_Pending] = []
        registered: list[tuple[str, str, asyncio.Future[None]]] = []
        try:
            while self._queue or self._registrations or self._providers:
                registered, self._registrations = self._registrations, []
                providers, self._providers = self._providers, {}
                taken = self._take()
                keys: list[Any] = [key for key, _, _ in registered]
                keys += providers
                keys += [pending.log.key for pending in taken]
                args: list[Any] = [
                    len(registered),
                    len(providers),
                    self._replica,
                    self._running_s,
                    self._lease_ms,
                ]
                args += [owner for _, owner, _ in registered]
                args += providers.values()
                for pending in taken:
                    args += pending.log.pack(pending.batch)
                try:
                    reply: Any = await self._flush_script(keys=keys, args=args)
                except RedisError as exc:
                    log.warning("Redis failed: %s", exc)
                    for pending in taken:
                        if not pending.done.done():
                            pending.done.set_exception(ServiceUnavailable(UNAVAILABLE))
                    for _, _, done in registered:
                        if not done.done():
                            done.set_exception(ServiceUnavailable(UNAVAILABLE))
                    taken, registered = [], []
                    continue
                for _, _, done in registered:
                    if not done.done():
                        done.set_result(None)
                for pending, answer in zip(taken, reply, strict=True):
                    accepted = answer == ACCEPTED
                    pending.log.written(pending.batch, accepted=accepted)
                    if accepted:
                        pending.done.set_result(None)
                    else:
                        pending.done.set_exception(pending.log.lost())
                taken, registered = [], []
        finally:
            self._flusher = None
            # Cancelled (the replica closes): nobody may wait for ever on what was not written.
            waiting = [*(p.done for p in taken), *(p.done for p in self._queue)]
            waiting += [done for _, _, done in (*registered, *self._registrations)]
            for done in waiting:
                if not done.done():
                    done.set_exception(ServiceUnavailable(UNAVAILABLE))
            self._queue.clear()
            self._registrations.clear()

    def _take(self) -> list[_Pending]:
        """The first waiting batch of each stream (the others wait for the next flush)."""
        taken: list[_Pending] = []
        later: deque[_Pending] = deque()
        seen: set[int] = set()
        queue = self._queue
        while queue:
            pending = queue.popleft()
            event_log = pending.log
            if id(event_log) in seen:
                later.append(pending)
                continue
            if event_log.finished:  # taken over while its previous batch was written
                pending.done.set_result(None)
                continue
            seen.add(id(event_log))
            taken.append(pending)
        self._queue = later
        return taken
