"""A fake OAuth2 token endpoint: a real aiohttp server on 127.0.0.1 issuing bearer tokens.

`POST /oauth2/token` is the client-credentials grant (RFC 6749 §4.4) as Entra ID and the
corporate IdPs serve it: a form body with `grant_type=client_credentials`, `client_id`,
`client_secret` (client_secret_post) and `scope`; a wrong client is RFC 6749 §5.2's 401
`{"error": "invalid_client", "error_description"}` (whose description, like Entra's, quotes
what was sent: the gateway must not pass it on). `POST /google/token` is Google's jwt-bearer
grant (RFC 7523): the assertion is VERIFIED with the service account's public key (RS256, `aud`
the token URL, `iss` the account, the cloud-platform scope, at most an hour), as Google does.

Tokens are `tok-1`, `tok-2`… (`prefix`); `valid` holds those not revoked, which the fake
upstreams accept. Every request's form is recorded in `requests`; `delay_s` holds each answer
back (so that concurrent requests overlap), `fail` answers a scripted (status, body) instead.
"""

from __future__ import annotations

import asyncio
from typing import Any

import jwt
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.upstreams.openai import FakeOpenAI, Received

CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"


class FakeTokenEndpoint:
    def __init__(
        self,
        *,
        client_id: str = "gateway-client",
        client_secret: str = "s3cret-client-secret",
        scope: str | None = "api://llm/.default",
        expires_in: Any = 3600,
        public_key: Any = None,
        account: str = "gateway@proj.iam.gserviceaccount.com",
        key_id: str | None = None,
        prefix: str = "tok-",
    ) -> None:
        self.prefix = prefix
        self.client_id = client_id
        self.client_secret = client_secret
        self.scope = scope
        self.expires_in = expires_in
        self.public_key = public_key
        self.account = account
        self.key_id = key_id
        self.requests: list[dict[str, str]] = []
        self.headers: list[dict[str, str]] = []
        self.claims: list[dict[str, Any]] = []
        self.valid: set[str] = set()
        self.issued: list[str] = []
        self.delay_s = 0.0
        self.fail: tuple[int, Any] | None = None
        self.url = ""  # set once served: the server's root
        self.app = web.Application()
        self.app.router.add_post("/oauth2/token", self._client_credentials)
        self.app.router.add_post("/google/token", self._jwt_bearer)

    @property
    def token_url(self) -> str:
        return f"{self.url}/oauth2/token"

    @property
    def google_token_url(self) -> str:
        return f"{self.url}/google/token"

    def revoke(self) -> None:
        self.valid.clear()

    async def _form(self, request: web.Request) -> dict[str, str] | web.Response:
        self.headers.append(dict(request.headers))
        if request.content_type != "application/x-www-form-urlencoded":
            return _oauth_error(400, "invalid_request", "The request body must be a form.")
        form = {key: str(value) for key, value in (await request.post()).items()}
        self.requests.append(form)
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.fail is not None:
            status, body = self.fail
            return web.json_response(body, status=status)
        return form

    async def _client_credentials(self, request: web.Request) -> web.Response:
        form = await self._form(request)
        if isinstance(form, web.Response):
            return form
        if form.get("grant_type") != "client_credentials":
            return _oauth_error(400, "unsupported_grant_type", "Expected client_credentials.")
        client = (form.get("client_id"), form.get("client_secret"))
        if client != (self.client_id, self.client_secret):
            # Like Entra ID's AADSTS7000215, the description quotes what it was given.
            return _oauth_error(
                401,
                "invalid_client",
                f"Invalid client secret provided for {form.get('client_id')}: "
                f"{form.get('client_secret')!r}.",
            )
        if form.get("scope") != self.scope:
            scope = form.get("scope")
            return _oauth_error(400, "invalid_scope", f"The scope {scope!r} is invalid.")
        return self._issue()

    async def _jwt_bearer(self, request: web.Request) -> web.Response:
        form = await self._form(request)
        if isinstance(form, web.Response):
            return form
        if form.get("grant_type") != JWT_BEARER:
            return _oauth_error(400, "unsupported_grant_type", "Invalid grant_type.")
        assertion = form.get("assertion", "")
        try:
            header = jwt.get_unverified_header(assertion)
            claims = jwt.decode(
                assertion,
                self.public_key,
                algorithms=["RS256"],
                audience=self.google_token_url,
                issuer=self.account,
                options={"require": ["iss", "aud", "iat", "exp"]},
            )
        except jwt.PyJWTError as exc:
            return _oauth_error(400, "invalid_grant", f"Invalid JWT Signature. ({exc})")
        if header.get("kid") != self.key_id or header.get("alg") != "RS256":
            return _oauth_error(400, "invalid_grant", "Invalid JWT: wrong key id.")
        if claims.get("scope") != CLOUD_PLATFORM or not 0 < claims["exp"] - claims["iat"] <= 3600:
            return _oauth_error(400, "invalid_scope", "Invalid OAuth scope or ID token audience.")
        self.claims.append(claims)
        return self._issue()

    def _issue(self) -> web.Response:
        token = f"{self.prefix}{len(self.issued) + 1}"
        self.issued.append(token)
        self.valid.add(token)
        body: dict[str, Any] = {"access_token": token, "token_type": "Bearer"}
        if self.expires_in is not None:
            body["expires_in"] = self.expires_in
        return web.json_response(body, headers={"Cache-Control": "no-store"})


def _oauth_error(status: int, error: str, description: str) -> web.Response:
    return web.json_response({"error": error, "error_description": description}, status=status)


def bearer_problem(tokens: FakeTokenEndpoint, request: web.Request) -> str | None:
    """What is wrong with the request's bearer token; None if the endpoint issued it."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme != "Bearer" or not token:
        return "missing"
    return None if token in tokens.valid else "invalid"


async def serve(app: web.Application) -> TestServer:
    """Start an app on 127.0.0.1 (close it with `await server.close()`)."""
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return server


def root_of(server: TestServer) -> str:
    return str(server.make_url("")).rstrip("/")


def odd_pieces(writes: list[bytes], sizes: tuple[int, ...] = (1, 7, 3, 13, 2)) -> list[bytes]:
    """The same bytes as writes of odd sizes, cut anywhere (inside events, lines, UTF-8)."""
    raw = b"".join(writes)
    out: list[bytes] = []
    at = 0
    step = 0
    while at < len(raw):
        size = sizes[step % len(sizes)]
        out.append(raw[at : at + size])
        at += size
        step += 1
    return out


class BearerOpenAI(FakeOpenAI):
    """The fake OpenAI provider behind bearer tokens from `tokens` (OpenAI's 401 otherwise)."""

    def __init__(self, tokens: FakeTokenEndpoint) -> None:
        super().__init__()
        self.tokens = tokens

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        problem = bearer_problem(self.tokens, request)
        if problem is not None:
            await request.read()
            self.received.append(Received(request.path, dict(request.headers), {}, 0.0))
            sent = request.headers.get("Authorization", "")
            error = {
                "message": f"Incorrect API key provided: {sent}",
                "type": "invalid_request_error",
                "param": None,
                "code": "invalid_api_key",
            }
            return web.json_response({"error": error}, status=401)
        return await super()._chat(request)
