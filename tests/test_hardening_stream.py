"""Hostile upstreams cannot hang, mislead or silently shorten a stream (issue 11: 2, 5, 17, 20).

Every started response ends with an error event and `data: [DONE]`, whatever was raised; an
upstream chunk of an unexpected shape (or one that cannot be encoded) is `upstream_malformed`, a
fallback candidate before the commit, delivered after the same read's good chunks after it; the
status recorded is the status sent; a first-token timeout is `upstream_timeout`; a broken
chunk-size line is noticed at once; an in-band error keeps the type and code of its HTTP error.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import openai
import orjson
import pytest
from aiohttp.test_utils import TestServer

from llms.adapters import ADAPTERS
from tests.conftest import gateway_config
from tests.upstreams.openai import FakeOpenAI, Script, chunk, error_script, sse, text_script

MSG = [{"role": "user", "content": "hi"}]
CHAT = {"model": "test-model", "messages": MSG, "stream": True}
RESUMABLE = {"X-Stream-Resumable": "true"}
Gateway = Callable[..., Awaitable[str]]


# --- helpers -----------------------------------------------------------------------------------


async def post(
    base: str, body: dict[str, Any], headers: dict[str, str] | None = None, limit_s: float = 8.0
) -> tuple[int, dict[str, str], bytes]:
    """POST a chat request and read the whole answer; a hang fails the test instead of waiting."""
    async with aiohttp.ClientSession() as session:
        async with asyncio.timeout(limit_s):
            async with session.post(
                f"{base}/chat/completions", json=body, headers=headers or {}
            ) as resp:
                return resp.status, dict(resp.headers), await resp.read()


def data_events(body: bytes) -> list[Any]:
    """The `data:` payloads of an SSE body, `[DONE]` as the string "[DONE]"."""
    out: list[Any] = []
    for block in re.split(rb"\n\n", body):
        for line in block.split(b"\n"):
            if line.startswith(b"data: "):
                data = line[6:]
                out.append("[DONE]" if data == b"[DONE]" else orjson.loads(data))
    return out


def content_of(events: list[Any]) -> str:
    return "".join(
        c["delta"].get("content") or ""
        for e in events
        if isinstance(e, dict) and "choices" in e
        for c in e["choices"]
    )


def assert_ends_with_error(body: bytes, code: str, type_: str | None = None) -> dict[str, Any]:
    """The body ends with one error event then `[DONE]`; returns the error."""
    events = data_events(body)
    assert events[-1] == "[DONE]", body[-300:]
    assert events.count("[DONE]") == 1
    last = events[-2]
    assert isinstance(last, dict) and "error" in last, body[-300:]
    error = last["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == code, error
    if type_ is not None:
        assert error["type"] == type_, error
    assert "Error" not in error["message"] and "<" not in error["message"], error["message"]
    return dict(error)


def url_of(fake: FakeOpenAI) -> str:
    return str(fake.base_url)  # type: ignore[attr-defined]


def provider_config(url: str, **timeouts: float) -> dict[str, Any]:
    return {
        "type": "openai",
        "base_url": url,
        "models": {"test-model": "up-model"},
        "timeouts": {"idle_s": 3, "first_token_s": 3, "answer_s": 3, **timeouts},
    }


async def gateway_for(
    make_gateway: Gateway,
    providers: dict[str, Any],
    *,
    heartbeat_s: float = 30.0,
    max_attempts: int = 3,
    failures: int = 5,
) -> str:
    config = gateway_config(
        providers,
        server={"heartbeat_s": heartbeat_s},
        routing={"max_attempts": max_attempts, "circuit": {"failures": failures}},
    )
    return str(await make_gateway(config))


async def root_json(base: str, path: str) -> Any:
    async with (
        aiohttp.ClientSession() as session,
        session.get(base.removesuffix("/v1") + path) as resp,
    ):
        return await resp.json()


async def metric_lines(base: str, prefix: str) -> list[str]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(base.removesuffix("/v1") + "/metrics") as resp,
    ):
        text = await resp.text()
    return [line for line in text.splitlines() if line.startswith(prefix)]


@pytest.fixture
async def second_openai() -> AsyncIterator[FakeOpenAI]:
    fake = FakeOpenAI()
    server = TestServer(fake.app, host="127.0.0.1")
    await server.start_server()
    fake.base_url = str(server.make_url("/v1"))  # type: ignore[attr-defined]
    yield fake
    await server.close()


# Upstream chunks the OpenAI converter (or the encoder) cannot take.
INDEX_LIST = chunk({"content": "bad"}) | {
    "choices": [{"index": [0], "delta": {"content": "bad"}, "finish_reason": None}]
}
MIXED_INDEXES = chunk({"content": "two"}) | {
    "choices": [
        {"index": 0, "delta": {"content": "A"}, "finish_reason": None},
        {"index": "1", "delta": {"content": "B"}, "finish_reason": None},
    ]
}
# orjson parses 1024 levels but encodes only 255, so this one is written by hand.
TOO_DEEP = (
    orjson.dumps(chunk({"content": "deep", "extra": None}))
    .decode()
    .replace('"extra":null', '"extra":' + '{"x":' * 300 + '"deep"' + "}" * 300)
)


# --- 2: a started stream always ends, whatever was raised ---------------------------------------


@pytest.fixture
def buggy_error_mapping(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug in the gateway's own code (the adapter's error mapping raises something foreign)."""
    adapter = ADAPTERS["openai"]

    def broken(status: int, headers: Any, body: bytes) -> Any:
        raise ZeroDivisionError("a bug nobody foresaw")

    monkeypatch.setattr(adapter, "from_error_response", broken)


@pytest.mark.parametrize("headers", [{}, RESUMABLE], ids=["default", "resumable"])
async def test_a_foreign_exception_after_a_heartbeat_still_ends_the_stream(
    fake_openai: FakeOpenAI,
    make_gateway: Gateway,
    buggy_error_mapping: None,
    headers: dict[str, str],
) -> None:
    fake_openai.scripts["up-model"] = Script(
        writes=[b'{"error": {"message": "x"}}'],
        status=500,
        content_type="application/json",
        header_delay_s=0.4,
    )
    base = await gateway_for(
        make_gateway, {"fake": provider_config(url_of(fake_openai))}, heartbeat_s=0.05
    )
    status, _, body = await post(base, CHAT, headers)
    assert status == 200
    assert b": keep-alive" in body
    error = assert_ends_with_error(body, "internal_error", "server_error")
    assert "ZeroDivision" not in error["message"] and "bug" not in error["message"]


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "whole"])
async def test_a_foreign_exception_before_any_byte_is_a_plain_500(
    fake_openai: FakeOpenAI, make_gateway: Gateway, buggy_error_mapping: None, stream: bool
) -> None:
    fake_openai.scripts["up-model"] = error_script(500, {"error": {"message": "x"}})
    base = await gateway_for(make_gateway, {"fake": provider_config(url_of(fake_openai))})
    status, headers, body = await post(base, CHAT | {"stream": stream})
    assert status == 500
    assert headers["Content-Type"].startswith("application/json")
    assert orjson.loads(body)["error"]["code"] == "internal_error"
    # The status recorded is the status sent.
    requests = await metric_lines(base, "llms_requests_total{")
    assert any('status="500"' in line for line in requests), requests
    assert not any('status="200"' in line for line in requests), requests


@pytest.mark.parametrize("headers", [{}, RESUMABLE], ids=["default", "resumable"])
async def test_a_malformed_first_chunk_after_a_heartbeat_ends_the_stream(
    fake_openai: FakeOpenAI, make_gateway: Gateway, headers: dict[str, str]
) -> None:
    fake_openai.scripts["up-model"] = Script(
        writes=sse(chunk({"role": "assistant"}), INDEX_LIST), first_delay_s=0.3
    )
    base = await gateway_for(
        make_gateway,
        {"fake": provider_config(url_of(fake_openai))},
        heartbeat_s=0.05,
    )
    status, _, body = await post(base, CHAT, headers)
    assert status == 200
    assert_ends_with_error(body, "upstream_malformed", "server_error")
    assert len(fake_openai.received) == 1  # the same provider is not asked again


# --- 5: unexpected chunk shapes are upstream_malformed ------------------------------------------


@pytest.mark.parametrize(
    "bad", [INDEX_LIST, MIXED_INDEXES, TOO_DEEP], ids=["list", "mixed", "deep"]
)
async def test_a_malformed_first_answer_falls_back_to_the_next_provider_once(
    fake_openai: FakeOpenAI, second_openai: FakeOpenAI, make_gateway: Gateway, bad: Any
) -> None:
    fake_openai.scripts["up-model"] = Script(writes=sse(bad, chunk({}, "stop"), "[DONE]"))
    base = await gateway_for(
        make_gateway,
        {
            "first": provider_config(url_of(fake_openai)),
            "second": provider_config(url_of(second_openai)),
        },
    )
    status, headers, body = await post(base, CHAT)
    assert status == 200
    assert headers["X-Provider"] == "second"
    events = data_events(body)
    assert content_of(events) == "Hello, world!"
    assert events[-1] == "[DONE]"
    assert len(fake_openai.received) == 1
    ready = await root_json(base, "/ready")
    assert ready["providers"]["first"]["consecutive_failures"] == 1  # counted against it


# The same answer through the APIs that write events of their own (the commit's check skips
# encoding a choice of one more piece of text, which holds nothing nested).
API_BODIES = {
    "/responses": {"model": "test-model", "input": "hi", "stream": True, "store": False},
    "/messages": {"model": "test-model", "messages": MSG, "stream": True, "max_tokens": 50},
}
TOP_LEVEL_DEEP = (
    orjson.dumps(chunk({"content": "deep "}) | {"extra": None})
    .decode()
    .replace('"extra":null', '"extra":' + '{"x":' * 300 + '"deep"' + "}" * 300)
)


async def post_api(base: str, path: str) -> tuple[int, str | None, bytes]:
    """API_BODIES[path] posted: the status, X-Provider and the whole body."""
    headers = {"anthropic-version": "2023-06-01"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(base + path, json=API_BODIES[path], headers=headers) as resp,
    ):
        return resp.status, resp.headers.get("X-Provider"), await resp.read()


def text_of(body: bytes) -> str:
    """The text deltas of a Responses or Messages stream."""
    text = ""
    for event in data_events(body):
        if isinstance(event, dict):
            if event.get("type") == "response.output_text.delta":
                text += event["delta"]
            elif event.get("type") == "content_block_delta":
                text += event["delta"].get("text", "")
    return text


@pytest.mark.parametrize("path", list(API_BODIES))
@pytest.mark.parametrize(
    "bad", [INDEX_LIST, MIXED_INDEXES, TOO_DEEP], ids=["list", "mixed", "deep"]
)
async def test_other_apis_fall_back_on_a_malformed_first_answer_too(
    fake_openai: FakeOpenAI,
    second_openai: FakeOpenAI,
    make_gateway: Gateway,
    bad: Any,
    path: str,
) -> None:
    fake_openai.scripts["up-model"] = Script(writes=sse(bad, chunk({}, "stop"), "[DONE]"))
    base = await gateway_for(
        make_gateway,
        {
            "first": provider_config(url_of(fake_openai)),
            "second": provider_config(url_of(second_openai)),
        },
    )
    status, provider, body = await post_api(base, path)
    assert status == 200, body
    assert provider == "second"
    assert text_of(body) == "Hello, world!"
    assert len(fake_openai.received) == 1


@pytest.mark.parametrize("path", list(API_BODIES))
async def test_a_deep_key_beside_the_choices_is_no_failure_where_it_never_reaches_the_client(
    fake_openai: FakeOpenAI, make_gateway: Gateway, path: str
) -> None:
    """Chat completions relay a chunk's every key (a chunk nested too deeply is malformed
    there); a Responses or Messages client gets only the choices' values, so the same answer
    is whole."""
    fake_openai.scripts["up-model"] = Script(
        writes=sse(TOP_LEVEL_DEEP, chunk({"content": "end"}), chunk({}, "stop"), "[DONE]")
    )
    base = await gateway_for(make_gateway, {"first": provider_config(url_of(fake_openai))})
    status, _, body = await post_api(base, path)
    assert status == 200, body
    assert text_of(body) == "deep end"


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "whole"])
@pytest.mark.parametrize(
    "bad", [INDEX_LIST, MIXED_INDEXES, TOO_DEEP], ids=["list", "mixed", "deep"]
)
async def test_a_malformed_answer_from_the_only_provider_is_a_502_recorded_as_sent(
    make_gateway: Gateway, bad: Any, stream: bool
) -> None:
    calls: list[bool] = []

    async def answer(request: aiohttp.web.Request) -> aiohttp.web.StreamResponse:
        body = await request.json()
        calls.append(body.get("stream", False))
        if body.get("stream"):
            return aiohttp.web.Response(
                body=b"".join(sse(bad, chunk({}, "stop"), "[DONE]")),
                content_type="text/event-stream",
            )
        # The same choices as a non-stream answer (by text: orjson cannot encode TOO_DEEP).
        whole = (
            (bad if isinstance(bad, str) else orjson.dumps(bad).decode())
            .replace('"chat.completion.chunk"', '"chat.completion"')
            .replace('"delta"', '"message"')
        )
        return aiohttp.web.Response(text=whole, content_type="application/json")

    app = aiohttp.web.Application()
    app.router.add_post("/v1/chat/completions", answer)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        base = await gateway_for(
            make_gateway, {"fake": provider_config(str(server.make_url("/v1")))}
        )
        status, headers, body = await post(base, CHAT | {"stream": stream})
        assert status == 502, body
        assert headers["Content-Type"].startswith("application/json")
        error = orjson.loads(body)["error"]
        assert error["code"] == "upstream_malformed"
        assert error["type"] == "server_error"
        assert len(calls) == 1  # not retried against the same provider
        requests = await metric_lines(base, "llms_requests_total{")
        assert any('status="502"' in line for line in requests), requests
        assert not any('status="200"' in line or 'status="500"' in line for line in requests)
    finally:
        await server.close()


@pytest.mark.parametrize("headers", [{}, RESUMABLE], ids=["default", "resumable"])
@pytest.mark.parametrize(
    "bad", [INDEX_LIST, MIXED_INDEXES, TOO_DEEP], ids=["list", "mixed", "deep"]
)
async def test_after_the_commit_the_same_reads_chunks_arrive_before_the_error(
    make_gateway: Gateway, bad: Any, headers: dict[str, str]
) -> None:
    committed = asyncio.Event()  # set once the client has the first chunk

    async def answer(request: aiohttp.web.Request) -> aiohttp.web.StreamResponse:
        await request.read()
        response = aiohttp.web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(sse(chunk({"role": "assistant", "content": "one "}))[0])
        await committed.wait()
        # One network write: good chunks, the bad one, and what follows it.
        rest = sse(chunk({"content": "two "}), chunk({"content": "three"}), bad, "[DONE]")
        await response.write(b"".join(rest))
        await response.write_eof()
        return response

    app = aiohttp.web.Application()
    app.router.add_post("/v1/chat/completions", answer)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        base = await gateway_for(
            make_gateway, {"fake": provider_config(str(server.make_url("/v1")))}
        )
        async with (
            asyncio.timeout(8),
            aiohttp.ClientSession() as session,
            session.post(f"{base}/chat/completions", json=CHAT, headers=headers) as resp,
        ):
            assert resp.status == 200
            body = b""
            while b"one " not in body:
                body += await resp.content.readany()
            committed.set()
            body += await resp.read()
        events = data_events(body)
        assert content_of(events).startswith("one two three"), body
        assert_ends_with_error(body, "upstream_malformed", "server_error")
        requests = await metric_lines(base, "llms_requests_total{")
        errors = await metric_lines(base, "llms_errors_total{")
        assert any('status="200"' in line for line in requests), requests
        assert any("upstream_malformed" in line for line in errors), errors
    finally:
        await server.close()


# --- 17: first-token timeout and broken chunked framing -----------------------------------------


async def test_headers_then_silence_before_the_first_token_is_upstream_timeout(
    fake_openai: FakeOpenAI, make_gateway: Gateway
) -> None:
    fake_openai.scripts["up-model"] = Script(writes=[], fault="stall")
    base = await gateway_for(
        make_gateway,
        {"fake": provider_config(url_of(fake_openai), first_token_s=0.5, idle_s=0.3)},
        max_attempts=1,
    )
    status, _, body = await post(base, CHAT)
    assert status == 504
    error = orjson.loads(body)["error"]
    assert error["code"] == "upstream_timeout"
    assert error["type"] == "timeout"


async def test_silence_after_the_first_token_is_still_an_idle_timeout(
    fake_openai: FakeOpenAI, make_gateway: Gateway
) -> None:
    fake_openai.scripts["up-model"] = Script(
        writes=sse(chunk({"role": "assistant", "content": "hi"})), fault="stall"
    )
    base = await gateway_for(
        make_gateway,
        {"fake": provider_config(url_of(fake_openai), first_token_s=2, idle_s=0.3)},
        max_attempts=1,
    )
    status, _, body = await post(base, CHAT)
    assert status == 200
    assert_ends_with_error(body, "upstream_idle_timeout", "timeout")


async def broken_chunked_server(before: list[bytes], broken: bytes, *, mode: str) -> asyncio.Server:
    """A raw HTTP/1.1 server: a chunked 200 with `before` as chunks, then a broken size line.

    The connection then stays open (the server neither sends more nor closes), so only the
    broken framing itself can end the exchange. `mode`: "at-once" (head, chunks and the broken
    line in one TCP write), "with-body" (the head first, then the chunks and the broken line in
    one write) or "later" (the broken line a moment after the chunks).
    """

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))  # type: ignore[union-attr]
        await reader.readexactly(length)
        head = (
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        body = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in before)
        writes = {
            "at-once": [head + body + broken],
            "with-body": [head, body + broken],
            "later": [head, body, broken],
        }[mode]
        for i, data in enumerate(writes):
            if i:
                await asyncio.sleep(0.1)
            writer.write(data)
            await writer.drain()
        try:
            await reader.read()  # until the gateway closes
        finally:
            writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


@pytest.mark.parametrize("mode", ["at-once", "with-body", "later"])
@pytest.mark.parametrize("committed", [True, False], ids=["after-output", "before-output"])
async def test_a_broken_chunk_size_line_is_noticed_at_once(
    make_gateway: Gateway, mode: str, committed: bool
) -> None:
    before = sse(chunk({"role": "assistant", "content": "hi" if committed else ""}))
    server = await broken_chunked_server(before, b"zz\r\nhello\r\n", mode=mode)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1"
    try:
        # Timeouts far longer than the test's own limit: only noticing the framing passes.
        base = await gateway_for(
            make_gateway,
            {"fake": provider_config(url, first_token_s=30, idle_s=30)},
            max_attempts=1,
        )
        status, _, body = await post(base, CHAT, limit_s=5)
        if committed and mode != "at-once":
            assert status == 200
            assert content_of(data_events(body)) == "hi"
            assert_ends_with_error(body, "upstream_malformed", "server_error")
        else:
            # Before any output (or when aiohttp refused the whole response): a plain 502.
            assert status == 502
            error = orjson.loads(body)["error"]
            assert error["code"] == "upstream_malformed"
            assert "zz" not in error["message"] and "Http" not in error["message"]
    finally:
        server.close()


# --- 20: an in-band error keeps the type and code its HTTP error would have had ------------------


@pytest.mark.parametrize("headers", [{}, RESUMABLE], ids=["default", "resumable"])
async def test_a_429_after_a_heartbeat_is_an_error_event_the_sdk_recognises(
    fake_openai: FakeOpenAI, make_gateway: Gateway, headers: dict[str, str]
) -> None:
    limited = error_script(
        429,
        {"error": {"message": "Slow down.", "type": "requests", "code": "rate_limit_exceeded"}},
        headers={"Retry-After": "60"},
    )
    limited.header_delay_s = 0.3
    fake_openai.scripts["up-model"] = limited
    base = await gateway_for(
        make_gateway,
        {"fake": provider_config(url_of(fake_openai))},
        heartbeat_s=0.05,
    )
    status, _, body = await post(base, CHAT, headers)
    assert status == 200
    assert b": keep-alive" in body
    error = assert_ends_with_error(body, "rate_limit_exceeded", "rate_limit_error")
    assert error["message"] == "Slow down."

    client = openai.AsyncOpenAI(
        base_url=base, api_key="unused", max_retries=0, default_headers=headers
    )
    stream = await client.chat.completions.create(model="test-model", messages=MSG, stream=True)  # type: ignore[arg-type]
    with pytest.raises(openai.APIError) as caught:
        async for _ in stream:
            pass
    assert caught.value.code == "rate_limit_exceeded"
    assert caught.value.type == "rate_limit_error"


async def test_a_429_before_any_byte_stays_an_http_429(
    fake_openai: FakeOpenAI, make_gateway: Gateway
) -> None:
    fake_openai.scripts["up-model"] = error_script(
        429, {"error": {"message": "Slow down."}}, headers={"Retry-After": "60"}
    )
    base = await gateway_for(make_gateway, {"fake": provider_config(url_of(fake_openai))})
    status, headers, body = await post(base, CHAT, RESUMABLE)
    assert status == 429
    assert headers["Retry-After"] == "60"
    assert orjson.loads(body)["error"]["code"] == "rate_limit_exceeded"


async def test_text_script_still_streams(fake_openai: FakeOpenAI, make_gateway: Gateway) -> None:
    fake_openai.scripts["up-model"] = text_script(["a", "b"])
    base = await gateway_for(make_gateway, {"fake": provider_config(url_of(fake_openai))})
    status, _, body = await post(base, CHAT, limit_s=5)
    assert status == 200
    assert content_of(data_events(body)) == "ab"
