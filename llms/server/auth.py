"""Gateway API keys: `Authorization: Bearer <key>` or `x-api-key`, compared in constant time."""

from __future__ import annotations

import hmac

from aiohttp import web

from llms.config import ApiKey
from llms.errors import AuthenticationFailed, PermissionDenied

KEY = web.RequestKey("api_key", ApiKey)
OPEN_PATHS = frozenset(("/health", "/ready"))


def presented_key(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.headers.get("x-api-key") or None


def authenticate(keys: tuple[ApiKey, ...], request: web.Request) -> ApiKey | None:
    """The matching key, None when auth is off; raises 401 otherwise."""
    if not keys:
        return None
    given = presented_key(request)
    if given is None:
        raise AuthenticationFailed(
            "Missing API key. Send it as `Authorization: Bearer <key>` or `x-api-key`."
        )
    presented = given.encode()
    found: ApiKey | None = None
    # Every key is compared, so the time taken does not tell which one nearly matched.
    for key in keys:
        if hmac.compare_digest(presented, key.key.encode()):
            found = key
    if found is None:
        raise AuthenticationFailed("Incorrect API key provided.", code="invalid_api_key")
    return found


def authorize_model(key: ApiKey | None, model: str) -> None:
    if key is not None and key.models is not None and model not in key.models:
        raise PermissionDenied(
            f"The API key {key.name!r} may not use the model `{model}`.", code="model_not_allowed"
        )
