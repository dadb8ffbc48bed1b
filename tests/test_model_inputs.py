"""`input_modalities` on `GET /v1/models` cards: which models read images, as far as the
upstreams tell (llms/server/model_kinds.py). The web UI refuses an image before sending it to a
model whose card says it reads text only."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from llms.adapters.embeddings import ModelKind, from_gemini_model, from_ollama_show
from llms.config import parse_config
from llms.server.model_kinds import ModelKinds
from tests.conftest import gateway_config
from tests.upstreams.ollama import FakeOllama


async def cards_once_known(gateway: str, wanted: set[str]) -> dict[str, Any]:
    """The cards by id, once the background questions have been answered for `wanted`."""
    cards: dict[str, Any] = {}
    async with aiohttp.ClientSession() as session:
        for _ in range(200):
            async with session.get(f"{gateway}/models") as response:
                assert response.status == 200
                cards = {card["id"]: card for card in (await response.json())["data"]}
            if all("input_modalities" in cards[m] for m in wanted):
                break
            await asyncio.sleep(0.05)
    return cards


async def test_ollama_vision_models_say_they_read_images(
    fake_ollama: FakeOllama, make_gateway: Callable[..., Awaitable[str]]
) -> None:
    gateway = await make_gateway(
        gateway_config(
            {
                "ol": {
                    "type": "ollama",
                    "base_url": fake_ollama.base_url,  # type: ignore[attr-defined]
                    "models": {
                        "vision": "llava:7b",
                        "text": "llama3.2",
                        "nomic": "nomic-embed-text",
                    },
                },
                "oa": {
                    "type": "openai",
                    "base_url": "http://127.0.0.1:9/v1",
                    "api_key": "sk-x",
                    "models": {"gpt": "gpt-4o", "both": "gpt-4o"},
                },
            }
        )
    )
    cards = await cards_once_known(gateway, {"vision", "text", "nomic"})
    said = {model: card.get("input_modalities") for model, card in cards.items()}
    assert said == {
        "vision": ["text", "image"],  # capabilities: ["completion", "vision"]
        "text": ["text"],  # capabilities without "vision"
        "nomic": ["text"],
        "gpt": None,  # an OpenAI-compatible server does not say
        "both": None,
    }
    assert cards["nomic"]["type"] == "embedding"


def test_the_bundled_model_reads_text_only_and_a_mixed_route_says_nothing() -> None:
    config = parse_config(
        {
            "providers": {
                "me": {"type": "local", "model": "smollm2-135m"},
                "ol": {"type": "ollama", "base_url": "http://127.0.0.1:9", "models": ["m"]},
                "ol2": {"type": "ollama", "base_url": "http://127.0.0.1:9", "models": ["m"]},
            }
        },
        env={},
    )
    local, ol, ol2 = config.providers
    kinds = ModelKinds()
    assert kinds.takes_images("smollm2-135m", (local,)) is False
    assert kinds.takes_images("m", (ol,)) is None  # not answered yet
    kinds.known[("ol", "m")] = ModelKind(embeds=False, images=True)
    assert kinds.takes_images("m", (ol,)) is True
    assert kinds.takes_images("m", (ol, local)) is None  # a fallback that cannot read them
    kinds.known[("ol2", "m")] = ModelKind(embeds=False, images=True)
    assert kinds.takes_images("m", (ol, ol2)) is True


def test_what_the_upstreams_answer_is_read() -> None:
    assert from_ollama_show(b'{"capabilities": ["completion", "vision"]}') == ModelKind(False, True)
    assert from_ollama_show(b'{"capabilities": ["embedding"]}') == ModelKind(True, False)
    assert from_ollama_show(b'{"details": {}}') is None  # an Ollama before 0.6.4
    assert from_gemini_model(b'{"supportedGenerationMethods": ["generateContent"]}') == (
        ModelKind(False, None)
    )
