"""OAuth2 client credentials on an OpenAI-protocol provider (the `auth` block), end to end.

A fake token endpoint (tests/upstreams/oauth.py) issues bearer tokens from the exact form body
RFC 6749 §4.4 asks for; a fake OpenAI provider accepts only the tokens it issued. The gateway
is the real app; the client is the official openai SDK, or raw HTTP to read exact bodies.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import openai
import orjson
import pytest
from aiohttp import web

from llms.adapters.base import UpstreamRequest
from llms.config import Config, Timeouts
from llms.errors import ConfigError
from llms.upstream import fetch, new_session
from tests.conftest import Gateway, gateway_config
from tests.upstreams.oauth import BearerOpenAI, FakeTokenEndpoint, root_of, serve
from tests.upstreams.openai import FakeOpenAI, error_script, text_script

SECRET = "s3cret-client-secret"
MESSAGES: list[Any] = [{"role": "user", "content": "hi"}]


@pytest.fixture
async def tokens() -> AsyncIterator[FakeTokenEndpoint]:
    endpoint = FakeTokenEndpoint(client_secret=SECRET)
    server = await serve(endpoint.app)
    endpoint.url = root_of(server)
    yield endpoint
    await server.close()


@pytest.fixture
async def upstream(tokens: FakeTokenEndpoint) -> AsyncIterator[BearerOpenAI]:
    fake = BearerOpenAI(tokens)
    server = await serve(fake.app)
    fake.base_url = root_of(server) + "/v1"  # type: ignore[attr-defined]
    yield fake
    await server.close()


def oauth_config(tokens: FakeTokenEndpoint, upstream: FakeOpenAI) -> Config:
    provider = {
        "type": "openai",
        "base_url": upstream.base_url,  # type: ignore[attr-defined]
        "auth": {
            "type": "oauth2_client_credentials",
            "token_url": tokens.token_url,
            "client_id": "gateway-client",
            "client_secret": SECRET,
            "scope": "api://llm/.default",
        },
        "models": {"m": "up-model"},
        "timeouts": {"first_token_s": 5, "answer_s": 5},
    }
    return gateway_config({"corp": provider}, routing={"max_attempts": 1})


def client_of(url: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=url, api_key="unused", max_retries=0)


async def test_token_form_body_and_bearer_header(
    tokens: FakeTokenEndpoint, upstream: BearerOpenAI, make_gateway: Gateway
) -> None:
    client = client_of(await make_gateway(oauth_config(tokens, upstream)))
    stream = await client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == "Hello, world!"
    assert tokens.requests == [
        {
            "grant_type": "client_credentials",
            "client_id": "gateway-client",
            "client_secret": SECRET,
            "scope": "api://llm/.default",
        }
    ]
    assert tokens.headers[0]["Content-Type"] == "application/x-www-form-urlencoded"
    assert [r.headers["Authorization"] for r in upstream.received] == ["Bearer tok-1"]
    # Non-stream too, with the cached token.
    answer = await client.chat.completions.create(model="m", messages=MESSAGES)
    assert answer.choices[0].message.content == "Hello, world!"
    assert len(tokens.requests) == 1
    assert upstream.received[-1].headers["Authorization"] == "Bearer tok-1"


async def test_twenty_concurrent_requests_one_token_request(
    tokens: FakeTokenEndpoint, upstream: BearerOpenAI, make_gateway: Gateway
) -> None:
    tokens.delay_s = 0.3  # every request arrives while the one token request is under way
    client = client_of(await make_gateway(oauth_config(tokens, upstream)))
    answers = await asyncio.gather(
        *(client.chat.completions.create(model="m", messages=MESSAGES) for _ in range(20))
    )
    assert [a.choices[0].message.content for a in answers] == ["Hello, world!"] * 20
    assert len(tokens.requests) == 1
    assert {r.headers["Authorization"] for r in upstream.received} == {"Bearer tok-1"}
    assert len(upstream.received) == 20


@pytest.mark.parametrize(("expires_in", "fetched"), [(30, 3), (3600, 1), ("3600", 1), (None, 1)])
async def test_a_token_is_renewed_shortly_before_it_expires(
    tokens: FakeTokenEndpoint,
    upstream: BearerOpenAI,
    make_gateway: Gateway,
    expires_in: Any,
    fetched: int,
) -> None:
    """A token whose `expires_in` is inside the 60 s margin is renewed for each request; one
    that lives an hour (also as Entra v1's string; or with no `expires_in`) is reused."""
    tokens.expires_in = expires_in
    client = client_of(await make_gateway(oauth_config(tokens, upstream)))
    for _ in range(3):
        answer = await client.chat.completions.create(model="m", messages=MESSAGES)
        assert answer.choices[0].message.content == "Hello, world!"
    assert len(tokens.requests) == fetched
    sent = [r.headers["Authorization"] for r in upstream.received]
    assert sent == [f"Bearer {t}" for t in (tokens.issued if fetched == 3 else ["tok-1"] * 3)]


async def test_a_rejected_cached_token_is_replaced_once(
    tokens: FakeTokenEndpoint, upstream: BearerOpenAI, make_gateway: Gateway
) -> None:
    client = client_of(await make_gateway(oauth_config(tokens, upstream)))
    await client.chat.completions.create(model="m", messages=MESSAGES)
    tokens.revoke()  # the IdP rotated its keys: tok-1 is now refused
    answer = await client.chat.completions.create(model="m", messages=MESSAGES)
    assert answer.choices[0].message.content == "Hello, world!"
    assert tokens.issued == ["tok-1", "tok-2"]
    sent = [r.headers["Authorization"] for r in upstream.received]
    assert sent == ["Bearer tok-1", "Bearer tok-1", "Bearer tok-2"]


async def test_an_upstream_refusing_every_token_is_asked_twice_then_auth_failed(
    tokens: FakeTokenEndpoint, upstream: BearerOpenAI, make_gateway: Gateway
) -> None:
    upstream.tokens = FakeTokenEndpoint()  # it trusts another IdP: no token of ours is valid
    url = await make_gateway(oauth_config(tokens, upstream))
    async with aiohttp.ClientSession() as session:
        body = {"model": "m", "messages": MESSAGES}
        async with session.post(f"{url}/chat/completions", json=body) as resp:
            assert resp.status == 502
            error = (await resp.json())["error"]
    assert error["code"] == "upstream_auth_failed"
    assert "tok-" not in error["message"]
    assert len(upstream.received) == 2  # the cached token, then one fresh one: no loop
    assert tokens.issued == ["tok-1", "tok-2"]


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (401, {"error": "invalid_client", "error_description": f"Invalid secret {SECRET}"}),
        (500, {"error": "server_error"}),
        (200, {"token_type": "Bearer"}),  # no access_token
        (200, {"access_token": "abc", "token_type": "mac"}),
    ],
)
async def test_a_failing_token_endpoint_is_502_upstream_auth_failed(
    tokens: FakeTokenEndpoint,
    upstream: BearerOpenAI,
    make_gateway: Gateway,
    caplog: pytest.LogCaptureFixture,
    status: int,
    body: Any,
) -> None:
    tokens.fail = (status, body)
    url = await make_gateway(oauth_config(tokens, upstream))
    root = url.removesuffix("/v1")
    with caplog.at_level(logging.DEBUG):
        async with aiohttp.ClientSession() as session:
            request = {"model": "m", "messages": MESSAGES, "stream": True}
            async with session.post(f"{url}/chat/completions", json=request) as resp:
                assert resp.status == 502
                raw = await resp.text()
            async with session.get(f"{root}/ready") as resp:
                ready = await resp.json()
    error = orjson.loads(raw)["error"]
    assert error["code"] == "upstream_auth_failed"
    assert error["type"] == "server_error"
    assert "corp" in error["message"] and "token endpoint" in error["message"]
    if status == 401:
        assert "(invalid_client)" in error["message"]
    assert SECRET not in raw and SECRET not in caplog.text
    assert upstream.received == []  # nothing went upstream without a token
    # An upstream failure: it counts against the provider's circuit.
    assert ready["providers"]["corp"]["consecutive_failures"] == 1


async def test_token_failure_falls_back_to_the_next_provider(
    tokens: FakeTokenEndpoint, upstream: BearerOpenAI, make_gateway: Gateway
) -> None:
    backup = FakeOpenAI()
    backup.default = text_script(["from ", "backup"])
    server = await serve(backup.app)
    try:
        tokens.fail = (503, {"error": "temporarily_unavailable"})
        second = {
            "type": "openai",
            "base_url": root_of(server) + "/v1",
            "api_key": "sk-backup-key",
            "models": {"m": "up-model"},
        }
        config = gateway_config(
            {
                "corp": {
                    "type": "openai",
                    "base_url": upstream.base_url,  # type: ignore[attr-defined]
                    "auth": {
                        "type": "oauth2_client_credentials",
                        "token_url": tokens.token_url,
                        "client_id": "gateway-client",
                        "client_secret": SECRET,
                        "scope": "api://llm/.default",
                    },
                    "models": {"m": "up-model"},
                },
                "backup": second,
            },
            routing={"max_attempts": 2},
        )
        client = client_of(await make_gateway(config))
        answer = await client.chat.completions.create(model="m", messages=MESSAGES)
        assert answer.choices[0].message.content == "from backup"
        assert len(tokens.requests) == 1 and upstream.received == []
    finally:
        await server.close()


async def test_an_unreachable_token_endpoint_is_upstream_auth_failed(
    upstream: BearerOpenAI, make_gateway: Gateway
) -> None:
    gone = FakeTokenEndpoint()
    server = await serve(gone.app)
    gone.url = root_of(server)
    await server.close()  # nothing listens there any more
    client = client_of(await make_gateway(oauth_config(gone, upstream)))
    with pytest.raises(openai.APIStatusError) as caught:
        await client.chat.completions.create(model="m", messages=MESSAGES)
    assert caught.value.status_code == 502
    assert caught.value.body["code"] == "upstream_auth_failed"  # type: ignore[index]
    assert "connection refused" in caught.value.body["message"].lower()  # type: ignore[index]


async def test_responses_api_through_an_oauth_provider(
    tokens: FakeTokenEndpoint, upstream: BearerOpenAI, make_gateway: Gateway
) -> None:
    client = client_of(await make_gateway(oauth_config(tokens, upstream)))
    response = await client.responses.create(model="m", input="hi")
    assert response.output_text == "Hello, world!"
    assert upstream.received[0].headers["Authorization"] == "Bearer tok-1"


@pytest.mark.parametrize(
    ("auth", "where"),
    [
        ({"type": "basic"}, "providers.p.auth.type"),
        ({"type": "oauth2_client_credentials", "client_id": "a"}, "providers.p.auth.client_secret"),
        (
            {"type": "oauth2_client_credentials", "client_id": "a", "client_secret": "b"},
            "providers.p.auth.token_url",
        ),
        ({"type": "oauth2_client_credentials", "tenant": "x"}, "providers.p.auth.tenant"),
        ("token", "providers.p.auth"),
    ],
)
def test_auth_block_mistakes_name_their_path(auth: Any, where: str) -> None:
    provider = {"type": "openai", "base_url": "http://127.0.0.1:9", "auth": auth, "models": ["m"]}
    with pytest.raises(ConfigError, match=f"{where.replace('.', '[.]')}:"):
        gateway_config({"p": provider})


def test_auth_only_where_a_bearer_token_means_something() -> None:
    auth = {
        "type": "oauth2_client_credentials",
        "token_url": "http://127.0.0.1:9/t",
        "client_id": "a",
        "client_secret": "bbbbbbbb",
    }
    provider = {"type": "anthropic", "auth": auth, "models": ["m"]}
    with pytest.raises(ConfigError, match=r"providers[.]p[.]auth: unknown key"):
        gateway_config({"p": provider})
    both = {"type": "openai", "api_key": "sk-123456", "auth": auth, "models": ["m"]}
    with pytest.raises(ConfigError, match=r"providers[.]p[.]auth: give either api_key or auth"):
        gateway_config({"p": both})


class Signer:
    """An authoriser that signs the request as built (the way SigV4 does): a digest of the
    method, final URL and body, in a header the upstream recomputes."""

    def __init__(self) -> None:
        self.seen: list[UpstreamRequest] = []

    async def authorise(
        self, session: aiohttp.ClientSession, request: UpstreamRequest
    ) -> dict[str, str]:
        self.seen.append(request)
        return {"X-Signature": _digest(request.method, request.url, request.body)}

    def rejected(self, sent: Mapping[str, str]) -> bool:
        return False  # a signature is not cached: a 401 to it is final


def _digest(method: str, url: str, body: bytes) -> str:
    return hashlib.sha256(b"%s %s\n%s" % (method.encode(), url.encode(), body)).hexdigest()


async def test_the_hook_signs_the_request_as_built() -> None:
    """The auth hook's contract (llms/upstream.Authoriser): the built request's method, final
    URL and body, its headers added; a 401 with `rejected` False is not sent again."""
    statuses: list[int] = []

    async def handler(request: web.Request) -> web.Response:
        body = await request.read()
        ok = request.headers.get("X-Signature") == _digest(request.method, str(request.url), body)
        status = 200 if ok and request.headers["X-Kept"] == "yes" else 401
        statuses.append(status)
        return web.Response(status=status, text="signed" if ok else "bad signature")

    app = web.Application()
    app.router.add_post("/sign/{tail:.*}", handler)
    server = await serve(app)
    url = root_of(server) + "/sign/model:x?a=1"
    signer = Signer()
    try:
        async with new_session() as session:
            request = UpstreamRequest("POST", url, {"X-Kept": "yes"}, b'{"q": 1}')
            status, _, body = await fetch(session, request, Timeouts(), signer)
            assert (status, body) == (200, b"signed")
            bad = UpstreamRequest("POST", url, {"X-Kept": "no"}, b"{}")
            status, _, _ = await fetch(session, bad, Timeouts(), signer)
            assert status == 401
    finally:
        await server.close()
    assert statuses == [200, 401]  # the refused one was not sent twice
    assert [r.url for r in signer.seen] == [url, url]


async def test_an_upstream_quoting_the_token_does_not_pass_it_on(
    upstream: BearerOpenAI, make_gateway: Gateway
) -> None:
    tokens = upstream.tokens
    tokens.prefix = "eyJhbGciOiJSUzI1NiJ9.token-"
    quoted = {"error": {"message": f"Token {tokens.prefix}1 lacks the scope", "code": "scope"}}
    upstream.scripts["up-model"] = error_script(400, quoted)
    client = client_of(await make_gateway(oauth_config(tokens, upstream)))
    with pytest.raises(openai.BadRequestError) as caught:
        await client.chat.completions.create(model="m", messages=MESSAGES)
    assert caught.value.body["message"] == "Token [redacted] lacks the scope"  # type: ignore[index]
    assert upstream.received[0].headers["Authorization"] == f"Bearer {tokens.prefix}1"
