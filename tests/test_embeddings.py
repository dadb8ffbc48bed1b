"""POST /v1/embeddings through the real gateway with the official openai SDK, for each upstream
protocol (OpenAI-compatible, Ollama, Gemini; Anthropic has none), with fallback, an upstream
that fails (429, 500, a reset) and the circuits. The fakes' vectors are `vector_of(input)`, so
every answer is checked value for value, in both encodings."""

from __future__ import annotations

import asyncio
import base64
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import openai
import orjson
import pytest

from tests.embeddings_support import (
    OLLAMA_KEY,
    OPENAI_KEY,
    Fakes,
    embeddings_config,
    floats32,
    ready,
    running_fakes,
)
from tests.upstreams.embeddings import tokens_in, vector_of
from tests.upstreams.gemini import error_script as gemini_error
from tests.upstreams.openai import Script, error_script


@pytest.fixture
async def fakes() -> AsyncIterator[Fakes]:
    async with running_fakes() as made:
        yield made


@pytest.fixture
async def gateway(fakes: Fakes, make_gateway: Callable[..., Awaitable[str]]) -> str:
    return await make_gateway(embeddings_config(fakes))


@pytest.fixture
def client(gateway: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gateway, api_key="unused", max_retries=0)


@pytest.mark.parametrize("model", ["emb", "nomic", "gem"])
async def test_each_protocol_float_and_default_base64(
    client: openai.AsyncOpenAI, fakes: Fakes, model: str
) -> None:
    texts = ["The quick brown fox.", "Jumps over the lazy dog!"]
    # The SDK asks for base64 by default and decodes it; with "float" the numbers come as JSON.
    default = await client.embeddings.create(model=model, input=texts)
    as_float = await client.embeddings.create(model=model, input=texts, encoding_format="float")
    for answer in (default, as_float):
        assert answer.object == "list"
        assert answer.model == model
        assert [d.index for d in answer.data] == [0, 1]
        assert [d.embedding for d in answer.data] == [floats32(vector_of(t)) for t in texts]
        expected = 0 if model == "gem" else sum(tokens_in(t) for t in texts)  # Gemini: no count
        assert answer.usage.prompt_tokens == answer.usage.total_tokens == expected
    one = await client.embeddings.create(model=model, input="solo", dimensions=4)
    assert [d.embedding for d in one.data] == [floats32(vector_of("solo", 4))]


async def test_what_each_upstream_is_sent(client: openai.AsyncOpenAI, fakes: Fakes) -> None:
    await client.embeddings.create(model="emb", input=["a", "b"], dimensions=4, user="u-1")
    sent = fakes.openai.received[-1]
    assert sent.path == "/v1/embeddings"
    assert sent.headers["Authorization"] == f"Bearer {OPENAI_KEY}"
    assert sent.body == {
        "model": "text-embedding-3-small",
        "input": ["a", "b"],
        "dimensions": 4,
        "user": "u-1",
        "encoding_format": "base64",
    }
    await client.embeddings.create(model="nomic", input="a", dimensions=4)
    sent = fakes.ollama.received[-1]
    assert sent.path == "/api/embed"
    assert sent.headers["Authorization"] == f"Bearer {OLLAMA_KEY}"
    assert sent.body == {"model": "nomic-embed-text", "input": ["a"], "dimensions": 4}
    await client.embeddings.create(model="gem", input="a", dimensions=4)
    sent = fakes.gemini.received[-1]
    assert sent.path == "/v1beta/models/gemini-embedding-001:embedContent"
    assert sent.headers["x-goog-api-key"] == "gm-test-key"
    assert sent.body == {"content": {"parts": [{"text": "a"}]}, "outputDimensionality": 4}
    await client.embeddings.create(model="gem", input=["a", "b"])
    sent = fakes.gemini.received[-1]
    assert sent.path == "/v1beta/models/gemini-embedding-001:batchEmbedContents"
    assert sent.body == {
        "requests": [
            {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": t}]}}
            for t in ("a", "b")
        ]
    }


async def test_token_arrays_reach_openai_compatible_upstreams(
    client: openai.AsyncOpenAI, fakes: Fakes
) -> None:
    one = await client.embeddings.create(model="emb", input=[1, 2, 3], encoding_format="float")
    assert one.data[0].embedding == vector_of([1, 2, 3])
    assert one.usage.prompt_tokens == 3
    many = await client.embeddings.create(model="emb", input=[[5, 6], [7]])
    assert [d.embedding for d in many.data] == [floats32(vector_of(t)) for t in ([5, 6], [7])]
    assert fakes.openai.received[-1].body["input"] == [[5, 6], [7]]


async def test_token_arrays_for_text_only_upstreams_are_a_400_naming_input(
    client: openai.AsyncOpenAI, fakes: Fakes, gateway: str
) -> None:
    for model in ("nomic", "gem", "text-only"):
        with pytest.raises(openai.BadRequestError) as caught:
            await client.embeddings.create(model=model, input=[[1, 2]])
        error = caught.value.body
        assert isinstance(error, dict)
        assert error["param"] == "input"
        assert error["code"] == "unsupported_value"
        assert "take text" in error["message"]
    assert not fakes.ollama.received and not fakes.gemini.received
    assert all(p["consecutive_failures"] == 0 for p in (await ready(gateway)).values())


async def test_anthropic_has_no_embeddings_a_400_that_spares_its_circuit(
    client: openai.AsyncOpenAI, gateway: str
) -> None:
    for _ in range(3):  # more than the circuit's failures
        with pytest.raises(openai.BadRequestError) as caught:
            await client.embeddings.create(model="claude", input="hi")
        error = caught.value.body
        assert isinstance(error, dict)
        assert error["param"] == "model"
        assert error["code"] == "model_not_supported"
        assert "`claude`" in error["message"] and "an (anthropic)" in error["message"]
    state = (await ready(gateway))["an"]
    assert state["circuit"] == "closed" and state["consecutive_failures"] == 0
    # A model that Anthropic serves first and an OpenAI-compatible provider second embeds there.
    answer = await client.embeddings.with_raw_response.create(model="mixed", input="hi")
    assert answer.headers["X-Provider"] == "oa"


@pytest.mark.parametrize(
    "failure",
    [
        error_script(500, {"error": {"message": "boom", "type": "server_error"}}),
        error_script(429, {"error": {"message": "slow down"}}, {"retry-after": "30"}),
        Script(fault="reset"),
        Script(fault="stall"),  # until the provider's answer_s (3 s)
    ],
    ids=["500", "429", "reset", "stall"],
)
async def test_a_failing_upstream_falls_back(
    client: openai.AsyncOpenAI, fakes: Fakes, gateway: str, failure: Script
) -> None:
    fakes.openai.scripts["oa-fb"] = failure
    raw = await client.embeddings.with_raw_response.create(model="fb", input=["x", "y"])
    assert raw.headers["X-Provider"] == "ol"
    answer = raw.parse()
    assert [d.embedding for d in answer.data] == [floats32(vector_of(t)) for t in ("x", "y")]
    assert [r.path for r in fakes.openai.received] == ["/v1/embeddings"]
    assert len(fakes.ollama.received) == 1


async def test_failures_open_the_circuit_and_the_last_error_is_the_clients(
    client: openai.AsyncOpenAI, fakes: Fakes, gateway: str
) -> None:
    fakes.openai.scripts["oa-fb"] = error_script(500, {"error": {"message": "boom"}})
    fakes.ollama.scripts["ol-fb"] = error_script(503, {"error": "overloaded"})
    for _ in range(2):
        with pytest.raises(openai.APIStatusError) as caught:
            await client.embeddings.create(model="fb", input="x")
        assert caught.value.status_code in (502, 503)
    state = await ready(gateway)
    assert state["oa"]["circuit"] == "open" and state["ol"]["circuit"] == "open"
    sent = len(fakes.openai.received)
    with pytest.raises(openai.APIStatusError) as caught:
        await client.embeddings.create(model="fb", input="x")
    assert caught.value.status_code == 503
    assert caught.value.code == "providers_unavailable"
    assert len(fakes.openai.received) == sent  # an open circuit is not asked


async def test_gemini_errors_and_malformed_answers(
    client: openai.AsyncOpenAI, fakes: Fakes
) -> None:
    fakes.gemini.scripts["gemini-embedding-001"] = gemini_error(
        429, "RESOURCE_EXHAUSTED", "Quota exceeded."
    )
    with pytest.raises(openai.RateLimitError):
        await client.embeddings.create(model="gem", input="x")
    fakes.openai.scripts["text-embedding-3-small"] = Script(
        writes=[b'{"data": [{"embedding": "not base64!", "index": 0}]}'],
        content_type="application/json",
    )
    with pytest.raises(openai.APIStatusError) as caught:
        await client.embeddings.create(model="emb", input="x", encoding_format="float")
    assert caught.value.status_code == 502
    assert caught.value.code == "upstream_malformed"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "emb"}, "input"),
        ({"model": "emb", "input": ""}, "input"),
        ({"model": "emb", "input": []}, "input"),
        ({"model": "emb", "input": ["a", 3]}, "input[1]"),
        ({"model": "emb", "input": [[1, -2]]}, "input[0][1]"),
        ({"model": "emb", "input": [1, "a"]}, "input[1]"),
        ({"model": "emb", "input": {"a": 1}}, "input"),
        ({"model": "emb", "input": ["a"] * 2049}, "input"),
        ({"model": "emb", "input": "a", "encoding_format": "int8"}, "encoding_format"),
        ({"model": "emb", "input": "a", "dimensions": 0}, "dimensions"),
        ({"model": "emb", "input": "a", "dimensions": "8"}, "dimensions"),
        ({"model": "emb", "input": "a", "user": 5}, "user"),
        ({"input": "a"}, "model"),
    ],
)
async def test_bad_requests_are_400s_naming_param(
    gateway: str, fakes: Fakes, body: dict[str, Any], param: str
) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{gateway}/embeddings", json=body) as resp,
    ):
        assert resp.status == 400
        error = (await resp.json())["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert not fakes.openai.received


async def test_unknown_model_is_a_404(client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        await client.embeddings.create(model="nope", input="x")


async def test_base64_is_little_endian_float32(gateway: str) -> None:
    body = {"model": "emb", "input": "bytes", "encoding_format": "base64"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{gateway}/embeddings", json=body) as resp,
    ):
        answer = await resp.json()
    raw = base64.b64decode(answer["data"][0]["embedding"])
    assert list(struct.unpack(f"<{len(raw) // 4}f", raw)) == vector_of("bytes")
    assert answer["data"][0]["object"] == "embedding"
    assert answer["usage"] == {"prompt_tokens": 1, "total_tokens": 1}


async def test_models_say_which_are_embedding_models(gateway: str) -> None:
    """Ollama's /api/show capabilities and Gemini's supportedGenerationMethods, asked in the
    background: `"type": "embedding"` on those models' cards, nothing on the others."""
    client = openai.AsyncOpenAI(base_url=gateway, api_key="unused", max_retries=0)
    types: dict[str, Any] = {}
    for _ in range(100):
        cards = (await client.models.list()).data
        types = {card.id: getattr(card, "type", None) for card in cards}
        if types["nomic"] and types["gem"]:
            break
        await asyncio.sleep(0.05)
    assert types == {
        "emb": None,  # an OpenAI-compatible server does not say
        "fb": None,
        "mixed": None,
        "nomic": "embedding",  # Ollama: capabilities ["embedding"]
        "text-only": None,  # Ollama and Gemini: generation models
        "gem": "embedding",  # Gemini: embedContent, no generateContent
        "claude": None,
    }
    raw = await client.models.with_raw_response.retrieve("gem")
    card = raw.http_response.json()
    assert card == {
        "id": "gem",
        "object": "model",
        "created": card["created"],
        "owned_by": "gm",
        "type": "embedding",
    }


NO_EMBEDDINGS = error_script(
    501,
    {
        "error": {
            "code": 501,
            "message": "This server does not support embeddings. Start it with `--embeddings`",
            "type": "not_supported_error",
        }
    },
)


async def test_an_upstream_without_embeddings_is_passed_over_not_blamed(
    client: openai.AsyncOpenAI, fakes: Fakes, gateway: str
) -> None:
    """llama.cpp's server started without embeddings answers 501: the next provider is asked,
    and alone it is the client's 400; neither counts against the provider's circuit."""
    fakes.openai.scripts["oa-fb"] = NO_EMBEDDINGS
    fakes.openai.scripts["text-embedding-3-small"] = NO_EMBEDDINGS
    for _ in range(3):  # more than the circuit's failures
        raw = await client.embeddings.with_raw_response.create(model="fb", input="x")
        assert raw.headers["X-Provider"] == "ol"
        with pytest.raises(openai.BadRequestError) as caught:
            await client.embeddings.create(model="emb", input="x")
        error = caught.value.body
        assert isinstance(error, dict)
        assert (error["param"], error["code"]) == ("model", "model_not_supported")
        assert "does not support embeddings" in error["message"]
    state = (await ready(gateway))["oa"]
    assert state["circuit"] == "closed" and state["consecutive_failures"] == 0


async def test_answers_in_the_other_encoding_or_order_are_converted(
    gateway: str, fakes: Fakes
) -> None:
    """A server that ignores `encoding_format` (floats for base64) and sends `data` out of
    order: the client gets base64 in input order, as it asked."""
    floats = {
        "object": "list",
        "data": [
            {"object": "embedding", "index": 1, "embedding": [0.5, -0.25]},
            {"object": "embedding", "index": 0, "embedding": [1.0, 0.125]},
        ],
        "model": "text-embedding-3-small",
        "usage": {"prompt_tokens": 2, "total_tokens": 2},
    }
    fakes.openai.scripts["text-embedding-3-small"] = Script(
        writes=[orjson.dumps(floats)], content_type="application/json"
    )
    body = {"model": "emb", "input": ["a", "b"], "encoding_format": "base64"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{gateway}/embeddings", json=body) as resp,
    ):
        answer = await resp.json()
    vectors = [base64.b64decode(item["embedding"]) for item in answer["data"]]
    assert [list(struct.unpack("<2f", raw)) for raw in vectors] == [[1.0, 0.125], [0.5, -0.25]]
    assert [item["index"] for item in answer["data"]] == [0, 1]
