"""GET /metrics: every family, with values that match a scripted run through the real gateway."""

from __future__ import annotations

import aiohttp

from llms.config import Config
from llms.server import keys
from tests.conftest import gateway_config
from tests.telemetry_app import chat, provider, running, samples, scrape, until, value
from tests.upstreams.openai import FakeOpenAI, Script, chunk, error_script, sse, text_script

BUSY = {"error": {"message": "busy", "type": "server_error"}}


def scripted(fake: FakeOpenAI) -> None:
    fake.scripts["up"] = text_script(["a", "b", "c"])  # usage: 5 prompt, 3 completion tokens
    fake.scripts["bad-up"] = error_script(503, BUSY)
    fake.scripts["good-up"] = text_script(["ok", "!"])
    fake.scripts["flaky-up"] = [
        error_script(503, BUSY, {"retry-after": "0"}),
        text_script(["x", "y"]),
    ]
    fake.scripts["cut-up"] = Script(writes=sse(chunk({"content": "par"})), fault="reset")
    fake.scripts["slow-up"] = Script(
        writes=sse(chunk({"role": "assistant", "content": "first"})), fault="stall"
    )


def config_for(fake: FakeOpenAI) -> Config:
    return gateway_config(
        {
            "fake": provider(fake, {"m": "up", "cut": "cut-up", "slow": "slow-up"}),
            "bad": provider(fake, {"fb": "bad-up"}),
            "good": provider(fake, {"fb": "good-up"}),
            "flaky": provider(fake, {"r": "flaky-up"}),
        },
        routing={"max_attempts": 2, "circuit": {"failures": 2, "cooldown_s": 600}},
        state={"request_log": None},
    )


async def test_metrics_after_a_scripted_run(fake_openai: FakeOpenAI) -> None:
    scripted(fake_openai)
    async with running(config_for(fake_openai)) as gw, aiohttp.ClientSession() as session:
        base = gw.base
        for _ in range(3):
            assert (await chat(session, base, "m", stream=True))[0] == 200
        assert (await chat(session, base, "m"))[0] == 200
        # Resumable: read it to the end, resume it from the start, cancel it (already finished).
        async with session.post(
            f"{base}/chat/completions",
            json={"model": "m", "messages": [{"role": "user", "content": "x"}], "stream": True},
            headers={"X-Stream-Resumable": "true"},
        ) as resp:
            stream_id = resp.headers["X-Stream-Id"]
            assert b"[DONE]" in await resp.read()
        async with session.get(f"{base}/streams/{stream_id}") as resp:
            assert resp.status == 200 and b"[DONE]" in await resp.read()
        async with session.post(f"{base}/streams/{stream_id}/cancel") as resp:
            assert resp.status == 200
        for _ in range(2):  # `bad` fails, `good` answers: two fallbacks, then bad's circuit opens
            assert (await chat(session, base, "fb", stream=True))[0] == 200
        assert (await chat(session, base, "r", stream=True))[0] == 200  # one retry on `flaky`
        for name in ("nope-1", "nope-2", "nope-3"):
            assert (await chat(session, base, name, stream=True))[0] == 404
        async with session.post(f"{base}/chat/completions", data=b"{not json") as resp:
            assert resp.status == 400
        status, body = await chat(session, base, "cut", stream=True)
        assert status == 200 and b"upstream_disconnected" in body

        # A stream in progress, then its client leaves.
        resp = await session.post(
            f"{base}/chat/completions",
            json={"model": "slow", "messages": [{"role": "user", "content": "x"}], "stream": True},
        )
        assert resp.status == 200
        assert b"first" in await resp.content.readuntil(b"\n\n")
        during = samples(await scrape(session, gw.root))
        assert value(during, "llms_active_streams") == 1
        resp.close()

        made = 14
        found: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}

        async def all_finished() -> bool:
            nonlocal found
            found = samples(await scrape(session, gw.root))
            return value(found, "llms_requests_total") == made and (
                value(found, "llms_client_disconnects_total") == 1
            )

        await until(all_finished)
        text = await scrape(session, gw.root)

    # Requests by model, provider and status; unknown models share one label value.
    assert value(found, "llms_requests_total", model="m", provider="fake", status="200") == 5
    assert value(found, "llms_requests_total", model="fb", provider="good", status="200") == 2
    assert value(found, "llms_requests_total", model="r", provider="flaky", status="200") == 1
    assert value(found, "llms_requests_total", model="unknown", provider="none", status="404") == 3
    assert value(found, "llms_requests_total", model="unknown", status="400") == 1
    assert value(found, "llms_requests_total", model="cut", status="200") == 1
    assert value(found, "llms_active_streams") == 0
    # Errors by type and code.
    assert value(found, "llms_errors_total", code="model_not_found") == 3
    assert value(found, "llms_errors_total", type="server_error", code="upstream_disconnected") == 1
    assert value(found, "llms_errors_total") == 5
    # Histograms: every request that produced output observed once.
    with_output = 5 + 2 + 1 + 1 + 1  # m, fb, r, cut, slow
    for family in (
        "llms_time_to_first_token_seconds",
        "llms_upstream_latency_seconds",
        "llms_gateway_overhead_seconds",
    ):
        assert value(found, f"{family}_count") == with_output, family
        assert value(found, f"{family}_sum") > 0, family
    assert value(found, "llms_request_duration_seconds_count") == made
    # The gateway's part of the time to first token is part of it.
    assert value(found, "llms_gateway_overhead_seconds_sum") < value(
        found, "llms_time_to_first_token_seconds_sum"
    )
    # Chunk gaps: streams of two chunks or more (4 on m, 2 on fb, 1 on r).
    assert value(found, "llms_chunk_gap_seconds_count") == 7
    # Tokens per second: answers with usage and two tokens or more (5 on m, 2 on fb, 1 on r).
    assert value(found, "llms_tokens_per_second_count") == 8
    assert value(found, "llms_tokens_total", model="m", kind="prompt") == 25
    assert value(found, "llms_tokens_total", model="m", kind="completion") == 15
    # Routing: retries, fallbacks, circuits.
    assert value(found, "llms_fallbacks_total", model="fb", provider="bad") == 2
    assert value(found, "llms_retries_total", model="r", provider="flaky") == 1
    assert value(found, "llms_retries_total") + value(found, "llms_fallbacks_total") == 3
    assert value(found, "llms_circuit_state", provider="bad") == 2
    assert value(found, "llms_circuit_state", provider="good") == 0
    assert value(found, "llms_circuit_state", provider="flaky") == 0
    assert value(found, "llms_circuit_consecutive_failures", provider="bad") == 2
    # Client disconnects, cancels, resumes; nothing dropped (the log is off).
    assert value(found, "llms_client_disconnects_total", model="slow") == 1
    assert value(found, "llms_stream_cancels_total") == 1
    assert value(found, "llms_stream_resumes_total") == 1
    assert value(found, "llms_request_log_dropped_total") == 0
    # Bounded labels: no stream or request ids, no unknown model names.
    assert stream_id not in text
    assert "chatcmpl" not in text and "req_" not in text and "nope" not in text


async def test_each_app_has_its_own_registry(fake_openai: FakeOpenAI) -> None:
    scripted(fake_openai)
    config = config_for(fake_openai)
    async with (
        running(config) as one,
        running(config) as two,
        aiohttp.ClientSession() as session,
    ):
        assert one.app[keys.METRICS].registry is not two.app[keys.METRICS].registry
        await chat(session, one.base, "m", stream=True)

        async def counted() -> bool:
            return value(samples(await scrape(session, one.root)), "llms_requests_total") == 1

        await until(counted)
        assert value(samples(await scrape(session, two.root)), "llms_requests_total") == 0


async def test_label_values_are_capped(fake_openai: FakeOpenAI) -> None:
    """Even values that pass the routing-table check (say, a code chosen by an upstream)."""
    scripted(fake_openai)
    async with running(config_for(fake_openai)) as gw:
        metrics = gw.app[keys.METRICS]
        cap = type(metrics._codes)(limit=3)
        assert [cap(f"code-{i}") for i in range(5)] == [
            "code-0",
            "code-1",
            "code-2",
            "other",
            "other",
        ]
        assert cap("code-1") == "code-1"
        assert metrics.model_label("m") == "m"
        assert metrics.model_label("anything-else") == "unknown"
        assert metrics.provider_label(None) == "none"
