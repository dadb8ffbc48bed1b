"""An Ollama server that is not running when the gateway starts never stops the gateway."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable

import aiohttp

from tests.conftest import gateway_config
from tests.upstreams.openai import FakeOpenAI


async def test_unreachable_ollama_is_reported_and_other_models_still_serve(
    fake_openai: FakeOpenAI, make_gateway: Callable[..., Awaitable[str]]
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    providers = {
        "ollama": {"type": "ollama", "base_url": f"http://127.0.0.1:{port}"},
        "fake": {"type": "openai", "base_url": fake_openai.base_url, "models": {"m": "up-model"}},  # type: ignore[attr-defined]
    }
    base = await make_gateway(gateway_config(providers))
    root = base.removesuffix("/v1")
    async with aiohttp.ClientSession() as session:
        for _ in range(100):
            async with session.get(f"{root}/ready") as resp:
                ready = await resp.json()
            if ready["providers"]["ollama"]["state"] != "starting":
                break
            await asyncio.sleep(0.05)
        assert resp.status == 200
        assert ready["providers"]["ollama"] == {
            "type": "ollama",
            "models": [],
            "state": "unreachable",
            "circuit": "closed",
            "consecutive_failures": 0,
        }
        body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
        async with session.post(f"{base}/chat/completions", json=body) as resp:
            assert resp.status == 200
        async with session.get(f"{base}/models") as resp:
            assert [m["id"] for m in (await resp.json())["data"]] == ["m"]
