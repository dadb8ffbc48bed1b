"""POST /v1/messages/count_tokens through the real gateway, driven by the anthropic SDK.

Exact from each upstream that can count — Anthropic's `count_tokens`, Gemini's `countTokens`,
llama.cpp's `/apply-template` + `/tokenize` — against fakes that speak those protocols and check
their auth; an estimate (cl100k_base through tiktoken, `X-Token-Count: estimate`) from the rest
and whenever the counting upstream fails; errors in Anthropic's shape.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import anthropic
import orjson
import pytest
from aiohttp import web

from llms.local import find_model_file
from tests.conftest import gateway_config
from tests.test_responses_api import started
from tests.upstreams import anthropic as anthropic_fake
from tests.upstreams import gemini as gemini_fake
from tests.upstreams.ollama import FakeOllama
from tests.upstreams.openai import FakeOpenAI, prompt_of, tokens_of

Gateway = Callable[..., Awaitable[str]]

TOOLS: Any = [
    {
        "name": "get_weather",
        "description": "The weather in a city",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
    }
]
ROBOT: Any = [{"role": "robot", "content": "hi"}]
REQUEST: Any = {
    "system": "Be brief.",
    "messages": [{"role": "user", "content": "What is the weather in Paris?"}],
    "tools": TOOLS,
}


async def gateway_for(make_gateway: Gateway, providers: dict[str, Any], **server: Any) -> str:
    config = gateway_config(providers, routing={"max_attempts": 1}, server=server or {})
    return str(await make_gateway(config)).removesuffix("/v1")


def client_of(base: str, key: str = "unused") -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=base, api_key=key, max_retries=0)


async def count(base: str, model: str = "m", **request: Any) -> tuple[int, dict[str, str]]:
    """The SDK's `count_tokens`: the count, and the answer's headers."""
    raw = await client_of(base).messages.with_raw_response.count_tokens(
        model=model, **(request or REQUEST)
    )
    return (await raw.parse()).input_tokens, dict(raw.headers)


def anthropic_provider(url: str) -> dict[str, Any]:
    return {
        "type": "anthropic",
        "base_url": url,
        "api_key": anthropic_fake.API_KEY,
        "models": {"m": anthropic_fake.MODEL},
    }


async def test_an_anthropic_provider_counts_with_its_own_endpoint(make_gateway: Gateway) -> None:
    fake = anthropic_fake.FakeAnthropic()
    async for url in started(fake, ""):
        base = await gateway_for(make_gateway, {"up": anthropic_provider(url)})
        raw = await client_of(base).messages.with_raw_response.count_tokens(
            model="m",
            extra_headers={"anthropic-beta": "token-efficient-tools-2025-02-19"},
            **REQUEST,
        )
        sent = fake.received[-1]
        assert sent.path == "/v1/messages/count_tokens"
        assert sent.body == {**REQUEST, "model": anthropic_fake.MODEL}  # passed through
        assert sent.headers["anthropic-beta"] == "token-efficient-tools-2025-02-19"
        assert (await raw.parse()).input_tokens == anthropic_fake.count_of(sent.body)
        assert raw.headers["x-token-count"] == "exact" and raw.headers["x-provider"] == "up"


async def test_gemini_counts_with_count_tokens(make_gateway: Gateway) -> None:
    fake = gemini_fake.FakeGemini()
    async for url in started(fake, "/v1beta"):
        provider = {
            "type": "gemini",
            "base_url": url,
            "api_key": "gm-test-key",
            "models": {"m": "gemini-2.5-flash"},
        }
        base = await gateway_for(make_gateway, {"up": provider})
        tokens, headers = await count(base)
        sent = fake.received[-1]
        assert sent.path.endswith("/models/gemini-2.5-flash:countTokens")
        generate = sent.body["generateContentRequest"]
        assert generate["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
        assert generate["tools"][0]["functionDeclarations"][0]["name"] == "get_weather"
        assert tokens == gemini_fake.count_of(generate)
        assert headers["x-token-count"] == "exact"


async def test_llama_cpp_renders_the_template_then_tokenizes(make_gateway: Gateway) -> None:
    fake = FakeOpenAI(llama_cpp=True, api_key="sk-upstream")
    async for url in started(fake):
        provider = {"type": "openai", "base_url": url, "api_key": "sk-upstream", "models": ["m"]}
        base = await gateway_for(make_gateway, {"up": provider})
        tokens, headers = await count(base)
        template, tokenize = fake.received
        assert [template.path, tokenize.path] == ["/apply-template", "/tokenize"]
        assert template.body["messages"][0] == {"role": "system", "content": "Be brief."}
        prompt = prompt_of(template.body["messages"], template.body["tools"])
        assert tokenize.body["content"] == prompt and tokenize.body["add_special"] is True
        assert tokens == len(tokens_of(prompt, add_special=True))
        assert headers["x-token-count"] == "exact"


async def test_upstreams_that_cannot_count_get_an_estimate(make_gateway: Gateway) -> None:
    plain, ollama = FakeOpenAI(), FakeOllama()
    probes: list[str] = []

    @web.middleware
    async def seen(request: web.Request, handler: Any) -> web.StreamResponse:
        probes.append(request.path)
        return await handler(request)  # type: ignore[no-any-return]

    plain.app.middlewares.append(seen)
    async for openai_url in started(plain):
        async for ollama_url in started(ollama, ""):
            providers = {
                "openai": {"type": "openai", "base_url": openai_url, "models": ["gpt"]},
                "ollama": {"type": "ollama", "base_url": ollama_url, "models": ["llama"]},
            }
            base = await gateway_for(make_gateway, providers)
            hello: Any = {"messages": [{"role": "user", "content": "hello world"}]}
            for model in ("gpt", "gpt", "llama"):  # the second: known not to be llama.cpp
                tokens, headers = await count(base, model, **hello)
                # cl100k_base: "hello world" is 2 tokens; 3 for the message, 3 for the reply.
                assert (tokens, headers["x-token-count"]) == (8, "estimate")
            long, _ = await count(base, "llama", **REQUEST)
            assert 30 < long < 100
    assert probes == ["/apply-template"]  # a 404: not llama.cpp's server, asked once
    assert ollama.received == []


async def test_a_failing_count_falls_back_to_the_estimate(make_gateway: Gateway) -> None:
    fake = anthropic_fake.FakeAnthropic()
    fake.scripts[anthropic_fake.MODEL] = anthropic_fake.error_script(
        529, "overloaded_error", "Overloaded"
    )
    async for url in started(fake, ""):
        base = await gateway_for(make_gateway, {"up": anthropic_provider(url)})
        tokens, headers = await count(base)
        assert tokens > 0 and headers["x-token-count"] == "estimate"
        # The client's own mistake, as Anthropic says it, is the client's 400.
        fake.scripts[anthropic_fake.MODEL] = anthropic_fake.error_script(
            400, "invalid_request_error", "messages.0.content: Field required"
        )
        with pytest.raises(anthropic.BadRequestError) as bad:
            await count(base)
        assert bad.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
        assert "Field required" in bad.value.body["error"]["message"]  # type: ignore[index]


async def test_errors_are_anthropics_shape(make_gateway: Gateway) -> None:
    fake = FakeOpenAI()
    async for url in started(fake):
        provider = {"type": "openai", "base_url": url, "models": ["m", "other"]}
        keys = [{"key": "sk-a", "name": "a"}, {"key": "sk-b", "name": "b", "models": ["other"]}]
        base = await gateway_for(make_gateway, {"up": provider}, api_keys=keys)
        with pytest.raises(anthropic.NotFoundError) as missing:
            await client_of(base, "sk-a").messages.count_tokens(model="nope", **REQUEST)
        assert missing.value.body["type"] == "error"  # type: ignore[index]
        assert missing.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]
        with pytest.raises(anthropic.AuthenticationError):
            await client_of(base, "wrong").messages.count_tokens(model="m", **REQUEST)
        with pytest.raises(anthropic.PermissionDeniedError):
            await client_of(base, "sk-b").messages.count_tokens(model="m", **REQUEST)
        with pytest.raises(anthropic.BadRequestError) as bad:
            await client_of(base, "sk-a").messages.count_tokens(
                model="m",
                messages=ROBOT,
            )
        assert bad.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
        async with aiohttp.ClientSession() as session:
            for data in (b"{", orjson.dumps({"model": "m"}), orjson.dumps({"messages": []})):
                async with session.post(
                    f"{base}/v1/messages/count_tokens", data=data, headers={"x-api-key": "sk-a"}
                ) as resp:
                    error = orjson.loads(await resp.read())
                assert resp.status == 400, data
                assert error["type"] == "error"
                assert error["error"]["type"] == "invalid_request_error"


@pytest.mark.process
@pytest.mark.skipif(
    find_model_file("smollm2-135m") is None,
    reason="the bundled model is not installed (make test installs it)",
)
async def test_the_bundled_model_counts_what_it_is_then_sent(make_gateway: Gateway) -> None:
    config = gateway_config({"local": {"type": "local", "model": "smollm2-135m"}})
    base = str(await make_gateway(config)).removesuffix("/v1")
    async with aiohttp.ClientSession() as session:
        for _ in range(300):
            async with session.get(f"{base}/ready") as resp:
                if resp.status == 200:
                    break
            await asyncio.sleep(0.1)
        assert resp.status == 200, "the bundled model never became ready"
    tokens, headers = await count(base, "smollm2-135m")
    assert headers["x-token-count"] == "exact"
    message = await client_of(base).messages.create(model="smollm2-135m", max_tokens=1, **REQUEST)
    assert tokens == message.usage.input_tokens  # the prompt llama.cpp evaluated, to the token
