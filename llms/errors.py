"""The gateway's one error tree.

Every error a client can see is a `GatewayError`: it carries its HTTP status, OpenAI error `type`
and `code`, and renders itself as OpenAI's error body with `to_body()`. Foreign exceptions
(aiohttp, OS, JSON) are translated into these at the seam where they occur (upstream.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class GatewayError(Exception):
    """Base of every client-visible error."""

    status: int = 500
    type: str = "server_error"
    default_code: str | None = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code if code is not None else self.default_code
        self.headers: dict[str, str] = dict(headers or {})

    def to_body(self) -> dict[str, Any]:
        """OpenAI's error shape: all four keys present."""
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


class ConfigError(Exception):
    """A mistake in config.json; the message names the JSON path. Never reaches a client."""


# --- the client's request -------------------------------------------------------------------


class InvalidRequest(GatewayError):
    status = 400
    type = "invalid_request_error"


class AuthenticationFailed(GatewayError):
    status = 401
    type = "invalid_request_error"


class PermissionDenied(GatewayError):
    status = 403
    type = "permission_error"


class NotFound(GatewayError):
    status = 404
    type = "invalid_request_error"


class ModelNotFound(NotFound):
    default_code = "model_not_found"

    def __init__(self, model: str) -> None:
        super().__init__(
            f"The model `{model}` does not exist or is not served by this gateway.", param="model"
        )


class MethodNotAllowed(GatewayError):
    status = 405
    type = "invalid_request_error"
    default_code = "method_not_allowed"


class Conflict(GatewayError):
    status = 409
    type = "invalid_request_error"
    default_code = "conflict"


class PayloadTooLarge(GatewayError):
    status = 413
    type = "invalid_request_error"
    default_code = "request_too_large"


class RateLimited(GatewayError):
    status = 429
    type = "rate_limit_error"
    default_code = "rate_limit_exceeded"


class ServiceUnavailable(GatewayError):
    """The gateway itself cannot serve right now (starting, draining, local model loading)."""

    status = 503
    type = "server_error"
    default_code = "service_unavailable"


# --- the upstream ----------------------------------------------------------------------------


class UpstreamError(GatewayError):
    """The upstream failed. `status` is what the client gets; `retryable` and `next_provider`
    drive routing before the commit: a retryable failure may be tried again (the same provider
    after a delay, or the next), one with only `next_provider` goes to the next provider but
    never back to this one."""

    status = 502
    type = "server_error"
    default_code: str | None = "upstream_error"
    retryable: bool = True
    next_provider: bool = False


class UpstreamConnectError(UpstreamError):
    default_code = "upstream_connect_error"


class UpstreamTimeout(UpstreamError):
    status = 504
    type = "timeout"
    default_code = "upstream_timeout"


class UpstreamDisconnected(UpstreamError):
    """The upstream closed or reset the connection before its terminator."""

    default_code = "upstream_disconnected"


class UpstreamIncomplete(UpstreamError):
    """The upstream body ended cleanly but without the protocol's terminator."""

    default_code = "upstream_incomplete"


class UpstreamMalformed(UpstreamError):
    """The upstream sent bytes that do not parse as its protocol, or chunks of a shape the
    gateway cannot translate or encode."""

    default_code = "upstream_malformed"
    # Asking it again would most likely get the same bytes; another provider may do better.
    retryable = False
    next_provider = True


class UpstreamStreamError(UpstreamError):
    """The upstream reported an error inside a started stream (`data: {"error": …}`)."""

    default_code = "upstream_error"
    retryable = False


class UpstreamHTTPError(UpstreamError):
    """A non-2xx upstream answer; the adapter's error mapping chooses the client status and type."""

    default_code = None

    def __init__(
        self,
        message: str,
        *,
        status: int,
        type: str,
        param: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
        retryable: bool = False,
    ) -> None:
        super().__init__(message, param=param, code=code, headers=headers)
        self.status = status
        self.type = type
        self.retryable = retryable
