"""Exact client-facing bytes and headers, and honest endings when the upstream fails mid-stream."""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import orjson
import pytest
from multidict import CIMultiDict

from tests.conftest import gateway_config
from tests.upstreams.openai import FakeOpenAI, Script, chunk, sse, text_script

EVENT = re.compile(rb"(data: [^\n]+\n\n|: [^\n]*\n\n)")
CHAT = {"model": "test-model", "messages": [{"role": "user", "content": "hi"}], "stream": True}


async def post_raw(
    base_url: str, body: dict[str, Any], **headers: str
) -> tuple[int, CIMultiDict[str], bytes]:
    async with (
        aiohttp.ClientSession(auto_decompress=False) as session,
        session.post(
            f"{base_url}/chat/completions", data=orjson.dumps(body), headers=headers
        ) as resp,
    ):
        return resp.status, resp.headers.copy(), await resp.read()


def events(body: bytes) -> list[bytes]:
    """The body split into events; fails if any byte is outside the allowed event grammar."""
    parts = EVENT.findall(body)
    assert b"".join(parts) == body, f"bytes outside `data:`/comment events: {body!r}"
    return parts


def payloads(body: bytes) -> list[Any]:
    out = []
    for event in events(body):
        if event.startswith(b"data: ") and event != b"data: [DONE]\n\n":
            out.append(orjson.loads(event[6:]))
    return out


def content_of(body: bytes) -> str:
    return "".join(
        c["delta"].get("content") or ""
        for p in payloads(body)
        if "choices" in p
        for c in p["choices"]
    )


async def test_stream_headers_and_exact_bytes(gateway: str, fake_openai: FakeOpenAI) -> None:
    status, headers, body = await post_raw(
        gateway, CHAT, **{"Accept-Encoding": "gzip, deflate", "Accept": "application/json"}
    )
    assert status == 200
    assert headers["Content-Type"].startswith("text/event-stream")
    assert headers["Cache-Control"] == "no-cache"
    assert headers["X-Accel-Buffering"] == "no"
    assert headers["X-Stream-Id"].startswith("chatcmpl-")
    assert headers["X-Request-Id"]
    assert headers["X-Provider"] == "fake"
    assert "Content-Length" not in headers
    assert "Content-Encoding" not in headers
    assert not body.startswith(b"\xef\xbb\xbf")
    assert body.endswith(b"data: [DONE]\n\n")
    assert body.count(b"data: [DONE]") == 1
    for line in body.split(b"\n"):
        assert not line.startswith((b"id:", b"event:", b"retry:"))
    chunks = payloads(body)
    assert {c["id"] for c in chunks} == {headers["X-Stream-Id"]}
    assert all(
        c["model"] == "test-model" and c["object"] == "chat.completion.chunk" for c in chunks
    )
    assert content_of(body) == "Hello, world!"
    # Usage was not asked for: no chunk with empty choices reaches the client.
    assert all(c["choices"] for c in chunks)


async def test_stream_false_returns_json(gateway: str) -> None:
    status, headers, body = await post_raw(gateway, {**CHAT, "stream": False})
    assert status == 200
    assert headers["Content-Type"].startswith("application/json")
    completion = orjson.loads(body)
    assert completion["object"] == "chat.completion"
    assert completion["choices"][0]["message"] == {
        "role": "assistant",
        "content": "Hello, world!",
        "refusal": None,
    }
    assert completion["usage"]["total_tokens"] == 9


async def test_request_id_is_echoed_when_sane(gateway: str) -> None:
    _, headers, _ = await post_raw(gateway, CHAT, **{"X-Request-Id": "trace-123"})
    assert headers["X-Request-Id"] == "trace-123"
    _, headers, _ = await post_raw(gateway, CHAT, **{"X-Request-Id": "bad id\twith spaces"})
    assert headers["X-Request-Id"].startswith("req_")


async def test_chunks_reach_the_client_before_the_upstream_finishes(
    gateway: str, fake_openai: FakeOpenAI
) -> None:
    fake_openai.scripts["up-model"] = text_script(["a", "b", "c", "d", "e"], delay_s=0.3)
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{gateway}/chat/completions", json=CHAT) as resp,
    ):
        first = await resp.content.readuntil(b"\n\n")
        while b'"content":"a"' not in first:
            first = await resp.content.readuntil(b"\n\n")
        seen_first_at = time.monotonic()
        rest = await resp.content.read()
    assert fake_openai.finished, "the upstream never finished"
    assert seen_first_at < fake_openai.finished[-1]
    assert rest.endswith(b"data: [DONE]\n\n")


async def test_heartbeat_comments_while_the_upstream_is_silent(
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
        server={"heartbeat_s": 0.2},
    )
    base = await make_gateway(config)
    fake_openai.scripts["up-model"] = text_script(["late"], first_delay_s=1.0)
    status, _, body = await post_raw(base, CHAT)
    assert status == 200
    parts = events(body)
    assert parts[0] == b": keep-alive\n\n"
    assert parts.count(b": keep-alive\n\n") >= 2
    assert content_of(body) == "late"
    assert body.endswith(b"data: [DONE]\n\n")


def error_events(body: bytes) -> list[dict[str, Any]]:
    return [p["error"] for p in payloads(body) if "error" in p]


@pytest.mark.parametrize(
    ("script", "code"),
    [
        (
            Script(
                writes=sse(
                    chunk({"role": "assistant"}),
                    chunk({"content": "par"}),
                    chunk({"content": "tial"}),
                ),
                fault="reset",
            ),
            "upstream_disconnected",
        ),
        (
            Script(
                writes=sse(
                    chunk({"role": "assistant"}),
                    chunk({"content": "par"}),
                    chunk({"content": "tial"}),
                ),
                fault="stall",
            ),
            "upstream_idle_timeout",
        ),
        (
            Script(
                writes=[
                    *sse(chunk({"content": "par"}), chunk({"content": "tial"})),
                    b"data: {not json\n\n",
                ],
                delay_s=0.05,
            ),
            "upstream_malformed",
        ),
        (
            Script(writes=sse(chunk({"content": "par"}), chunk({"content": "tial"}))),
            "upstream_incomplete",
        ),
        (
            Script(
                writes=sse(
                    chunk({"content": "par"}),
                    chunk({"content": "tial"}),
                    {"error": {"message": "boom", "type": "server_error", "code": "engine_crash"}},
                ),
                delay_s=0.05,
            ),
            "engine_crash",
        ),
    ],
    ids=["reset", "stall", "malformed", "no-terminator", "in-stream-error"],
)
async def test_failure_after_first_byte_is_an_error_event(
    gateway: str, fake_openai: FakeOpenAI, script: Script, code: str
) -> None:
    fake_openai.scripts["up-model"] = script
    status, _, body = await post_raw(gateway, CHAT)
    assert status == 200
    assert content_of(body) == "partial"
    errors = error_events(body)
    assert len(errors) == 1
    error = errors[0]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == code
    assert error["message"]
    # Never a normal finish: no finish_reason anywhere, and the error comes right before [DONE].
    assert not any(
        c["finish_reason"] for p in payloads(body) if "choices" in p for c in p["choices"]
    )
    assert body.endswith(b"\n\ndata: [DONE]\n\n")
    assert events(body)[-2].startswith(b'data: {"error"')
    if code == "engine_crash":
        assert error["message"] == "boom"


async def test_end_without_done_after_finish_is_a_normal_end(
    gateway: str, fake_openai: FakeOpenAI
) -> None:
    fake_openai.scripts["up-model"] = text_script(["ok"], done=False)
    _, _, body = await post_raw(gateway, CHAT)
    assert not error_events(body)
    assert content_of(body) == "ok"
    assert [c["finish_reason"] for p in payloads(body) for c in p["choices"]][-1] == "stop"
    assert body.endswith(b"data: [DONE]\n\n")


async def test_crlf_comments_and_no_space_upstream(gateway: str, fake_openai: FakeOpenAI) -> None:
    raw = (
        b": OPENROUTER PROCESSING\r\n\r\n"
        + b'data:{"choices":[{"index":0,"delta":{"role":"assistant","content":null}}]}\r\n\r\n'
        + b'data: {"choices":[{"index":0,"delta":{"content":"\xe2\x82'
    )
    rest = (
        b'\xac"}}]}\r\n\r\n'
        b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"eos"}]}\r\n\r\n'
        b"data: [DONE]\r\n\r\n"
    )
    fake_openai.scripts["up-model"] = Script(writes=[raw, rest])
    _, _, body = await post_raw(gateway, CHAT)
    assert content_of(body) == "€"
    chunks = payloads(body)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


async def test_long_line_from_upstream(gateway: str, fake_openai: FakeOpenAI) -> None:
    big = "x" * (2 * 1024 * 1024)  # past aiohttp's readline limit
    fake_openai.scripts["up-model"] = text_script([big, "!"])
    _, _, body = await post_raw(gateway, CHAT)
    assert content_of(body) == big + "!"


async def test_content_and_error_in_one_read_still_deliver_the_content(
    gateway: str, fake_openai: FakeOpenAI
) -> None:
    # However the upstream's bytes are split, output it produced reaches the client first.
    error = {"error": {"message": "boom", "type": "server_error", "code": "engine_crash"}}
    fake_openai.scripts["up-model"] = Script(writes=[b"".join(sse(chunk({"content": "x"}), error))])
    status, _, body = await post_raw(gateway, CHAT)
    assert status == 200
    assert content_of(body) == "x"
    assert error_events(body)[0]["message"] == "boom"
    assert body.endswith(b"data: [DONE]\n\n")


async def test_error_before_any_output_is_an_http_error(
    gateway: str, fake_openai: FakeOpenAI
) -> None:
    error = {"error": {"message": "boom", "type": "server_error", "code": "engine_crash"}}
    fake_openai.scripts["up-model"] = Script(
        writes=sse(chunk({"role": "assistant", "content": ""}), error)
    )
    status, headers, body = await post_raw(gateway, CHAT)
    assert status == 502
    assert headers["Content-Type"].startswith("application/json")
    assert orjson.loads(body)["error"]["message"] == "boom"


async def test_idle_timeout_applies_after_the_commit_not_the_first_token_one(
    fake_openai: FakeOpenAI, make_gateway: Callable[..., Awaitable[str]]
) -> None:
    config = gateway_config(
        {
            "fake": {
                "type": "openai",
                "base_url": fake_openai.base_url,  # type: ignore[attr-defined]
                "models": {"test-model": "up-model"},
                "timeouts": {"idle_s": 0.5, "first_token_s": 30},
            }
        },
        routing={"max_attempts": 1},
    )
    base = await make_gateway(config)
    fake_openai.scripts["up-model"] = Script(writes=sse(chunk({"content": "x"})), fault="stall")
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session,
        session.post(f"{base}/chat/completions", json=CHAT) as resp,
    ):
        body = await resp.read()  # with the 30 s first-token timer still armed, this times out
    assert error_events(body)[0]["code"] == "upstream_idle_timeout"


@pytest.mark.parametrize("resumable", [False, True])
async def test_an_unforeseen_upstream_shape_still_ends_the_stream(
    gateway: str, fake_openai: FakeOpenAI, resumable: bool
) -> None:
    writes = [*sse(chunk({"content": "fine"})), b'data: {"choices": [5]}\n\n']
    fake_openai.scripts["up-model"] = Script(writes=writes, delay_s=0.05)
    headers = {"X-Stream-Resumable": "true"} if resumable else {}
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session,
        session.post(f"{gateway}/chat/completions", json=CHAT, headers=headers) as resp,
    ):
        body = await resp.read()
    assert b"fine" in body
    assert b'"code":"upstream_malformed"' in body  # the upstream's fault (issue 11 item 5)
    assert body.endswith(b"data: [DONE]\n\n")
