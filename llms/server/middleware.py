"""Errors -> OpenAI JSON (never aiohttp's text/plain pages, never a traceback); request ids."""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Awaitable, Callable

import orjson
from aiohttp import web
from multidict import istr

from llms.api.messages_object import error_body as messages_error_body
from llms.api.messages_object import error_status as messages_error_status
from llms.errors import (
    GatewayError,
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
)
from llms.telemetry.logs import CURRENT_REQUEST_ID

log = logging.getLogger("llms.server")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
REQUEST_ID = web.RequestKey("request_id", str)
# An istr name (spelled as the gateway always did): a str one costs each open stream's
# response headers one more object (~110 B) once they are serialised.
X_REQUEST_ID = istr("X-Request-Id")
_CLIENT_ID = re.compile(r"^[A-Za-z0-9._\-]{1,128}$")


# Anthropic's Messages API answers errors in its own shape and statuses (529 overloaded).
MESSAGES_PATH = "/v1/messages"


def error_response(error: GatewayError, request: web.Request | None = None) -> web.Response:
    """The error in the shape of the API the request spoke (OpenAI's, or Anthropic's)."""
    if request is not None and request.path.startswith(MESSAGES_PATH):
        return web.Response(
            body=orjson.dumps(messages_error_body(error, request.get(REQUEST_ID))),
            status=messages_error_status(error),
            content_type="application/json",
            headers=error.headers,
        )
    return web.Response(
        body=orjson.dumps(error.to_body()),
        status=error.status,
        content_type="application/json",
        headers=error.headers,
    )


def _from_http(exc: web.HTTPException, request: web.Request) -> GatewayError:
    status = exc.status
    if status == 404:
        return NotFound(f"Unknown path: {request.method} {request.path}", code="unknown_url")
    error: GatewayError
    if status == 405:
        allowed = getattr(exc, "allowed_methods", ())
        error = MethodNotAllowed(
            f"Method {request.method} is not allowed for {request.path}."
            + (f" Allowed: {', '.join(sorted(allowed))}." if allowed else "")
        )
        if allowed:
            error.headers["Allow"] = ",".join(sorted(allowed))
        return error
    if status == 413:
        return PayloadTooLarge(
            f"The request body is larger than the gateway accepts ({exc.text or 'limit exceeded'})."
        )
    error = InvalidRequest(exc.text or exc.reason or f"HTTP {status}")
    error.status = status
    return error


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error becomes OpenAI's error shape with the right status.

    Outermost, it also puts the request id in the logging context for the whole request.
    One coroutine (an open stream keeps each frame of its chain: ~0.25 KiB apiece).
    """
    token = CURRENT_REQUEST_ID.set(assign_request_id(request))
    try:
        return await handler(request)
    except GatewayError as error:
        return error_response(error, request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error_response(_from_http(exc, request), request)
    except web.RequestPayloadError:
        # The body's bytes are not what its headers say: a Content-Encoding that does not
        # decode, a chunked body cut short. The client's mistake: a 400, not a 500.
        return error_response(
            InvalidRequest(
                "The request body could not be read: it does not match its Content-Encoding"
                " or Transfer-Encoding.",
                code="invalid_body",
            ),
            request,
        )
    except Exception:
        log.exception("unhandled error in %s %s", request.method, request.path)
        return error_response(
            GatewayError(
                "The gateway hit an internal error; it has been logged.", code="internal_error"
            ),
            request,
        )
    finally:
        CURRENT_REQUEST_ID.reset(token)


def assign_request_id(request: web.Request) -> str:
    """The client's X-Request-Id when it is sane, else a new one (once per request)."""
    if REQUEST_ID in request:
        return request[REQUEST_ID]
    given = request.headers.get("X-Request-Id", "")
    request_id = given if _CLIENT_ID.match(given) else "req_" + secrets.token_hex(12)
    request[REQUEST_ID] = request_id
    return request_id


async def add_request_id(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: every response, streamed or not, error or not, carries the id."""
    request_id = request.get(REQUEST_ID) or assign_request_id(request)
    response.headers[X_REQUEST_ID] = request_id
