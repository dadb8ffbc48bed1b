"""What the legacy completions tests share: a fake of each upstream protocol, the gateway in
front of them, and raw-HTTP helpers that read its exact bytes.

Models: `davinci` (an OpenAI-compatible server serving /v1/completions: passthrough),
`chatty` (the same server, its provider says `"completions": false`: through chat), `llama`
(Ollama), `claude` (Anthropic), `gem` (Gemini) — these four translated onto chat; `mix`
(passthrough first, then Anthropic), `fb` (passthrough first, then Ollama), `rev` (Anthropic
first, then the passthrough server), `bare` (a server without /v1/completions).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
from aiohttp.test_utils import TestServer

from llms.config import Config
from tests.conftest import gateway_config
from tests.upstreams.anthropic import API_KEY as ANTHROPIC_KEY
from tests.upstreams.anthropic import FakeAnthropic
from tests.upstreams.gemini import FakeGemini
from tests.upstreams.ollama import FakeOllama
from tests.upstreams.openai import FakeOpenAI

OPENAI_KEY = "sk-upstream-cmpl"


class Fakes:
    def __init__(self) -> None:
        self.openai = FakeOpenAI(api_key=OPENAI_KEY)
        self.bare = FakeOpenAI()
        self.bare.serves_completions = False
        self.ollama = FakeOllama()
        self.anthropic = FakeAnthropic()
        self.gemini = FakeGemini()


@contextlib.asynccontextmanager
async def running_fakes() -> AsyncIterator[Fakes]:
    """Every fake, each a real server on 127.0.0.1 (`base_url` set on each)."""
    made = Fakes()
    servers = []
    for fake, path in (
        (made.openai, "/v1"),
        (made.bare, "/v1"),
        (made.ollama, ""),
        (made.anthropic, ""),
        (made.gemini, "/v1beta"),
    ):
        server = TestServer(fake.app, host="127.0.0.1")
        await server.start_server()
        fake.base_url = str(server.make_url(path or "/")).rstrip("/")  # type: ignore[attr-defined]
        servers.append(server)
    try:
        yield made
    finally:
        for server in servers:
            await server.close()


def completions_config(fakes: Fakes, **sections: Any) -> Config:
    timeouts = {"first_token_s": 3, "idle_s": 2, "answer_s": 3}
    url = {name: getattr(fakes, name).base_url for name in vars(fakes)}
    providers = {
        "oa": {
            "type": "openai",
            "base_url": url["openai"],
            "api_key": OPENAI_KEY,
            "models": {"davinci": "up-instruct", "mix": "oa-mix", "fb": "oa-fb", "rev": "oa-rev"},
            "timeouts": timeouts,
        },
        "chat-only": {
            "type": "openai",
            "base_url": url["openai"],
            "api_key": OPENAI_KEY,
            "completions": False,
            "models": {"chatty": "up-chat"},
            "timeouts": timeouts,
        },
        "bare": {
            "type": "openai",
            "base_url": url["bare"],
            "models": {"bare": "up-bare"},
            "timeouts": timeouts,
        },
        "ol": {
            "type": "ollama",
            "base_url": url["ollama"],
            "models": {"llama": "llama3.2", "fb": "ol-fb"},
            "timeouts": timeouts,
        },
        "an": {
            "type": "anthropic",
            "base_url": url["anthropic"],
            "api_key": ANTHROPIC_KEY,
            "models": {"claude": "claude-up", "mix": "claude-mix", "rev": "claude-rev"},
            "timeouts": timeouts,
        },
        "gm": {
            "type": "gemini",
            "base_url": url["gemini"],
            "api_key": "gm-test-key",
            "models": {"gem": "gemini-up"},
            "timeouts": timeouts,
        },
    }
    sections.setdefault("routing", {"max_attempts": 3})
    return gateway_config(providers, **sections)


async def post(
    base: str, body: dict[str, Any], headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """POST /v1/completions as raw HTTP: status, headers, the exact body bytes."""
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{base}/completions", json=body, headers=headers or {}) as resp,
    ):
        return resp.status, dict(resp.headers), await resp.read()


def events(raw: bytes) -> list[bytes]:
    """The data of each SSE event, checking that nothing but `data:` lines (and, in resumable
    mode, `id:` lines) was sent."""
    assert raw.endswith(b"\n\n")
    out = []
    for block in raw[:-2].split(b"\n\n"):
        lines = block.split(b"\n")
        data = [line for line in lines if not line.startswith(b"id: ")]
        assert len(data) == 1 and data[0].startswith(b"data: "), block
        out.append(data[0][6:])
    return out


def chunks_of(raw: bytes) -> list[dict[str, Any]]:
    """The JSON events of a stream that ended with `[DONE]`."""
    data = events(raw)
    assert data[-1] == b"[DONE]"
    return [orjson.loads(item) for item in data[:-1]]


def text_of(chunks: list[dict[str, Any]], index: int = 0) -> str:
    return "".join(c["text"] for chunk in chunks for c in chunk["choices"] if c["index"] == index)
