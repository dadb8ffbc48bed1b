"""Resume latency: how long ``GET /v1/streams/{id}`` takes to send its first replayed byte.

Each round starts a resumable stream (``POST`` with ``X-Stream-Resumable: true``) on one
replica and reads it to its end, fully checked, keeping every event; then it resumes the finished
stream on the same or another replica with ``Last-Event-ID: k`` and times the ``GET`` from
sending to the first body byte. The replay must be exactly the events after ``k`` (same ids,
same bytes) and ``X-Replica`` must name the replica expected. ``k`` walks the whole stream across
rounds, from a full replay (``k = 0``) to ``[DONE]`` alone.

The floor is a plain streamed ``POST`` straight to the fake upstream, timed the same way.
Rounds run one at a time; none is timed until ``warmup`` rounds have opened the connections.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

import aiohttp

from bench.load import Failure, chat_body, read_stream
from bench.sse import SSEEvent, SSEParser

Report = dict[str, Any]
Replica = Literal["same", "other", "any"]

_SAMPLES = 10
_REQUEST_TIMEOUT_S = 30.0
# Coprime with any stream length the scenarios use, so k visits every position in turn.
_STEP = 17
_HEADERS = {"Content-Type": "application/json"}
_RESUMABLE = {**_HEADERS, "X-Stream-Resumable": "true"}


@dataclass(frozen=True)
class ResumeSpec:
    """Where streams start and where they are resumed; ``replica`` is what X-Replica must say.

    With ``resume_url`` None, the round is the floor: a plain streamed POST to ``start_url``.
    """

    start_url: str
    resume_url: str | None
    model: str
    rounds: int
    warmup: int
    max_seconds: float
    replica: Replica = "any"


@dataclass
class ResumeResult:
    """What the timed rounds saw; every failed round is in ``errors``."""

    ok: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    samples: list[str] = field(default_factory=list)
    first_byte: list[float] = field(default_factory=list)
    totals: list[float] = field(default_factory=list)
    replayed: int = 0
    replicas: set[tuple[str, str]] = field(default_factory=set)
    wall_s: float = 0.0
    capped: bool = False

    def fail(self, kind: str, detail: str) -> None:
        """Count one failed round and keep a few messages."""
        self.errors[kind] += 1
        if len(self.samples) < _SAMPLES:
            self.samples.append(f"{kind}: {detail}"[:300])


async def _start(
    session: aiohttp.ClientSession, spec: ResumeSpec, expected: tuple[str, ...]
) -> tuple[list[SSEEvent], str, str, float, float]:
    """POST one stream and read it to [DONE]: its events, id, replica, first byte and total."""
    resumable = spec.resume_url is not None
    events: list[SSEEvent] = []
    url = f"{spec.start_url}/v1/chat/completions"
    body = chat_body(spec.model, True)
    start = time.perf_counter()
    async with session.post(url, data=body, headers=_RESUMABLE if resumable else _HEADERS) as resp:
        if resp.status != 200:
            raise Failure(f"http_{resp.status}", (await resp.text())[:200])
        state, _ = await read_stream(resp, spec.model, expected, start, resumable, events)
        total = time.perf_counter() - start
        return events, resp.headers.get("X-Stream-Id", ""), _replica(resp), state.first_byte, total


def _replica(resp: aiohttp.ClientResponse) -> str:
    """Which replica answered (empty when the gateway does not say)."""
    return resp.headers.get("X-Replica", "")


def _check_replica(spec: ResumeSpec, started: str, resumed: str) -> None:
    """The resume went to the replica the scenario meant."""
    if spec.replica == "any":
        return
    if not started or not resumed:
        raise Failure("no_replica", f"X-Replica {started!r} then {resumed!r}")
    if (started == resumed) != (spec.replica == "same"):
        raise Failure("wrong_replica", f"started on {started}, resumed on {resumed}")


def _check_replay(replay: list[SSEEvent], events: list[SSEEvent], after: int) -> None:
    """The replay is exactly the events after ``after``: same ids, same bytes, same order."""
    wanted = events[after:]
    if replay == wanted:
        return
    for index, (got, want) in enumerate(zip(replay, wanted, strict=False)):
        if got != want:
            raise Failure(
                "replay", f"after {after}: event {index} is id {got.id!r}, expected {want.id!r}"
            )
    raise Failure("replay", f"after {after}: {len(replay)} events replayed, {len(wanted)} expected")


async def _resume(
    session: aiohttp.ClientSession, spec: ResumeSpec, stream_id: str, after: int
) -> tuple[list[SSEEvent], str, float, float]:
    """GET the stream after ``after``: the events, the replica, time to first byte and total."""
    assert spec.resume_url is not None
    url = f"{spec.resume_url}/v1/streams/{stream_id}"
    parser = SSEParser(resumable=True)
    replay: list[SSEEvent] = []
    first = 0.0
    start = time.perf_counter()
    async with session.get(url, headers={"Last-Event-ID": str(after)}) as resp:
        if resp.status != 200:
            raise Failure(f"http_{resp.status}", (await resp.text())[:200])
        if resp.headers.get("X-Stream-Id") != stream_id:
            raise Failure("stream_id", f"X-Stream-Id {resp.headers.get('X-Stream-Id')!r}")
        async for data in resp.content.iter_any():
            if not first:
                first = time.perf_counter() - start
            replay += parser.feed(data)
        total = time.perf_counter() - start
        replica = _replica(resp)
    parser.close()
    if parser.problems:
        raise Failure("sse_framing", "; ".join(parser.problems[:3]))
    return replay, replica, first, total


async def _round(
    session: aiohttp.ClientSession,
    spec: ResumeSpec,
    expected: tuple[str, ...],
    index: int,
    result: ResumeResult | None,
) -> None:
    """One start (and resume); recorded in ``result`` unless it is a warm-up round."""
    events, stream_id, started, first, total = await _start(session, spec, expected)
    count = 0
    if spec.resume_url is not None:
        after = index * _STEP % len(events)
        replay, resumed, first, total = await _resume(session, spec, stream_id, after)
        _check_replay(replay, events, after)
        _check_replica(spec, started, resumed)
        count = len(replay)
        if result is not None and started and resumed:
            result.replicas.add((started, resumed))
    if result is not None:
        result.ok += 1
        result.first_byte.append(first)
        result.totals.append(total)
        result.replayed += count


async def run_resumes(spec: ResumeSpec, expected: tuple[str, ...]) -> ResumeResult:
    """Warm-up rounds, then ``spec.rounds`` timed rounds, one at a time, within the cap."""
    result = ResumeResult()
    # Heartbeats can keep a stuck stream open forever: one request gets 30 s at most.
    timeout = aiohttp.ClientTimeout(total=_REQUEST_TIMEOUT_S, sock_connect=10, sock_read=30)
    done = 0
    begin = time.perf_counter()
    async with aiohttp.ClientSession(timeout=timeout) as session:
        try:
            async with asyncio.timeout(spec.max_seconds):
                for index in range(spec.warmup + spec.rounds):
                    timed = index >= spec.warmup
                    try:
                        await _round(session, spec, expected, index, result if timed else None)
                    except Failure as exc:
                        result.fail(exc.kind if timed else f"warmup:{exc.kind}", str(exc))
                    except Exception as exc:
                        kind = type(exc).__name__
                        result.fail(kind if timed else f"warmup:{kind}", repr(exc))
                    done = index + 1
        except TimeoutError:
            result.capped = True
            for _ in range(spec.warmup + spec.rounds - done):
                result.fail("cap", f"wall-clock cap of {spec.max_seconds:g} s reached")
    result.wall_s = time.perf_counter() - begin
    return result
