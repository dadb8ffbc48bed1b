"""Errors before the first byte: OpenAI's error shape, the right status, never aiohttp's pages."""

from __future__ import annotations

import base64
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import orjson
import pytest

from tests.conftest import gateway_config
from tests.upstreams.openai import FakeOpenAI, Script, error_script, text_script

MSG = [{"role": "user", "content": "hi"}]


async def request(
    method: str, url: str, body: bytes | None = None, **headers: str
) -> tuple[int, Any, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, url, data=body, headers=headers) as resp,
    ):
        raw = await resp.read()
        return resp.status, resp.headers.copy(), raw


def assert_error_shape(status: int, headers: Any, raw: bytes) -> dict[str, Any]:
    assert headers["Content-Type"].startswith("application/json"), raw
    assert headers.get("X-Request-Id")
    error = orjson.loads(raw)["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str)
    assert error["message"]
    assert isinstance(error["type"], str)
    return dict(error)


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        (b'{"model":', None, None),
        (b"[1, 2]", None, None),
        (orjson.dumps({"messages": MSG}), "model", "missing_required_parameter"),
        (orjson.dumps({"model": "test-model"}), "messages", "missing_required_parameter"),
        (orjson.dumps({"model": "test-model", "messages": []}), "messages", "empty_array"),
        (
            orjson.dumps({"model": "test-model", "messages": MSG, "temperature": "hot"}),
            "temperature",
            "invalid_type",
        ),
        (
            orjson.dumps({"model": "test-model", "messages": MSG, "temperature": 3}),
            "temperature",
            "invalid_value",
        ),
        (orjson.dumps({"model": "test-model", "messages": MSG, "n": 0}), "n", "invalid_value"),
        (
            orjson.dumps(
                {"model": "test-model", "messages": MSG, "stop": ["a", "b", "c", "d", "e"]}
            ),
            "stop",
            "invalid_value",
        ),
        (
            orjson.dumps({"model": "test-model", "messages": MSG, "stream": "yes"}),
            "stream",
            "invalid_type",
        ),
        (
            orjson.dumps({"model": "test-model", "messages": [{"role": "wizard", "content": "x"}]}),
            "messages[0].role",
            "invalid_value",
        ),
        (
            orjson.dumps({"model": "test-model", "messages": [{"role": "user", "content": 5}]}),
            "messages[0].content",
            "invalid_type",
        ),
        (
            orjson.dumps(
                {"model": "test-model", "messages": MSG, "stream_options": {"include_usage": True}}
            ),
            "stream_options",
            "invalid_value",
        ),
        (
            orjson.dumps({"model": "test-model", "messages": MSG, "tools": [{"type": "function"}]}),
            "tools[0].function.name",
            "missing_required_parameter",
        ),
    ],
)
async def test_bad_requests_are_400_naming_the_param(
    gateway: str, body: bytes, param: str | None, code: str | None
) -> None:
    status, headers, raw = await request(
        "POST", f"{gateway}/chat/completions", body, **{"Content-Type": "application/json"}
    )
    assert status == 400
    error = assert_error_shape(status, headers, raw)
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert error["code"] == code


@pytest.mark.parametrize("stream", [True, False])
async def test_unknown_model_is_404(gateway: str, stream: bool) -> None:
    body = orjson.dumps({"model": "nope", "messages": MSG, "stream": stream})
    status, headers, raw = await request("POST", f"{gateway}/chat/completions", body)
    assert status == 404
    error = assert_error_shape(status, headers, raw)
    assert (error["type"], error["code"], error["param"]) == (
        "invalid_request_error",
        "model_not_found",
        "model",
    )


async def test_unknown_path_and_wrong_method_are_json(gateway: str) -> None:
    status, headers, raw = await request("GET", f"{gateway}/nothing/here")
    assert status == 404
    assert assert_error_shape(status, headers, raw)["code"] == "unknown_url"
    status, headers, raw = await request("GET", f"{gateway}/chat/completions")
    assert status == 405
    assert assert_error_shape(status, headers, raw)["code"] == "method_not_allowed"
    assert "POST" in headers["Allow"]


async def test_body_limit_413_and_a_2mib_image_passes(
    fake_openai: FakeOpenAI, make_gateway: Callable[..., Awaitable[str]]
) -> None:
    config = gateway_config(
        {
            "fake": {
                "type": "openai",
                "base_url": fake_openai.base_url,
                "models": {"test-model": "up-model"},
            }
        },  # type: ignore[attr-defined]
        server={"max_body_mb": 3},
    )
    base = await make_gateway(config)
    image = "data:image/png;base64," + base64.b64encode(b"\x89PNG" + b"\0" * (1600 * 1024)).decode()
    parts = [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": image}},
    ]
    body = orjson.dumps({"model": "test-model", "messages": [{"role": "user", "content": parts}]})
    assert 2 * 1024 * 1024 <= len(body) < 3 * 1024 * 1024
    status, _, raw = await request("POST", f"{base}/chat/completions", body)
    assert status == 200, raw
    assert fake_openai.received[-1].body["messages"][0]["content"][1]["image_url"]["url"] == image
    too_big = orjson.dumps(
        {"model": "test-model", "messages": [{"role": "user", "content": "x" * (4 * 1024 * 1024)}]}
    )
    status, headers, raw = await request("POST", f"{base}/chat/completions", too_big)
    assert status == 413
    assert assert_error_shape(status, headers, raw)["code"] == "request_too_large"


@pytest.mark.parametrize(
    ("script", "status", "code"),
    [
        (
            error_script(
                429,
                {
                    "error": {
                        "message": "slow down",
                        "type": "requests",
                        "code": "rate_limit_exceeded",
                    }
                },
                {
                    "Retry-After": "7",
                    "retry-after-ms": "7000",
                    "x-ratelimit-remaining-requests": "0",
                },
            ),
            429,
            "rate_limit_exceeded",
        ),
        (
            error_script(
                400,
                {
                    "error": {
                        "message": "context too long",
                        "type": "invalid_request_error",
                        "code": "context_length_exceeded",
                        "param": "messages",
                    }
                },
            ),
            400,
            "context_length_exceeded",
        ),
        (error_script(422, {"detail": "bad field"}), 400, None),
        (error_script(500, b"oops"), 502, "upstream_error"),
        (
            error_script(503, {"error": {"message": "overloaded"}}, {"Retry-After": "2"}),
            503,
            "upstream_unavailable",
        ),
        (
            error_script(
                401, {"error": {"message": "Incorrect API key provided: sk-upstr***cret"}}
            ),
            502,
            "upstream_auth_failed",
        ),
        (Script(fault="reset"), 502, "upstream_disconnected"),
        (Script(writes=[b"data: x\n\n"], header_delay_s=5), 504, "upstream_timeout"),
    ],
    ids=["429", "400", "422", "500", "503", "401", "reset-before-headers", "first-token-timeout"],
)
@pytest.mark.parametrize("stream", [True, False])
async def test_upstream_failures_before_first_byte(
    gateway: str,
    fake_openai: FakeOpenAI,
    script: Script,
    status: int,
    code: str | None,
    stream: bool,
) -> None:
    fake_openai.scripts["up-model"] = script
    body = orjson.dumps({"model": "test-model", "messages": MSG, "stream": stream})
    got, headers, raw = await request("POST", f"{gateway}/chat/completions", body)
    assert got == status, raw
    error = assert_error_shape(got, headers, raw)
    assert error["code"] == code
    assert b"sk-upstr" not in raw
    if status == 429:
        assert error["message"] == "slow down"
        assert headers["Retry-After"] == "7"
        assert headers["retry-after-ms"] == "7000"
        assert headers["x-ratelimit-remaining-requests"] == "0"
    if status == 400 and code:
        assert error["message"] == "context too long"
        assert error["param"] == "messages"


async def test_connect_failure_is_502(make_gateway: Callable[..., Awaitable[str]]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = gateway_config(
        {"dead": {"type": "openai", "base_url": f"http://127.0.0.1:{port}/v1", "models": ["m"]}}
    )
    base = await make_gateway(config)
    status, headers, raw = await request(
        "POST",
        f"{base}/chat/completions",
        orjson.dumps({"model": "m", "messages": MSG, "stream": True}),
    )
    assert status == 502
    assert assert_error_shape(status, headers, raw)["code"] == "upstream_connect_error"


async def test_retry_then_fallback_before_the_first_byte(
    fake_openai: FakeOpenAI, make_gateway: Callable[..., Awaitable[str]]
) -> None:
    config = gateway_config(
        {
            "first": {
                "type": "openai",
                "base_url": fake_openai.base_url,
                "models": {"m": "broken"},
            },  # type: ignore[attr-defined]
            "second": {"type": "openai", "base_url": fake_openai.base_url, "models": {"m": "good"}},  # type: ignore[attr-defined]
        },
        routing={"max_attempts": 2},
    )
    base = await make_gateway(config)
    fake_openai.scripts["broken"] = error_script(503, {"error": {"message": "down"}})
    fake_openai.scripts["good"] = text_script(["fine"])
    status, headers, raw = await request(
        "POST", f"{base}/chat/completions", orjson.dumps({"model": "m", "messages": MSG})
    )
    assert status == 200
    assert headers["X-Provider"] == "second"
    assert orjson.loads(raw)["choices"][0]["message"]["content"] == "fine"
    assert [r.body["model"] for r in fake_openai.received] == ["broken", "good"]


AUTH = {"api_keys": ["sk-gw-one", {"key": "sk-gw-team", "name": "team", "models": ["test-model"]}]}


@pytest.fixture
async def secured(fake_openai: FakeOpenAI, make_gateway: Callable[..., Awaitable[str]]) -> str:
    config = gateway_config(
        {
            "fake": {
                "type": "openai",
                "base_url": fake_openai.base_url,
                "models": {"test-model": "up-model", "other": "up-model"},
            }
        },  # type: ignore[attr-defined]
        server=AUTH,
    )
    return await make_gateway(config)


@pytest.mark.parametrize(
    ("headers", "model", "status", "code"),
    [
        ({}, "test-model", 401, None),
        ({"Authorization": "Bearer sk-wrong"}, "test-model", 401, "invalid_api_key"),
        ({"Authorization": "Bearer sk-gw-one"}, "test-model", 200, None),
        ({"x-api-key": "sk-gw-one"}, "other", 200, None),
        ({"Authorization": "Bearer sk-gw-team"}, "test-model", 200, None),
        ({"Authorization": "Bearer sk-gw-team"}, "other", 403, "model_not_allowed"),
    ],
)
async def test_gateway_api_keys(
    secured: str, headers: dict[str, str], model: str, status: int, code: str | None
) -> None:
    got, resp_headers, raw = await request(
        "POST",
        f"{secured}/chat/completions",
        orjson.dumps({"model": model, "messages": MSG}),
        **headers,
    )
    assert got == status, raw
    if status != 200:
        error = assert_error_shape(got, resp_headers, raw)
        assert error["code"] == code
        assert b"sk-gw" not in raw


async def test_health_and_ready_need_no_key_and_models_are_filtered(secured: str) -> None:
    root = secured.removesuffix("/v1")
    assert (await request("GET", f"{root}/health"))[0] == 200
    status, _, raw = await request("GET", f"{root}/ready")
    assert status == 200
    assert orjson.loads(raw)["providers"]["fake"]["state"] == "ok"
    _, _, raw = await request("GET", f"{secured}/models", Authorization="Bearer sk-gw-team")
    assert [m["id"] for m in orjson.loads(raw)["data"]] == ["test-model"]
    status, _, _ = await request("GET", f"{secured}/models")
    assert status == 401
