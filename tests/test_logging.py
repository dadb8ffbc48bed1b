"""Structured logs with the request id on every line; no credential in any log or response."""

from __future__ import annotations

import asyncio
import http.client
import json
import logging
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from llms.telemetry.logs import CURRENT_REQUEST_ID, JSONFormatter, TextFormatter
from tests.conftest import gateway_config
from tests.telemetry_app import running
from tests.test_cli import ThreadedUpstream, child_env, start_serve, write_config
from tests.upstreams.openai import FakeOpenAI, Script, chunk, error_script, sse, text_script

GATEWAY_KEY = "sk-gw-canary-1a2b3c4d5e"
UPSTREAM_KEY = "sk-up-canary-9z8y7x6w5v"
HEADER_TOKEN = "tok-hdr-canary-5e6f7g8h"
WRONG_KEY = "sk-wrong-guess-0q9p8o7n"
SECRETS = (GATEWAY_KEY, UPSTREAM_KEY, HEADER_TOKEN, WRONG_KEY)
ECHO = f"Authorization: Bearer {UPSTREAM_KEY}, X-Auth-Token: {HEADER_TOKEN}"


def script(fake: FakeOpenAI) -> None:
    """Upstreams that quote the gateway's credentials back in every way they can."""
    fake.scripts["ok-up"] = text_script(["fine"])
    fake.scripts["auth-up"] = error_script(401, {"error": {"message": f"Bad key {UPSTREAM_KEY}"}})
    fake.scripts["bad-up"] = error_script(400, {"error": {"message": ECHO, "param": UPSTREAM_KEY}})
    fake.scripts["boom-up"] = error_script(500, f"crashed on {ECHO}".encode())
    fake.scripts["mid-up"] = Script(
        writes=sse(
            chunk({"role": "assistant", "content": "x"}),
            {"error": {"message": f"revoked: {ECHO}", "code": UPSTREAM_KEY}},
        )
    )


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def providers(base_url: str) -> dict[str, Any]:
    upstream = {
        "type": "openai",
        "base_url": base_url,
        "api_key": UPSTREAM_KEY,
        "headers": {"X-Auth-Token": HEADER_TOKEN},
        "models": {f"{name}": f"{name}-up" for name in ("ok", "auth", "bad", "boom", "mid")},
    }
    dead = {
        "type": "openai",
        "base_url": f"http://127.0.0.1:{closed_port()}/v1",
        "api_key": UPSTREAM_KEY,
        "models": ["dead"],
    }
    return {"fake": upstream, "dead": dead}


# (model, headers, body override, expected status) for every path through the gateway.
KEY = {"Authorization": f"Bearer {GATEWAY_KEY}"}
CASES: list[tuple[str, dict[str, str], bytes | None, int]] = [
    ("ok", KEY, None, 200),
    ("ok", {"x-api-key": GATEWAY_KEY}, None, 200),
    ("ok", {"Authorization": f"Bearer {WRONG_KEY}"}, None, 401),
    ("ok", {}, None, 401),
    ("ok", KEY, b'{"model": "ok", "messages": "not a list"}', 400),
    ("ok", KEY, b"{not json", 400),
    ("auth", KEY, None, 502),
    ("bad", KEY, None, 400),
    ("boom", KEY, None, 502),
    ("mid", KEY, None, 200),
    ("dead", KEY, None, 502),
]


def body_of(model: str, stream: bool, raw: bytes | None) -> bytes:
    if raw is not None:
        return raw
    messages = [{"role": "user", "content": "hi"}]
    return json.dumps({"model": model, "messages": messages, "stream": stream}).encode()


def assert_clean(text: str, where: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"{secret} in {where}:\n{text[-3000:]}"


async def test_no_secret_in_responses_or_logs(
    fake_openai: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    script(fake_openai)
    config = gateway_config(
        providers(fake_openai.base_url),  # type: ignore[attr-defined]
        server={"api_keys": [GATEWAY_KEY]},
        routing={"max_attempts": 2},
        state={"request_log": None},
    )
    caplog.set_level(logging.DEBUG)
    seen: list[str] = []
    async with running(config) as gw, aiohttp.ClientSession() as session:
        for stream in (True, False):
            for model, headers, raw, status in CASES:
                async with session.post(
                    f"{gw.base}/chat/completions",
                    data=body_of(model, stream, raw),
                    headers={"Content-Type": "application/json", **headers},
                ) as resp:
                    body = (await resp.read()).decode()
                    expected = 502 if (model, stream) == ("mid", False) else status
                    assert resp.status == expected, (model, stream, body)
                    seen.append(f"{resp.headers!r} {body}")
        async with session.get(f"{gw.root}/metrics", headers=KEY) as resp:
            seen.append(await resp.text())
        await asyncio.sleep(0)
    # The upstream did get the credentials, so the scripts above really quoted them back.
    received = fake_openai.received[0].headers
    assert received["Authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert received["X-Auth-Token"] == HEADER_TOKEN
    joined = "\n".join(seen)
    assert "[redacted]" in joined  # the echoes were caught, not merely absent
    assert_clean(joined, "a response")
    assert caplog.records
    # Rendered without the formatter's own redaction: the code itself must not log them.
    plain = JSONFormatter()
    assert_clean("\n".join(plain.format(record) for record in caplog.records), "the logs")


def test_the_formatters_scrub_secrets_and_carry_the_request_id() -> None:
    record = logging.LogRecord("llms.x", logging.INFO, __file__, 1, "got %s", (UPSTREAM_KEY,), None)
    token = CURRENT_REQUEST_ID.set("req-42")
    try:
        line = json.loads(JSONFormatter((UPSTREAM_KEY,)).format(record))
        text = TextFormatter((UPSTREAM_KEY,)).format(record)
    finally:
        CURRENT_REQUEST_ID.reset(token)
    assert set(line) == {"time", "level", "logger", "message", "request_id"}
    assert (line["level"], line["logger"], line["request_id"]) == ("INFO", "llms.x", "req-42")
    assert line["message"] == "got [redacted]" and line["time"].endswith("Z")
    assert text.endswith("llms.x: got [redacted] [req-42]")
    outside = json.loads(JSONFormatter().format(record))
    assert outside["request_id"] is None


@pytest.fixture(scope="module")
def upstream() -> Iterator[ThreadedUpstream]:
    server = ThreadedUpstream()
    script(server.fake)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.process
def test_serve_json_logs_at_debug(upstream: ThreadedUpstream, tmp_path: Path) -> None:
    config = {
        "server": {"api_keys": [GATEWAY_KEY]},
        "state": {"request_log": None},
        "routing": {"max_attempts": 1},
        "providers": providers(upstream.base_url),
    }
    path = write_config(tmp_path / "config.json", config)
    served = start_serve(
        path, tmp_path, "--log-format", "json", "--log-level", "debug", env=child_env()
    )
    try:
        served.wait_ready()
        ids = []
        for i, (model, headers, raw, status) in enumerate(CASES):
            request_id = f"log-test-{i}"
            conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=10)
            conn.request(
                "POST",
                "/v1/chat/completions",
                body_of(model, True, raw),
                {"Content-Type": "application/json", "X-Request-Id": request_id, **headers},
            )
            response = conn.getresponse()
            body = response.read().decode()
            assert response.status == status, (model, body)
            assert_clean(body + str(response.getheaders()), f"the response to {model}")
            conn.close()
            if status != 401:
                ids.append(request_id)
        assert served.stop() == 0
    finally:
        served.kill()
    stderr = served.stderr()
    assert_clean(stderr + served.stdout(), "llms serve's output")
    lines = [json.loads(line) for line in stderr.splitlines() if line.strip()]
    assert all(
        set(line) >= {"time", "level", "logger", "message", "request_id"} for line in lines
    ), stderr
    assert any(line["message"].startswith("llms serving on") for line in lines)
    by_request: dict[str, list[dict[str, Any]]] = {}
    for line in lines:
        if line["request_id"]:
            by_request.setdefault(line["request_id"], []).append(line)
    # Each chat request that got past auth logged its access line with its id.
    for request_id in ids:
        assert any(line["logger"] == "llms.access" for line in by_request[request_id]), request_id
    # Startup and shutdown lines belong to no request.
    assert all(line["request_id"] is None for line in lines if "serving on" in line["message"])
