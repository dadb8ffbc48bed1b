"""llms.adapters.openai.from_error_response: the upstream's error answers mapped to the client's
(protocol.md §3.5). No server, no I/O."""

from __future__ import annotations

import json
from typing import Any

import pytest

from llms.adapters import openai as adapter

# --- error responses (protocol.md §3.5) -----------------------------------------------------------


def err(status: int, body: Any, headers: dict[str, str] | None = None) -> Any:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return adapter.from_error_response(status, headers or {}, raw)


def test_openai_error_body_keeps_message_code_param() -> None:
    body = {
        "error": {
            "message": "This model's maximum context length is 8192 tokens.",
            "type": "invalid_request_error",
            "param": "messages",
            "code": "context_length_exceeded",
        }
    }
    error = err(400, body)
    assert error.status == 400
    assert error.type == "invalid_request_error"
    assert error.message == body["error"]["message"]
    assert error.code == "context_length_exceeded"
    assert error.param == "messages"
    assert not error.retryable


@pytest.mark.parametrize(
    ("status", "body", "message", "client_status"),
    [
        (
            404,
            {
                "object": "error",
                "message": "The model `x` does not exist.",
                "type": "NotFoundError",
                "code": 404,
            },
            "The model `x` does not exist.",
            404,
        ),
        (
            400,
            {"object": "error", "message": "bad top_k", "type": "BadRequestError"},
            "bad top_k",
            400,
        ),
        (422, {"detail": "Field required: messages"}, "Field required: messages", 400),
        (
            422,
            {"detail": [{"loc": ["body", "messages"], "msg": "Field required", "type": "missing"}]},
            "Field required",
            400,
        ),
        (500, b"oops, upstream crashed", "oops, upstream crashed", 502),
        (502, b"<html>Bad Gateway</html>", "<html>Bad Gateway</html>", 502),
        (400, {"error": "plain message"}, "plain message", 400),
    ],
)
def test_flat_error_bodies_keep_the_message(
    status: int, body: Any, message: str, client_status: int
) -> None:
    error = err(status, body)
    assert error.status == client_status
    assert message in error.message
    assert error.to_body()["error"]["message"] == error.message


def test_404_is_model_not_found() -> None:
    error = err(404, {"error": {"message": "nope"}})
    assert (error.status, error.code, error.type) == (
        404,
        "model_not_found",
        "invalid_request_error",
    )


@pytest.mark.parametrize("status", [401, 403])
def test_upstream_auth_failure_is_502_without_upstream_text(status: int) -> None:
    secret = "sk-proj-abcd1234SECRET"
    body = {
        "error": {"message": f"Incorrect API key provided: {secret}", "code": "invalid_api_key"}
    }
    error = err(status, body, {"www-authenticate": f"Bearer {secret}"})
    assert error.status == 502
    assert error.code != "invalid_api_key"
    rendered = json.dumps(error.to_body()) + json.dumps(error.headers)
    assert "SECRET" not in rendered
    assert "abcd" not in rendered
    assert "Incorrect API key" not in rendered


def test_429_passes_retry_and_rate_limit_headers_only() -> None:
    headers = {
        "Retry-After": "7",
        "retry-after-ms": "7000",
        "x-ratelimit-remaining-requests": "0",
        "X-RateLimit-Reset-Tokens": "6m0s",
        "Content-Type": "application/json",
        "Set-Cookie": "session=1",
        "openai-organization": "org-secret",
    }
    error = err(429, {"error": {"message": "Rate limit reached", "type": "requests"}}, headers)
    assert error.status == 429
    assert error.type == "rate_limit_error"
    assert error.code == "rate_limit_exceeded"
    assert error.message == "Rate limit reached"
    assert error.retryable
    passed = {k.lower(): v for k, v in error.headers.items()}
    assert passed == {
        "retry-after": "7",
        "retry-after-ms": "7000",
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-reset-tokens": "6m0s",
    }


def test_429_insufficient_quota_keeps_its_code() -> None:
    error = err(429, {"error": {"message": "quota", "code": "insufficient_quota"}})
    assert error.code == "insufficient_quota"


@pytest.mark.parametrize(
    ("status", "client_status"), [(503, 503), (529, 503), (500, 502), (504, 504)]
)
def test_5xx_mapping(status: int, client_status: int) -> None:
    error = err(status, {"error": {"message": "Overloaded"}}, {"Retry-After": "3"})
    assert error.status == client_status
    assert error.type == "server_error"
    assert error.message == "Overloaded"
    assert error.retryable
    assert error.headers == {"Retry-After": "3"}


def test_422_becomes_400() -> None:
    error = err(422, {"error": {"message": "invalid", "param": "tools"}})
    assert error.status == 400
    assert error.type == "invalid_request_error"
    assert error.param == "tools"


def test_empty_error_body_still_has_a_message() -> None:
    error = err(500, b"")
    assert error.status == 502
    assert error.message
