"""openai-node (`completions.create`, stream and not) and the Vercel AI SDK's completion model
(`generateText`, `streamText` with @ai-sdk/openai's `provider.completion`) against the gateway's
/v1/completions: passed through, translated for each protocol, and with fallback
(tests/node/completions.mjs)."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
import pytest

from tests.completions_support import Fakes, completions_config, running_fakes
from tests.node_client import NODE_DIR
from tests.upstreams.completions import CONTINUATION
from tests.upstreams.openai import error_script

pytestmark = pytest.mark.skipif(
    shutil.which("node") is None or not (NODE_DIR / "node_modules" / "ai").exists(),
    reason="the Node clients are not installed (make test runs npm ci in tests/node)",
)

# What each model answers: the passthrough server's continuation, or the chat fakes' text (`fb`:
# its passthrough provider fails, Ollama answers). Anthropic's and Gemini's recorded texts vary.
HELLO = "Hello, world!"
MODELS = {"davinci": "".join(CONTINUATION), "chatty": HELLO, "llama": HELLO, "fb": HELLO}


@pytest.fixture
async def fakes() -> AsyncIterator[Fakes]:
    async with running_fakes() as made:
        made.openai.completion_scripts["oa-fb"] = error_script(500, {"error": {"message": "down"}})
        yield made


@pytest.fixture
async def gateway(fakes: Fakes, make_gateway: Callable[..., Awaitable[str]]) -> str:
    return await make_gateway(completions_config(fakes))


async def run(gateway: str, model: str, client: str) -> dict[str, Any]:
    proc = await asyncio.create_subprocess_exec(
        "node",
        str(NODE_DIR / "completions.mjs"),
        gateway,
        model,
        client,
        "Once more",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 0, err.decode()
    result: dict[str, Any] = orjson.loads(out.splitlines()[-1])
    assert result["ok"], result
    return result


@pytest.mark.parametrize("model", ["davinci", "chatty", "llama", "claude", "gem", "fb"])
async def test_openai_node(gateway: str, fakes: Fakes, model: str) -> None:
    result = await run(gateway, model, "openai")
    whole = result["whole"]
    assert whole["object"] == "text_completion" and whole["model"] == model
    text = whole["choices"][0]["text"]
    assert text == MODELS.get(model, text) and text
    assert whole["usage"]["completion_tokens"] > 0
    chunks = result["chunks"]
    assert {c["object"] for c in chunks} == {"text_completion"}
    assert "".join(c["choices"][0]["text"] for c in chunks if c["choices"]) == text
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] > 0


@pytest.mark.parametrize("model", ["davinci", "llama", "claude", "fb"])
async def test_vercel_ai_sdk_completion_model(gateway: str, fakes: Fakes, model: str) -> None:
    result = await run(gateway, model, "ai")
    generated, streamed = result["generated"], result["streamed"]
    assert generated["text"] and generated["text"] == streamed["text"]
    if model in MODELS:
        assert generated["text"] == MODELS[model]
    assert generated["finishReason"] == streamed["finishReason"] == "stop"
    assert streamed["usage"]["outputTokens"] > 0
    sent = fakes.openai.received[-1] if model == "davinci" else None
    if sent is not None:
        assert sent.path == "/v1/completions"
        assert isinstance(sent.body["prompt"], str) and "Once more" in sent.body["prompt"]
