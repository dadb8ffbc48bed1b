"""Memory per open idle stream: N chat streams held open through the floor and the gateway.

Each target is a fresh process of its own (bench.floor, and ``llms serve --workers 1`` started
by bench.gateways), in front of the board's fake upstream, warmed with the same quick streams.
Then N connections each send one streamed chat request whose first delta comes at once and whose
second would come ten minutes later (``IDLE_SHAPE``): every stream is held open, its first
content event received and checked (status 200, chunked, the first piece exactly), and then
idle. Resident memory of the target's process tree (``Rss`` of ``/proc/<pid>/smaps_rollup``,
bench.gateways.tree_memory) is read just before the streams open and again once all are open
and have idled ``settle_s`` (past one heartbeat in the full run); per stream = the difference
/ N. The streams are then cut (the client closes), as a client that leaves would.

Called by bench.board; the figures go to ``report["board"]["idle"]``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import orjson

from bench.figures import Report
from bench.gateways import WARM_SHAPE, Gateways, tree_memory, warm
from bench.procs import Child, stop
from bench.ramp import StreamError, dechunk, head_problem, request_bytes
from bench.shape import Shape, content_pieces

# The first delta at once, the second ten minutes later: the stream is open and idle.
IDLE_SHAPE = Shape(2, 600_000, 0, 8)
_OPEN_AT_ONCE = 50


@dataclass(frozen=True)
class IdleSettings:
    """How many streams are held open, and how long they idle before memory is read."""

    streams: int
    settle_s: float


# 16 s: past the gateway's default 15 s heartbeat, so one keep-alive has gone out on each.
FULL = IdleSettings(400, 16.0)
QUICK = IdleSettings(16, 0.5)


class Held(asyncio.Protocol):
    """One connection holding one stream: ``first`` is done once its first content event came."""

    def __init__(self, expected: str) -> None:
        self.transport: asyncio.Transport | None = None
        self.first: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._expected = expected
        self._raw = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Keep the transport."""
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        """A stream closed before its first event is a failure."""
        self.transport = None
        self._fail(StreamError("closed", f"connection closed after {len(self._raw)} bytes"))

    def _fail(self, error: StreamError) -> None:
        if not self.first.done():
            self.first.set_exception(error)

    def data_received(self, data: bytes) -> None:
        """Until the first content event: keep the bytes, check the head, then that event."""
        if self.first.done():
            return  # idle now: keep-alives (and nothing else) are not kept
        self._raw += data
        end = self._raw.find(b"\r\n\r\n")
        if end < 0:
            return
        problem = head_problem(bytes(self._raw[: end + 4]))
        if problem is not None:
            self._fail(problem)
            return
        body = bytes(self._raw[end + 4 :])
        if body.endswith(b"\r\n0\r\n\r\n") or body == b"0\r\n\r\n":
            self._fail(StreamError("ended", "the answer ended before any content"))
            return
        # Whole chunks only: a chunk cut by the read is completed by the next one.
        cut = body.rfind(b"\r\n")
        try:
            text = dechunk(body[: cut + 2] + b"0\r\n\r\n") if cut >= 0 else b""
        except StreamError:
            return
        for event in text.split(b"\n\n"):
            if not event.startswith(b"data: "):
                continue
            delta = orjson.loads(event[6:])["choices"][0]["delta"]
            content = delta.get("content")
            if not content:
                continue  # the role's event (empty content) comes first
            if content != self._expected:
                self._fail(StreamError("content", f"first content {content!r}"))
            else:
                self.first.set_result(None)
                self._raw = bytearray()
            return


async def hold_streams(url: str, n: int) -> tuple[list[Held], list[str]]:
    """Open ``n`` streams (``_OPEN_AT_ONCE`` at a time) and wait for each one's first event;
    the open ones, and what went wrong with the others."""
    parts = urlsplit(url)
    request = request_bytes(url, IDLE_SHAPE.model)
    expected = content_pieces(IDLE_SHAPE)[0]
    loop = asyncio.get_running_loop()
    held: list[Held] = []
    errors: list[str] = []

    async def one() -> None:
        conn: Held | None = None
        try:
            _, conn = await loop.create_connection(
                lambda: Held(expected), parts.hostname or "127.0.0.1", parts.port or 80
            )
            assert conn.transport is not None
            conn.transport.write(request)
            async with asyncio.timeout(30):
                await conn.first
        except (OSError, TimeoutError, StreamError, ValueError, KeyError) as exc:
            kind = exc.kind if isinstance(exc, StreamError) else type(exc).__name__
            errors.append(f"{kind}: {exc}")
            if conn is not None and conn.transport is not None:
                conn.transport.close()  # a failed stream is not held
            return
        held.append(conn)

    for start in range(0, n, _OPEN_AT_ONCE):
        await asyncio.gather(*(one() for _ in range(min(_OPEN_AT_ONCE, n - start))))
    return held, errors


async def measure(name: str, target: Child, s: IdleSettings) -> Report:
    """RSS of ``target`` before and while ``s.streams`` idle streams are open through it."""
    before = tree_memory(target.proc.pid)
    held, errors = await hold_streams(f"{target.base_url}/v1/chat/completions", s.streams)
    await asyncio.sleep(s.settle_s)
    errors += [f"closed while idle: {c.first}" for c in held if c.transport is None]
    during = tree_memory(target.proc.pid)
    for conn in held:
        if conn.transport is not None:
            conn.transport.close()
    await asyncio.sleep(0.5)  # the target sees the clients leave before anything else runs
    if target.proc.poll() is not None:
        errors.append(f"{name} exited with {target.proc.returncode}")
    grown = during.rss_kib - before.rss_kib
    return {
        "streams": len(held),
        "errors": len(errors),
        "error_samples": errors[:5],
        "rss_kib_before": before.rss_kib,
        "rss_kib_open": during.rss_kib,
        "kib_per_stream": grown / len(held) if held and not errors else None,
        "source": before.source,
    }


Start = Callable[[str, list[str], Path, str], Awaitable[Child]]


async def run_idle(
    upstream: Child,
    s: IdleSettings,
    start: Start,
    tmp: Path,
    logs: Path,
    module: str,
    start_timeout: float,
) -> Report:
    """Both targets measured one after the other, each on a fresh process; their ratio.

    ``start`` is bench.board's ``_start`` (spawn a bench process, wait until it answers).
    """
    settings = {"streams": s.streams, "settle_s": s.settle_s, "shape": IDLE_SHAPE.model}
    out: Report = {"settings": settings}
    floor = await start(
        "idle-floor", ["-m", "bench.floor", "--upstream", upstream.base_url], logs, "/v1/models"
    )
    try:
        out["floor_warmup"] = await warm(floor)
        out["floor"] = await measure("floor", floor, s)
    finally:
        out["floor_stop"] = await stop(floor)
    (tmp / "idle").mkdir(exist_ok=True)
    idle_logs = logs / "idle"
    idle_logs.mkdir(exist_ok=True)
    models = sorted({IDLE_SHAPE.model, WARM_SHAPE.model})
    gateways = Gateways(upstream, models, tmp / "idle", idle_logs, module, start_timeout)
    try:
        gateway = await gateways.get(1)
        assert gateway is not None
        out["gateway"] = await measure("gateway", gateway, s)
    finally:
        await gateways.stop_all()
        out["gateway_info"] = gateways.info
    fl, gw = out["floor"]["kib_per_stream"], out["gateway"]["kib_per_stream"]
    out["ratio"] = gw / fl if fl and gw is not None else None
    return out
