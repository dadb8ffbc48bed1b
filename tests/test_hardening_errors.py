"""Issue 11, items 9, 10, 15, 16 and 18: configs that would fail every request are refused at
start; client-library surprises, a model that cannot take an image, an upstream echoing its key
in a header and library internals in messages all reach the client as clear errors; a malformed
HTTP request costs one debug line, not an ERROR with a traceback."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp.test_utils import TestServer

from cluster.run import find_binary, free_port, kill_group, start_redis, wait_for_redis
from llms.config import parse_config
from llms.errors import ConfigError
from tests.conftest import gateway_config
from tests.test_cli import start_serve, write_config
from tests.upstreams.ollama import FakeOllama
from tests.upstreams.ollama import error_script as ollama_error
from tests.upstreams.openai import FakeOpenAI, error_script

Gateway = Callable[..., Awaitable[str]]
MSG = [{"role": "user", "content": "hi"}]


def openai_provider(base_url: str, **extra: Any) -> dict[str, Any]:
    return {"type": "openai", "base_url": base_url, "models": ["m"], **extra}


async def post_chat(base: str, body: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{base}/chat/completions", json=body) as resp,
    ):
        raw = await resp.read()
        headers = {name.lower(): value for name, value in resp.headers.items()}
        return resp.status, headers, orjson.loads(raw)


# --- 9: configs the HTTP client would refuse on every request ------------------------------------


@pytest.mark.parametrize(
    ("provider", "path", "words"),
    [
        (
            openai_provider("http://user:pw@127.0.0.1:9/v1", api_key="sk-123456"),
            "providers.p.base_url",
            "user:pass@",
        ),
        (
            openai_provider("http://user@127.0.0.1:9/v1", headers={"Authorization": "Basic x"}),
            "providers.p.base_url",
            "user:pass@",
        ),
        (
            openai_provider("http://127.0.0.1:9/v1", headers={"X-Team": "a\r\nX-Evil: 1"}),
            "providers.p.headers.X-Team",
            "control character",
        ),
        (
            openai_provider("http://127.0.0.1:9/v1", headers={"X-Team": "a\x01b"}),
            "providers.p.headers.X-Team",
            "control character",
        ),
        (
            openai_provider("http://127.0.0.1:9/v1", headers={"X-Team\r\nX-Evil": "1"}),
            "providers.p.headers",
            "header name",
        ),
        (
            openai_provider("http://127.0.0.1:9/v1", headers={"X Team": "1"}),
            "providers.p.headers",
            "header name",
        ),
        (
            openai_provider("http://127.0.0.1:9/v1", headers={"Content-Length": "5"}),
            "providers.p.headers.Content-Length",
            "sets this header itself",
        ),
        (
            openai_provider("http://127.0.0.1:9/v1", api_key="sk-abcdef\n"),
            "providers.p.api_key",
            "control character",
        ),
        (openai_provider("ftp://127.0.0.1/v1"), "providers.p.base_url", "http:// or https://"),
        (openai_provider("http://127.0.0.1:99999/v1"), "providers.p.base_url", "port"),
        (openai_provider("http://127.0.0.1:ab/v1"), "providers.p.base_url", "port"),
        (openai_provider("http://127.0.0.1:0/v1"), "providers.p.base_url", "port"),
        (openai_provider("http://[::1/v1"), "providers.p.base_url", "IPv6"),
        (openai_provider("http://127.0.0.1:9\\v1"), "providers.p.base_url", "backslash"),
        (openai_provider("http://127.0.0.1:9/v1\n"), "providers.p.base_url", "control"),
        (openai_provider("http://127.0.0.1:9/v1?x=1"), "providers.p.base_url", "query"),
        (openai_provider("http://" + "a" * 64 + ".example/v1"), "providers.p.base_url", "host"),
    ],
)
def test_config_refuses_what_every_request_would_fail_on(
    provider: dict[str, Any], path: str, words: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"providers": {"p": provider}}, source="c.json", env={})
    message = str(caught.value)
    assert message.startswith(f"c.json: {path}"), message
    assert words in message, message
    assert "sk-123456" not in message and "sk-abcdef" not in message  # never quotes a key


OK = openai_provider("http://127.0.0.1:9/v1")


def test_config_refuses_an_unusable_redis_url() -> None:
    with pytest.raises(ConfigError, match=r"state\.redis_url: expected a URL starting redis://"):
        parse_config(
            {"state": {"redis_url": "http://127.0.0.1:6379"}, "providers": {"p": OK}},
            source="c.json",
            env={},
        )


@pytest.mark.parametrize(
    "provider",
    [
        # URL credentials without an Authorization header of the gateway's own: aiohttp sends them.
        openai_provider("http://user:pw@127.0.0.1:9/v1"),
        {
            "type": "anthropic",
            "base_url": "http://u:pw@127.0.0.1:9",
            "api_key": "sk-123456",
            "models": ["m"],
        },
        openai_provider("https://[::1]:8443/v1", headers={"X-Tab": "a\tb", "Host": "example"}),
        openai_provider("http://ex\u00e4mple.test/v1"),
    ],
)
def test_config_still_accepts_what_works(provider: dict[str, Any]) -> None:
    parse_config({"providers": {"p": provider}}, source="c.json", env={})


async def test_client_library_refusal_is_a_clear_502(
    fake_openai: FakeOpenAI, make_gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    """A value aiohttp refuses at request time (here built past the config's checks) is an
    upstream error in plain words, never a 500."""
    config = gateway_config(
        {"fake": openai_provider(fake_openai.base_url)},  # type: ignore[attr-defined]
        routing={"max_attempts": 1},
    )
    broken = dataclasses.replace(config.providers[0], headers={"X-Team": "a\r\nX-Evil: 1"})
    config = dataclasses.replace(config, providers=(broken,))
    base = await make_gateway(config)
    with caplog.at_level(logging.WARNING):
        status, _, body = await post_chat(base, {"model": "m", "messages": MSG})
    assert status == 502, body
    error = body["error"]
    assert error["type"] == "server_error"
    assert error["code"] == "upstream_error"
    assert "could not send the request" in error["message"]
    assert "injection" not in error["message"]
    assert "Forbidden control character" in caplog.text  # the detail is in the log
    assert fake_openai.received == []


# --- 16: client-visible errors say what happened, not where or in which library's words ----------


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def assert_plain(message: str, *internals: str) -> None:
    for internal in ("127.0.0.1", "Connect call failed", "<", "message=", "ssl:", *internals):
        assert internal not in message, message


async def test_connect_failure_names_no_address(
    make_gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    port = closed_port()
    config = gateway_config(
        {"dead": openai_provider(f"http://127.0.0.1:{port}/v1")}, routing={"max_attempts": 1}
    )
    base = await make_gateway(config)
    with caplog.at_level(logging.WARNING):
        status, _, body = await post_chat(base, {"model": "m", "messages": MSG, "stream": True})
    assert status == 502, body
    assert body["error"]["code"] == "upstream_connect_error"
    message = body["error"]["message"]
    assert message == "Cannot connect to the upstream: connection refused."
    assert_plain(message, str(port))
    assert f"127.0.0.1:{port}" in caplog.text  # the operator still learns where


async def broken_chunked_upstream(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """Answers 200 with a chunk that promises 255 bytes, sends 7, and hangs up."""
    with contextlib.suppress(asyncio.IncompleteReadError):
        await reader.readuntil(b"\r\n\r\n")
    writer.write(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
        b"Transfer-Encoding: chunked\r\n\r\nff\r\ndata: {"
    )
    await writer.drain()
    writer.close()


async def test_broken_body_is_said_in_plain_words(
    make_gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    server = await asyncio.start_server(broken_chunked_upstream, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        config = gateway_config(
            {"up": openai_provider(f"http://127.0.0.1:{port}/v1")}, routing={"max_attempts": 1}
        )
        base = await make_gateway(config)
        with caplog.at_level(logging.WARNING):
            status, _, body = await post_chat(base, {"model": "m", "messages": MSG, "stream": True})
    finally:
        server.close()
    assert status == 502, body
    message = body["error"]["message"]
    assert "cut short" in message, message
    assert_plain(message, "TransferEncodingError", "Not enough data", "payload")
    assert "TransferEncodingError" in caplog.text


async def test_redis_failure_names_no_address(
    fake_openai: FakeOpenAI,
    make_gateway: Gateway,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    binary = find_binary("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    port = free_port()
    with (tmp_path / "redis.out").open("wb") as out:
        proc = start_redis(tmp_path, port, binary=binary, log=out)
    try:
        wait_for_redis(port, proc)
        config = gateway_config(
            {"fake": openai_provider(fake_openai.base_url)},  # type: ignore[attr-defined]
            state={"redis_url": f"redis://127.0.0.1:{port}/0"},
        )
        base = await make_gateway(config)
    finally:
        kill_group(proc)
    with caplog.at_level(logging.WARNING):
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                f"{base}/chat/completions",
                json={"model": "m", "messages": MSG, "stream": True},
                headers={"X-Stream-Resumable": "true"},
            ) as resp,
        ):
            status, body = resp.status, orjson.loads(await resp.read())
    assert status == 503, body
    message = body["error"]["message"]
    assert "Redis" in message, message
    assert_plain(message, str(port), "Error ", "connecting")
    assert str(port) in caplog.text


# --- 15: upstream rate-limit headers are scrubbed of the gateway's credentials ------------------

UPSTREAM_KEY = "sk-up-echoed-7h6g5f4e3d"
HEADER_TOKEN = "tok-hdr-echoed-1q2w3e4r"


@pytest.mark.parametrize("status", [429, 503])
async def test_upstream_headers_that_echo_a_key_are_redacted(
    fake_openai: FakeOpenAI, make_gateway: Gateway, status: int
) -> None:
    fake_openai.scripts["echo-up"] = error_script(
        status,
        {"error": {"message": "slow down"}},
        headers={
            "x-ratelimit-limit-requests": UPSTREAM_KEY,
            "x-ratelimit-remaining-tokens": f"Bearer {UPSTREAM_KEY}; {HEADER_TOKEN}",
            "retry-after-ms": f"{UPSTREAM_KEY}",
            "retry-after": "1",
        },
    )
    provider = openai_provider(
        fake_openai.base_url,  # type: ignore[attr-defined]
        api_key=UPSTREAM_KEY,
        headers={"X-Auth-Token": HEADER_TOKEN},
        models={"echo": "echo-up"},
    )
    base = await make_gateway(gateway_config({"fake": provider}, routing={"max_attempts": 1}))
    got, headers, body = await post_chat(base, {"model": "echo", "messages": MSG})
    assert got == status, body
    shown = "\n".join(f"{name}: {value}" for name, value in headers.items())
    assert UPSTREAM_KEY not in shown and HEADER_TOKEN not in shown, shown
    assert headers["x-ratelimit-limit-requests"] == "[redacted]"
    assert headers["x-ratelimit-remaining-tokens"] == "Bearer [redacted]; [redacted]"
    assert headers["retry-after"] == "1"


# --- 10: a model that cannot take an image or audio part: the client's 400, no circuit count -----

HINT = "if this is unexpected, you may need to provide the mmproj"
IMAGE = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
AUDIO = {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}}


def llama_cpp_error(message: str) -> dict[str, Any]:
    """llama.cpp's server: a std::runtime_error while parsing the request is a 500."""
    return {"error": {"code": 500, "message": message, "type": "server_error"}}


@pytest.mark.parametrize(
    ("status", "body", "part"),
    [
        (500, llama_cpp_error(f"image input is not supported - hint: {HINT}"), IMAGE),
        (500, llama_cpp_error(f"audio input is not supported - hint: {HINT}"), AUDIO),
        (500, llama_cpp_error("This server does not support multimodal"), IMAGE),
        (500, llama_cpp_error("Failed to load image or audio file"), IMAGE),
        (
            400,  # vLLM, a text-only model
            {
                "object": "error",
                "message": "At most 0 image(s) may be provided in one request.",
                "type": "BadRequestError",
                "param": None,
                "code": 400,
            },
            IMAGE,
        ),
    ],
)
async def test_unsupported_media_is_the_clients_400_and_opens_no_circuit(
    fake_openai: FakeOpenAI,
    make_gateway: Gateway,
    status: int,
    body: dict[str, Any],
    part: dict[str, Any],
) -> None:
    fake_openai.scripts["text-only-up"] = error_script(status, body)
    provider = openai_provider(
        fake_openai.base_url,  # type: ignore[attr-defined]
        models={"text-only": "text-only-up", "fine": "fine-up"},
    )
    config = gateway_config(
        {"fake": provider},
        routing={"max_attempts": 3, "circuit": {"failures": 2, "cooldown_s": 60}},
    )
    base = await make_gateway(config)
    content = [{"type": "text", "text": "what is this?"}, part]
    for attempt in range(3):  # what an SDK's two retries make of it
        got, _, answer = await post_chat(
            base, {"model": "text-only", "messages": [{"role": "user", "content": content}]}
        )
        assert got == 400, answer
        error = answer["error"]
        assert error["type"] == "invalid_request_error"
        assert error["message"]
        assert len(fake_openai.received) == attempt + 1  # never retried upstream
    got, _, answer = await post_chat(base, {"model": "fine", "messages": MSG})
    assert got == 200, answer  # the provider's circuit is still closed


async def test_ollama_model_without_vision_is_the_clients_400(make_gateway: Gateway) -> None:
    fake = FakeOllama()
    fake.scripts["qwen3"] = ollama_error(500, "this model is missing data required for image input")
    server = TestServer(fake.app, host="127.0.0.1")
    await server.start_server()
    try:
        provider = {
            "type": "ollama",
            "base_url": str(server.make_url("/")).rstrip("/"),
            "models": {"text-only": "qwen3"},
        }
        config = gateway_config({"ollama": provider}, routing={"circuit": {"failures": 1}})
        base = await make_gateway(config)
        content = [{"type": "text", "text": "what is this?"}, IMAGE]
        for _ in range(2):
            got, _, answer = await post_chat(
                base, {"model": "text-only", "messages": [{"role": "user", "content": content}]}
            )
            assert got == 400, answer
            assert answer["error"]["type"] == "invalid_request_error"
        assert len(fake.received) == 2
    finally:
        await server.close()


# --- 18: a malformed HTTP request is one debug line, not an ERROR with a traceback --------------

MALFORMED = [
    b"GARBAGE\x01 /canary-method HTTP/1.1\r\n\r\n",  # not a method
    b"GET /v1/models HTTP/1.1\r\nHost: x\r\nCanary Header: 1\r\n\r\n",  # not a header name
    b"GET /" + b"C" * 20_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",  # over server.max_header_kb
    b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"zz-canary\r\n",  # a broken chunk size
]


def send_raw(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        answer = b""
        with contextlib.suppress(ConnectionResetError, TimeoutError):
            while chunk := sock.recv(65536):
                answer += chunk
        return answer


@pytest.mark.parametrize("level", ["debug", "info"])
def test_malformed_requests_cost_one_debug_line(tmp_path: Path, level: str) -> None:
    config = write_config(
        tmp_path / "config.json",
        {"state": {"request_log": None}, "providers": {"p": OK}},
    )
    served = start_serve(config, tmp_path, "--log-level", level)
    try:
        served.wait_ready()
        for data in [*MALFORMED, MALFORMED[1]]:  # one twice: one line each time
            answer = send_raw(served.port, data)
            assert answer.split(b"\r\n", 1)[0].endswith(b" 400 Bad Request"), answer[:80]
    finally:
        served.stop()
    log = served.stderr()
    assert "Traceback" not in log, log
    assert " ERROR " not in log and "Error handling request" not in log, log
    assert "canary" not in log.lower() and "CCCCCCCC" not in log, log  # no raw bytes
    lines = [line for line in log.splitlines() if "malformed HTTP request" in line]
    if level == "debug":
        assert len(lines) == len(MALFORMED) + 1, log
        assert all(" DEBUG " in line and "127.0.0.1" in line for line in lines), lines
    else:
        assert lines == [], log
