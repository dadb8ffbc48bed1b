"""openai-node and the Vercel AI SDK (`embed`, `embedMany` with @ai-sdk/openai's embedding
model) against the gateway's /v1/embeddings, for each upstream protocol, with fallback
(tests/node/embeddings.mjs)."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
import pytest

from tests.embeddings_support import Fakes, embeddings_config, running_fakes
from tests.node_client import NODE_DIR
from tests.upstreams.embeddings import tokens_in, vector_of
from tests.upstreams.openai import error_script

pytestmark = pytest.mark.skipif(
    shutil.which("node") is None or not (NODE_DIR / "node_modules" / "ai").exists(),
    reason="the Node clients are not installed (make test runs npm ci in tests/node)",
)

TEXTS = ["Paris is the capital of France.", "Embeddings map text to vectors."]


@pytest.fixture
async def fakes() -> AsyncIterator[Fakes]:
    async with running_fakes() as made:
        yield made


@pytest.fixture
async def gateway(fakes: Fakes, make_gateway: Callable[..., Awaitable[str]]) -> str:
    return await make_gateway(embeddings_config(fakes))


async def run(gateway: str, model: str, client: str) -> dict[str, Any]:
    proc = await asyncio.create_subprocess_exec(
        "node",
        str(NODE_DIR / "embeddings.mjs"),
        gateway,
        model,
        client,
        orjson.dumps(TEXTS).decode(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 0, err.decode()
    result: dict[str, Any] = orjson.loads(out.splitlines()[-1])
    assert result["ok"], result
    return result


@pytest.mark.parametrize("model", ["emb", "nomic", "gem", "fb"])
async def test_openai_node(gateway: str, fakes: Fakes, model: str) -> None:
    fakes.openai.scripts["oa-fb"] = error_script(500, {"error": {"message": "down"}})
    result = await run(gateway, model, "openai")
    expected = [vector_of(text) for text in TEXTS]
    tokens = 0 if model == "gem" else sum(tokens_in(text) for text in TEXTS)
    for answer in (result["base64"], result["float"]):  # the SDK decodes base64 (its default)
        assert [item["embedding"] for item in answer["data"]] == expected
        assert answer["model"] == model
        assert answer["usage"] == {"prompt_tokens": tokens, "total_tokens": tokens}


async def test_openai_node_token_arrays(gateway: str, fakes: Fakes) -> None:
    result = await run(gateway, "emb", "openai-tokens")
    assert result["float"]["data"][0]["embedding"] == vector_of([17, 42, 99])
    assert fakes.openai.received[-1].body["input"] == [17, 42, 99]


@pytest.mark.parametrize("model", ["emb", "nomic", "gem", "fb"])
async def test_vercel_ai_sdk_embed_and_embed_many(gateway: str, fakes: Fakes, model: str) -> None:
    fakes.openai.scripts["oa-fb"] = error_script(429, {"error": {"message": "slow down"}})
    result = await run(gateway, model, "ai")
    assert result["one"]["embedding"] == vector_of(TEXTS[0])
    assert result["many"]["embeddings"] == [vector_of(text) for text in TEXTS]
    if model != "gem":
        assert result["many"]["usage"]["tokens"] == sum(tokens_in(text) for text in TEXTS)
