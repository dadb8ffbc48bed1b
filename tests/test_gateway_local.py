"""The default experience: the gateway answers from the bundled model, offline, with no keys."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable

import aiohttp
import openai
import pytest

from llms.local import find_model_file
from tests.conftest import gateway_config

pytestmark = pytest.mark.skipif(
    find_model_file("smollm2-135m") is None,
    reason="the bundled model is not installed (make test installs it)",
)


async def test_chat_with_the_bundled_model(make_gateway: Callable[..., Awaitable[str]]) -> None:
    base = await make_gateway(gateway_config({"local": {"type": "local", "model": "smollm2-135m"}}))
    root = base.removesuffix("/v1")
    async with aiohttp.ClientSession() as session:
        for _ in range(300):
            async with session.get(f"{root}/ready") as resp:
                if resp.status == 200:
                    break
            await asyncio.sleep(0.1)
        assert resp.status == 200, "the bundled model never became ready"
    client = openai.AsyncOpenAI(base_url=base, api_key="none", max_retries=0)
    stream = await client.chat.completions.create(
        model="smollm2-135m",
        messages=[{"role": "user", "content": "Say hello."}],
        max_tokens=8,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    assert chunks[0].choices[0].delta.role == "assistant"
    # llama.cpp's first event is the role with a null text (normalised to ""), or, when its
    # first token was ready by then (seen under load), the role with that token.
    assert isinstance(chunks[0].choices[0].delta.content, str)
    assert {chunk.model for chunk in chunks} == {"smollm2-135m"}  # not llama.cpp's file path
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices).strip()
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens > 0
    completion = await client.chat.completions.create(
        model="smollm2-135m", messages=[{"role": "user", "content": "Say hello."}], max_tokens=8
    )
    assert completion.choices[0].message.content
    assert completion.choices[0].finish_reason in ("stop", "length")
    # The same llama.cpp server embeds (mean pooling), offline: text and token arrays.
    embedded = await client.embeddings.create(
        model="smollm2-135m", input=["hello world", "a cat sat on the mat", "hello world"]
    )
    vectors = [item.embedding for item in embedded.data]
    assert [len(v) for v in vectors] == [576] * 3  # SmolLM2-135M's hidden size
    assert cosine(vectors[0], vectors[2]) > 0.999 > cosine(vectors[0], vectors[1])
    assert embedded.usage.prompt_tokens > 0
    tokens = await client.embeddings.create(model="smollm2-135m", input=[[28, 1234, 567]])
    assert len(tokens.data[0].embedding) == 576


def cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


async def test_missing_model_package_still_serves(
    make_gateway: Callable[..., Awaitable[str]], tmp_path: object
) -> None:
    config = gateway_config(
        {
            "local": {
                "type": "local",
                "model": "smollm2-135m",
                "model_path": "/nonexistent/model.gguf",
            }
        }
    )
    base = await make_gateway(config)
    root = base.removesuffix("/v1")
    async with aiohttp.ClientSession() as session:
        for _ in range(100):
            async with session.get(f"{root}/ready") as resp:
                body = await resp.json()
            if body["providers"]["local"]["state"] != "starting":
                break
            await asyncio.sleep(0.05)
        assert body["providers"]["local"]["state"] == "unavailable"
        async with session.post(
            f"{base}/chat/completions",
            json={"model": "smollm2-135m", "messages": [{"role": "user", "content": "x"}]},
        ) as resp:
            assert resp.status == 503
            assert (await resp.json())["error"]["code"] == "service_unavailable"
