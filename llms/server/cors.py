"""CORS for browsers on other origins: off unless `server.cors_origins` lists them.

An allowed origin's preflight (`OPTIONS` with `Access-Control-Request-Method`) is answered 204
before auth (browsers send no key on it); every response to it echoes its origin and exposes
the gateway's own headers. Other origins get no CORS header at all, and a 403 on preflight.
Keys travel in headers, never cookies, so credentials are never allowed.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

from llms.errors import PermissionDenied

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Signal = Callable[[web.Request, web.StreamResponse], Awaitable[None]]

EXPOSED_HEADERS = (
    "X-Stream-Id, X-Provider, X-Request-Id, X-Replica, X-Heartbeat-Interval, Retry-After"
)
ALLOWED_METHODS = "GET, POST, OPTIONS"
MAX_AGE_S = "600"
# The headers a preflight may ask for are echoed when they look like header names.
_HEADER_LIST = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+(\s*,\s*[A-Za-z0-9!#$%&'*+.^_`|~-]+)*$")
DEFAULT_ALLOWED_HEADERS = (
    "Authorization, Content-Type, X-Api-Key, X-Stream-Resumable, Last-Event-ID, X-Request-Id"
)


class Cors:
    """The allowed origins; `middleware` answers preflights, `add_headers` marks responses."""

    def __init__(self, origins: tuple[str, ...]) -> None:
        self.any = "*" in origins
        self.origins = frozenset(origins)

    def allows(self, origin: str) -> bool:
        return self.any or origin.lower() in self.origins

    def middleware(self) -> Middleware:
        @web.middleware
        async def preflight(request: web.Request, handler: Handler) -> web.StreamResponse:
            if (
                request.method != "OPTIONS"
                or "Access-Control-Request-Method" not in request.headers
            ):
                return await handler(request)
            return self.answer_preflight(request)

        return preflight

    def answer_preflight(self, request: web.Request) -> web.Response:
        headers = request.headers
        origin = headers.get("Origin")
        if origin is None or not self.allows(origin):
            raise PermissionDenied(
                "This origin is not allowed to call the gateway from a browser "
                "(see server.cors_origins).",
                code="cors_origin_not_allowed",
            )
        asked = headers.get("Access-Control-Request-Headers", "").strip()
        allowed = asked if asked and len(asked) <= 2048 and _HEADER_LIST.match(asked) else None
        return web.Response(
            status=204,
            headers={
                "Access-Control-Allow-Methods": ALLOWED_METHODS,
                "Access-Control-Allow-Headers": allowed or DEFAULT_ALLOWED_HEADERS,
                "Access-Control-Max-Age": MAX_AGE_S,
            },
        )

    async def add_headers(self, request: web.Request, response: web.StreamResponse) -> None:
        """on_response_prepare: the CORS headers of an allowed origin, on every response."""
        response.headers.add("Vary", "Origin")
        origin = request.headers.get("Origin")
        if origin is not None and self.allows(origin):
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
