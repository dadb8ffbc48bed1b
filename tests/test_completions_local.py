"""Legacy completions from the bundled model, offline: llama.cpp's own /v1/completions serves
them (passthrough), stream and not, with `logprobs`, which only a raw completion has (llama.cpp
gives them in its own shape, relayed as they are)."""

from __future__ import annotations

import asyncio
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


async def test_completions_from_the_bundled_model(
    make_gateway: Callable[..., Awaitable[str]],
) -> None:
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
    prompt = "The capital of France is"
    answer = await client.completions.create(model="smollm2-135m", prompt=prompt, max_tokens=6)
    assert answer.object == "text_completion" and answer.model == "smollm2-135m"
    assert answer.choices[0].text.strip()
    assert answer.choices[0].finish_reason in ("stop", "length")
    assert answer.usage is not None and 0 < answer.usage.completion_tokens <= 6
    stream = await client.completions.create(
        model="smollm2-135m",
        prompt=prompt,
        max_tokens=6,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    assert {chunk.model for chunk in chunks} == {"smollm2-135m"}
    assert "".join(c.choices[0].text for c in chunks if c.choices).strip()
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    # What only a raw completion has passes through to llama.cpp.
    probed = await client.completions.create(
        model="smollm2-135m", prompt=prompt, max_tokens=2, logprobs=1
    )
    assert probed.choices[0].text
    assert probed.choices[0].logprobs is not None
