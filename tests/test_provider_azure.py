"""Azure OpenAI through the real gateway: the deployment URL, api-version, the `api-key` header
(or an Entra ID token), Azure's content-filter results and its error shapes.

The fake (tests/upstreams/azure.py) checks what Azure checks; its streams arrive in odd-sized
pieces. Clients: the official openai and anthropic SDKs, and raw HTTP for exact bodies.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import anthropic
import openai
import pytest

from llms.config import Config
from llms.errors import ConfigError
from llms.probe import probe
from tests.conftest import Gateway, gateway_config
from tests.upstreams.azure import FakeAzure, azure_error, azure_stream, content_filter_error
from tests.upstreams.oauth import FakeTokenEndpoint, root_of, serve

KEY = "azure-key-0123456789"
MESSAGES: list[Any] = [{"role": "user", "content": "hi"}]


@pytest.fixture
async def azure() -> AsyncIterator[FakeAzure]:
    fake = FakeAzure(KEY)
    server = await serve(fake.app)
    fake.base_url = root_of(server)  # type: ignore[attr-defined]
    yield fake
    await server.close()


def azure_config(fake: FakeAzure, **provider: Any) -> Config:
    entry: dict[str, Any] = {
        "type": "azure",
        "base_url": fake.base_url,  # type: ignore[attr-defined]
        "api_key": KEY,
        "api_version": "2024-10-21",
        "models": {"gpt-4o": "gpt4o-prod", "gone": "not-deployed"},
        "timeouts": {"first_token_s": 5, "answer_s": 5},
        **provider,
    }
    return gateway_config({"az": entry}, routing={"max_attempts": 1})


def client_of(url: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=url, api_key="unused", max_retries=0)


async def test_stream_goes_to_the_deployment_with_the_api_key(
    azure: FakeAzure, make_gateway: Gateway
) -> None:
    client = client_of(await make_gateway(azure_config(azure)))
    stream = await client.chat.completions.create(
        model="gpt-4o", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello, world!"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 4
    assert chunks[0].model == "gpt-4o"
    # Azure's prompt filter results ride on the first chunk; each choice keeps its own.
    assert chunks[0].model_extra["prompt_filter_results"][0]["prompt_index"] == 0  # type: ignore[index]
    filtered = [c.choices[0].model_extra.get("content_filter_results") for c in chunks if c.choices]
    assert filtered[1]["violence"] == {"filtered": False, "severity": "safe"}  # type: ignore[index]
    sent = azure.received[0]
    assert sent.path == "/openai/deployments/gpt4o-prod/chat/completions?api-version=2024-10-21"
    assert sent.headers["api-key"] == KEY
    assert "Authorization" not in sent.headers


async def test_non_stream_keeps_the_filter_results(azure: FakeAzure, make_gateway: Gateway) -> None:
    client = client_of(await make_gateway(azure_config(azure)))
    answer = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert answer.choices[0].message.content == "Hello, world!"
    assert answer.model_extra["prompt_filter_results"][0]["content_filter_results"]["hate"] == {  # type: ignore[index]
        "filtered": False,
        "severity": "safe",
    }
    assert answer.choices[0].model_extra["content_filter_results"]["sexual"]["severity"] == "safe"  # type: ignore[index]
    assert azure.received[0].body["stream"] is False


async def test_a_filtered_completion_ends_with_content_filter(
    azure: FakeAzure, make_gateway: Gateway
) -> None:
    azure.scripts["gpt4o-prod"] = azure_stream(["Once upon"], finish="content_filter")
    client = client_of(await make_gateway(azure_config(azure)))
    stream = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    chunks = [chunk async for chunk in stream]
    assert chunks[-1].choices[0].finish_reason == "content_filter"
    answer = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert answer.choices[0].finish_reason == "content_filter"


async def test_a_filtered_prompt_is_a_400_content_filter(
    azure: FakeAzure, make_gateway: Gateway
) -> None:
    azure.scripts["gpt4o-prod"] = content_filter_error()
    url = await make_gateway(azure_config(azure))
    async with aiohttp.ClientSession() as session:
        body = {"model": "gpt-4o", "messages": MESSAGES, "stream": True}
        async with session.post(f"{url}/chat/completions", json=body) as resp:
            assert resp.status == 400
            error = (await resp.json())["error"]
    assert error["code"] == "content_filter"
    assert error["type"] == "invalid_request_error"
    assert error["param"] == "messages"
    assert "content management policy" in error["message"]
    assert "(filtered: violence (high))" in error["message"]


@pytest.mark.parametrize(
    ("script", "status", "code"),
    [
        (
            azure_error(
                429,
                {"code": "429", "message": "Rate limit is exceeded. Try again in 6 seconds."},
                {"retry-after": "6"},
            ),
            429,
            "rate_limit_exceeded",
        ),
        (
            azure_error(
                500, {"code": "InternalServerError", "message": "The server had an error."}
            ),
            502,
            "upstream_error",
        ),
        (
            azure_error(503, {"code": "ServiceUnavailable", "message": "The service is busy."}),
            503,
            "upstream_unavailable",
        ),
    ],
)
async def test_azure_errors_are_mapped(
    azure: FakeAzure, make_gateway: Gateway, script: Any, status: int, code: str
) -> None:
    azure.scripts["gpt4o-prod"] = script
    client = client_of(await make_gateway(azure_config(azure)))
    with pytest.raises(openai.APIStatusError) as caught:
        await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert caught.value.status_code == status
    assert caught.value.body["code"] == code  # type: ignore[index]
    if status == 429:
        assert caught.value.response.headers["retry-after"] == "6"
        assert "6 seconds" in caught.value.body["message"]  # type: ignore[index]


async def test_a_wrong_key_is_upstream_auth_failed_without_the_key(
    azure: FakeAzure, make_gateway: Gateway
) -> None:
    url = await make_gateway(azure_config(azure, api_key="wrong-key-0123456789"))
    async with aiohttp.ClientSession() as session:
        body = {"model": "gpt-4o", "messages": MESSAGES}
        async with session.post(f"{url}/chat/completions", json=body) as resp:
            assert resp.status == 502
            raw = await resp.text()
    assert '"upstream_auth_failed"' in raw and "wrong-key" not in raw


async def test_an_unknown_deployment_is_model_not_found(
    azure: FakeAzure, make_gateway: Gateway
) -> None:
    client = client_of(await make_gateway(azure_config(azure)))
    with pytest.raises(openai.NotFoundError) as caught:
        await client.chat.completions.create(model="gone", messages=MESSAGES)
    assert caught.value.body["code"] == "model_not_found"  # type: ignore[index]
    assert "deployment for this resource does not exist" in caught.value.message


async def test_an_unsupported_api_version_is_azures_400(
    azure: FakeAzure, make_gateway: Gateway
) -> None:
    client = client_of(await make_gateway(azure_config(azure, api_version="2023-01-01")))
    with pytest.raises(openai.BadRequestError) as caught:
        await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert "API version not supported" in caught.value.message


async def test_entra_id_token_instead_of_the_key(make_gateway: Gateway) -> None:
    tokens = FakeTokenEndpoint(scope="https://cognitiveservices.azure.com/.default")
    token_server = await serve(tokens.app)
    tokens.url = root_of(token_server)
    fake = FakeAzure(tokens=tokens)
    server = await serve(fake.app)
    fake.base_url = root_of(server)  # type: ignore[attr-defined]
    try:
        auth = {
            "type": "oauth2_client_credentials",
            "token_url": tokens.token_url,
            "client_id": tokens.client_id,
            "client_secret": tokens.client_secret,
            "scope": "https://cognitiveservices.azure.com/.default",
        }
        config = gateway_config(
            {
                "az": {
                    "type": "azure",
                    "base_url": fake.base_url,  # type: ignore[attr-defined]
                    "auth": auth,
                    "models": {"gpt-4o": "gpt4o-prod"},
                }
            }
        )
        client = client_of(await make_gateway(config))
        answer = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        assert answer.choices[0].message.content == "Hello, world!"
        sent = fake.received[0]
        assert sent.headers["Authorization"] == "Bearer tok-1"
        assert "api-key" not in sent.headers
        assert sent.path.endswith("?api-version=2024-10-21")  # the default version
    finally:
        await server.close()
        await token_server.close()


async def test_messages_api_through_azure(azure: FakeAzure, make_gateway: Gateway) -> None:
    url = await make_gateway(azure_config(azure))
    client = anthropic.AsyncAnthropic(
        base_url=url.removesuffix("/v1"), api_key="unused", max_retries=0
    )
    message = await client.messages.create(model="gpt-4o", max_tokens=50, messages=MESSAGES)
    assert message.content[0].text == "Hello, world!"  # type: ignore[union-attr]
    assert message.stop_reason == "end_turn"
    assert azure.received[0].headers["api-key"] == KEY


async def test_llms_check_probes_azure(azure: FakeAzure) -> None:
    config = azure_config(azure)
    result = await probe(config, config.providers[0])
    assert result.ok, result.detail
    assert azure.received[0].path.startswith("/openai/deployments/gpt4o-prod/")


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"models": ["m"]}, r"providers[.]az[.]base_url: expected a non-empty string"),
        (
            {"base_url": "https://r.openai.azure.com", "api_version": "2024 10", "models": ["m"]},
            r"providers[.]az[.]api_version: expected a version",
        ),
        (
            {"base_url": "https://r.openai.azure.com", "responses": True, "models": ["m"]},
            r"providers[.]az[.]responses: unknown key",
        ),
    ],
)
def test_azure_config_mistakes_name_their_path(entry: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        gateway_config({"az": {"type": "azure", **entry}})
