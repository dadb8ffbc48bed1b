"""Chunks -> the client's socket as SSE: heartbeats, disconnect -> cancel, the final event.

What each batch becomes is the client-facing API's (a `StreamEncoder` from llms/api/): for chat
completions, default mode bytes are exactly `data: <json>\\n\\n` events, `: keep-alive\\n\\n`
comments and `data: [DONE]\\n\\n`. Headers go out with the first chunk, or with the first
heartbeat if the upstream is slow to commit, so an error known before then is still a plain HTTP
error.

A client that reads too slowly holds at most `server.client_buffer_kb` of unsent output: past
it writes wait, and a write that waits `server.slow_client_s` ends that client's stream (an error
event, best effort, then its connection is closed) and, in default mode, closes the upstream.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, NoReturn, Protocol

import orjson
from aiohttp import hdrs, web
from aiohttp.web_protocol import RequestHandler
from multidict import istr

from llms.api.chat import CHAT, DONE, StreamEncoder, error_event
from llms.chunks import StreamMeta
from llms.deadlines import Entry, deadlines
from llms.errors import GatewayError, ServiceUnavailable, UpstreamMalformed
from llms.generation import Generation
from llms.native import NativeRoute, NativeStream
from llms.routing import Router
from llms.server import keys
from llms.server.slow import GOODBYE_S, WRITE_SLICE, SlowClient, bound_buffers, reset, slices
from llms.streams.log import TERMINAL, Event
from llms.streams.pump import Stream
from llms.telemetry.record import RequestRecord
from llms.wire import ChatRequest, Chunk

log = logging.getLogger("llms.relay")

KEEPALIVE = b": keep-alive\n\n"
# Header names are `istr`s: a plain str name costs each response's header dict one more object
# (~110 B, kept while the stream is open) once aiohttp serialises the headers.
X_STREAM_ID = istr("X-Stream-Id")
X_HEARTBEAT_INTERVAL = istr("X-Heartbeat-Interval")
X_PROVIDER = istr("X-Provider")
STREAM_HEADERS: dict[str, str] = {
    hdrs.CONTENT_TYPE: "text/event-stream",
    hdrs.CACHE_CONTROL: "no-cache",
    istr("X-Accel-Buffering"): "no",
}
_INTERVALS: dict[float, str] = {}


def stream_headers(stream_id: str, heartbeat_s: float) -> dict[str, str]:
    """A stream's response headers; the heartbeat interval's text is shared between streams."""
    interval = _INTERVALS.get(heartbeat_s)
    if interval is None:
        interval = _INTERVALS.setdefault(heartbeat_s, f"{heartbeat_s:g}")
    headers = dict(STREAM_HEADERS)
    headers[X_STREAM_ID] = stream_id
    headers[X_HEARTBEAT_INTERVAL] = interval  # the web UI's watchdog reads it
    return headers


async def write_encodable(
    write: Callable[[bytes], Awaitable[None]],
    batch: list[Chunk],
    generation: Generation,
    encoder: StreamEncoder,
) -> NoReturn:
    """After `encoder.chunks(batch)` failed: write the chunks before the one that cannot be
    encoded, then raise its UpstreamMalformed (which counts against the provider)."""
    parts: list[bytes] = []
    for item in batch:
        try:
            parts.append(encoder.chunks([item]))
        except orjson.JSONEncodeError:
            break
    if parts:
        await write(b"".join(parts))
    error = UpstreamMalformed("The upstream sent a chunk the gateway cannot encode.")
    generation.fault(error)
    raise error


class _Translating(Protocol):
    """An encoder's builder that translates chunks into another API's events (Responses,
    Messages): `failure` is set when a chunk cannot be translated (its events then end with the
    API's failure event)."""

    failure: UpstreamMalformed | None


def internal_error() -> GatewayError:
    return GatewayError("The gateway failed while relaying this answer.", code="internal_error")


class ClientStream:
    """One SSE response: writes, and a heartbeat when nothing was written for `interval` s.

    The heartbeat also starts the response if nothing else has, and a failed heartbeat write
    cancels the owning task, so a client that left during a silent upstream is noticed.
    """

    __slots__ = (
        "_beat",
        "_buffer",
        "_deadlines",
        "_heartbeat",
        "_interval",
        "_loop",
        "_owner",
        "_protocol",
        "_request",
        "_slow_s",
        "_started",
        "_writing",
        "closed",
        "deadline",
        "last_write",
        "response",
    )

    def __init__(
        self,
        request: web.Request,
        headers: dict[str, str],
        interval: float,
        heartbeat: bytes = KEEPALIVE,
    ) -> None:
        self._heartbeat = heartbeat
        self._loop = asyncio.get_running_loop()
        self._request = request
        self._owner = asyncio.current_task()
        self._interval = interval
        server = request.app[keys.CONFIG].server
        self._slow_s = server.slow_client_s
        self._buffer = int(server.client_buffer_kb * 1024)
        self._writing = 0
        # None, then the start's future while it runs, then True: no future kept once started.
        self._started: asyncio.Future[None] | bool | None = None
        # The connection's protocol once started (`write`'s fast path), else None.
        self._protocol: RequestHandler | None = None
        self._beat: asyncio.Task[None] | None = None
        self.response = web.StreamResponse(status=200, headers=headers)
        self.closed = False
        self.last_write = self._loop.time()
        # The keep-alive's deadline: an entry of the loop's one timer (llms/deadlines.py).
        self.deadline: Entry | None = None
        self._deadlines = deadlines()
        self._deadlines.at(self.last_write + interval, self)

    @property
    def started(self) -> bool:
        return self._started is not None

    async def start(self) -> None:
        started = self._started
        if started is True:
            return
        if started is None:
            started = self._started = self._loop.create_future()
            try:
                await self.response.prepare(self._request)
            except BaseException as exc:
                started.set_exception(ConnectionResetError("client gone"))
                started.exception()  # retrieved here, so asyncio does not warn about it
                raise exc from None
            transport = self._request.transport
            if transport is not None:
                bound_buffers(transport, self._buffer)
            started.set_result(None)
            self._started = True
            self._protocol = self._request.protocol
        elif isinstance(started, asyncio.Future) and not started.done():
            await asyncio.shield(started)

    def write(self, data: bytes) -> Coroutine[Any, Any, None]:
        """Write, waiting while the client is behind; raises SlowClient after `slow_client_s`.

        The stream's hot path: once started, a write under the bound (it cannot wait for the
        client) is the response's own write, returned to be awaited, with no coroutine of its
        own (callgrind: ~4.5k instructions a paced chunk)."""
        protocol = self._protocol
        if protocol is not None:
            transport = protocol.transport
            if transport is None or (
                not protocol.writing_paused
                and transport.get_write_buffer_size() + len(data) <= self._buffer
            ):
                self.last_write = self._loop.time()  # it cannot wait: written when awaited
                return self.response.write(data)
        return self._write(data)

    async def _write(self, data: bytes) -> None:
        if self._started is not True:
            await self.start()
        transport = self._request.transport
        self._writing += 1
        try:
            if transport is None or (
                not self._request.protocol.writing_paused
                and transport.get_write_buffer_size() + len(data) <= self._buffer
            ):
                await self.response.write(data)  # under the bound: this cannot wait for the client
            else:
                try:
                    async with asyncio.timeout(self._slow_s):
                        await self.response.write(data)
                except TimeoutError:
                    raise SlowClient(
                        f"The client read too slowly: over {self._buffer // 1024} KiB waited for "
                        f"it for {self._slow_s:g} s, so its stream was ended."
                    ) from None
        finally:
            self._writing -= 1
        self.last_write = self._loop.time()

    def due(self) -> None:
        """The keep-alive's deadline came: a heartbeat if nothing was written since."""
        if self.closed:
            return
        due = self.last_write + self._interval
        if self._writing:
            # A write still waiting for the client says more than a keep-alive would.
            due = max(due, self._loop.time() + self._interval)
        if self._loop.time() < due:
            self._deadlines.at(due, self)
        elif self._beat is None:
            self._beat = self._loop.create_task(self._send_keepalive())

    async def _send_keepalive(self) -> None:
        try:
            await self.write(self._heartbeat)
        except (ConnectionResetError, RuntimeError, SlowClient) as exc:
            # The client left (or stopped reading) while the upstream is silent: stop the
            # generation now.
            transport = self._request.transport
            if isinstance(exc, SlowClient) and transport is not None:
                reset(transport)
            if not self.closed and self._owner is not None:
                self._owner.cancel()
            self.closed = True
        finally:
            self._beat = None
            if not self.closed:
                self._deadlines.at(self.last_write + self._interval, self)

    def close(self) -> None:
        self.closed = True
        self._deadlines.cancel(self)
        if self._beat is not None:
            self._beat.cancel()

    async def finish(self) -> None:
        self.close()
        if self.started:
            await self.response.write_eof()

    async def cut_off(self, final: bytes) -> None:
        """End a slow client's stream: its last event behind the unsent output, then close.

        The event is queued, never waited for: the write that timed out left the response's
        writer below its 64 KiB drain mark (and its drain waiter cancelled, so no later write
        on this connection may wait). A client still reading gets it within GOODBYE_S.
        """
        self.close()
        transport = self._request.transport
        if transport is None:
            return
        with contextlib.suppress(ConnectionResetError, RuntimeError):
            await self.response.write(final)
        transport.close()
        # close() waits for the unsent output, which a client that reads nothing never takes.
        self._loop.call_later(GOODBYE_S, reset, transport)


async def relay(
    request: web.Request,
    router: Router,
    chat: ChatRequest,
    meta: StreamMeta,
    *,
    include_usage: bool,
    heartbeat_s: float,
    shutting_down: asyncio.Event,
    record: RequestRecord,
    encoder: StreamEncoder = CHAT,
    on_end: Callable[[], Awaitable[None]] | None = None,
    native: NativeRoute | None = None,
) -> web.StreamResponse:
    """Run one streaming request. Errors before anything was sent propagate as HTTP errors.

    `encoder` makes the client-facing API's events; `on_end` runs before the body ends (the
    Responses API stores its response there, so a client that reads to the end finds it).
    `native`: the client's request for upstreams that speak its API (llms/native.py); an
    attempt that commits natively is written by `NativeStream` instead of `encoder`.
    """
    # The API's own heartbeat (Messages: `event: ping`), else a `: keep-alive` comment. The
    # headers' dict is not kept in this frame: the response has its own copy.
    heartbeat = getattr(encoder, "heartbeat", KEEPALIVE)
    out = ClientStream(request, stream_headers(meta.id, heartbeat_s), heartbeat_s, heartbeat)
    end = _Ending(out, encoder, on_end)
    try:
        try:
            generation = await router.open(chat, meta, include_usage, record=record, native=native)
        except GatewayError as error:
            record.failed(error, status=200 if out.started else None)
            if not out.started:
                raise
            return await end.failed(error)
        except asyncio.CancelledError:
            if not shutting_down.is_set():
                record.disconnected = True
                raise
            uncancel()
            shutdown = ServiceUnavailable("The gateway shut down before the answer started.")
            record.failed(shutdown, status=200 if out.started else None)
            if not out.started:
                raise shutdown from None
            return await end.failed(shutdown)
        except Exception:
            # A bug (in an adapter's request builder, its error mapping…): logged, and the
            # client still gets an answer; once a heartbeat started the response, an error
            # event and [DONE], never silence.
            log.exception("stream %s: opening the upstream failed", meta.id)
            broken = internal_error()
            record.failed(broken, status=200 if out.started else None)
            if not out.started:
                raise broken from None
            return await end.failed(broken)
        # The pump, here rather than in a coroutine of its own: an idle stream keeps one frame
        # fewer (~0.3 KiB). Each batch of the committed generation (which keeps the record's
        # chunks, first output, usage and finish reason) is written; the stream ends as it ended.
        failure: GatewayError | None = None
        passing = generation.native
        if passing is not None:
            # Chosen now that the attempt committed: the upstream's own events, written as they are.
            passing.committed()
            end.encoder = NativeStream(passing)
        encoder = end.encoder
        try:
            if not out.started:
                out.response.headers[X_PROVIDER] = generation.provider.name
            # Chat completions' and native encoders write chunks as they are: nothing to check.
            builder: _Translating | None = getattr(encoder, "builder", None)
            async for batch in generation:
                try:
                    data = encoder.chunks(batch)
                except orjson.JSONEncodeError:
                    await write_encodable(out.write, batch, generation, encoder)
                await out.write(data)
                if builder is not None and builder.failure is not None:
                    # A chunk the API cannot take: its failure event is written; the upstream is
                    # closed now (finally, below), not read to its end, and it counts against the
                    # provider, as in resumable mode (streams/pump.py).
                    generation.fault(builder.failure)
                    raise builder.failure
                # Nothing parsed, encoded or bound is kept while the upstream is silent: an idle
                # stream stays small (the last batch's bytes were ~0.6 KiB per idle stream; an
                # empty list in their place, or `out.write` and `encoder.chunks` bound once
                # for the loop, 64 B each).
                del batch, data
        except SlowClient as slow:
            log.warning("stream %s: %s", meta.id, slow.message)
            record.failed(slow, status=200)
            generation.close()  # the upstream first: the goodbye may take a moment
            await out.cut_off(encoder.failed(slow))
            return out.response
        except GatewayError as error:
            log.warning("stream %s failed after it started: %s", meta.id, error.message)
            record.failed(error, status=200)
            failure = error
        except ConnectionResetError:
            log.info("stream %s: the client disconnected", meta.id)
            record.disconnected = True
            return out.response
        except Exception:
            # A bug (an upstream shape nobody foresaw…): logged, and the client still gets an end.
            log.exception("stream %s: relaying failed", meta.id)
            failure = internal_error()
            record.failed(failure, status=200)
        except asyncio.CancelledError:
            if not shutting_down.is_set():
                log.info("stream %s: the client disconnected", meta.id)
                record.disconnected = True
                raise
            uncancel()
            failure = ServiceUnavailable("The gateway shut down before the answer ended.")
            record.failed(failure, status=200)
        finally:
            generation.close()
        if failure is not None:
            return await end.failed(failure)
        return await end.done()
    finally:
        out.close()


def uncancel() -> None:
    """Undo the shutdown's cancellation of this task, so it can still answer."""
    task = asyncio.current_task()
    if task is not None:
        task.uncancel()


class _Ending:
    """How one default-mode stream ends: its API's final events, the `on_end` hook, the EOF."""

    __slots__ = ("encoder", "on_end", "out")

    def __init__(
        self,
        out: ClientStream,
        encoder: StreamEncoder,
        on_end: Callable[[], Awaitable[None]] | None,
    ) -> None:
        self.out = out
        self.encoder = encoder
        self.on_end = on_end

    async def done(self) -> web.StreamResponse:
        return await self._end(self.encoder.done())

    async def failed(self, error: GatewayError) -> web.StreamResponse:
        return await self._end(self.encoder.failed(error))

    async def _end(self, final: bytes) -> web.StreamResponse:
        out = self.out
        if self.on_end is not None:
            try:
                await self.on_end()
            except Exception:
                log.exception("finishing the stream's bookkeeping failed")
        return await _end(out, final)


async def _end(out: ClientStream, final: bytes) -> web.StreamResponse:
    """Write the last event and end the body; a client that already left is not an error."""
    try:
        if final:  # empty after a failure the encoder already wrote
            await out.write(final)
        await out.finish()
    except (ConnectionResetError, RuntimeError):
        log.info("the client left before the end of its stream")
    return out.response


async def relay_log(
    request: web.Request, stream: Stream, after: int, *, heartbeat_s: float
) -> web.StreamResponse:
    """Resumable mode: replay the stream's events after `after`, then follow it to the end.

    Each event carries `id: <seq>`; leaving does not stop the generation (the pump's grace does).
    """
    out = ClientStream(request, stream_headers(stream.id, heartbeat_s), heartbeat_s)
    stream.attach()
    seq = after
    try:
        while events := await stream.log.read(seq, cursor=out):
            failed = events[-1] if events[-1].kind == "fail" else None
            if failed is not None:
                if not out.started and len(events) == 1:
                    raise failure_of(failed.data)
                events = events[:-1]
            if not out.started and stream.provider is not None:
                out.response.headers[X_PROVIDER] = stream.provider
            for piece in slices(events, WRITE_SLICE):
                await out.write(b"".join([event.to_wire() for event in piece]))
                seq = piece[-1].seq
            if failed is not None:
                await out.write(failure_event(failed))
                seq = failed.seq
                break
            if events[-1].kind in TERMINAL:
                break
        await out.finish()
    except SlowClient as slow:
        # This reader only: the generation goes on for the others (and the resume grace).
        log.warning("stream %s: a reader after event %d: %s", stream.id, seq, slow.message)
        await out.cut_off(error_event(slow))
    except GatewayError as error:
        if not out.started:
            raise
        # The log itself failed (Redis unreachable…): the reader still gets an honest end.
        log.warning("stream %s: reading its events failed: %s", stream.id, error.message)
        return await _end(out, error_event(error))
    except ConnectionResetError:
        log.info("stream %s: a reader left after event %d", stream.id, seq)
    except Exception:
        log.exception("stream %s: relaying its events failed", stream.id)
        if not out.started:
            raise internal_error() from None
        return await _end(out, error_event(internal_error()))
    finally:
        out.close()
        stream.log.forget(out)
        stream.detach()
    return out.response


def failure_event(event: Event) -> bytes:
    """A `fail` event (a failure before any output) for a reader whose response a heartbeat
    already started: the in-band error with the status error's type and code, then [DONE]."""
    body = orjson.dumps(failure_of(event.data).to_body())
    return b"id: %d\ndata: %b\n\n" % (event.seq, body) + DONE


def failure_of(data: bytes) -> GatewayError:
    """The pre-output failure a `fail` event recorded, as an error to answer with."""
    failure = orjson.loads(data)
    body = failure["body"]["error"]
    error = GatewayError(
        body["message"], param=body.get("param"), code=body.get("code"), headers=failure["headers"]
    )
    error.status = failure["status"]
    error.type = body["type"]
    return error
