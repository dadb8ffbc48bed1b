"""What the embeddings tests share: the fakes of every protocol that embeds, the gateway in front
of them (Anthropic too, which has none) and the checks their answers need."""

from __future__ import annotations

import contextlib
import struct
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer

from llms.config import Config
from tests.conftest import gateway_config
from tests.upstreams.gemini import FakeGemini
from tests.upstreams.ollama import FakeOllama
from tests.upstreams.openai import FakeOpenAI

OPENAI_KEY = "sk-upstream-embed"
OLLAMA_KEY = "ol-upstream-key"


class Fakes:
    def __init__(self, openai_: FakeOpenAI, ollama: FakeOllama, gemini: FakeGemini) -> None:
        self.openai = openai_
        self.ollama = ollama
        self.gemini = gemini


@contextlib.asynccontextmanager
async def running_fakes() -> AsyncIterator[Fakes]:
    """The three fakes, each a real server on 127.0.0.1 (`base_url` set on each)."""
    made = Fakes(FakeOpenAI(api_key=OPENAI_KEY), FakeOllama(), FakeGemini())
    made.ollama.api_key = OLLAMA_KEY
    servers = []
    for fake, path in ((made.openai, "/v1"), (made.ollama, ""), (made.gemini, "/v1beta")):
        server = TestServer(fake.app, host="127.0.0.1")
        await server.start_server()
        fake.base_url = str(server.make_url(path or "/")).rstrip("/")  # type: ignore[attr-defined]
        servers.append(server)
    try:
        yield made
    finally:
        for server in servers:
            await server.close()


def providers(fakes: Fakes) -> dict[str, Any]:
    timeouts = {"first_token_s": 3, "idle_s": 2, "answer_s": 3}
    return {
        "oa": {
            "type": "openai",
            "base_url": fakes.openai.base_url,  # type: ignore[attr-defined]
            "api_key": OPENAI_KEY,
            "models": {"emb": "text-embedding-3-small", "fb": "oa-fb", "mixed": "oa-mixed"},
            "timeouts": timeouts,
        },
        "ol": {
            "type": "ollama",
            "base_url": fakes.ollama.base_url,  # type: ignore[attr-defined]
            "api_key": OLLAMA_KEY,
            "models": {"nomic": "nomic-embed-text", "fb": "ol-fb", "text-only": "ol-text"},
            "timeouts": timeouts,
        },
        "gm": {
            "type": "gemini",
            "base_url": fakes.gemini.base_url,  # type: ignore[attr-defined]
            "api_key": "gm-test-key",
            "models": {"gem": "gemini-embedding-001", "text-only": "gm-text"},
            "timeouts": timeouts,
        },
        "an": {
            "type": "anthropic",
            "base_url": "http://127.0.0.1:9",
            "api_key": "sk-ant",
            "models": {"claude": "claude-sonnet-4-5", "mixed": "claude-x"},
        },
    }


def embeddings_config(fakes: Fakes) -> Config:
    return gateway_config(
        providers(fakes),
        routing={"max_attempts": 3, "circuit": {"failures": 2, "cooldown_s": 30}},
    )


async def ready(gateway: str) -> dict[str, Any]:
    root = gateway.removesuffix("/v1")
    async with aiohttp.ClientSession() as session, session.get(f"{root}/ready") as resp:
        result: dict[str, Any] = (await resp.json())["providers"]
        return result


def floats32(values: list[float]) -> list[float]:
    return list(struct.unpack(f"<{len(values)}f", struct.pack(f"<{len(values)}f", *values)))
