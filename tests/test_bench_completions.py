"""The benchmark's legacy completions load client: a correct stream passes, and every broken one
fails under the check that caught it. Loopback servers in this process only."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestServer

from bench.completions_load import CompletionsLoadClient
from bench.load import LoadSpec
from bench.shape import content_pieces
from tests.test_bench_checks import SHAPE, ServerFactory, _serve


def _chunk(text: str, finish: str | None = None, **extra: Any) -> dict[str, Any]:
    choice = {"text": text, "index": 0, "logprobs": None, "finish_reason": finish}
    return {"object": "text_completion", "model": SHAPE.model, "choices": [choice], **extra}


def chunks() -> list[dict[str, Any]]:
    return [*(_chunk(piece) for piece in content_pieces(SHAPE)), _chunk("", "stop")]


def frames(objects: list[dict[str, Any]], done: bool = True) -> list[bytes]:
    out = [b"data: " + orjson.dumps(obj) + b"\n\n" for obj in objects]
    return [*out, b"data: [DONE]\n\n"] if done else out


def _spec(srv: TestServer) -> LoadSpec:
    # `_serve` answers on the chat path; the client posts wherever its spec says.
    return LoadSpec(str(srv.make_url("/v1/chat/completions")), SHAPE.model, True, 3, 2, 20)


@pytest.mark.parametrize("piece", [7, 100_000])
async def test_completions_client_accepts_a_correct_stream(
    piece: int, aiohttp_server: ServerFactory
) -> None:
    srv = await _serve(frames(chunks()), piece, aiohttp_server)
    async with CompletionsLoadClient(_spec(srv), content_pieces(SHAPE)) as client:
        result = await client.run()
    assert result.errors == {}, result.samples
    assert result.ok == 3
    assert result.content_chunks == 3 * SHAPE.chunks
    assert result.chunks == 3 * (SHAPE.chunks + 1)
    assert result.events == 3 * (SHAPE.chunks + 2)


BROKEN = (
    pytest.param(lambda c: frames(c[1:]), "content", id="missing piece"),
    pytest.param(lambda c: frames(c, done=False), "no_done", id="no [DONE]"),
    pytest.param(lambda c: [*frames(c), *frames(c[:1], done=False)], "after_done", id="after"),
    pytest.param(lambda c: frames(c[:-1]), "shape", id="no finish"),
    pytest.param(
        lambda c: frames([{**c[0], "object": "chat.completion.chunk"}, *c[1:]]),
        "wrong_object",
        id="chat chunk",
    ),
    pytest.param(lambda c: frames([{**c[0], "model": "x"}, *c[1:]]), "wrong_model", id="model"),
    pytest.param(lambda c: frames([*c[:2], {"error": {"message": "x"}}]), "error_event", id="err"),
    pytest.param(
        lambda c: [b"event: x\n" + frame for frame in frames(c)], "sse_framing", id="named"
    ),
)


@pytest.mark.parametrize(("breaker", "kind"), BROKEN)
async def test_completions_client_counts_every_broken_stream(
    breaker: Callable[[list[dict[str, Any]]], list[bytes]],
    kind: str,
    aiohttp_server: ServerFactory,
) -> None:
    srv = await _serve(breaker(chunks()), 7, aiohttp_server)
    async with CompletionsLoadClient(_spec(srv), content_pieces(SHAPE)) as client:
        result = await client.run()
    assert result.ok == 0, result.samples
    assert result.errors == {kind: 3}, result.samples
