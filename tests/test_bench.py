"""The benchmark harness: its SSE parser, its checks, and one tiny end-to-end run.

No timing is asserted anywhere: the figures must exist and make sense, not be fast.
"""

from __future__ import annotations

import asyncio
import math
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bench.load import LoadClient, LoadSpec, SSEParser
from bench.shape import Shape, content_pieces

ROOT = Path(__file__).resolve().parent.parent
SHAPE = Shape(chunks=6, delay_ms=0, first_ms=0, size=8)
ServerFactory = Callable[[web.Application], Awaitable[TestServer]]

SSE_SAMPLE = (
    "\ufeffdata: first\r\n\r\n"
    ": a comment\n"
    "data: multi\rdata: line\r\r"
    "data:no-space\n\n"
    "data: café 日本 🙂\r\n\r\n"
    "data\n\n"
).encode()
SSE_EVENTS = (b"first", b"multi\nline", b"no-space", "café 日本 🙂".encode(), b"")


@pytest.mark.parametrize("size", [1, 2, 7, len(SSE_SAMPLE)])
def test_sse_parser_gives_same_events_whatever_the_split(size: int) -> None:
    """CR, LF and CRLF endings, comments, multi-line data and UTF-8 survive any split."""
    parser = SSEParser()
    events = []
    for start in range(0, len(SSE_SAMPLE), size):
        events += parser.feed(SSE_SAMPLE[start : start + size])
    parser.close()
    assert tuple(events) == SSE_EVENTS
    assert parser.comments == 1
    assert parser.problems == ["byte order mark at start of stream"]


def test_sse_parser_flags_fields_the_contract_forbids() -> None:
    """id:, event:, retry:, unknown fields and an unterminated event are all reported."""
    parser = SSEParser()
    events = parser.feed(b"id: 1\nevent: status\nretry: 10\nfoo: bar\ndata: x\n\ndata: cut")
    parser.close()
    assert events == [b"x"]
    assert len(parser.problems) == 5
    assert "'id'" in parser.problems[0]
    assert "'event'" in parser.problems[1]
    assert "ended inside an event" in parser.problems[-1]


def _chunk(delta: dict[str, Any], finish: str | None = None, model: str = "") -> bytes:
    """One chat.completion.chunk event for SHAPE (or another model)."""
    body = {
        "id": "chatcmpl-test",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": model or SHAPE.model,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }
    return b"data: " + orjson.dumps(body) + b"\n\n"


def good_events() -> list[bytes]:
    """A correct stream for SHAPE, built here independently of the fake upstream's encoder."""
    pieces = content_pieces(SHAPE)
    return [
        _chunk({"role": "assistant", "content": ""}),
        *(_chunk({"content": piece}) for piece in pieces),
        _chunk({}, "stop"),
        b"data: [DONE]\n\n",
    ]


def _swap(events: list[bytes]) -> list[bytes]:
    """Swap the first two content chunks."""
    return [events[0], events[2], events[1], *events[3:]]


def _usage(events: list[bytes]) -> list[bytes]:
    """Add the usage chunk, which this client never asks for."""
    usage = {"object": "chat.completion.chunk", "model": SHAPE.model, "choices": [], "usage": {}}
    return [*events[:-1], b"data: " + orjson.dumps(usage) + b"\n\n", events[-1]]


BROKEN = (
    pytest.param(lambda e: e[:3] + e[4:], "chunk_count", id="missing chunk"),
    pytest.param(lambda e: e[:3] + e[2:], "chunk_count", id="extra chunk"),
    pytest.param(_swap, "content", id="reordered"),
    pytest.param(lambda e: e[:-1], "no_done", id="no done"),
    pytest.param(lambda e: [b"id: 1\n" + e[0], *e[1:]], "sse_framing", id="id line"),
    pytest.param(lambda e: [b"event: status\n" + e[0], *e[1:]], "sse_framing", id="event line"),
    pytest.param(
        lambda e: [*e[:3], b'data: {"error": {"message": "boom"}}\n\n', e[-1]],
        "error_event",
        id="error event",
    ),
    pytest.param(_usage, "unexpected_usage", id="usage to a client that did not ask"),
    pytest.param(lambda e: [*e, e[1]], "after_done", id="event after done"),
    pytest.param(lambda e: [e[0], b"data: {nope\n\n", *e[1:]], "bad_json", id="bad json"),
    pytest.param(
        lambda e: [_chunk({"role": "assistant"}, model="other"), *e[1:]],
        "wrong_model",
        id="wrong model",
    ),
    pytest.param(lambda e: [*e[:-2], e[-1]], "shape", id="no finish"),
)


async def _serve(events: list[bytes], piece: int, server: ServerFactory) -> TestServer:
    """A loopback server answering every chat request with ``events`` in ``piece``-byte writes."""
    body = b"".join(events)

    async def chat(request: web.Request) -> web.StreamResponse:
        """Stream the events in small writes."""
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for start in range(0, len(body), piece):
            await resp.write(body[start : start + piece])
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    return await server(app)


def _spec(srv: TestServer, requests: int = 3) -> LoadSpec:
    """Streamed requests for SHAPE against the test server."""
    url = str(srv.make_url("/v1/chat/completions"))
    return LoadSpec(url, SHAPE.model, True, requests, concurrency=2, max_seconds=20)


@pytest.mark.parametrize("piece", [7, 100_000])
async def test_load_client_accepts_a_correct_stream(
    piece: int, aiohttp_server: ServerFactory
) -> None:
    """A correct stream passes whether it arrives in 7-byte writes or all at once."""
    srv = await _serve(good_events(), piece, aiohttp_server)
    async with LoadClient(_spec(srv), content_pieces(SHAPE)) as client:
        result = await client.run()
    assert result.errors == {}
    assert result.ok == 3
    assert result.content_chunks == 3 * SHAPE.chunks
    assert len(result.ttft) == 3
    assert len(result.gaps) == 3 * (SHAPE.chunks - 1)


@pytest.mark.parametrize(("transform", "kind"), BROKEN)
async def test_load_client_counts_every_broken_stream(
    transform: Callable[[list[bytes]], list[bytes]], kind: str, aiohttp_server: ServerFactory
) -> None:
    """A missing, extra or mangled chunk fails the request, under the check that caught it."""
    srv = await _serve(transform(good_events()), 7, aiohttp_server)
    async with LoadClient(_spec(srv), content_pieces(SHAPE)) as client:
        result = await client.run()
    assert result.ok == 0
    assert result.errors == {kind: 3}, result.samples


async def test_load_client_stops_at_the_wall_clock_cap(aiohttp_server: ServerFactory) -> None:
    """Requests still running or never started at the cap are counted as errors, not dropped."""

    async def stall(request: web.Request) -> web.StreamResponse:
        """Start a stream and never finish it."""
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        await asyncio.sleep(30)
        return resp

    app = web.Application()
    app.router.add_post("/v1/chat/completions", stall)
    srv = await aiohttp_server(app)
    spec = LoadSpec(str(srv.make_url("/v1/chat/completions")), SHAPE.model, True, 5, 2, 0.3)
    async with LoadClient(spec, content_pieces(SHAPE)) as client:
        result = await client.run()
    assert result.capped
    assert result.ok == 0
    assert result.errors == {"cap_in_flight": 2, "cap_not_started": 3}
    assert result.wall_s < 5


def _run_bench(tmp_path: Path, *flags: str) -> dict[str, Any]:
    """Run ``python -m bench --quick`` as the user would; return its saved report."""
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--results-dir", str(tmp_path), *flags],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert (tmp_path / "latest.md").read_text().startswith("# llms gateway benchmark")
    report: dict[str, Any] = orjson.loads((tmp_path / "latest.json").read_bytes())
    return report


def _positive(value: Any) -> bool:
    """A finite number above zero."""
    return isinstance(value, int | float) and math.isfinite(value) and value > 0


def _check_runs(report: dict[str, Any], runs: tuple[str, ...]) -> None:
    """Every run finished every request, error-free, with positive figures."""
    assert set(report["scenarios"]) == {"latency", "throughput", "nonstream"}
    for name, scenario in report["scenarios"].items():
        for run in runs:
            r = scenario[run]
            where = f"{name}/{run}"
            assert r["errors"] == 0, (where, r["error_samples"])
            assert not r["capped"], where
            assert r["requests_ok"] == scenario["settings"]["requests"], where
            assert _positive(r["rps"]), where
            assert _positive(r["total_ms"]["p99"]), where
            assert _positive(r["cpu"]["upstream"]["seconds"]), where
            assert _positive(r["cpu"]["client"]["seconds"]), where
            if scenario["settings"]["stream"]:
                assert _positive(r["ttft_ms"]["p50"]), where
                assert _positive(r["ttft_ms"]["p99"]), where
                # Unpaced chunks can all arrive in one read, so their gaps may all be zero.
                paced = "-d0-" not in scenario["settings"]["model"]
                assert _positive(r["gap_ms"]["p99"]) if paced else r["gap_ms"]["p99"] >= 0, where
                assert _positive(r["cpu"]["upstream"]["us_per_chunk"]), where
    machine = report["machine"]
    for key in ("cpu_model", "cores", "python", "aiohttp"):
        assert machine[key], key
    assert "bench" in report["command"]


def test_bench_direct_only(tmp_path: Path) -> None:
    """The harness alone: fake upstream and load generator, no gateway."""
    report = _run_bench(tmp_path, "--direct-only")
    _check_runs(report, ("direct",))
    fig = report["figures"]
    assert fig["errors"] == 0
    assert _positive(fig["upstream_cpu_us_per_chunk"])
    assert _positive(fig["client_cpu_us_per_chunk"])
    assert all(_positive(rps["direct"]) for rps in fig["rps"].values())


def test_bench_through_the_gateway(tmp_path: Path) -> None:
    """The whole benchmark at its tiny size: zero errors and every figure present."""
    report = _run_bench(tmp_path)
    _check_runs(report, ("direct", "gateway"))
    fig = report["figures"]
    assert fig["errors"] == 0
    assert report["gateway"]["stop"] == "stopped on SIGTERM with exit code 0"
    for name in (
        "gateway_cpu_us_per_chunk",
        "gateway_cpu_us_per_request_stream",
        "gateway_cpu_us_per_request_nonstream",
        "upstream_cpu_us_per_chunk",
        "client_cpu_us_per_chunk",
        # A gateway hop cannot be free, so even five requests show a positive median.
        "added_ttft_p50_ms",
    ):
        assert _positive(fig[name]), name
    for name in ("added_ttft_p99_ms", "added_gap_p99_ms"):
        # Differences of two tails: present and finite, but at five requests noise can make
        # them zero or negative, so their sign is not asserted.
        assert isinstance(fig[name], float), name
        assert math.isfinite(fig[name]), name
    for name, rps in fig["rps"].items():
        for way in ("direct", "gateway", "ratio"):
            assert _positive(rps[way]), (name, way)
