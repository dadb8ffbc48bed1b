"""Group commit of the producers' appends in Redis mode.

Every stream pumped by this replica writes each batch of events to Redis before its local readers
see it. One pipeline and one round trip per batch made the client library's per-call work (a
pooled connection taken and given back, the pipeline's bookkeeping, a task per write) the bulk of
Redis mode's cost per chunk. Here the batches of every stream waiting at the same moment go to
Redis together, in one pipeline, while the previous one is in flight: one round trip for many
streams, each stream's commands exactly as before, in the same order.

A stream has at most one batch in each pipeline: its next batch's ids depend on whether this one
was accepted (a refused append means a reader took the stream over; a failed connection means
nothing was written), so it waits for the next trip, as it waited for the previous write before.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import TYPE_CHECKING, Any

from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from llms.errors import ServiceUnavailable

if TYPE_CHECKING:
    from llms.streams.redis import RedisLog

log = logging.getLogger("llms.streams.redis")

Batch = list[tuple[str, bytes]]
UNAVAILABLE = "The gateway's shared stream store (Redis) is not answering."


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
    """The replica's queue of batches to append; one pipeline in flight at a time."""

    __slots__ = ("_flusher", "_loop", "_queue", "_redis")

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._queue: deque[_Pending] = deque()
        self._flusher: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def submit(self, event_log: RedisLog, batch: Batch) -> asyncio.Future[None]:
        """Queue `batch` for `event_log`; the future is done once Redis answered for it."""
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        done.add_done_callback(_retrieve)
        self._queue.append(_Pending(event_log, batch, done))
        if self._flusher is None:
            # Started on the next turn of the loop, so the batches of every pump woken in this
            # one are queued by then.
            self._flusher = loop.create_task(self._flush(), name="redis appends")
        return done

    async def close(self) -> None:
        flusher = self._flusher
        if flusher is not None:
            flusher.cancel()
            await asyncio.gather(flusher, return_exceptions=True)

    async def _flush(self) -> None:
        taken: list[tuple[_Pending, int, int, int]] = []
        try:
            while self._queue:
                taken = []
                pipe = self._redis.pipeline(transaction=False)
                later: deque[_Pending] = deque()
                seen: set[int] = set()
                while self._queue:
                    pending = self._queue.popleft()
                    event_log = pending.log
                    if id(event_log) in seen:
                        later.append(pending)
                        continue
                    if event_log.finished:  # taken over while its previous batch was written
                        pending.done.set_result(None)
                        continue
                    seen.add(id(event_log))
                    start = len(pipe.command_stack)
                    seq = event_log.queue_batch(pipe, pending.batch)
                    taken.append((pending, start, len(pipe.command_stack), seq))
                later.extend(self._queue)
                self._queue = later
                if not taken:
                    continue
                try:
                    replies: list[Any] = await pipe.execute(raise_on_error=False)
                except RedisError as exc:
                    log.warning("Redis failed: %s", exc)
                    for pending, _, _, _ in taken:
                        if not pending.done.done():
                            pending.done.set_exception(ServiceUnavailable(UNAVAILABLE))
                    taken = []
                    continue
                for pending, start, end, seq in taken:
                    refused = next(
                        (r for r in replies[start:end] if isinstance(r, ResponseError)), None
                    )
                    pending.log.written(seq, pending.batch, refused)
                    if refused is not None:
                        pending.done.set_exception(pending.log.lost())
                    else:
                        pending.done.set_result(None)
                taken = []
        finally:
            self._flusher = None
            # Cancelled (the replica closes): nobody may wait for ever on what was not written.
            for pending in [*(t[0] for t in taken), *self._queue]:
                if not pending.done.done():
                    pending.done.set_exception(ServiceUnavailable(UNAVAILABLE))
            self._queue.clear()
