"""`python -m bench.keys`' own checks: its load counts every broken answer (a refusal, a stream
cut before [DONE], an answer without choices) and its summary compares the medians.

Loopback servers in this process only: no program is started.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bench.keys import _load, _summary, to_markdown

ServerFactory = Callable[[web.Application], Awaitable[TestServer]]
GOOD_STREAM = b'data: {"choices": []}\n\ndata: [DONE]\n\n'


async def _errors(
    aiohttp_server: ServerFactory, status: int, body: bytes, stream: bool
) -> list[str]:
    seen: list[str] = []

    async def chat(request: web.Request) -> web.Response:
        seen.append(request.headers["Authorization"])
        return web.Response(status=status, body=body, content_type="application/json")

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    server = await aiohttp_server(app)
    base = str(server.make_url("")).rstrip("/")
    run = await _load(base, "sk-llms-x", stream, 6, 3)
    assert seen == ["Bearer sk-llms-x"] * 6
    return list(run["errors"])


@pytest.mark.parametrize(
    ("status", "body", "stream", "broken"),
    [
        (200, b'{"choices": [{"index": 0}]}', False, False),
        (200, GOOD_STREAM, True, False),
        (429, b'{"error": {"code": "budget_exceeded"}}', False, True),
        (200, b'{"choices": []}', False, True),
        (200, GOOD_STREAM[:-20], True, True),
    ],
)
async def test_every_broken_answer_is_an_error(
    aiohttp_server: ServerFactory, status: int, body: bytes, stream: bool, broken: bool
) -> None:
    errors = await _errors(aiohttp_server, status, body, stream)
    assert len(errors) == (6 if broken else 0)


def test_the_summary_compares_medians() -> None:
    def run(cpu: float, errors: int = 0) -> dict[str, object]:
        return {"cpu_us_per_request": cpu, "rps": 100.0, "errors": ["x"] * errors}

    summary = _summary(
        {"config": [run(100), run(300), run(200)], "managed": [run(250), run(260, 1), run(900)]}
    )
    assert summary["config"]["cpu_us_per_request"] == 200
    assert summary["managed"]["cpu_us_per_request"] == 260
    assert summary["added_us_per_request"] == 60
    assert summary["ratio"] == pytest.approx(1.3)
    assert summary["errors"] == 1
    table = to_markdown({"modes": {"nonstream": summary}, "errors": 1})
    assert "| nonstream | 200 | 260 | +60 | 1.30x |" in table
