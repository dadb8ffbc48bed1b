"""Accenture's AI Refinery through the real gateway, as its SDK (`airefinery-sdk`) calls it:
`{base_url}/v1/chat/completions`, a Bearer API key or an OAuth2 client-credentials token, the
`sdk_version` header, streams without `[DONE]`, `event: error` events, FastAPI error bodies.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import openai
import pytest

from llms.adapters.airefinery import SDK_VERSION
from llms.config import Config
from llms.probe import probe
from tests.conftest import Gateway, gateway_config
from tests.upstreams.airefinery import FakeRefinery, error_event
from tests.upstreams.oauth import FakeTokenEndpoint, root_of, serve

KEY = "air-key-0123456789abcdef"
MESSAGES: list[Any] = [{"role": "user", "content": "hi"}]


@pytest.fixture
async def refinery() -> AsyncIterator[FakeRefinery]:
    fake = FakeRefinery(KEY)
    server = await serve(fake.app)
    fake.base_url = root_of(server)  # type: ignore[attr-defined]
    yield fake
    await server.close()


def refinery_config(fake: FakeRefinery, **provider: Any) -> Config:
    entry = {
        "type": "airefinery",
        "base_url": fake.base_url,  # type: ignore[attr-defined]
        "api_key": KEY,
        "models": ["openai/gpt-oss-120b"],
        "timeouts": {"first_token_s": 5, "answer_s": 5},
        **provider,
    }
    return gateway_config({"air": entry}, routing={"max_attempts": 1})


def client_of(url: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=url, api_key="unused", max_retries=0)


@pytest.mark.parametrize("suffix", ["", "/v1", "/"])
async def test_stream_as_the_sdk_sends_it(
    refinery: FakeRefinery, make_gateway: Gateway, suffix: str
) -> None:
    base = refinery.base_url + suffix  # type: ignore[attr-defined]
    client = client_of(await make_gateway(refinery_config(refinery, base_url=base)))
    stream = await client.chat.completions.create(
        model="openai/gpt-oss-120b", messages=MESSAGES, stream=True
    )
    chunks = [chunk async for chunk in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == (
        "Hello, world!"
    )
    assert chunks[-1].choices[0].finish_reason == "stop"  # no [DONE]: the end is the end
    sent = refinery.received[0]
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["Authorization"] == f"Bearer {KEY}"
    assert sent.headers["sdk_version"] == SDK_VERSION
    assert sent.headers["Accept"] == "text/event-stream"
    assert sent.body["model"] == "openai/gpt-oss-120b"


async def test_non_stream(refinery: FakeRefinery, make_gateway: Gateway) -> None:
    client = client_of(await make_gateway(refinery_config(refinery)))
    answer = await client.chat.completions.create(model="openai/gpt-oss-120b", messages=MESSAGES)
    assert answer.choices[0].message.content == "Hello, world!"
    assert refinery.received[0].body["stream"] is False


async def test_an_error_event_is_an_error(refinery: FakeRefinery, make_gateway: Gateway) -> None:
    refinery.scripts["openai/gpt-oss-120b"] = error_event("model overloaded")
    url = await make_gateway(refinery_config(refinery))
    async with aiohttp.ClientSession() as session:
        body = {"model": "openai/gpt-oss-120b", "messages": MESSAGES, "stream": True}
        async with session.post(f"{url}/chat/completions", json=body) as resp:
            assert resp.status == 502
            error = (await resp.json())["error"]
    assert error["message"] == "model overloaded"


async def test_a_bad_key_is_upstream_auth_failed(
    refinery: FakeRefinery, make_gateway: Gateway
) -> None:
    client = client_of(await make_gateway(refinery_config(refinery, api_key="air-wrong-key-99")))
    with pytest.raises(openai.APIStatusError) as caught:
        await client.chat.completions.create(model="openai/gpt-oss-120b", messages=MESSAGES)
    assert caught.value.status_code == 502
    assert caught.value.body["code"] == "upstream_auth_failed"  # type: ignore[index]
    assert "air-wrong-key-99" not in str(caught.value.body)


async def test_oauth2_client_credentials(make_gateway: Gateway) -> None:
    tokens = FakeTokenEndpoint(scope=None)
    token_server = await serve(tokens.app)
    tokens.url = root_of(token_server)
    fake = FakeRefinery(tokens=tokens)
    server = await serve(fake.app)
    try:
        auth = {
            "type": "oauth2_client_credentials",
            "token_url": tokens.token_url,
            "client_id": tokens.client_id,
            "client_secret": tokens.client_secret,
        }
        entry = {"type": "airefinery", "base_url": root_of(server), "auth": auth, "models": ["m"]}
        client = client_of(await make_gateway(gateway_config({"air": entry})))
        answer = await client.chat.completions.create(model="m", messages=MESSAGES)
        assert answer.choices[0].message.content == "Hello, world!"
        assert fake.received[0].headers["Authorization"] == "Bearer tok-1"
        assert "scope" not in tokens.requests[0]  # none configured, none sent
    finally:
        await server.close()
        await token_server.close()


async def test_responses_api_through_ai_refinery(
    refinery: FakeRefinery, make_gateway: Gateway
) -> None:
    client = client_of(await make_gateway(refinery_config(refinery)))
    response = await client.responses.create(model="openai/gpt-oss-120b", input="hi")
    assert response.output_text == "Hello, world!"
    assert refinery.received[0].path == "/v1/chat/completions"


async def test_llms_check_probes_ai_refinery(refinery: FakeRefinery) -> None:
    config = refinery_config(refinery)
    result = await probe(config, config.providers[0])
    assert result.ok, result.detail


def test_default_base_url() -> None:
    config = gateway_config({"air": {"type": "airefinery", "api_key": KEY, "models": ["m"]}})
    assert config.providers[0].base_url == "https://api.airefinery.accenture.com"
