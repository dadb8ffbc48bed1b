"""openai-node's finalChatCompletion() gets exact tool calls through every protocol adapter."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
from aiohttp.test_utils import TestServer

from tests.conftest import gateway_config
from tests.node_client import needs_node, run_node
from tests.upstreams import anthropic as anthropic_fake
from tests.upstreams import gemini as gemini_fake
from tests.upstreams import ollama as ollama_fake
from tests.upstreams.openai import FakeOpenAI

pytestmark = needs_node

TOOLS = [
    {"type": "function", "function": {"name": name, "parameters": {"type": "object"}}}
    for name in ("get_weather", "get_time")
]


async def serve(fake: FakeOpenAI, path: str) -> AsyncIterator[str]:
    server = TestServer(fake.app, host="127.0.0.1")
    await server.start_server()
    yield str(server.make_url(path))
    await server.close()


def assert_calls(result: dict[str, Any], expected: list[tuple[str, str, dict[str, Any]]]) -> None:
    assert result["ok"], result
    choice = result["completion"]["choices"][0]
    calls = choice["message"]["tool_calls"]
    assert [(c["id"], c["type"], c["function"]["name"]) for c in calls] == [
        (call_id, "function", name) for call_id, name, _ in expected
    ]
    assert [orjson.loads(c["function"]["arguments"]) for c in calls] == [
        args for *_, args in expected
    ]
    assert choice["finish_reason"] == "tool_calls"


async def test_ollama(make_gateway: Callable[..., Awaitable[str]]) -> None:
    fake = ollama_fake.FakeOllama()
    fake.scripts["qwen3:8b"] = ollama_fake.transcript("parallel_tools.ndjson")
    async for url in serve(fake, ""):
        provider = {"type": "ollama", "base_url": url, "models": {"qwen": "qwen3:8b"}}
        base = await make_gateway(gateway_config({"ollama": provider}, routing={"max_attempts": 1}))
        result = await run_node(base, "qwen", "final", TOOLS)
        assert_calls(
            result,
            [
                ("call_k2m9x7qa", "get_weather", {"city": "Paris"}),
                ("call_p4w8n1zd", "get_time", {"tz": "Europe/London"}),
            ],
        )


async def test_gemini(make_gateway: Callable[..., Awaitable[str]]) -> None:
    fake = gemini_fake.FakeGemini()
    fake.scripts["gemini-2.5-flash"] = gemini_fake.transcript("parallel_tools.sse")
    async for url in serve(fake, "/v1beta"):
        provider = {
            "type": "gemini",
            "base_url": url,
            "api_key": "gm-test-key",
            "models": {"flash": "gemini-2.5-flash"},
        }
        base = await make_gateway(gateway_config({"gemini": provider}, routing={"max_attempts": 1}))
        result = await run_node(base, "flash", "final", TOOLS)
        assert_calls(
            result,
            [
                ("ujx4wm2b", "get_weather", {"city": "Paris"}),
                ("3lq9d0ft", "get_weather", {"city": "Tokyo"}),
            ],
        )


async def test_anthropic(make_gateway: Callable[..., Awaitable[str]]) -> None:
    fake = anthropic_fake.FakeAnthropic()
    fake.scripts["claude-sonnet-4-5"] = anthropic_fake.recorded("parallel_tools")
    async for url in serve(fake, ""):
        provider = {
            "type": "anthropic",
            "base_url": url,
            "api_key": anthropic_fake.API_KEY,
            "models": {"claude": "claude-sonnet-4-5"},
        }
        base = await make_gateway(
            gateway_config({"anthropic": provider}, routing={"max_attempts": 1})
        )
        result = await run_node(base, "claude", "final", TOOLS)
        assert_calls(
            result,
            [
                ("toolu_01Paris9mWq3ZkJ8xVfT2bH", "get_weather", {"city": "Paris"}),
                ("toolu_01Tokyo4cRn8LpA6sYdE1uG", "get_time", {"city": "Tokyo", "utc": True}),
            ],
        )
