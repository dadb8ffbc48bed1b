"""The streams-sustained ramp: concurrent 64 x 20 ms streams, level after level, until one stalls.

At each level N, N connections are opened first, then each runs streams back to back (starts
staggered over one stream's length) until the level's hold time is over. A level is held when
every stream of it arrived whole, with no error and no stall: no gap over ``stall_ms`` between
two reads of a stream, and no first byte later than the upstream's ``first_ms`` + ``stall_ms``.
From the start level the ramp goes up while levels are held, or down until one is; it stops
when the next level would exceed its time budget.

The client is lean so that it measures the target, not itself: a raw ``asyncio.Protocol`` per
connection (no task woken per chunk), one pre-encoded request, one clock read per read; the
answer is checked whole once it has ended (dechunked, every SSE event parsed, the content
exactly the upstream's pieces, ``[DONE]`` last). Its own CPU per chunk is reported beside the
target's and the upstream's.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from itertools import pairwise
from urllib.parse import urlsplit

import orjson

from bench.figures import Report
from bench.load import chat_body
from bench.procs import Child, CpuSample, self_cpu, tree_cpu
from bench.report import percentile
from bench.shape import Shape, content_pieces

SHAPE = Shape(64, 20, 20, 8)
_SAMPLES = 5


@dataclass(frozen=True)
class RampSettings:
    """The levels tried (from ``start`` up while held; down from it if ``start`` is not held),
    how long each must hold, the stall threshold, one target's time budget."""

    levels: tuple[int, ...]
    start: int
    hold_s: float
    stall_ms: float
    budget_s: float
    shape: Shape = SHAPE


# Two targets (floor, gateway) ramped one after the other: at most 4 levels of 20 s each.
FULL = RampSettings((32, 64, 128, 256, 384, 512), 256, 20.0, 100.0, 90.0)
# The quick run (tests): tiny levels, streams of 8 deltas, a short hold.
QUICK = RampSettings((2, 4), 2, 0.5, 100.0, 20.0, Shape(8, 20, 20, 8))


@dataclass
class LevelResult:
    """What one level saw."""

    ok: int = 0
    chunks: int = 0
    stalls: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    samples: list[str] = field(default_factory=list)
    ttft: list[float] = field(default_factory=list)
    gaps: list[float] = field(default_factory=list)

    def fail(self, kind: str, detail: str) -> None:
        """Count one failed stream and keep a few messages."""
        self.errors[kind] += 1
        if len(self.samples) < _SAMPLES:
            self.samples.append(f"{kind}: {detail}"[:300])


class StreamError(Exception):
    """A stream whose answer broke the contract; ``kind`` names the check."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind


def dechunk(raw: bytes) -> bytes:
    """The body of a complete chunked transfer encoding (raises StreamError if malformed)."""
    body = bytearray()
    pos = 0
    while True:
        eol = raw.find(b"\r\n", pos)
        try:
            size = int(raw[pos:eol].split(b";")[0], 16)
        except ValueError as exc:
            raise StreamError("chunked", f"bad chunk size at {pos}") from exc
        if size == 0:
            return bytes(body)
        body += raw[eol + 2 : eol + 2 + size]
        if raw[eol + 2 + size : eol + 4 + size] != b"\r\n":
            raise StreamError("chunked", f"chunk at {pos} not followed by CRLF")
        pos = eol + 4 + size


def check_body(body: bytes, model: str, expected: tuple[str, ...]) -> int:
    """Check one whole chat stream's SSE body; return its number of chunks."""
    events = [e for e in body.replace(b"\r\n", b"\n").split(b"\n\n") if e.strip()]
    if not events or events[-1] != b"data: [DONE]":
        raise StreamError("no_done", f"{len(events)} events, the last not [DONE]")
    pieces = []
    for event in events[:-1]:
        if not event.startswith(b"data: "):
            raise StreamError("sse_framing", f"event {event[:60]!r}")
        try:
            chunk = orjson.loads(event[6:])
            choice = chunk["choices"][0]
        except (orjson.JSONDecodeError, KeyError, IndexError, TypeError) as exc:
            raise StreamError("bad_json", f"{exc!r}: {event[:80]!r}") from exc
        if chunk.get("model") != model:
            raise StreamError("wrong_model", f"model={chunk.get('model')!r}")
        content = (choice.get("delta") or {}).get("content")
        if content:
            pieces.append(content)
    if pieces != list(expected):
        raise StreamError("content", f"{len(pieces)} pieces, not the {len(expected)} expected")
    return len(events) - 1


def request_bytes(url: str, model: str) -> bytes:
    """The pre-encoded streamed chat request sent on every stream."""
    parts = urlsplit(url)
    body = chat_body(model, True)
    head = (
        f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def head_problem(head: bytes) -> StreamError | None:
    """What is wrong with a response head for a stream: not 200, or not chunked."""
    status = head.split(b" ", 2)[1] if head.count(b" ") >= 2 else b"?"
    if status != b"200":
        return StreamError(f"http_{status.decode(errors='replace')}", head[:200].decode("latin-1"))
    if b"transfer-encoding: chunked" not in head.lower():
        return StreamError("not_chunked", head[:200].decode("latin-1"))
    return None


class Connection(asyncio.Protocol):
    """One keep-alive connection reading one chunked answer at a time.

    Bytes are taken in ``data_received``: a read costs one callback and one clock read, with no
    task woken per chunk; the waiting worker is woken once, when the answer has ended.
    """

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.raw = bytearray()
        self.times: list[float] = []
        self._head = bytearray()
        self._in_body = False
        self._done: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Keep the transport."""
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        """Fail the answer being read, if any."""
        self.transport = None
        if self._done is not None and not self._done.done():
            closed = StreamError("closed", f"connection closed after {len(self.raw)} bytes")
            self._done.set_exception(closed)

    def ask(self, request: bytes) -> asyncio.Future[None]:
        """Send ``request``; the future is done when the whole answer has arrived."""
        self.raw = bytearray()
        self.times = []
        self._head = bytearray()
        self._in_body = False
        self._done = asyncio.get_running_loop().create_future()
        if self.transport is None:
            self._done.set_exception(StreamError("closed", "connection closed before a request"))
        else:
            self.transport.write(request)
        return self._done

    def data_received(self, data: bytes) -> None:
        """Record the time of each read of the body; end the answer at the last chunk."""
        now = time.perf_counter()
        done = self._done
        if done is None or done.done():
            return
        if not self._in_body:
            self._head += data
            end = self._head.find(b"\r\n\r\n")
            if end < 0:
                return
            self._in_body = True
            problem = head_problem(bytes(self._head[: end + 4]))
            if problem is not None:
                done.set_exception(problem)
                return
            data = bytes(self._head[end + 4 :])
            if not data:
                return
        self.times.append(now)
        self.raw += data
        if self.raw.endswith(b"\r\n0\r\n\r\n") or self.raw == b"0\r\n\r\n":
            done.set_result(None)


async def _worker(
    url: str, delay: float, until: float, settings: RampSettings, result: LevelResult
) -> None:
    """One connection running streams back to back until ``until``."""
    parts = urlsplit(url)
    request = request_bytes(url, settings.shape.model)
    expected = content_pieces(settings.shape)
    first_limit = (settings.shape.first_ms + settings.stall_ms) / 1000
    stall = settings.stall_ms / 1000
    loop = asyncio.get_running_loop()
    try:
        transport, conn = await loop.create_connection(
            Connection, parts.hostname or "127.0.0.1", parts.port or 80
        )
    except OSError as exc:
        result.fail("connect", repr(exc))
        return
    try:
        await asyncio.sleep(delay)
        while time.perf_counter() < until:
            start = time.perf_counter()
            try:
                async with asyncio.timeout(30):
                    await conn.ask(request)
                body = dechunk(bytes(conn.raw))
                result.chunks += check_body(body, settings.shape.model, expected)
            except StreamError as exc:
                result.fail(exc.kind, str(exc))
                return
            except (OSError, TimeoutError) as exc:
                result.fail(type(exc).__name__, repr(exc))
                return
            result.ok += 1
            times = conn.times
            gaps = [b - a for a, b in pairwise(times)]
            ttft = times[0] - start
            result.ttft.append(ttft)
            result.gaps.extend(gaps)
            if ttft > first_limit or any(gap > stall for gap in gaps):
                result.stalls += 1
    finally:
        transport.close()


def _ms(values: list[float], q: float) -> float | None:
    value = percentile(values, q)
    return None if value is None else value * 1000


async def run_level(
    url: str, level: int, settings: RampSettings, watched: dict[str, Child]
) -> Report:
    """Hold ``level`` concurrent streams for ``settings.hold_s``; its figures."""
    result = LevelResult()
    stream_s = (settings.shape.first_ms + settings.shape.delay_ms * settings.shape.chunks) / 1000
    before = {name: tree_cpu(child.proc.pid) for name, child in watched.items()}
    before["client"] = self_cpu()
    until = time.perf_counter() + settings.hold_s
    workers = [_worker(url, stream_s * i / level, until, settings, result) for i in range(level)]
    await asyncio.gather(*workers)
    cpu: dict[str, CpuSample] = {n: tree_cpu(c.proc.pid) - before[n] for n, c in watched.items()}
    cpu["client"] = self_cpu() - before["client"]
    for child in watched.values():
        if child.proc.poll() is not None:
            result.fail("process_died", f"{child.name} exited with {child.proc.returncode}")
    errors = sum(result.errors.values())
    return {
        "level": level,
        "held": errors == 0 and result.stalls == 0 and result.ok > 0,
        "streams_ok": result.ok,
        "stalls": result.stalls,
        "errors": errors,
        "error_kinds": dict(result.errors),
        "error_samples": result.samples,
        "chunks": result.chunks,
        "ttft_ms_p99": _ms(result.ttft, 99),
        "gap_ms_p99": _ms(result.gaps, 99),
        "gap_ms_max": max(result.gaps) * 1000 if result.gaps else None,
        "cpu_us_per_chunk": {
            name: sample.precise / result.chunks * 1e6 if result.chunks else None
            for name, sample in cpu.items()
        },
    }


async def ramp(url: str, settings: RampSettings, watched: dict[str, Child]) -> Report:
    """From the start level up until one is not held, or down until one is, within the budget;
    the highest level held."""
    began = time.perf_counter()
    levels: list[Report] = []
    stopped = "all levels held"
    first = settings.levels.index(settings.start)
    up = list(settings.levels[first:])
    down = list(reversed(settings.levels[:first]))
    order = up
    while order:
        level = order.pop(0)
        if time.perf_counter() - began + settings.hold_s > settings.budget_s:
            stopped = f"time budget of {settings.budget_s:g} s reached before {level}"
            break
        figures = await run_level(url, level, settings, watched)
        levels.append(figures)
        if figures["held"] and order is down:
            stopped = f"level {level} held, the next one up was not"
            break
        if not figures["held"] and order is up:
            stopped = f"level {level} not held"
            if level != settings.start:
                break
            order = down
    else:
        if order is down and levels and not levels[-1]["held"]:
            stopped = "no level held"
    held = [f["level"] for f in levels if f["held"]]
    return {
        "sustained": max(held, default=0),
        "stopped": stopped,
        "levels": levels,
        "wall_s": time.perf_counter() - began,
    }
