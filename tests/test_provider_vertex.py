"""Google Vertex AI through the real gateway: a service account's signed JWT buys a token, the
Gemini protocol goes to Vertex's path with it.

The fake token endpoint verifies the JWT with the public half of a throwaway RSA key made here;
the fake Vertex (tests/upstreams/vertex.py) accepts only the tokens it issued and checks the
project and location. Streams arrive in odd-sized pieces. Clients: the official SDKs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from llms.config import Config
from llms.errors import ConfigError
from llms.probe import probe
from tests.conftest import Gateway, gateway_config
from tests.upstreams.gemini import transcript
from tests.upstreams.oauth import FakeTokenEndpoint, odd_pieces, root_of, serve
from tests.upstreams.openai import Script
from tests.upstreams.vertex import FakeVertex, vertex_list_error

MESSAGES: list[Any] = [{"role": "user", "content": "What is the capital of France?"}]
ACCOUNT = "llm-gateway@my-proj.iam.gserviceaccount.com"
PARIS = "The capital of France is Paris. It sits on the Seine, in the north of the country."


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
async def tokens(key: rsa.RSAPrivateKey) -> AsyncIterator[FakeTokenEndpoint]:
    endpoint = FakeTokenEndpoint(public_key=key.public_key(), account=ACCOUNT, key_id="k1d")
    server = await serve(endpoint.app)
    endpoint.url = root_of(server)
    yield endpoint
    await server.close()


@pytest.fixture
async def vertex(tokens: FakeTokenEndpoint) -> AsyncIterator[FakeVertex]:
    fake = FakeVertex(tokens, project="my-proj", location="europe-west4")
    text = transcript("text.sse")
    fake.default = Script(writes=odd_pieces(list(text.writes)))
    server = await serve(fake.app)
    fake.base_url = root_of(server)  # type: ignore[attr-defined]
    yield fake
    await server.close()


def key_file(tmp_path: Path, key: rsa.RSAPrivateKey, token_uri: str, **extra: Any) -> str:
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    data = {
        "type": "service_account",
        "project_id": "my-proj",
        "private_key_id": "k1d",
        "private_key": pem,
        "client_email": ACCOUNT,
        "client_id": "1234567890",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
        **extra,
    }
    path = tmp_path / "sa.json"
    path.write_bytes(orjson.dumps(data))
    return str(path)


def vertex_config(fake: FakeVertex, credentials: str, **provider: Any) -> Config:
    entry = {
        "type": "vertex",
        "base_url": fake.base_url,  # type: ignore[attr-defined]
        "project": "my-proj",
        "location": "europe-west4",
        "credentials_file": credentials,
        "models": {"gem": "gemini-2.5-flash"},
        "timeouts": {"first_token_s": 5, "answer_s": 5},
        **provider,
    }
    return gateway_config({"vx": entry}, routing={"max_attempts": 1})


def client_of(url: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=url, api_key="unused", max_retries=0)


async def test_a_verified_jwt_buys_the_token_vertex_accepts(
    vertex: FakeVertex,
    tokens: FakeTokenEndpoint,
    key: rsa.RSAPrivateKey,
    tmp_path: Path,
    make_gateway: Gateway,
) -> None:
    credentials = key_file(tmp_path, key, tokens.google_token_url)
    client = client_of(await make_gateway(vertex_config(vertex, credentials)))
    stream = await client.chat.completions.create(model="gem", messages=MESSAGES, stream=True)
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == PARIS
    assert tokens.requests[0]["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer"
    claims = tokens.claims[0]  # verified with the key's public half
    assert claims["iss"] == ACCOUNT
    assert claims["aud"] == tokens.google_token_url
    assert claims["scope"] == "https://www.googleapis.com/auth/cloud-platform"
    sent = vertex.received[0]
    assert sent.path == (
        "/v1/projects/my-proj/locations/europe-west4/publishers/google/models/"
        "gemini-2.5-flash:streamGenerateContent?alt=sse"
    )
    assert sent.headers["Authorization"] == "Bearer tok-1"
    assert "x-goog-api-key" not in sent.headers
    # The token is cached: a second request (non-stream, folded) signs nothing new.
    answer = await client.chat.completions.create(model="gem", messages=MESSAGES)
    assert answer.choices[0].message.content == PARIS
    assert len(tokens.requests) == 1
    assert vertex.received[1].headers["Authorization"] == "Bearer tok-1"


async def test_a_key_the_endpoint_does_not_trust_is_upstream_auth_failed(
    vertex: FakeVertex, tokens: FakeTokenEndpoint, tmp_path: Path, make_gateway: Gateway
) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    credentials = key_file(tmp_path, other, tokens.google_token_url)
    client = client_of(await make_gateway(vertex_config(vertex, credentials)))
    with pytest.raises(openai.APIStatusError) as caught:
        await client.chat.completions.create(model="gem", messages=MESSAGES)
    assert caught.value.status_code == 502
    body = caught.value.body
    assert body["code"] == "upstream_auth_failed"  # type: ignore[index]
    assert "(invalid_grant)" in body["message"]  # type: ignore[index]
    assert "PRIVATE KEY" not in str(body)
    assert tokens.claims == [] and vertex.received == []


@pytest.mark.parametrize(
    ("script", "status", "code"),
    [
        (
            vertex_list_error(429, "RESOURCE_EXHAUSTED", "Quota exceeded for aiplatform."),
            429,
            "rate_limit_exceeded",
        ),
        (
            vertex_list_error(400, "INVALID_ARGUMENT", "Request contains an invalid argument."),
            400,
            "invalid_argument",
        ),
        (
            vertex_list_error(503, "UNAVAILABLE", "The service is currently unavailable."),
            503,
            "upstream_unavailable",
        ),
    ],
)
async def test_vertex_errors_are_mapped(
    vertex: FakeVertex,
    tokens: FakeTokenEndpoint,
    key: rsa.RSAPrivateKey,
    tmp_path: Path,
    make_gateway: Gateway,
    script: Any,
    status: int,
    code: str,
) -> None:
    vertex.scripts["gemini-2.5-flash"] = Script(
        writes=[orjson.dumps(script)], status=status, content_type="application/json"
    )
    credentials = key_file(tmp_path, key, tokens.google_token_url)
    client = client_of(await make_gateway(vertex_config(vertex, credentials)))
    with pytest.raises(openai.APIStatusError) as caught:
        await client.chat.completions.create(model="gem", messages=MESSAGES, stream=True)
    assert caught.value.status_code == status
    assert caught.value.body["code"] == code  # type: ignore[index]


async def test_another_project_is_refused_as_the_gateways_credentials(
    vertex: FakeVertex,
    tokens: FakeTokenEndpoint,
    key: rsa.RSAPrivateKey,
    tmp_path: Path,
    make_gateway: Gateway,
) -> None:
    credentials = key_file(tmp_path, key, tokens.google_token_url)
    config = vertex_config(vertex, credentials, project="not-mine")
    client = client_of(await make_gateway(config))
    with pytest.raises(openai.APIStatusError) as caught:
        await client.chat.completions.create(model="gem", messages=MESSAGES)
    assert caught.value.status_code == 502
    assert caught.value.body["code"] == "upstream_auth_failed"  # type: ignore[index]


async def test_messages_api_through_vertex(
    vertex: FakeVertex,
    tokens: FakeTokenEndpoint,
    key: rsa.RSAPrivateKey,
    tmp_path: Path,
    make_gateway: Gateway,
) -> None:
    credentials = key_file(tmp_path, key, tokens.google_token_url)
    url = await make_gateway(vertex_config(vertex, credentials))
    client = anthropic.AsyncAnthropic(
        base_url=url.removesuffix("/v1"), api_key="unused", max_retries=0
    )
    async with client.messages.stream(model="gem", max_tokens=200, messages=MESSAGES) as stream:
        text = "".join([t async for t in stream.text_stream])
    assert text == PARIS
    assert vertex.received[0].headers["Authorization"] == "Bearer tok-1"


async def test_llms_check_probes_vertex(
    vertex: FakeVertex, tokens: FakeTokenEndpoint, key: rsa.RSAPrivateKey, tmp_path: Path
) -> None:
    config = vertex_config(vertex, key_file(tmp_path, key, tokens.google_token_url))
    result = await probe(config, config.providers[0])
    assert result.ok, result.detail
    assert len(tokens.claims) == 1


def test_default_base_url_is_the_locations_endpoint(key: rsa.RSAPrivateKey, tmp_path: Path) -> None:
    credentials = key_file(tmp_path, key, "https://oauth2.googleapis.com/token")
    entry = {
        "type": "vertex",
        "project": "p",
        "location": "us-central1",
        "credentials_file": credentials,
        "models": {"gem": "gemini-2.5-flash"},
    }
    config = gateway_config({"vx": entry})
    assert config.providers[0].base_url == "https://us-central1-aiplatform.googleapis.com"
    entry["location"] = "global"
    config = gateway_config({"vx": entry})
    assert config.providers[0].base_url == "https://aiplatform.googleapis.com"
    entry["location"] = "evil.com/x"
    with pytest.raises(ConfigError, match=r"providers[.]vx[.]location: expected letters"):
        gateway_config({"vx": entry})


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read the key file"),
        (b"not json", "the key file is not JSON"),
        (b'{"type": "authorized_user"}', "expected a service-account key file"),
        (
            b'{"type": "service_account", "client_email": "a@b"}',
            "the key file has no 'private_key'",
        ),
    ],
)
def test_credentials_file_mistakes_name_their_path(
    tmp_path: Path, content: bytes | None, message: str
) -> None:
    path = tmp_path / "key.json"
    if content is not None:
        path.write_bytes(content)
    entry = {
        "type": "vertex",
        "project": "p",
        "location": "us-central1",
        "credentials_file": str(path),
        "models": ["gemini-2.5-flash"],
    }
    with pytest.raises(ConfigError, match=rf"providers[.]vx[.]credentials_file: {message}"):
        gateway_config({"vx": entry})
