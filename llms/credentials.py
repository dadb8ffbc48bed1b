"""Per-request authorisers (the auth hook of llms/upstream.py): tokens fetched and cached.

A provider whose credential is not a static key gets an `Authoriser` (`authoriser_for`), kept
by `Providers.authorisers`; `UpstreamCall.open` asks it for headers just before each send.
Here: bearer tokens from OAuth2's client-credentials grant (`ClientCredentials`) and from a
Google service account's JWT-bearer grant (`ServiceAccount`, Vertex AI). A token is cached
until `REFRESH_MARGIN_S` before it expires; one fetch at a time serves every request that
waits for it (20 requests at once = one token request). A failing token endpoint is 502
`upstream_auth_failed`, an upstream failure (retried, next provider, counted against the
provider's circuit); neither the secret nor a token is ever put in an error or a log line.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlencode

import aiohttp
import jwt
import orjson

from llms.adapters.base import UpstreamRequest
from llms.config import ProviderConfig, Timeouts
from llms.config_auth import ClientCredentials, ServiceAccount
from llms.credentials_aws import signer_for
from llms.errors import GatewayError, UpstreamError
from llms.upstream import Authoriser, fetch

log = logging.getLogger("llms.credentials")

# A token is renewed this long before the `expires_in` it came with runs out.
REFRESH_MARGIN_S = 60.0
# When a token endpoint does not say (`expires_in` is only RECOMMENDED by RFC 6749).
DEFAULT_LIFETIME_S = 300.0
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
JWT_LIFETIME_S = 3600


class UpstreamAuthFailed(UpstreamError):
    """No credential for the upstream could be had: its token endpoint failed."""

    default_code = "upstream_auth_failed"


class BearerTokens:
    """An authoriser that sends `Authorization: Bearer <token>`, the token from `_request()`.

    `clock` is monotonic seconds (a test may pass its own).
    """

    def __init__(
        self, provider: str, timeouts: Timeouts, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.provider = provider
        self._timeouts = timeouts
        self._clock = clock
        self._token: str | None = None
        self._expires = -math.inf
        self._pending: asyncio.Task[str] | None = None
        self.fetches = 0  # token requests made (for tests and the curious)

    def _request(self) -> UpstreamRequest:
        raise NotImplementedError

    async def authorise(
        self, session: aiohttp.ClientSession, request: UpstreamRequest
    ) -> Mapping[str, str]:
        return {"Authorization": f"Bearer {await self.token(session)}"}

    def rejected(self, sent: Mapping[str, str]) -> bool:
        """The upstream refused the token: forget it (unless already replaced); ask once more."""
        if self._token is not None and sent.get("Authorization") == f"Bearer {self._token}":
            self._token = None
            self._expires = -math.inf
        return True

    async def token(self, session: aiohttp.ClientSession) -> str:
        if self._token is not None and self._clock() < self._expires:
            return self._token
        task = self._pending
        if task is None or task.done():
            # Its own task: a waiter that gives up (a client gone) does not cancel the others'.
            task = self._pending = asyncio.get_running_loop().create_task(self._fetch(session))
            task.add_done_callback(_retrieve)
        return await asyncio.shield(task)

    async def _fetch(self, session: aiohttp.ClientSession) -> str:
        self.fetches += 1
        request = self._request()
        where = f"the token endpoint of provider {self.provider!r}"
        try:
            status, _, body = await fetch(session, request, self._timeouts)
        except GatewayError as error:
            raise UpstreamAuthFailed(
                f"Could not get a token from {where}: {error.message}"
            ) from None
        finally:
            self._pending = None
        token, lifetime = _token_answer(status, body, where)
        self._token = token
        self._expires = self._clock() + lifetime - REFRESH_MARGIN_S
        return token


class ClientCredentialsTokens(BearerTokens):
    """OAuth2 client credentials: client id and secret in the form body (client_secret_post,
    as Entra ID documents it and AI Refinery's SDK sends them)."""

    def __init__(self, provider: ProviderConfig, auth: ClientCredentials) -> None:
        super().__init__(provider.name, provider.timeouts)
        self._auth = auth

    def _request(self) -> UpstreamRequest:
        auth = self._auth
        form = {
            "grant_type": "client_credentials",
            "client_id": auth.client_id,
            "client_secret": auth.client_secret,
        }
        if auth.scope:
            form["scope"] = auth.scope
        return _form_request(auth.token_url, form)


class ServiceAccountTokens(BearerTokens):
    """A Google service account: an RS256 JWT assertion (iss, scope, aud = token_uri, iat, exp)
    exchanged at its `token_uri` (the jwt-bearer grant)."""

    def __init__(self, provider: ProviderConfig, auth: ServiceAccount) -> None:
        super().__init__(provider.name, provider.timeouts)
        self._auth = auth

    def _request(self) -> UpstreamRequest:
        auth = self._auth
        now = int(time.time())
        claims = {
            "iss": auth.client_email,
            "scope": auth.scope,
            "aud": auth.token_uri,
            "iat": now,
            "exp": now + JWT_LIFETIME_S,
        }
        headers = {"kid": auth.private_key_id} if auth.private_key_id else None
        try:
            assertion = jwt.encode(claims, auth.private_key, algorithm="RS256", headers=headers)
        except (ValueError, TypeError, jwt.PyJWTError) as exc:
            log.warning("provider %s: the service-account key cannot sign: %s", self.provider, exc)
            raise UpstreamAuthFailed(
                f"The service-account key of provider {self.provider!r} cannot sign a token "
                "request; see the gateway's log."
            ) from None
        return _form_request(auth.token_uri, {"grant_type": JWT_BEARER, "assertion": assertion})


def authoriser_for(provider: ProviderConfig) -> Authoriser | None:
    """The authoriser a provider needs, or None (a static key the adapter puts in itself)."""
    signer = signer_for(provider)
    if signer is not None:
        return signer
    auth = provider.auth
    if isinstance(auth, ClientCredentials):
        return ClientCredentialsTokens(provider, auth)
    if isinstance(auth, ServiceAccount):
        return ServiceAccountTokens(provider, auth)
    return None


def _form_request(url: str, form: Mapping[str, str]) -> UpstreamRequest:
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"}
    return UpstreamRequest("POST", url, headers, urlencode(form).encode())


def _token_answer(status: int, body: bytes, where: str) -> tuple[str, float]:
    """(token, lifetime in seconds) from a token endpoint's answer, else UpstreamAuthFailed.

    Only the OAuth2 `error` code is quoted: `error_description` may echo what was sent.
    """
    try:
        data: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        data = None
    if status != 200:
        code = data.get("error") if isinstance(data, dict) else None
        said = f" ({code})" if isinstance(code, str) and code.isascii() and len(code) < 64 else ""
        raise UpstreamAuthFailed(f"{where.capitalize()} answered HTTP {status}{said}.")
    token = data.get("access_token") if isinstance(data, dict) else None
    if not isinstance(token, str) or not token or not token.isascii() or not token.isprintable():
        raise UpstreamAuthFailed(f"{where.capitalize()} answered without an access_token.")
    kind = data.get("token_type", "Bearer")
    if not isinstance(kind, str) or kind.lower() != "bearer":
        raise UpstreamAuthFailed(f"{where.capitalize()} gave a token that is not a bearer token.")
    lifetime = data.get("expires_in", DEFAULT_LIFETIME_S)
    if isinstance(lifetime, str) and lifetime.isdigit():
        lifetime = int(lifetime)  # Entra ID's v1 endpoint sends it as a string
    if isinstance(lifetime, bool) or not isinstance(lifetime, int | float) or lifetime < 0:
        lifetime = DEFAULT_LIFETIME_S
    return token, float(lifetime)


def _retrieve(task: asyncio.Task[str]) -> None:
    """A fetch nobody waits for any more must not warn that its exception went unread."""
    if not task.cancelled():
        task.exception()
