"""The load generator: bounded concurrent requests, every answer checked, timings recorded.

Streams are read with the benchmark's own SSE parser (bench.sse). In resumable mode
(``X-Stream-Resumable: true``) every event must also carry ``id: <seq>``, numbered 1, 2, 3...
without gap or repeat, and status events (``event: status``) are counted but not checked as chunks.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

from bench.sse import SSEEvent, SSEParser

__all__ = ["Failure", "LoadClient", "LoadResult", "LoadSpec", "SSEParser"]

_SAMPLES = 10


@dataclass(frozen=True)
class LoadSpec:
    """One load run: what to ask, how much, how hard and for how long at most."""

    url: str
    model: str
    stream: bool
    requests: int
    concurrency: int
    max_seconds: float
    warmup: int = 0
    resumable: bool = False
    # One answer may take this long at most: heartbeats can keep a stuck stream open forever.
    request_timeout_s: float = 30.0
    # The measured run's clients start this far apart (client i after i x stagger_s), so that
    # concurrent streams do not all begin, and tick, at the same instant; the warm-up does not wait.
    stagger_s: float = 0.0


@dataclass
class LoadResult:
    """What one load run saw. Times are seconds; every failed request is in ``errors``."""

    ok: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    samples: list[str] = field(default_factory=list)
    ttft: list[float] = field(default_factory=list)
    gaps: list[float] = field(default_factory=list)
    totals: list[float] = field(default_factory=list)
    chunks: int = 0
    content_chunks: int = 0
    events: int = 0
    status_events: int = 0
    bytes_received: int = 0
    wall_s: float = 0.0
    capped: bool = False

    def fail(self, kind: str, detail: str) -> None:
        """Count one failed request and keep a few messages."""
        self.errors[kind] += 1
        if len(self.samples) < _SAMPLES:
            self.samples.append(f"{kind}: {detail}"[:300])


class Failure(Exception):
    """A request whose answer broke the contract; ``kind`` names the check."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind


@dataclass
class Stream:
    """Per-request bookkeeping while a streamed answer is read."""

    first_byte: float = 0.0
    pieces: list[str] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    events: int = 0
    statuses: int = 0
    chunks: int = 0
    roles: int = 0
    finishes: list[str] = field(default_factory=list)
    done: bool = False


def _check_chunk(data: bytes, now: float, model: str, state: Stream) -> None:
    """Apply one SSE data payload to ``state``; raise Failure if it breaks the contract."""
    if state.done:
        raise Failure("after_done", f"event after [DONE]: {data[:80]!r}")
    if data == b"[DONE]":
        state.done = True
        return
    try:
        chunk = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise Failure("bad_json", f"{exc}: {data[:80]!r}") from exc
    if not isinstance(chunk, dict):
        raise Failure("bad_json", f"not an object: {data[:80]!r}")
    if "error" in chunk:
        raise Failure("error_event", orjson.dumps(chunk["error"]).decode())
    if chunk.get("object") != "chat.completion.chunk":
        raise Failure("wrong_object", f"object={chunk.get('object')!r}")
    if chunk.get("model") != model:
        raise Failure("wrong_model", f"model={chunk.get('model')!r}, asked {model!r}")
    choices = chunk.get("choices")
    if not choices:
        # The usage chunk is for clients that asked for it; this client never does.
        raise Failure("unexpected_usage", f"chunk without choices: {data[:120]!r}")
    state.chunks += 1
    choice = choices[0]
    delta = choice.get("delta") or {}
    if delta.get("role") is not None:
        state.roles += 1
    content = delta.get("content")
    if content:
        state.pieces.append(content)
        state.times.append(now)
    if choice.get("finish_reason") is not None:
        state.finishes.append(choice["finish_reason"])


def _check_id(event: SSEEvent, state: Stream) -> None:
    """Resumable mode: the event's id must be the next number (1 for the first event)."""
    expected = state.events
    if event.id is None or not event.id.isdigit():
        raise Failure("event_id", f"event {expected} has id {event.id!r}: {event.data[:60]!r}")
    if int(event.id) != expected:
        raise Failure("event_id", f"event {expected} has id {int(event.id)}: ids not contiguous")


async def read_stream(
    resp: aiohttp.ClientResponse,
    model: str,
    expected: tuple[str, ...],
    start: float,
    resumable: bool,
    keep: list[SSEEvent] | None = None,
) -> tuple[Stream, int]:
    """Read and check one streamed answer; return its bookkeeping and its size in bytes.

    Times are seconds since ``start``; every event is also appended to ``keep`` if given.
    """
    if resp.content_type != "text/event-stream":
        raise Failure("content_type", f"Content-Type {resp.content_type!r}")
    if resp.headers.get("Content-Encoding", "identity") != "identity":
        raise Failure("compressed", f"Content-Encoding {resp.headers['Content-Encoding']!r}")
    if resumable and not resp.headers.get("X-Stream-Id"):
        raise Failure("no_stream_id", "resumable stream without an X-Stream-Id header")
    parser = SSEParser(resumable)
    state = Stream()
    size = 0
    async for data in resp.content.iter_any():
        now = time.perf_counter() - start
        if not size:
            state.first_byte = now
        size += len(data)
        events = parser.feed(data)
        if parser.problems:
            # Before the events are checked, so a forbidden field is reported as what it is.
            raise Failure("sse_framing", "; ".join(parser.problems[:3]))
        for event in events:
            if keep is not None:
                keep.append(event)
            state.events += 1
            if resumable:
                _check_id(event, state)
                if event.event is not None:
                    # `event: status` (retrying, falling back): not a chunk, but it takes an id.
                    state.statuses += 1
                    continue
            _check_chunk(event.data, now, model, state)
    parser.close()
    if parser.problems:
        raise Failure("sse_framing", "; ".join(parser.problems[:3]))
    if not state.done:
        raise Failure("no_done", f"stream ended without [DONE] after {len(state.pieces)} chunks")
    if len(state.pieces) != len(expected):
        raise Failure(
            "chunk_count", f"{len(state.pieces)} content chunks, expected {len(expected)}"
        )
    if "".join(state.pieces) != "".join(expected):
        first_bad = next(
            (i for i, (a, b) in enumerate(zip(state.pieces, expected, strict=True)) if a != b), -1
        )
        raise Failure("content", f"content differs from chunk {first_bad}")
    if state.roles != 1 or state.finishes != ["stop"]:
        raise Failure("shape", f"{state.roles} role deltas, finish reasons {state.finishes}")
    return state, size


async def _read_completion(
    resp: aiohttp.ClientResponse, model: str, expected: tuple[str, ...]
) -> int:
    """Read and check one non-streamed answer; return its size in bytes."""
    if resp.content_type != "application/json":
        raise Failure("content_type", f"Content-Type {resp.content_type!r}")
    body = await resp.read()
    try:
        answer: Any = orjson.loads(body)
        choice = answer["choices"][0]
        message = choice["message"]
    except (orjson.JSONDecodeError, KeyError, IndexError, TypeError) as exc:
        raise Failure("bad_json", f"{exc!r}: {body[:120]!r}") from exc
    if answer.get("object") != "chat.completion" or answer.get("model") != model:
        raise Failure(
            "wrong_object", f"object={answer.get('object')!r} model={answer.get('model')!r}"
        )
    if message.get("role") != "assistant" or message.get("content") != "".join(expected):
        raise Failure("content", f"message differs: {str(message)[:120]}")
    if choice.get("finish_reason") != "stop":
        raise Failure("shape", f"finish_reason={choice.get('finish_reason')!r}")
    if not isinstance(answer.get("usage"), dict):
        raise Failure("missing_usage", "chat.completion without usage")
    return len(body)


def chat_body(model: str, stream: bool) -> bytes:
    """The chat completion request every benchmark client sends."""
    return orjson.dumps(
        {
            "model": model,
            "messages": [{"role": "user", "content": "Say something for the benchmark."}],
            "stream": stream,
        }
    )


class LoadClient:
    """Runs a LoadSpec over one pooled aiohttp session; use as an async context manager."""

    def __init__(self, spec: LoadSpec, expected: tuple[str, ...]) -> None:
        self.spec = spec
        self.expected = expected
        self._body = chat_body(spec.model, spec.stream)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> LoadClient:
        connector = aiohttp.TCPConnector(limit=self.spec.concurrency, limit_per_host=0)
        timeout = aiohttp.ClientTimeout(
            total=self.spec.request_timeout_s, sock_connect=10, sock_read=60
        )
        self._session = aiohttp.ClientSession(connector=connector, timeout=timeout)
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._session is not None:
            await self._session.close()

    async def read_stream(self, resp: aiohttp.ClientResponse, start: float) -> tuple[Stream, int]:
        """Read and check one streamed answer (bench.native_load reads other protocols)."""
        return await read_stream(resp, self.spec.model, self.expected, start, self.spec.resumable)

    async def read_whole(self, resp: aiohttp.ClientResponse) -> int:
        """Read and check one non-streamed answer (bench.embeddings_load reads embeddings)."""
        return await _read_completion(resp, self.spec.model, self.expected)

    async def _one(self, result: LoadResult) -> None:
        """Send one request, check its answer and record it in ``result``."""
        assert self._session is not None
        start = time.perf_counter()
        headers = {"Content-Type": "application/json"}
        if self.spec.resumable:
            headers["X-Stream-Resumable"] = "true"
        try:
            async with self._session.post(self.spec.url, data=self._body, headers=headers) as resp:
                if resp.status != 200:
                    text = (await resp.read())[:200]
                    raise Failure(f"http_{resp.status}", text.decode("utf-8", "replace"))
                if self.spec.stream:
                    state, size = await self.read_stream(resp, start)
                else:
                    size = await self.read_whole(resp)
        except Failure as exc:
            result.fail(exc.kind, str(exc))
            return
        except TimeoutError:
            result.fail(
                "request_timeout", f"no complete answer within {self.spec.request_timeout_s:g} s"
            )
            return
        except Exception as exc:
            result.fail(type(exc).__name__, repr(exc))
            return
        result.totals.append(time.perf_counter() - start)
        result.bytes_received += size
        result.ok += 1
        if self.spec.stream:
            result.ttft.append(state.times[0])
            result.gaps.extend(b - a for a, b in zip(state.times, state.times[1:], strict=False))
            result.chunks += state.chunks
            result.content_chunks += len(state.pieces)
            result.events += state.events
            result.status_events += state.statuses

    async def _run(self, count: int, result: LoadResult, stagger_s: float = 0.0) -> None:
        """Run ``count`` requests, ``concurrency`` at a time (client i starting after i x
        ``stagger_s``), within the wall-clock cap."""
        started = 0
        finished = 0

        async def worker(index: int) -> None:
            """Take the next request number until all are taken."""
            nonlocal started, finished
            if index and stagger_s:
                await asyncio.sleep(index * stagger_s)
            while started < count:
                started += 1
                await self._one(result)
                finished += 1

        begin = time.perf_counter()
        clients = min(self.spec.concurrency, count)
        workers = [asyncio.create_task(worker(index)) for index in range(clients)]
        try:
            async with asyncio.timeout(self.spec.max_seconds):
                await asyncio.gather(*workers)
        except TimeoutError:
            result.capped = True
            cap = f"wall-clock cap of {self.spec.max_seconds:g} s reached"
            for _ in range(started - finished):
                result.fail("cap_in_flight", cap)
            for _ in range(count - started):
                result.fail("cap_not_started", cap)
        finally:
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
        result.wall_s = time.perf_counter() - begin

    async def warm(self) -> LoadResult:
        """Open connections and warm caches with ``spec.warmup`` requests (checked, not timed)."""
        result = LoadResult()
        if self.spec.warmup:
            await self._run(self.spec.warmup, result)
        return result

    async def run(self) -> LoadResult:
        """The measured run of ``spec.requests`` requests."""
        result = LoadResult()
        await self._run(self.spec.requests, result, self.spec.stagger_s)
        return result
