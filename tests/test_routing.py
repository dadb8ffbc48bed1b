"""Routing that never lies: retries and fallback before the first byte, never after content."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import orjson
import pytest

from llms.config import CircuitConfig
from llms.errors import RateLimited, UpstreamConnectError, UpstreamHTTPError, UpstreamMalformed
from llms.providers import CircuitBreaker
from llms.routing import retry_delay, should_retry
from tests.conftest import gateway_config
from tests.upstreams.openai import FakeOpenAI, Script, chunk, error_script, sse, text_script

MSG = [{"role": "user", "content": "hi"}]


def http_error(
    status: int, headers: dict[str, str] | None = None, retryable: bool = True
) -> UpstreamHTTPError:
    return UpstreamHTTPError(
        "x", status=status, type="server_error", headers=headers, retryable=retryable
    )


def test_should_retry() -> None:
    assert should_retry(UpstreamConnectError("down"))
    assert should_retry(http_error(503))
    assert not should_retry(http_error(400, retryable=False))
    assert not should_retry(UpstreamMalformed("garbage"))
    assert not should_retry(RateLimited("the client's own limit"))


def test_retry_delay_honours_the_upstream_then_backs_off_with_full_jitter() -> None:
    assert retry_delay(0, http_error(429, {"Retry-After": "2"})) == 2.0
    assert retry_delay(0, http_error(429, {"retry-after-ms": "250", "Retry-After": "9"})) == 0.25
    assert retry_delay(0, http_error(429, {"Retry-After": "30"})) is None  # over the cap: give up
    assert retry_delay(3, http_error(503), rand=lambda: 1.0) == 2.0  # 0.25 * 2**3
    assert retry_delay(3, http_error(503), rand=lambda: 0.0) == 0.0
    assert retry_delay(10, http_error(503), rand=lambda: 1.0) == 8.0  # capped
    assert retry_delay(0, http_error(503, {"Retry-After": "soon"}), rand=lambda: 0.5) == 0.125


def test_circuit_breaker_opens_skips_probes_and_recovers() -> None:
    breaker = CircuitBreaker(CircuitConfig(failures=2, cooldown_s=10))
    assert breaker.allow(0)
    breaker.failed(0)
    assert breaker.state(0) == "closed"
    breaker.failed(1)
    assert breaker.state(1) == "open"
    assert not breaker.allow(5)
    assert breaker.retry_after(5) == 6
    assert breaker.allow(11)  # the one probe
    assert not breaker.allow(11)  # nobody else while it runs
    assert breaker.state(11) == "half_open"
    breaker.failed(12)  # the probe failed: open again for a full cool-down
    assert not breaker.allow(20)
    assert breaker.allow(22)
    breaker.succeeded()
    assert breaker.state(22) == "closed"
    assert breaker.allow(22) and breaker.allow(22)


def two_providers(fake: FakeOpenAI, **routing: Any) -> Any:
    url = fake.base_url  # type: ignore[attr-defined]
    return gateway_config(
        {
            "first": {
                "type": "openai",
                "base_url": url,
                "models": {"m": "one"},
                "timeouts": {"idle_s": 2},
            },
            "second": {
                "type": "openai",
                "base_url": url,
                "models": {"m": "two"},
                "timeouts": {"idle_s": 2},
            },
        },
        routing=routing,
    )


async def post(base: str, body: dict[str, Any]) -> tuple[int, Any, bytes]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{base}/chat/completions", json=body) as resp,
    ):
        return resp.status, resp.headers.copy(), await resp.read()


def sse_payloads(raw: bytes) -> list[Any]:
    return [orjson.loads(line[6:]) for line in raw.split(b"\n\n") if line.startswith(b"data: {")]


async def test_fallback_after_a_role_chunk_but_before_content(
    fake_openai: FakeOpenAI, make_gateway: Callable[..., Awaitable[str]]
) -> None:
    # The first provider sends a role chunk, a comment and an empty delta, then dies: nothing
    # with content reached the client, so the second provider may still answer.
    writes = [*sse(chunk({"role": "assistant", "content": ""})), b": thinking\n\n", *sse(chunk({}))]
    fake_openai.scripts["one"] = Script(writes=writes, fault="reset", delay_s=0.05)
    fake_openai.scripts["two"] = text_script(["from ", "two"])
    base = await make_gateway(two_providers(fake_openai, max_attempts=2))
    status, headers, raw = await post(base, {"model": "m", "messages": MSG, "stream": True})
    assert status == 200
    assert headers["X-Provider"] == "second"
    payloads = sse_payloads(raw)
    roles = [c for p in payloads for c in p["choices"] if "role" in c["delta"]]
    assert len(roles) == 1
    assert (
        "".join(c["delta"].get("content") or "" for p in payloads for c in p["choices"])
        == "from two"
    )
    assert raw.endswith(b"data: [DONE]\n\n")
    assert [r.body["model"] for r in fake_openai.received] == ["one", "two"]


async def test_no_fallback_once_content_reached_the_client(
    fake_openai: FakeOpenAI, make_gateway: Callable[..., Awaitable[str]]
) -> None:
    writes = sse(chunk({"role": "assistant", "content": ""}), chunk({"content": "half an ans"}))
    fake_openai.scripts["one"] = Script(writes=writes, fault="reset", delay_s=0.05)
    fake_openai.scripts["two"] = text_script(["never"])
    base = await make_gateway(two_providers(fake_openai, max_attempts=3))
    status, _, raw = await post(base, {"model": "m", "messages": MSG, "stream": True})
    assert status == 200
    payloads = sse_payloads(raw)
    assert payloads[-1]["error"]["code"] == "upstream_disconnected"
    assert b"never" not in raw
    assert [r.body["model"] for r in fake_openai.received] == ["one"]


async def test_retry_the_same_provider_after_retry_after(
    fake_openai: FakeOpenAI, make_gateway: Callable[..., Awaitable[str]]
) -> None:
    url = fake_openai.base_url  # type: ignore[attr-defined]
    config = gateway_config({"only": {"type": "openai", "base_url": url, "models": {"m": "one"}}})
    fake_openai.scripts["one"] = [
        error_script(429, {"error": {"message": "wait"}}, {"Retry-After": "0.2"}),
        text_script(["ok"]),
    ]
    base = await make_gateway(config)
    status, _, raw = await post(base, {"model": "m", "messages": MSG})
    assert status == 200
    assert orjson.loads(raw)["choices"][0]["message"]["content"] == "ok"
    assert len(fake_openai.received) == 2


async def test_a_long_retry_after_is_passed_to_the_client_instead(
    fake_openai: FakeOpenAI, make_gateway: Callable[..., Awaitable[str]]
) -> None:
    url = fake_openai.base_url  # type: ignore[attr-defined]
    config = gateway_config({"only": {"type": "openai", "base_url": url, "models": {"m": "one"}}})
    fake_openai.scripts["one"] = error_script(
        429, {"error": {"message": "wait"}}, {"Retry-After": "60"}
    )
    base = await make_gateway(config)
    status, headers, _ = await post(base, {"model": "m", "messages": MSG})
    assert status == 429
    assert headers["Retry-After"] == "60"
    assert len(fake_openai.received) == 1


async def test_one_deadline_bounds_every_attempt_before_the_first_byte(
    fake_openai: FakeOpenAI, make_gateway: Callable[..., Awaitable[str]]
) -> None:
    # Each provider alone would wait 5 s for its first token; together they get 1 s.
    fake_openai.scripts["one"] = text_script(["late"], header_delay_s=30)
    fake_openai.scripts["two"] = text_script(["late"], header_delay_s=30)
    config = gateway_config(
        {
            name: {
                "type": "openai",
                "base_url": fake_openai.base_url,
                "models": {"m": model},
                "timeouts": {"first_token_s": 5},
            }  # type: ignore[attr-defined]
            for name, model in (("first", "one"), ("second", "two"))
        },
        routing={"max_attempts": 3, "timeouts": {"first_token_s": 1}},
    )
    base = await make_gateway(config)
    status, _, raw = await post(base, {"model": "m", "messages": MSG, "stream": True})
    assert status == 504
    assert orjson.loads(raw)["error"]["code"] == "upstream_timeout"
    # The first attempt used the whole budget: the second provider was never tried.
    assert [r.body["model"] for r in fake_openai.received] == ["one"]


async def test_circuit_breaker_through_the_gateway(
    fake_openai: FakeOpenAI, make_gateway: Callable[..., Awaitable[str]]
) -> None:
    fake_openai.scripts["one"] = [
        error_script(500, b"down"),
        error_script(500, b"down"),
        text_script(["back"]),
    ]
    fake_openai.scripts["two"] = text_script(["spare"])
    base = await make_gateway(
        two_providers(fake_openai, max_attempts=2, circuit={"failures": 2, "cooldown_s": 0.5})
    )
    root = base.removesuffix("/v1")
    body = {"model": "m", "messages": MSG}
    for _ in range(2):  # "first" fails twice (each time "second" answers): its circuit opens
        status, headers, _ = await post(base, body)
        assert (status, headers["X-Provider"]) == (200, "second")
    async with aiohttp.ClientSession() as session, session.get(f"{root}/ready") as resp:
        ready = await resp.json()
    assert ready["providers"]["first"]["circuit"] == "open"
    assert ready["providers"]["second"]["circuit"] == "closed"
    status, headers, _ = await post(base, body)  # skipped: straight to "second"
    assert headers["X-Provider"] == "second"
    assert [r.body["model"] for r in fake_openai.received].count("one") == 2
    await asyncio.sleep(0.6)  # the cool-down passes; the next request probes "first"
    status, headers, raw = await post(base, body)
    assert (status, headers["X-Provider"]) == (200, "first")
    assert orjson.loads(raw)["choices"][0]["message"]["content"] == "back"
    async with aiohttp.ClientSession() as session, session.get(f"{root}/ready") as resp:
        assert (await resp.json())["providers"]["first"]["circuit"] == "closed"


async def test_every_circuit_open_is_a_503_with_retry_after(
    fake_openai: FakeOpenAI, make_gateway: Callable[..., Awaitable[str]]
) -> None:
    url = fake_openai.base_url  # type: ignore[attr-defined]
    config = gateway_config(
        {"only": {"type": "openai", "base_url": url, "models": {"m": "one"}}},
        routing={"max_attempts": 1, "circuit": {"failures": 1, "cooldown_s": 30}},
    )
    fake_openai.scripts["one"] = error_script(500, b"down")
    base = await make_gateway(config)
    assert (await post(base, {"model": "m", "messages": MSG}))[0] == 502
    status, headers, raw = await post(base, {"model": "m", "messages": MSG})
    assert status == 503
    assert orjson.loads(raw)["error"]["code"] == "providers_unavailable"
    assert 1 <= int(headers["Retry-After"]) <= 30
    assert len(fake_openai.received) == 1


@pytest.mark.parametrize("fault", ["reset", "malformed"])
async def test_mid_stream_failures_count_against_the_provider(
    fake_openai: FakeOpenAI, make_gateway: Callable[..., Awaitable[str]], fault: str
) -> None:
    url = fake_openai.base_url  # type: ignore[attr-defined]
    config = gateway_config(
        {"only": {"type": "openai", "base_url": url, "models": {"m": "one"}}},
        routing={"max_attempts": 1, "circuit": {"failures": 1, "cooldown_s": 30}},
    )
    writes = sse(chunk({"content": "par"}))
    if fault == "malformed":
        writes = [*writes, b"data: {nope\n\n"]
    fake_openai.scripts["one"] = Script(
        writes=writes, fault="reset" if fault == "reset" else None, delay_s=0.05
    )
    base = await make_gateway(config)
    status, _, raw = await post(base, {"model": "m", "messages": MSG, "stream": True})
    assert status == 200
    assert b'"error"' in raw
    status, _, _ = await post(base, {"model": "m", "messages": MSG, "stream": True})
    # A reset says the provider is unhealthy; so does malformed output (issue 11 item 5: it
    # is the upstream's fault, never the client's, and the next provider is tried instead).
    assert status == 503
