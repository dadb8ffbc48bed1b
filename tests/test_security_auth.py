"""Who may call what: the key matrix, constant-time comparison, open paths, /metrics, CORS,
the UI's security headers and the header limits."""

from __future__ import annotations

import ast
import asyncio
import hmac
import inspect
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web

from llms import create_app
from llms.server import auth
from llms.server.app import server_options
from tests.conftest import gateway_config
from tests.test_http_errors import assert_error_shape, request
from tests.upstreams.openai import FakeOpenAI

MSG = [{"role": "user", "content": "hi"}]
KEYS = [
    "sk-gw-one",
    {"key": "sk-gw-team", "name": "team", "models": ["test-model"]},
    {"key": "sk-gw-ops", "name": "ops", "models": ["other"]},
]
Gateway = Callable[..., Awaitable[str]]


def secured_config(fake: FakeOpenAI, **server: Any) -> Any:
    return gateway_config(
        {
            "fake": {
                "type": "openai",
                "base_url": fake.base_url,  # type: ignore[attr-defined]
                "models": {"test-model": "up-model", "other": "up-model"},
            }
        },
        server={"api_keys": KEYS, **server},
    )


@pytest.fixture
async def secured(fake_openai: FakeOpenAI, make_gateway: Gateway) -> str:
    return await make_gateway(secured_config(fake_openai))


def chat(model: str, stream: bool = False) -> bytes:
    return orjson.dumps({"model": model, "messages": MSG, "stream": stream})


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(
    ("headers", "model", "status", "code"),
    [
        ({}, "test-model", 401, None),
        ({"Authorization": "Bearer"}, "test-model", 401, None),
        ({"Authorization": "Basic c2stZ3ctb25lOg=="}, "test-model", 401, None),
        ({"Authorization": "Bearer sk-wrong"}, "test-model", 401, "invalid_api_key"),
        ({"Authorization": "Bearer sk-gw-on"}, "test-model", 401, "invalid_api_key"),
        ({"Authorization": "Bearer sk-gw-one "}, "test-model", 200, None),
        ({"x-api-key": "sk-wrong"}, "test-model", 401, "invalid_api_key"),
        ({"Authorization": "Bearer sk-gw-one"}, "test-model", 200, None),
        ({"Authorization": "bearer sk-gw-one"}, "other", 200, None),
        ({"Authorization": "BEARER sk-gw-one"}, "other", 200, None),
        ({"x-api-key": "sk-gw-one"}, "other", 200, None),
        ({"X-API-KEY": "sk-gw-team"}, "test-model", 200, None),
        ({"Authorization": "Bearer sk-gw-team"}, "test-model", 200, None),
        ({"Authorization": "Bearer sk-gw-team"}, "other", 403, "model_not_allowed"),
        ({"x-api-key": "sk-gw-team"}, "other", 403, "model_not_allowed"),
        ({"Authorization": "Bearer sk-gw-ops"}, "test-model", 403, "model_not_allowed"),
        ({"Authorization": "Bearer sk-gw-ops"}, "other", 200, None),
        # A Bearer header wins over x-api-key.
        (
            {"Authorization": "Bearer sk-wrong", "x-api-key": "sk-gw-one"},
            "other",
            401,
            "invalid_api_key",
        ),
    ],
)
async def test_the_key_matrix(
    secured: str,
    headers: dict[str, str],
    model: str,
    status: int,
    code: str | None,
    stream: bool,
) -> None:
    got, resp_headers, raw = await request(
        "POST", f"{secured}/chat/completions", chat(model, stream), **headers
    )
    assert got == status, raw
    if status != 200:
        error = assert_error_shape(got, resp_headers, raw)
        assert error["code"] == code
        assert b"sk-gw" not in raw


async def test_other_keys_cannot_see_each_others_models_or_streams(secured: str) -> None:
    _, _, raw = await request("GET", f"{secured}/models", Authorization="Bearer sk-gw-ops")
    assert [m["id"] for m in orjson.loads(raw)["data"]] == ["other"]
    status, _, _ = await request(
        "GET", f"{secured}/models/test-model", Authorization="Bearer sk-gw-ops"
    )
    assert status == 404
    status, headers, _ = await request(
        "POST",
        f"{secured}/chat/completions",
        chat("test-model", stream=True),
        Authorization="Bearer sk-gw-team",
        **{"X-Stream-Resumable": "true"},
    )
    assert status == 200
    stream_id = headers["X-Stream-Id"]
    for key, expected in (("sk-gw-one", 404), ("sk-gw-ops", 404), ("sk-gw-team", 200)):
        status, _, _ = await request(
            "GET", f"{secured}/streams/{stream_id}", Authorization=f"Bearer {key}"
        )
        assert status == expected


async def test_keys_that_are_not_utf8_get_401_not_500(secured: str) -> None:
    port = int(secured.rsplit(":", 1)[1].split("/")[0])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b"GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \xff\xfe\x00\r\n\r\n"
    )
    head = await asyncio.wait_for(reader.read(4096), 5)
    writer.close()
    assert head.split(b"\r\n", 1)[0] in (b"HTTP/1.1 401 Unauthorized", b"HTTP/1.0 400 Bad Request")


def test_every_key_is_compared_with_compare_digest_and_none_is_skipped() -> None:
    """By inspection: one compare_digest per key, in a loop that never stops early."""
    tree = ast.parse(inspect.getsource(auth.authenticate))
    loops = [node for node in ast.walk(tree) if isinstance(node, ast.For)]
    assert len(loops) == 1
    loop = loops[0]
    assert isinstance(loop.iter, ast.Name) and loop.iter.id == "keys"
    calls = [
        node
        for node in ast.walk(loop)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "compare_digest"
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "hmac"
    ]
    assert len(calls) == 1
    assert not [n for n in ast.walk(loop) if isinstance(n, ast.Break | ast.Return | ast.Raise)]
    # No key is ever compared with `==` anywhere in the package.
    package = Path(auth.__file__).parent.parent
    for path in package.rglob("*.py"):
        text = path.read_text()
        assert ".key ==" not in text and "== key.key" not in text, path


async def test_compare_digest_runs_once_per_key_whatever_is_presented(
    secured: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    original = hmac.compare_digest

    def counting(a: Any, b: Any) -> bool:
        calls.append(len(a))
        return original(a, b)

    monkeypatch.setattr(hmac, "compare_digest", counting)
    for headers in (
        {"Authorization": "Bearer sk-gw-one"},  # the first key
        {"Authorization": "Bearer sk-gw-ops"},  # the last
        {"Authorization": "Bearer x"},  # none, short
        {"x-api-key": "sk-" + "z" * 500},  # none, long
    ):
        calls.clear()
        await request("GET", f"{secured}/models", **headers)
        assert len(calls) == len(KEYS)
        assert set(calls) == {32}  # digests: the presented key's length does not show


# --- open paths and /metrics --------------------------------------------------------------------


async def test_health_ready_and_openapi_need_no_key_usage_does(secured: str) -> None:
    root = secured.removesuffix("/v1")
    for path in ("/health", "/ready", "/openapi.json"):
        assert (await request("GET", root + path))[0] == 200, path
    for path in ("/api/usage", "/v1/models", "/v1/streams/x", "/v1/nothing"):
        status, headers, raw = await request("GET", root + path)
        assert status == 401, path
        assert_error_shape(status, headers, raw)


@pytest.mark.parametrize(
    ("open_metrics", "headers", "status"),
    [
        ("loopback", {}, 200),  # the default: this test connects from 127.0.0.1
        ("loopback", {"X-Forwarded-For": "203.0.113.9"}, 401),  # relayed by a proxy
        ("loopback", {"Forwarded": "for=203.0.113.9"}, 401),
        ("loopback", {"X-Forwarded-For": "1.2.3.4", "x-api-key": "sk-gw-one"}, 200),
        (False, {}, 401),
        (False, {"Authorization": "Bearer sk-gw-wrong"}, 401),
        (False, {"Authorization": "Bearer sk-gw-team"}, 200),
        (True, {"X-Forwarded-For": "203.0.113.9"}, 200),
    ],
)
async def test_who_may_read_metrics(
    fake_openai: FakeOpenAI,
    make_gateway: Gateway,
    open_metrics: bool | str,
    headers: dict[str, str],
    status: int,
) -> None:
    base = await make_gateway(secured_config(fake_openai, open_metrics=open_metrics))
    got, resp_headers, raw = await request("GET", base.removesuffix("/v1") + "/metrics", **headers)
    assert got == status, raw
    if status == 200:
        assert b"# TYPE" in raw
    else:
        assert_error_shape(got, resp_headers, raw)


# --- the UI: open, with its security headers on every response ----------------------------------


async def test_ui_pages_need_no_key_and_always_carry_the_security_headers(
    fake_openai: FakeOpenAI, make_gateway: Gateway, tmp_path: Path
) -> None:
    (tmp_path / "assets").mkdir()
    (tmp_path / "index.html").write_text("<!doctype html><title>llms</title>")
    (tmp_path / "assets" / "index-1.js").write_text("console.log(1)")
    app = create_app(secured_config(fake_openai), ui_dist=tmp_path)
    runner = web.AppRunner(app, **server_options(secured_config(fake_openai)))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    root = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        for path, expected in (
            ("/", 200),
            ("/thread/1", 200),
            ("/assets/index-1.js", 200),
            ("/assets/missing.js", 404),
        ):
            status, headers, _ = await request("GET", root + path)
            assert status == expected, path
            assert headers["Content-Security-Policy"].startswith("default-src 'self'"), path
            assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
            assert headers["X-Content-Type-Options"] == "nosniff"
            assert headers["X-Frame-Options"] == "DENY"
            assert headers["Referrer-Policy"] == "no-referrer"
        status, headers, _ = await request("GET", root + "/v1/models")
        assert status == 401  # the API still needs the key
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert "Content-Security-Policy" not in headers
    finally:
        await runner.cleanup()


# --- CORS ---------------------------------------------------------------------------------------

PREFLIGHT = {
    "Origin": "https://app.example.com",
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "authorization, content-type, x-stainless-os",
}


async def test_cors_is_off_by_default(secured: str) -> None:
    status, headers, _ = await request("OPTIONS", f"{secured}/chat/completions", **PREFLIGHT)
    assert status in (401, 405)
    assert "Access-Control-Allow-Origin" not in headers
    _, headers, _ = await request(
        "GET", f"{secured}/models", Origin="https://app.example.com", **{"x-api-key": "sk-gw-one"}
    )
    assert "Access-Control-Allow-Origin" not in headers


async def test_cors_answers_allowed_origins_only(
    fake_openai: FakeOpenAI, make_gateway: Gateway
) -> None:
    base = await make_gateway(
        secured_config(
            fake_openai, cors_origins=["https://app.example.com", "http://localhost:5173"]
        )
    )
    status, headers, raw = await request("OPTIONS", f"{base}/chat/completions", **PREFLIGHT)
    assert status == 204, raw  # before auth: browsers send no key on a preflight
    assert headers["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert "POST" in headers["Access-Control-Allow-Methods"]
    assert headers["Access-Control-Allow-Headers"] == PREFLIGHT["Access-Control-Request-Headers"]
    assert "Access-Control-Allow-Credentials" not in headers
    status, headers, raw = await request(
        "POST",
        f"{base}/chat/completions",
        chat("test-model", stream=True),
        Origin="https://app.example.com",
        Authorization="Bearer sk-gw-one",
    )
    assert status == 200
    assert headers["Access-Control-Allow-Origin"] == "https://app.example.com"
    exposed = {h.strip() for h in headers["Access-Control-Expose-Headers"].split(",")}
    assert {"X-Stream-Id", "X-Provider", "X-Request-Id", "X-Heartbeat-Interval"} <= exposed
    assert "Origin" in headers.getall("Vary")
    # Errors carry the CORS headers too, so the browser can read them.
    status, headers, _ = await request(
        "POST", f"{base}/chat/completions", chat("test-model"), Origin="http://localhost:5173"
    )
    assert status == 401
    assert headers["Access-Control-Allow-Origin"] == "http://localhost:5173"
    # Any other origin: no CORS headers, and its preflight is refused.
    evil = {**PREFLIGHT, "Origin": "https://evil.example"}
    status, headers, raw = await request("OPTIONS", f"{base}/chat/completions", **evil)
    assert status == 403
    assert assert_error_shape(status, headers, raw)["code"] == "cors_origin_not_allowed"
    assert "Access-Control-Allow-Origin" not in headers
    _, headers, _ = await request(
        "GET", f"{base}/models", Origin="https://evil.example", **{"x-api-key": "sk-gw-one"}
    )
    assert "Access-Control-Allow-Origin" not in headers


# --- header limits ------------------------------------------------------------------------------


async def raw_exchange(port: int, data: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    answer = await asyncio.wait_for(reader.read(65536), 5)
    writer.close()
    return answer


@pytest.mark.parametrize(
    "data",
    [
        b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n",
        b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /health HTTP/1.1\r\nHost: x\r\n"
        + b"".join(b"X-%d: 1\r\n" % i for i in range(200))
        + b"\r\n",
    ],
    ids=["field", "request-line", "count"],
)
async def test_header_limits(fake_openai: FakeOpenAI, data: bytes) -> None:
    config = secured_config(fake_openai)
    runner = web.AppRunner(create_app(config), **server_options(config))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        answer = await raw_exchange(runner.addresses[0][1], data)
        assert answer.split(b"\r\n", 1)[0].split(b" ", 2)[1] == b"400", answer[:200]
        # Within the limits, the same request is fine.
        answer = await raw_exchange(
            runner.addresses[0][1],
            b"GET /health HTTP/1.1\r\nHost: x\r\nX-Ok: " + b"a" * 8000 + b"\r\n\r\n",
        )
        assert answer.startswith(b"HTTP/1.1 200")
    finally:
        await runner.cleanup()


# --- configuration ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("server", "message"),
    [
        ({"open_metrics": "yes"}, 'server.open_metrics: expected "loopback", true or false'),
        ({"cors_origins": "*"}, "server.cors_origins: expected a list of strings"),
        ({"cors_origins": ["app.example.com"]}, "server.cors_origins[0]: expected"),
        ({"cors_origins": ["https://a.example/path"]}, "server.cors_origins[0]: expected"),
        ({"request_timeout_s": 0}, "server.request_timeout_s: expected a number greater than 0"),
        ({"slow_client_s": "30"}, "server.slow_client_s: expected a number"),
        ({"client_buffer_kb": -1}, "server.client_buffer_kb: expected a number"),
        ({"max_header_kb": None}, "server.max_header_kb: expected a number"),
        (
            {"api_keys": [{"key": "a", "name": "x"}, {"key": "b", "name": "x"}]},
            "server.api_keys[1].name: duplicate key name 'x'",
        ),
        ({"api_keys": [{"key": "a", "rpm": 0}]}, "server.api_keys[0].rpm: expected a positive"),
        ({"api_keys": [{"key": "a", "tpm": 1.5}]}, "server.api_keys[0].tpm: expected a positive"),
        (
            {"api_keys": [{"key": "a", "max_streams": True}]},
            "server.api_keys[0].max_streams: expected a positive",
        ),
    ],
)
def test_security_settings_are_checked_naming_their_path(
    server: dict[str, Any], message: str
) -> None:
    from llms.config import parse_config
    from llms.errors import ConfigError

    providers = {"a": {"type": "openai", "base_url": "http://127.0.0.1:9/v1", "models": ["m"]}}
    with pytest.raises(ConfigError) as caught:
        parse_config({"server": server, "providers": providers}, env={})
    assert message in str(caught.value)


def test_security_defaults() -> None:
    server = gateway_config(
        {"a": {"type": "openai", "base_url": "http://127.0.0.1:9/v1", "models": ["m"]}}
    ).server
    assert server.open_metrics == "loopback"
    assert server.cors_origins == ()
    assert (server.request_timeout_s, server.slow_client_s) == (30, 30)
    assert (server.client_buffer_kb, server.max_header_kb, server.max_body_mb) == (1024, 8, 32)
    options = server_options(
        gateway_config(
            {"a": {"type": "openai", "base_url": "http://127.0.0.1:9/v1", "models": ["m"]}},
            server={"request_timeout_s": 12, "max_header_kb": 16},
        )
    )
    assert options["handler_cancellation"] is True
    assert options["keepalive_timeout"] == 12
    assert options["max_line_size"] == options["max_field_size"] == 16 * 1024
    assert options["lingering_time"] == 10
