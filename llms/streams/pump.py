"""Runs one generation into its event log, apart from any connection (resumable mode).

The pump owns cancellation: `POST /v1/streams/{id}/cancel`, or the resume grace running out
with no reader attached. A finished stream stays replayable for `state.stream_ttl_s`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
from redis.exceptions import RedisError

from llms.chunks import StreamMeta
from llms.errors import Conflict, GatewayError, NotFound
from llms.generation import Generation, to_json_each
from llms.native import NativeLog, NativeRoute
from llms.routing import Router
from llms.streams.log import EventLog
from llms.streams.redis import RedisStreams
from llms.telemetry.record import RequestRecord
from llms.wire import ChatRequest, Chunk

log = logging.getLogger("llms.streams")

LogFactory = Callable[[str], EventLog]


class Cancelled(GatewayError):
    status = 499
    type = "invalid_request_error"
    default_code = "cancelled"


class Stream:
    """One resumable generation: its log, its pump task and who may read it."""

    __slots__ = (
        "_grace",
        "_registry",
        "expires_at",
        "id",
        "log",
        "owner",
        "provider",
        "readers",
        "reason",
        "task",
    )

    def __init__(
        self, registry: StreamRegistry, stream_id: str, owner: str | None, event_log: EventLog
    ) -> None:
        self._registry = registry
        self.id = stream_id
        self.owner = owner
        self.log = event_log
        self.provider: str | None = None
        self.readers = 0
        self.task: asyncio.Task[None] | None = None
        self.reason: GatewayError | None = None
        self._grace: asyncio.TimerHandle | None = None
        self.expires_at: float | None = None

    def attach(self) -> None:
        self.readers += 1
        if self._grace is not None:
            self._grace.cancel()
            self._grace = None

    def detach(self) -> None:
        """A reader left; with nobody left, the generation goes on for the grace period only."""
        self.readers -= 1
        # Only the replica that pumps a stream can stop it (a stream pumped by another replica
        # is its producer's to stop: it sees this replica's readers through Redis).
        if self.task is None:
            return
        if self.readers == 0 and not self.log.finished and self._grace is None:
            loop = asyncio.get_running_loop()
            self._grace = loop.call_later(self._registry.grace_s, self._grace_over)

    def _grace_over(self) -> None:
        self._grace = None
        if self.readers == 0 and not self.log.finished:
            asyncio.get_running_loop().create_task(self._stop_if_abandoned())

    async def _stop_if_abandoned(self) -> None:
        remote = self._registry.remote
        if remote is not None and await _followed_elsewhere(remote, self.id):
            # Someone follows it through another replica: keep generating.
            self._grace = asyncio.get_running_loop().call_later(
                self._registry.grace_s, self._grace_over
            )
            return
        if self.readers == 0 and not self.log.finished:
            log.info("stream %s: no reader came back within the grace period; stopping it", self.id)
            self.cancel(
                Cancelled("Nobody resumed the stream in time; it was stopped.", code="abandoned")
            )

    def note_provider(self, provider: str) -> None:
        """The provider that answers (with Redis, readers on any replica send it as X-Provider)."""
        self.provider = provider
        remote = self._registry.remote
        if remote is not None:
            remote.set_provider(self.id, provider)

    def cancel(self, reason: GatewayError) -> bool:
        """Stop the generation; readers get `reason` as an error event, then [DONE].

        Once: a second cancel (another reader's, a sibling's, the grace running out) would
        interrupt the pump while it logs and stores the end of the first.
        """
        if self.task is None or self.task.done():
            return False
        if self.reason is None:
            self.reason = reason
            self.task.cancel()
        return True


class StreamRegistry:
    """The streams of this process, by id; finished ones expire after `ttl_s`."""

    def __init__(
        self,
        new_log: LogFactory,
        *,
        grace_s: float,
        ttl_s: float,
        remote: RedisStreams | None = None,
    ) -> None:
        self._new_log = new_log
        self.remote = remote
        self._streams: dict[str, Stream] = {}
        self.grace_s = grace_s
        self.ttl_s = ttl_s
        self._sweeper: asyncio.TimerHandle | None = None
        self._endings: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        return len(self._streams)

    async def start(
        self,
        router: Router,
        chat: ChatRequest,
        meta: StreamMeta,
        *,
        include_usage: bool,
        record: RequestRecord,
        on_done: Callable[[RequestRecord], None],
        chosen_id: bool = False,
        encoder: LogEncoder | None = None,
        hooks: PumpHooks | None = None,
        native: NativeRoute | None = None,
    ) -> Stream:
        """Start pumping a new stream. `chosen_id`: the client named it (X-Stream-Id), so it
        may already be taken (ids the gateway makes are unguessable and never collide).
        `encoder`: the client-facing API's events (chat completions' by default); `hooks`:
        told when the answer commits and before its terminal event is logged; `native`: the
        client's request for upstreams that speak its API (logged by `NativeLog`)."""
        owner = record.owner or record.key
        taken = meta.id in self._streams
        if chosen_id and not taken and self.remote is not None:
            taken = await self.remote.lookup(meta.id) is not None
        if taken:
            raise Conflict(
                f"A stream `{meta.id}` already exists; choose another id.", param="X-Stream-Id"
            )
        stream = Stream(self, meta.id, owner, self._new_log(meta.id))
        if self.remote is not None:
            await self.remote.register(meta.id, owner)
        self._streams[meta.id] = stream
        work = Work(
            router, chat, meta, include_usage, encoder or CHAT_LOG, hooks or PumpHooks(), native
        )
        stream.task = asyncio.get_running_loop().create_task(
            pump(stream, work, record, on_done), name=f"pump {meta.id}"
        )
        stream.task.add_done_callback(lambda _: self._finished(stream, work.encoder))
        return stream

    def _finished(self, stream: Stream, encoder: LogEncoder) -> None:
        if self.remote is not None:
            self.remote.release(stream.id)
        loop = asyncio.get_running_loop()
        task = stream.task
        crash = task.exception() if task is not None and not task.cancelled() else None
        if crash is not None and not stream.log.finished:
            # A bug, not an upstream failure: still, no reader may wait for ever.
            log.error("stream %s: the pump failed", stream.id, exc_info=crash)
            ending = loop.create_task(stream.log.append(encoder.failed(internal_error())))
            self._endings.add(ending)
            ending.add_done_callback(self._endings.discard)
        stream.expires_at = loop.time() + self.ttl_s
        if self._sweeper is None:
            self._sweeper = loop.call_later(min(self.ttl_s, 30.0), self._sweep)

    def _sweep(self) -> None:
        self._sweeper = None
        now = asyncio.get_running_loop().time()
        for stream_id, stream in list(self._streams.items()):
            if stream.expires_at is not None and stream.expires_at <= now:
                del self._streams[stream_id]
        if any(s.expires_at is not None for s in self._streams.values()):
            self._sweeper = asyncio.get_running_loop().call_later(
                min(self.ttl_s, 30.0), self._sweep
            )

    async def get(self, stream_id: str, owner: str | None) -> Stream:
        """The stream, if it exists, has not expired and belongs to `owner`; else 404.

        With Redis, a stream pumped by another replica is found there too.
        """
        missing = NotFound(
            f"No stream `{stream_id}` (it may have expired).", code="stream_not_found", param="id"
        )
        stream = self._streams.get(stream_id)
        if stream is not None:
            now = asyncio.get_running_loop().time()
            if (
                stream.expires_at is not None and stream.expires_at <= now
            ) or stream.owner != owner:
                raise missing
            return stream
        if self.remote is None:
            raise missing
        found = await self.remote.lookup(stream_id)
        if found is None or found.owner != (owner or ""):
            raise missing
        stream = Stream(self, stream_id, owner, self.remote.new_log(stream_id))
        stream.provider = found.provider
        return stream

    async def cancel(self, stream: Stream, reason: GatewayError) -> bool:
        """Stop a stream wherever it is pumped; True if it was still running."""
        if stream.task is not None:
            return stream.cancel(reason)
        if self.remote is None:
            return False
        ending = await self.remote.ending(stream.id)
        if ending is None:
            await self.remote.publish_cancel(stream.id)
            return True
        if ending in ("cancelled", "abandoned"):  # a cancel, or the grace, stopped it
            stream.reason = Cancelled("The stream was cancelled.", code=ending)
        return False

    def cancel_local(self, stream_id: str) -> None:
        """A cancel message from another replica."""
        stream = self._streams.get(stream_id)
        if stream is not None:
            stream.cancel(Cancelled("The stream was cancelled."))

    async def close(self, reason: GatewayError) -> None:
        """Shutdown: stop every running pump with `reason` and wait for them."""
        tasks = [s.task for s in self._streams.values() if s.cancel(reason) and s.task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=2)
        if self._sweeper is not None:
            self._sweeper.cancel()


async def _followed_elsewhere(remote: RedisStreams, stream_id: str) -> bool:
    """A reader on another replica follows the stream (Redis failing counts as no)."""
    try:
        return await remote.has_readers(stream_id)
    except RedisError as exc:
        log.warning("stream %s: cannot ask Redis for its readers: %s", stream_id, exc)
        return False


LogItem = tuple[str, bytes]


def status_event(status: dict[str, Any]) -> LogItem:
    return ("status", orjson.dumps(status))


def error_event(error: GatewayError) -> LogItem:
    return ("error", orjson.dumps(error.to_body()))


DONE_EVENT = ("done", b"[DONE]")


def internal_error() -> GatewayError:
    return GatewayError("The gateway failed while producing this answer.", code="internal_error")


class LogEncoder(Protocol):
    """What a client-facing API logs for a stream (see streams/log.py for the kinds)."""

    def opening(self) -> list[LogItem]:
        """Logged when the stream starts, before routing."""
        ...

    def chunks(self, batch: list[Chunk]) -> tuple[list[LogItem], GatewayError | None]:
        """A batch's events, and the failure that ends the stream after them (a chunk it
        cannot encode or translate), if any."""
        ...

    def status(self, status: dict[str, Any]) -> list[LogItem]:
        """A retry or fallback before the first output."""
        ...

    def done(self) -> list[LogItem]: ...

    def failed(self, error: GatewayError) -> list[LogItem]:
        """The end of a stream that failed after something was logged."""
        ...

    def refused(self, error: GatewayError) -> list[LogItem]:
        """The end of a stream that failed before anything was logged."""
        ...

    def cancelled(self, reason: GatewayError) -> list[LogItem]: ...


class ChatLog:
    """Chat completions' events: chunks, `status` events, an error event, `[DONE]`; a failure
    before anything was logged is a `fail` record, which readers answer as an HTTP error."""

    __slots__ = ()

    def opening(self) -> list[LogItem]:
        return []

    def chunks(self, batch: list[Chunk]) -> tuple[list[LogItem], GatewayError | None]:
        encoded, error = to_json_each(batch)
        return [("chunk", data) for data in encoded], error

    def status(self, status: dict[str, Any]) -> list[LogItem]:
        return [status_event(status)]

    def done(self) -> list[LogItem]:
        return [DONE_EVENT]

    def failed(self, error: GatewayError) -> list[LogItem]:
        return [error_event(error), DONE_EVENT]

    def refused(self, error: GatewayError) -> list[LogItem]:
        failure = {
            "status": error.status,
            "headers": {str(name): value for name, value in error.headers.items()},
            "body": error.to_body(),
        }
        return [("fail", orjson.dumps(failure))]

    def cancelled(self, reason: GatewayError) -> list[LogItem]:
        return self.failed(reason)


CHAT_LOG = ChatLog()


class PumpHooks:
    """Told what a stream does, for what outlives it (the Responses API's stored response).
    A hook that fails is logged; the stream goes on."""

    async def committed(self) -> None:
        """The answer committed to a provider (its first output is about to be logged)."""

    async def ending(self) -> None:
        """The stream ends: its terminal events are about to be logged."""


@dataclass(frozen=True, slots=True)
class Work:
    """What one pump generates, and how it logs it."""

    router: Router
    chat: ChatRequest
    meta: StreamMeta
    include_usage: bool
    encoder: LogEncoder
    hooks: PumpHooks
    native: NativeRoute | None = None


async def _told(stream: Stream, hook: Callable[[], Awaitable[None]]) -> None:
    try:
        await hook()
    except Exception:
        log.exception("stream %s: a hook failed", stream.id)


async def pump(
    stream: Stream,
    work: Work,
    record: RequestRecord,
    on_done: Callable[[RequestRecord], None],
) -> None:
    """Run the generation into the stream's log until its end, whoever is reading."""
    try:
        await _generate(stream, work, record)
    except GatewayError as error:
        # The log itself failed (Redis): its local readers already have the events and the
        # end (ProducerLog), other replicas' readers will see the lease lapse.
        log.warning("stream %s: its event log failed: %s", stream.id, error.message)
        record.failed(error, status=200 if record.first_output is not None else None)
    except Exception:
        # A bug: the registry logs it and ends the stream with an error event (which readers
        # get in a 200 response); the record says so too.
        record.failed(internal_error(), status=200)
        raise
    finally:
        record.ended = asyncio.get_running_loop().time()
        on_done(record)


async def _generate(stream: Stream, work: Work, record: RequestRecord) -> None:
    event_log = stream.log
    encoder = work.encoder
    opening = encoder.opening()
    if opening:
        await event_log.append(opening)
    started = bool(opening)

    async def on_status(status: dict[str, Any]) -> None:
        nonlocal started
        events = encoder.status(status)
        if events:
            started = True
            await event_log.append(events)

    async def end(events: list[LogItem]) -> None:
        await _told(stream, work.hooks.ending)
        if events:
            await event_log.append(events)

    try:
        try:
            generation = await work.router.open(
                work.chat,
                work.meta,
                work.include_usage,
                on_status=on_status,
                record=record,
                native=work.native,
            )
        except GatewayError as error:
            record.failed(error, status=200 if started else None)
            await end(encoder.failed(error) if started else encoder.refused(error))
            return
        passing = generation.native
        if passing is not None:
            # The attempt committed natively: the upstream's own events are logged.
            passing.committed()
            encoder = NativeLog(passing)
        try:
            # The generation keeps the record's provider, chunks, first output, usage, finish.
            stream.note_provider(generation.provider.name)
            await _told(stream, work.hooks.committed)
            async for batch in generation:
                await _append(event_log, encoder, batch, generation)
                # Nothing parsed is kept while the upstream is silent: an idle stream stays small.
                batch = []
            await end(encoder.done())
        except GatewayError as error:
            log.warning("stream %s failed after it started: %s", stream.id, error.message)
            record.failed(error, status=200)
            await end(encoder.failed(error))
        finally:
            generation.close()
    except asyncio.CancelledError:
        reason = stream.reason or Cancelled("The stream was cancelled.")
        record.failed(reason, status=200)
        await end(encoder.cancelled(reason))


async def _append(
    event_log: EventLog, encoder: LogEncoder, batch: list[Chunk], generation: Generation
) -> None:
    """Append a batch's events; a chunk that cannot be encoded (nested too deeply) or
    translated ends the stream after the events before it, and counts against the provider."""
    events, error = encoder.chunks(batch)
    if events:
        await event_log.append(events)
    if error is not None:
        generation.fault(error)
        raise error
