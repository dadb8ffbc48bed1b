"""The benchmark's embeddings load client: a correct answer passes, and every broken one fails
under the check that caught it; the fake upstream's answer is the one the client expects.

Loopback servers in this process only: no program is started.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bench.embeddings_load import INPUTS, EmbeddingsLoadClient, embeddings_answer, vector
from bench.load import LoadSpec
from bench.shape import content_pieces
from tests.test_bench_checks import SHAPE

ServerFactory = Callable[[web.Application], Awaitable[TestServer]]


async def _run(answer: bytes, aiohttp_server: ServerFactory) -> Any:
    seen: list[Any] = []

    async def embeddings(request: web.Request) -> web.Response:
        seen.append(await request.json())
        return web.Response(body=answer, content_type="application/json")

    app = web.Application()
    app.router.add_post("/v1/embeddings", embeddings)
    srv = await aiohttp_server(app)
    spec = LoadSpec(str(srv.make_url("/v1/embeddings")), SHAPE.model, False, 3, 2, 20)
    async with EmbeddingsLoadClient(spec, content_pieces(SHAPE)) as client:
        result = await client.run()
    assert seen[0]["encoding_format"] == "base64"
    assert len(seen[0]["input"]) == INPUTS
    return result


def _correct() -> dict[str, Any]:
    return embeddings_answer(SHAPE.model, INPUTS, "base64")


async def test_accepts_the_fake_upstreams_answer(aiohttp_server: ServerFactory) -> None:
    result = await _run(orjson.dumps(_correct()), aiohttp_server)
    assert result.errors == {}, result.samples
    assert result.ok == 3


def _swap(answer: dict[str, Any]) -> dict[str, Any]:
    data = answer["data"]
    data[0]["embedding"], data[1]["embedding"] = data[1]["embedding"], data[0]["embedding"]
    return answer


BROKEN = (
    pytest.param(lambda a: {**a, "data": a["data"][:-1]}, "embedding_count", id="one short"),
    pytest.param(_swap, "vector", id="vectors swapped"),
    pytest.param(
        lambda a: {**a, "data": [{**d, "index": 0} for d in a["data"]]}, "index", id="index"
    ),
    pytest.param(lambda a: {**a, "model": "other"}, "wrong_object", id="model"),
    pytest.param(lambda a: {**a, "usage": None}, "usage", id="no usage"),
    pytest.param(
        lambda a: {**a, "data": [{**d, "embedding": vector(0)[:-4]} for d in a["data"]]},
        "vector",
        id="cut vector",
    ),
)


@pytest.mark.parametrize(("breaking", "kind"), BROKEN)
async def test_a_broken_answer_fails(
    breaking: Callable[[dict[str, Any]], dict[str, Any]],
    kind: str,
    aiohttp_server: ServerFactory,
) -> None:
    result = await _run(orjson.dumps(breaking(_correct())), aiohttp_server)
    assert result.ok == 0
    assert result.errors == {kind: 3}, result.samples


def test_float_answers_carry_the_same_values() -> None:
    as_float = embeddings_answer("m", 2, "float")
    assert [len(d["embedding"]) for d in as_float["data"]] == [1536, 1536]
    assert as_float["usage"]["prompt_tokens"] == as_float["usage"]["total_tokens"] > 0
