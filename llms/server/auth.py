"""Gateway API keys: `Authorization: Bearer <key>` or `x-api-key`, compared in constant time.

Which requests need a key: everything under `/v1` and `/api`, and `/metrics` unless
`server.open_metrics` opens it; `/health`, `/ready`, `/openapi.json` and the web UI's static
pages never do (the UI asks for the key and sends it with its API calls).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress

from aiohttp import web

from llms.config import ApiKey
from llms.errors import AuthenticationFailed, PermissionDenied

KEY = web.RequestKey("api_key", ApiKey)
OPEN_PATHS = frozenset(("/health", "/ready", "/openapi.json"))
METRICS_PATH = "/metrics"
# A request relayed by a proxy: its peer address is the proxy's, not the client's.
FORWARDING_HEADERS = ("Forwarded", "X-Forwarded-For", "X-Real-IP")


def presented_key(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.headers.get("x-api-key") or None


def _digest(text: str) -> bytes:
    # Header bytes that are not UTF-8 reach us as surrogates: they still hash (and never match).
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).digest()


def authenticate(keys: tuple[ApiKey, ...], request: web.Request) -> ApiKey | None:
    """The matching key, None when auth is off; raises 401 otherwise."""
    if not keys:
        return None
    given = presented_key(request)
    if given is None:
        raise AuthenticationFailed(
            "Missing API key. Send it as `Authorization: Bearer <key>` or `x-api-key`."
        )
    presented = _digest(given)
    found: ApiKey | None = None
    # Every key is compared, digests of equal length, so the time taken tells neither which key
    # nearly matched nor how long the keys are.
    for key in keys:
        if hmac.compare_digest(presented, _digest(key.key)):
            found = key
    if found is None:
        raise AuthenticationFailed("Incorrect API key provided.", code="invalid_api_key")
    return found


def authorize_model(key: ApiKey | None, model: str) -> None:
    if key is not None and key.models is not None and model not in key.models:
        raise PermissionDenied(
            f"The API key {key.name!r} may not use the model `{model}`.", code="model_not_allowed"
        )


def needs_key(request: web.Request, open_metrics: bool | str, public: frozenset[object]) -> bool:
    """Whether this request must present a key (when keys are configured at all).

    `public` holds the router resources of the web UI's static pages.
    """
    path = request.path
    if path in OPEN_PATHS:
        return False
    if path == METRICS_PATH:
        if open_metrics == "loopback":
            return not from_loopback(request)
        return not open_metrics
    return request.match_info.route.resource not in public


def from_loopback(request: web.Request) -> bool:
    """The peer is a loopback address and no proxy says it relays someone else."""
    if any(name in request.headers for name in FORWARDING_HEADERS):
        return False
    peer = request.transport.get_extra_info("peername") if request.transport else None
    if not peer:
        return False
    host = peer[0] if isinstance(peer, tuple) else str(peer)
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback
