"""An `anthropic` provider's base URL and rate-limit headers, through the real gateway.

The base URL works written as Anthropic's SDKs write it (`https://api.anthropic.com`) and as the
OpenAI-style configs write it (`…/v1`), with or without a trailing slash: the fake Anthropic
upstream is asked `/v1/messages` and `/v1/messages/count_tokens` either way. An Anthropic 429's
`anthropic-ratelimit-*` headers reach an openai-python client under OpenAI's `x-ratelimit-*`
names (protocol.md §1), with Retry-After, redacted like every header passed on.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anthropic
import openai
import pytest

from llms.adapters import anthropic as adapter
from tests.conftest import gateway_config
from tests.test_responses_api import started
from tests.upstreams.anthropic import API_KEY, MODEL, FakeAnthropic, error_script

Gateway = Callable[..., Awaitable[str]]
MESSAGES: Any = [{"role": "user", "content": "hi"}]
# The forms a configured base URL takes: Anthropic's (root) and OpenAI's (with the version).
SUFFIXES = ("", "/", "/v1", "/v1/")


@pytest.fixture
async def fake() -> AsyncIterator[FakeAnthropic]:
    upstream = FakeAnthropic()
    async for url in started(upstream, ""):
        upstream.base_url = url.rstrip("/")  # type: ignore[attr-defined]
        yield upstream


async def gateway_for(make_gateway: Gateway, base_url: str) -> str:
    """The gateway (its …/v1) with one anthropic provider at `base_url`, serving `claude`."""
    provider = {
        "type": "anthropic",
        "base_url": base_url,
        "api_key": API_KEY,
        "models": {"claude": MODEL},
    }
    config = gateway_config({"anthropic": provider}, routing={"max_attempts": 1})
    return await make_gateway(config)


async def test_base_url_with_or_without_v1_calls_messages(
    fake: FakeAnthropic, make_gateway: Gateway
) -> None:
    root: str = fake.base_url  # type: ignore[attr-defined]
    for suffix in SUFFIXES:
        gateway = await gateway_for(make_gateway, root + suffix)
        client = openai.AsyncOpenAI(base_url=gateway, api_key="unused", max_retries=0)
        for stream in (False, True):
            fake.received.clear()
            if stream:
                chunks = await client.chat.completions.create(
                    model="claude", messages=MESSAGES, stream=True
                )
                async for _ in chunks:
                    pass
            else:
                answer = await client.chat.completions.create(model="claude", messages=MESSAGES)
                assert answer.choices[0].message.content, suffix
            assert [r.path for r in fake.received] == ["/v1/messages"], suffix


async def test_base_url_with_or_without_v1_counts_tokens(
    fake: FakeAnthropic, make_gateway: Gateway
) -> None:
    root: str = fake.base_url  # type: ignore[attr-defined]
    for suffix in SUFFIXES:
        gateway = await gateway_for(make_gateway, root + suffix)
        client = anthropic.AsyncAnthropic(
            base_url=gateway.removesuffix("/v1"), api_key="unused", max_retries=0
        )
        fake.received.clear()
        raw = await client.messages.with_raw_response.count_tokens(
            model="claude", messages=MESSAGES
        )
        assert [r.path for r in fake.received] == ["/v1/messages/count_tokens"], suffix
        # Exact: counted by the upstream, not estimated after a 404.
        assert raw.headers["x-token-count"] == "exact", suffix
        assert (await raw.parse()).input_tokens > 0


# Anthropic's reset times are instants; OpenAI's are durations, here from the upstream's Date.
RATE_LIMITED = {
    "Date": "Wed, 02 Dec 2026 10:00:00 GMT",
    "retry-after": "17",
    "anthropic-ratelimit-requests-limit": "50",
    "anthropic-ratelimit-requests-remaining": "0",
    "anthropic-ratelimit-requests-reset": "2026-12-02T10:00:17Z",
    "anthropic-ratelimit-tokens-limit": "80000",
    "anthropic-ratelimit-tokens-remaining": "79500",
    "anthropic-ratelimit-tokens-reset": "2026-12-02T11:06:05Z",
}


@pytest.mark.parametrize("stream", [False, True])
async def test_rate_limit_headers_get_openai_names(
    stream: bool, fake: FakeAnthropic, make_gateway: Gateway
) -> None:
    fake.default = error_script(
        429, "rate_limit_error", "Number of requests has exceeded your rate limit", RATE_LIMITED
    )
    gateway = await gateway_for(make_gateway, fake.base_url)  # type: ignore[attr-defined]
    client = openai.AsyncOpenAI(base_url=gateway, api_key="unused", max_retries=0)
    with pytest.raises(openai.RateLimitError) as info:
        await client.chat.completions.create(model="claude", messages=MESSAGES, stream=stream)
    headers = info.value.response.headers
    assert info.value.status_code == 429
    assert headers["retry-after"] == "17"
    assert headers["x-ratelimit-limit-requests"] == "50"
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert headers["x-ratelimit-reset-requests"] == "17s"
    assert headers["x-ratelimit-limit-tokens"] == "80000"
    assert headers["x-ratelimit-remaining-tokens"] == "79500"
    assert headers["x-ratelimit-reset-tokens"] == "1h6m5s"


async def test_rate_limit_headers_are_redacted(fake: FakeAnthropic, make_gateway: Gateway) -> None:
    echoed = {"retry-after": "1", "anthropic-ratelimit-requests-remaining": f"0 ({API_KEY})"}
    fake.default = error_script(429, "rate_limit_error", "slow down", echoed)
    gateway = await gateway_for(make_gateway, fake.base_url)  # type: ignore[attr-defined]
    client = openai.AsyncOpenAI(base_url=gateway, api_key="unused", max_retries=0)
    with pytest.raises(openai.RateLimitError) as info:
        await client.chat.completions.create(model="claude", messages=MESSAGES)
    assert info.value.response.headers["x-ratelimit-remaining-requests"] == "0 ([redacted])"


@pytest.mark.parametrize(
    ("date", "reset", "expected"),
    [
        ("Wed, 02 Dec 2026 10:00:00 GMT", "2026-12-02T10:06:00Z", "6m0s"),
        ("Wed, 02 Dec 2026 10:00:00 GMT", "2026-12-02T10:00:00.250+00:00", "1s"),  # rounded up
        ("Wed, 02 Dec 2026 10:00:00 GMT", "2026-12-02T09:59:00Z", "0s"),  # already past
        (None, "2026-12-02T10:06:00Z", None),  # no Date to measure from: left out
        ("Wed, 02 Dec 2026 10:00:00 GMT", "soon", None),  # not an instant: left out
        ("yesterday", "2026-12-02T10:06:00Z", None),
    ],
)
def test_reset_is_a_duration_from_the_upstreams_date(
    date: str | None, reset: str, expected: str | None
) -> None:
    headers = {"anthropic-ratelimit-tokens-reset": reset, "anthropic-ratelimit-tokens-limit": "9"}
    if date is not None:
        headers["Date"] = date
    error = adapter.from_error_response(429, headers, b"{}")
    assert error.headers.get("x-ratelimit-reset-tokens") == expected
    assert error.headers["x-ratelimit-limit-tokens"] == "9"
    assert not any(name.startswith("anthropic-") for name in error.headers)
