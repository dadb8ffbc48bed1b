"""The board (bench.board): the boards' methods and the streams-sustained ramp, against the floor.

The quick end-to-end run starts programs (the fake upstreams, the floor relays, two gateways);
the other tests use loopback servers in this process and show that the ramp's and the whole
Responses/Messages clients' self-checks fail when an answer is wrong, late or cut. No timing is
asserted: the figures must exist and be consistent, not be fast.
"""

from __future__ import annotations

import asyncio
import math
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bench.board import APIS, TARGETS, _added, board_errors
from bench.board_clients import MessagesWholeClient, ResponsesWholeClient
from bench.board_idle import IDLE_SHAPE, hold_streams
from bench.floor import make_app
from bench.load import LoadSpec
from bench.ramp import RampSettings, ramp, run_level
from bench.shape import Shape, content_pieces

ROOT = Path(__file__).resolve().parent.parent
ServerFactory = Callable[[web.Application], Awaitable[TestServer]]
SHAPE = Shape(6, 10, 10, 8)
SETTINGS = RampSettings((1, 2), 1, 0.3, 100.0, 20.0, SHAPE)


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def test_quick_board_run_reports_every_api_three_ways(tmp_path: Path) -> None:
    """``python -m bench --quick --only board``: every API, both methods, direct/floor/gateway,
    error-free; the ramp of both targets; the markdown table with the peers beside ours."""
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--quick",
            "--only",
            "board",
            "--results-dir",
            str(tmp_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    board = orjson.loads((tmp_path / "latest.json").read_bytes())["board"]
    assert set(board["methods"]) == set(APIS)
    for api, kinds in board["methods"].items():
        assert set(kinds) == ({"nonstream"} if api == "embeddings" else {"nonstream", "stream"})
        for kind, runs in kinds.items():
            for target in TARGETS:
                run = runs[target]
                assert run["errors"] == 0, (api, kind, target, run["error_samples"])
                assert run["requests_ok"] == board["settings"]["requests"][kind], (api, kind)
            keys = ("added_ttft_p99", "added_gap_p99") if kind == "stream" else ("added_p99",)
            for key in keys:
                added = runs[key]
                assert added["gateway_ms"] - added["direct_ms"] == added["gateway_added_ms"]
                assert all(_finite(added[k]) for k in ("floor_added_ms", "gateway_added_ms"))
            if kind == "stream":
                # The gateway's CPU is sampled in its run, the floor's in its own.
                assert runs["gateway"]["cpu"]["gateway"]["us_per_chunk"] > 0
                assert runs["floor"]["cpu"]["floor"]["us_per_chunk"] > 0
    assert set(board["ramp"]) == {"floor", "gateway"}
    for target, result in board["ramp"].items():
        levels = result["levels"]
        assert levels and levels[0]["level"] == board["settings"]["ramp"]["start"], target
        for level in levels:
            assert level["held"] == (level["errors"] == 0 and level["stalls"] == 0), target
            assert level["streams_ok"] > 0 or not level["held"], target
            if level["held"]:
                for who in ("upstream", "client", target):
                    assert level["cpu_us_per_chunk"][who] > 0, (target, who)
        assert result["sustained"] == max((lv["level"] for lv in levels if lv["held"]), default=0)
    assert all(stop == "stopped on SIGTERM with exit code 0" for stop in board["stops"].values())
    idle = board["idle"]  # memory per open idle stream: every stream held, RSS read around them
    for target in ("floor", "gateway"):
        held = idle[target]
        assert held["errors"] == 0 and held["streams"] == idle["settings"]["streams"], held
        grown = held["rss_kib_open"] - held["rss_kib_before"]
        assert held["kib_per_stream"] == pytest.approx(grown / held["streams"]), held
    assert "ratio" in idle
    assert board_errors({"board": board}) == 0
    md = (tmp_path / "latest.md").read_text()
    assert "## The boards' methods: gateway vs Python floor vs direct" in md
    assert "### Streams sustained" in md
    assert "### Memory per open idle stream" in md
    assert "| LiteLLM-Rust | 0.107 | 512 (board max) |" in md
    assert "| llms (this run) |" in md and "| Python floor (this run) |" in md


def test_added_and_ratio() -> None:
    """Added = p99 minus the direct p99; the ratio is gateway added over floor added."""
    runs = {t: {"total_ms": {"p99": v}} for t, v in zip(TARGETS, (20.0, 22.0, 25.0), strict=True)}
    added = _added(runs, "total_ms", "p99")
    assert added["floor_added_ms"] == 2.0
    assert added["gateway_added_ms"] == 5.0
    assert added["ratio"] == 2.5
    runs["floor"]["total_ms"]["p99"] = 19.0
    assert _added(runs, "total_ms", "p99")["ratio"] is None


def test_board_errors_counts_failed_requests_and_unclean_stops() -> None:
    """A failed request of any run, or a process that did not stop cleanly, is an error."""
    runs = {target: {"errors": 0} for target in TARGETS}
    board: dict[str, Any] = {"methods": {"chat": {"nonstream": runs}}, "stops": {}}
    assert board_errors({"board": board}) == 0
    runs["floor"]["errors"] = 2
    board["stops"]["floor"] = "ignored SIGTERM for 15 s and was killed"
    assert board_errors({"board": board}) == 3


def _chunk(content: str, model: str = SHAPE.model) -> bytes:
    body = {
        "object": "chat.completion.chunk",
        "model": model,
        "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": None}],
    }
    return b"data: " + orjson.dumps(body) + b"\n\n"


def _stream_app(mode: str) -> web.Application:
    """A chat stream of SHAPE; ``mode`` breaks it one way."""

    async def handler(request: web.Request) -> web.StreamResponse:
        await request.read()
        if mode == "http_500":
            return web.json_response({"error": {"message": "boom"}}, status=500)
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        pieces = list(content_pieces(SHAPE))
        if mode == "content":
            pieces[2] = pieces[2] + "x"
        if mode == "drop":
            del pieces[3]
        for index, piece in enumerate(pieces):
            await asyncio.sleep(0.15 if mode == "stall" and index == 3 else 0.01)
            await resp.write(_chunk(piece, "other" if mode == "wrong_model" else SHAPE.model))
        if mode != "no_done":
            await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_post("/v1/chat/completions", handler)
    return app


async def test_ramp_level_holds_on_a_good_stream(aiohttp_server: ServerFactory) -> None:
    """A correct stream passes every check (held unless this machine stalls it)."""
    srv = await aiohttp_server(_stream_app("ok"))
    result = await ramp(str(srv.make_url("/v1/chat/completions")), SETTINGS, {})
    for level in result["levels"]:
        assert level["errors"] == 0 and level["streams_ok"] > 0, level["error_samples"]
        assert level["chunks"] == level["streams_ok"] * SHAPE.chunks
        assert level["held"] == (level["stalls"] == 0)
    assert result["levels"][0]["level"] == 1


@pytest.mark.parametrize(
    ("mode", "kind"),
    [
        ("content", "content"),
        ("drop", "content"),
        ("wrong_model", "wrong_model"),
        ("no_done", "no_done"),
        ("http_500", "http_500"),
    ],
)
async def test_ramp_level_fails_on_a_broken_stream(
    mode: str, kind: str, aiohttp_server: ServerFactory
) -> None:
    """Every stream is checked whole: a wrong, cut or refused answer is an error, not held."""
    srv = await aiohttp_server(_stream_app(mode))
    level = await run_level(str(srv.make_url("/v1/chat/completions")), 2, SETTINGS, {})
    assert not level["held"]
    assert level["error_kinds"] == {kind: 2}, level["error_samples"]


async def test_ramp_counts_a_stall_and_goes_down(aiohttp_server: ServerFactory) -> None:
    """A gap over the stall threshold fails the start level; the ramp then tries lower ones."""
    srv = await aiohttp_server(_stream_app("stall"))
    settings = RampSettings((1, 2), 2, 0.3, 100.0, 20.0, SHAPE)
    result = await ramp(str(srv.make_url("/v1/chat/completions")), settings, {})
    assert [level["level"] for level in result["levels"]] == [2, 1]
    assert result["levels"][0]["stalls"] > 0 and result["levels"][0]["errors"] == 0
    assert result["sustained"] == 0 and result["stopped"] == "no level held"


async def test_floor_relays_the_exact_bytes(aiohttp_server: ServerFactory) -> None:
    """The floor copies the upstream's status, type and body untouched."""
    upstream = await aiohttp_server(_stream_app("ok"))
    floor = await aiohttp_server(make_app(str(upstream.make_url(""))))
    body = orjson.dumps({"model": SHAPE.model, "stream": True})
    async with aiohttp.ClientSession() as session:
        answers = []
        for srv in (upstream, floor):
            url = srv.make_url("/v1/chat/completions")
            async with session.post(url, data=body) as resp:
                answers.append((resp.status, resp.content_type, await resp.read()))
        async with session.post(floor.make_url("/v1/chat/completions"), data=b"x") as resp:
            assert resp.status == 200  # the relay does not judge requests
        async with session.get(floor.make_url("/nowhere")) as resp:
            assert resp.status == 404  # the upstream's answer, relayed
    assert answers[0] == answers[1]
    assert answers[0][2].endswith(b"data: [DONE]\n\n")


def _whole_app(answer: dict[str, Any]) -> web.Application:
    async def handler(request: web.Request) -> web.Response:
        payload = await request.json()
        assert payload["stream"] is False
        return web.json_response(answer)

    app = web.Application()
    app.router.add_post("/v1/responses", handler)
    app.router.add_post("/v1/messages", handler)
    return app


TEXT = "".join(content_pieces(SHAPE))
RESPONSE = {
    "object": "response",
    "model": SHAPE.model,
    "status": "completed",
    "output": [{"type": "message", "content": [{"type": "output_text", "text": TEXT}]}],
    "usage": {"input_tokens": 1, "output_tokens": 2},
}
MESSAGE = {
    "type": "message",
    "role": "assistant",
    "model": SHAPE.model,
    "content": [{"type": "text", "text": TEXT}],
    "stop_reason": "end_turn",
    "usage": {"input_tokens": 1, "output_tokens": 2},
}


@pytest.mark.parametrize(
    ("path", "answer", "kind"),
    [
        ("/v1/responses", RESPONSE, None),
        ("/v1/responses", {**RESPONSE, "status": "incomplete"}, "shape"),
        ("/v1/responses", {**RESPONSE, "output": []}, "content"),
        ("/v1/responses", {**RESPONSE, "model": "x"}, "wrong_object"),
        ("/v1/messages", MESSAGE, None),
        ("/v1/messages", {**MESSAGE, "content": [{"type": "text", "text": TEXT[1:]}]}, "content"),
        ("/v1/messages", {**MESSAGE, "stop_reason": "max_tokens"}, "shape"),
        ("/v1/messages", {k: v for k, v in MESSAGE.items() if k != "usage"}, "missing_usage"),
    ],
)
async def test_whole_clients_check_every_answer(
    path: str, answer: dict[str, Any], kind: str | None, aiohttp_server: ServerFactory
) -> None:
    """The non-stream Responses and Messages clients accept the right answer, refuse others."""
    srv = await aiohttp_server(_whole_app(answer))
    spec = LoadSpec(str(srv.make_url(path)), SHAPE.model, False, 3, 1, 20)
    cls = ResponsesWholeClient if path == "/v1/responses" else MessagesWholeClient
    async with cls(spec, content_pieces(SHAPE)) as client:
        result = await client.run()
    if kind is None:
        assert result.ok == 3 and not result.errors, result.samples
    else:
        assert result.ok == 0 and dict(result.errors) == {kind: 3}, result.samples


def _idle_app(mode: str) -> web.Application:
    """IDLE_SHAPE's stream: the role, the first delta, then silence; ``mode`` breaks it."""

    async def handler(request: web.Request) -> web.StreamResponse:
        await request.read()
        if mode == "http_500":
            return web.json_response({"error": {"message": "boom"}}, status=500)
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        first = content_pieces(IDLE_SHAPE)[0]
        await resp.write(_chunk("", IDLE_SHAPE.model))
        if mode == "closed":
            return resp  # the body ends before any content
        await resp.write(_chunk(first + "x" if mode == "content" else first, IDLE_SHAPE.model))
        await asyncio.sleep(60)
        return resp

    app = web.Application(handler_args={"handler_cancellation": True})
    app.router.add_post("/v1/chat/completions", handler)
    return app


@pytest.mark.parametrize(
    ("mode", "kind"),
    [("ok", ""), ("content", "content"), ("http_500", "http_500"), ("closed", "ended")],
)
async def test_idle_streams_are_held_only_after_their_first_content_event(
    mode: str, kind: str, aiohttp_server: ServerFactory
) -> None:
    """bench.board_idle counts a stream as held only once its first delta arrived intact."""
    srv = await aiohttp_server(_idle_app(mode))
    held, errors = await hold_streams(f"http://127.0.0.1:{srv.port}/v1/chat/completions", 3)
    try:
        if mode == "ok":
            assert len(held) == 3 and errors == []
        else:
            assert held == [] and len(errors) == 3, errors
            assert all(error.startswith(f"{kind}: ") for error in errors), errors
    finally:
        for conn in held:
            if conn.transport is not None:
                conn.transport.close()
