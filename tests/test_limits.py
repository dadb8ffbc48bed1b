"""Per-key limits: rpm, tpm and max_streams give 429 with Retry-After; slots are always freed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import orjson
import pytest

from llms.config import ApiKey
from llms.errors import RateLimited
from llms.server.limits import UNLIMITED, Limits
from tests.conftest import gateway_config
from tests.test_http_errors import assert_error_shape, request
from tests.upstreams.openai import FakeOpenAI, Script, error_script, sse, text_script
from tests.upstreams.openai import chunk as up_chunk

MSG = [{"role": "user", "content": "hi"}]
Gateway = Callable[..., Awaitable[str]]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def refused(limits: Limits, key: ApiKey) -> RateLimited:
    with pytest.raises(RateLimited) as caught:
        limits.admit(key)
    return caught.value


# --- the windows, on a clock of our own ---------------------------------------------------------


def test_rpm_is_a_sliding_window_and_retry_after_is_when_a_slot_frees() -> None:
    clock = Clock()
    limits = Limits(clock)
    key = ApiKey(key="k", name="team", rpm=2)
    limits.admit(key).release()
    clock.now += 10
    limits.admit(key).release()
    clock.now += 5
    error = refused(limits, key)
    assert error.status == 429
    assert error.headers["Retry-After"] == "45"  # the first request leaves the window at +60 s
    assert error.headers["retry-after-ms"] == "45000"
    assert "'team'" in error.message
    assert "2 requests per minute (rpm)" in error.message
    clock.now += 45
    limits.admit(key).release()  # the first one left
    assert refused(limits, key).headers["Retry-After"] == "10"


def test_tpm_counts_finished_requests_usage_and_refuses_while_over() -> None:
    clock = Clock()
    limits = Limits(clock)
    key = ApiKey(key="k", name="team", tpm=100)
    usage = {"prompt_tokens": 30, "completion_tokens": 30, "total_tokens": 60}
    first = limits.admit(key)
    second = limits.admit(key)  # admitted: nothing was used yet
    first.release(usage)  # type: ignore[arg-type]
    clock.now += 20
    second.release(usage)  # type: ignore[arg-type]
    second.release(usage)  # type: ignore[arg-type]  # a second release changes nothing
    error = refused(limits, key)
    assert "100 tokens per minute (tpm); 120 were used" in error.message
    # Under the limit once the first 60 tokens leave the window, 60 s after they were counted.
    assert error.headers["Retry-After"] == "40"
    clock.now += 40
    limits.admit(key).release({"prompt_tokens": 1, "completion_tokens": 0, "total_tokens": 0})  # type: ignore[arg-type]


def test_max_streams_counts_leases_until_released() -> None:
    limits = Limits(Clock())
    key = ApiKey(key="k", name="team", max_streams=2)
    leases = [limits.admit(key), limits.admit(key)]
    error = refused(limits, key)
    assert "2 concurrent streams (max_streams)" in error.message
    assert error.headers["Retry-After"] == "1"
    leases[0].release()
    leases[0].release()
    limits.admit(key)
    refused(limits, key)


def test_keys_without_limits_and_no_key_are_not_tracked() -> None:
    limits = Limits(Clock())
    for _ in range(1000):
        lease = limits.admit(None)
        assert lease is UNLIMITED
        lease.release()
        lease = limits.admit(ApiKey(key="k", name="free"))
        assert lease is UNLIMITED  # nothing counted, so nothing can ever refuse it
        lease.release()


def test_a_refused_request_uses_no_slot_and_no_rpm() -> None:
    clock = Clock()
    limits = Limits(clock)
    key = ApiKey(key="k", name="team", rpm=5, max_streams=1)
    held = limits.admit(key)
    for _ in range(10):
        refused(limits, key)  # max_streams
    held.release()
    for _ in range(4):
        limits.admit(key).release()
    assert "rpm" in refused(limits, key).message


# --- through the gateway ------------------------------------------------------------------------


def limited_config(fake: FakeOpenAI, *, state: dict[str, Any] | None = None, **limits: int) -> Any:
    return gateway_config(
        {
            "fake": {
                "type": "openai",
                "base_url": fake.base_url,  # type: ignore[attr-defined]
                "models": {"m": "up-model", "slow": "slow-up", "stall": "stall-up"},
            }
        },
        server={
            "api_keys": [
                {"key": "sk-limited", "name": "limited", **limits},
                {"key": "sk-free", "name": "free"},
            ]
        },
        routing={"max_attempts": 1},
        state=state or {},
    )


def chat(model: str = "m", *, stream: bool = False) -> bytes:
    return orjson.dumps({"model": model, "messages": MSG, "stream": stream})


async def post(base: str, key: str, body: bytes, **headers: str) -> tuple[int, Any, bytes]:
    return await request(
        "POST", f"{base}/chat/completions", body, Authorization=f"Bearer {key}", **headers
    )


async def test_rpm_gives_429_with_retry_after(
    fake_openai: FakeOpenAI, make_gateway: Gateway
) -> None:
    base = await make_gateway(limited_config(fake_openai, rpm=2))
    assert (await post(base, "sk-limited", chat()))[0] == 200
    assert (await post(base, "sk-limited", chat(stream=True)))[0] == 200
    status, headers, raw = await post(base, "sk-limited", chat())
    assert status == 429
    error = assert_error_shape(status, headers, raw)
    assert error["type"] == "rate_limit_error"
    assert error["code"] == "rate_limit_exceeded"
    assert "rpm" in error["message"]
    assert 1 <= int(headers["Retry-After"]) <= 60
    assert len(fake_openai.received) == 2  # the refused request never reached the upstream
    assert (await post(base, "sk-free", chat()))[0] == 200  # other keys are not affected


async def test_tpm_counts_the_usage_the_upstream_reports(
    fake_openai: FakeOpenAI, make_gateway: Gateway
) -> None:
    # Each answer reports 5 prompt + 4 completion tokens = 9.
    fake_openai.scripts["up-model"] = text_script(["a", "b", "c", "d"])
    base = await make_gateway(limited_config(fake_openai, tpm=20))
    assert (await post(base, "sk-limited", chat()))[0] == 200  # 9 used
    assert (await post(base, "sk-limited", chat(stream=True)))[0] == 200  # 18 used
    assert (await post(base, "sk-limited", chat()))[0] == 200  # 18 < 20: admitted; 27 used
    status, headers, raw = await post(base, "sk-limited", chat(stream=True))
    assert status == 429
    error = assert_error_shape(status, headers, raw)
    assert "20 tokens per minute (tpm); 27 were used" in error["message"]
    assert 1 <= int(headers["Retry-After"]) <= 60


async def open_stream(
    session: aiohttp.ClientSession, base: str, model: str, **headers: str
) -> aiohttp.ClientResponse:
    response = await session.post(
        f"{base}/chat/completions",
        data=chat(model, stream=True),
        headers={"Authorization": "Bearer sk-limited", **headers},
    )
    assert response.status == 200, await response.read()
    await response.content.readline()  # the first event arrived: the stream is running
    return response


async def admitted_again(base: str, model: str = "m", within_s: float = 15) -> None:
    """Poll until the key may start a request again (a refused request holds nothing)."""
    deadline = time.monotonic() + within_s
    while True:
        status, _, raw = await post(base, "sk-limited", chat(model))
        if status == 200:
            return
        assert status == 429, raw
        assert time.monotonic() < deadline, "the slot was never freed"
        await asyncio.sleep(0.05)


async def test_max_streams_and_slots_freed_when_clients_disconnect(
    fake_openai: FakeOpenAI, make_gateway: Gateway
) -> None:
    fake_openai.scripts["stall-up"] = Script(
        writes=sse(up_chunk({"role": "assistant", "content": "x"})), fault="stall"
    )
    base = await make_gateway(limited_config(fake_openai, max_streams=2))
    async with aiohttp.ClientSession() as session:
        first = await open_stream(session, base, "stall")
        second = await open_stream(session, base, "stall")
        status, headers, raw = await post(base, "sk-limited", chat())
        assert status == 429
        assert "max_streams" in assert_error_shape(status, headers, raw)["message"]
        assert headers["Retry-After"] == "1"
        assert (await post(base, "sk-free", chat()))[0] == 200
        first.close()  # the client leaves: its slot is freed
        await admitted_again(base)
        status, _, _ = await post(base, "sk-limited", chat())
        assert status == 200  # one stream left running, one free slot
        second.close()


async def test_slots_are_freed_after_upstream_errors(
    fake_openai: FakeOpenAI, make_gateway: Gateway
) -> None:
    fake_openai.scripts["up-model"] = [
        error_script(500, b"boom"),
        error_script(500, b"boom"),
        Script(writes=sse(up_chunk({"role": "assistant", "content": "x"})), fault="reset"),
        text_script(["fine"]),
    ]
    base = await make_gateway(limited_config(fake_openai, max_streams=1))
    assert (await post(base, "sk-limited", chat()))[0] == 502
    assert (await post(base, "sk-limited", chat(stream=True)))[0] == 502
    status, _, raw = await post(base, "sk-limited", chat(stream=True))
    assert status == 200
    assert b"upstream_disconnected" in raw  # failed after it started
    assert (await post(base, "sk-limited", chat()))[0] == 200
    assert (await post(base, "sk-limited", b"{not json"))[0] == 400
    assert (await post(base, "sk-limited", chat("unknown")))[0] == 404
    assert (await post(base, "sk-limited", chat()))[0] == 200


async def test_a_resumable_stream_holds_its_slot_until_its_generation_ends(
    fake_openai: FakeOpenAI, make_gateway: Gateway
) -> None:
    fake_openai.scripts["stall-up"] = Script(
        writes=sse(up_chunk({"role": "assistant", "content": "x"})), fault="stall"
    )
    base = await make_gateway(
        limited_config(fake_openai, state={"resume_grace_s": 2}, max_streams=1)
    )
    async with aiohttp.ClientSession() as session:
        stream = await open_stream(session, base, "stall", **{"X-Stream-Resumable": "true"})
        stream.close()  # the reader leaves; the generation waits for a resume during the grace
        status, _, _ = await post(base, "sk-limited", chat())
        assert status == 429
        # The grace runs out with nobody back: the pump stops and frees the slot.
        await admitted_again(base)
