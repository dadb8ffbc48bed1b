"""An `anthropic` provider's base URL, through the real gateway.

The base URL works written as Anthropic's SDKs write it (`https://api.anthropic.com`) and as the
OpenAI-style configs write it (`…/v1`), with or without a trailing slash: the fake Anthropic
upstream is asked `/v1/messages` and `/v1/messages/count_tokens` either way.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anthropic
import openai
import pytest

from tests.conftest import gateway_config
from tests.test_responses_api import started
from tests.upstreams.anthropic import API_KEY, MODEL, FakeAnthropic

Gateway = Callable[..., Awaitable[str]]
MESSAGES: Any = [{"role": "user", "content": "hi"}]
# The forms a configured base URL takes: Anthropic's (root) and OpenAI's (with the version).
SUFFIXES = ("", "/", "/v1", "/v1/")


@pytest.fixture
async def fake() -> AsyncIterator[FakeAnthropic]:
    upstream = FakeAnthropic()
    async for url in started(upstream, ""):
        upstream.base_url = url.rstrip("/")  # type: ignore[attr-defined]
        yield upstream


async def gateway_for(make_gateway: Gateway, base_url: str) -> str:
    """The gateway (its …/v1) with one anthropic provider at `base_url`, serving `claude`."""
    provider = {
        "type": "anthropic",
        "base_url": base_url,
        "api_key": API_KEY,
        "models": {"claude": MODEL},
    }
    config = gateway_config({"anthropic": provider}, routing={"max_attempts": 1})
    return await make_gateway(config)


async def test_base_url_with_or_without_v1_calls_messages(
    fake: FakeAnthropic, make_gateway: Gateway
) -> None:
    root: str = fake.base_url  # type: ignore[attr-defined]
    for suffix in SUFFIXES:
        gateway = await gateway_for(make_gateway, root + suffix)
        client = openai.AsyncOpenAI(base_url=gateway, api_key="unused", max_retries=0)
        for stream in (False, True):
            fake.received.clear()
            if stream:
                chunks = await client.chat.completions.create(
                    model="claude", messages=MESSAGES, stream=True
                )
                async for _ in chunks:
                    pass
            else:
                answer = await client.chat.completions.create(model="claude", messages=MESSAGES)
                assert answer.choices[0].message.content, suffix
            assert [r.path for r in fake.received] == ["/v1/messages"], suffix


async def test_base_url_with_or_without_v1_counts_tokens(
    fake: FakeAnthropic, make_gateway: Gateway
) -> None:
    root: str = fake.base_url  # type: ignore[attr-defined]
    for suffix in SUFFIXES:
        gateway = await gateway_for(make_gateway, root + suffix)
        client = anthropic.AsyncAnthropic(
            base_url=gateway.removesuffix("/v1"), api_key="unused", max_retries=0
        )
        fake.received.clear()
        raw = await client.messages.with_raw_response.count_tokens(
            model="claude", messages=MESSAGES
        )
        assert [r.path for r in fake.received] == ["/v1/messages/count_tokens"], suffix
        # Exact: counted by the upstream, not estimated after a 404.
        assert raw.headers["x-token-count"] == "exact", suffix
        assert (await raw.parse()).input_tokens > 0
