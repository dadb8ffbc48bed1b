"""GET /api/usage: totals, error rate, tokens, time-to-first-token percentiles and cost."""

from __future__ import annotations

import dataclasses
import time
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest

from llms.config import parse_config
from llms.errors import ConfigError
from llms.server import keys
from llms.telemetry.record import RequestRecord
from tests.conftest import gateway_config
from tests.telemetry_app import chat, provider, running
from tests.upstreams.openai import FakeOpenAI, error_script, text_script

ALPHA = {"Authorization": "Bearer sk-alpha-usage-key"}
BETA = {"x-api-key": "sk-beta-usage-key"}


def config(fake: FakeOpenAI, db: Any) -> Any:
    return gateway_config(
        {
            "priced": provider(fake, {"pm": "p-up"}, price_in=2, price_out=8),
            "free": provider(fake, {"fm": "f-up"}),
        },
        server={
            "api_keys": [
                {"key": "sk-alpha-usage-key", "name": "alpha"},
                {"key": "sk-beta-usage-key", "name": "beta"},
            ]
        },
        routing={"max_attempts": 1},
        state={"request_log": f"sqlite:{db}"},
    )


async def usage(session: aiohttp.ClientSession, root: str, **params: str) -> dict[str, Any]:
    async with session.get(f"{root}/api/usage", params=params, headers=ALPHA) as resp:
        body = await resp.json()
        assert resp.status == 200, body
        return dict(body)


def by_group(report: dict[str, Any]) -> dict[Any, dict[str, Any]]:
    return {row["group"]: row for row in report["data"]}


async def test_usage_from_real_requests(fake_openai: FakeOpenAI, tmp_path: Any) -> None:
    answers = [text_script(["a", "b", "c"]) for _ in range(10)]
    fake_openai.scripts["p-up"] = [*answers, error_script(500, {"error": {"message": "down"}})]
    fake_openai.scripts["f-up"] = text_script(["a", "b", "c"])
    async with (
        running(config(fake_openai, tmp_path / "u.db")) as gw,
        aiohttp.ClientSession() as session,
    ):
        for i in range(10):
            status, _ = await chat(session, gw.base, "pm", stream=True, headers=ALPHA)
            assert status == 200, i
        for _ in range(2):  # the last script repeats: two upstream failures
            assert (await chat(session, gw.base, "pm", stream=True, headers=ALPHA))[0] == 502
        for _ in range(4):
            assert (await chat(session, gw.base, "fm", headers=BETA))[0] == 200
        request_log = gw.app[keys.REQUEST_LOG]
        assert request_log is not None
        await request_log.flush()

        models = await usage(session, gw.root)
        providers = await usage(session, gw.root, group_by="provider")
        key_names = await usage(session, gw.root, group_by="key")
        days = await usage(session, gw.root, group_by="day")
        empty = await usage(session, gw.root, to=str(time.time() - 7 * 86400))

    assert models["group_by"] == "model"
    pm, fm = by_group(models)["pm"], by_group(models)["fm"]
    assert (pm["requests"], pm["errors"], pm["error_rate"]) == (12, 2, round(2 / 12, 6))
    assert (pm["prompt_tokens"], pm["completion_tokens"], pm["total_tokens"]) == (50, 30, 80)
    # 10 answers x (5 prompt tokens x $2 + 3 completion tokens x $8) per million tokens.
    assert pm["cost_usd"] == 10 * (5 * 2 + 3 * 8) / 1e6 == 0.00034
    assert pm["unpriced_requests"] == 0
    assert pm["ttft_p50_s"] > 0 and pm["ttft_p95_s"] >= pm["ttft_p50_s"]
    assert pm["tokens_per_s"] > 0
    assert (fm["requests"], fm["errors"], fm["total_tokens"]) == (4, 0, 32)
    assert fm["cost_usd"] is None and fm["unpriced_requests"] == 4
    assert by_group(providers).keys() == {"priced", "free"}
    assert by_group(providers)["priced"]["cost_usd"] == 0.00034
    assert {g: r["requests"] for g, r in by_group(key_names).items()} == {"alpha": 12, "beta": 4}
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    assert {g: r["requests"] for g, r in by_group(days).items()} == {today: 16}
    assert models["totals"]["requests"] == 16 and models["totals"]["cost_usd"] == 0.00034
    assert models["totals"]["total_tokens"] == 112
    assert empty["data"] == [] and empty["totals"]["requests"] == 0


JAN_1 = datetime(2024, 1, 1, tzinfo=UTC).timestamp()


def synthetic(loop_time: float, i: int, **kw: Any) -> RequestRecord:
    """Request i of a known set on 2024-01-01: time to first token i s, 10 tokens/s after it."""
    record = RequestRecord(f"syn-{i}", "syn", True, loop_time, JAN_1 + 60 * i, key="alpha")
    record.provider = "priced"
    record.first_output = loop_time + i
    record.ended = record.first_output + 1.0
    record.usage = {"prompt_tokens": 100, "completion_tokens": 11, "total_tokens": 111}
    for name, item in kw.items():
        setattr(record, name, item)
    return record


async def test_percentiles_error_rate_and_rate_are_exact(
    fake_openai: FakeOpenAI, tmp_path: Any
) -> None:
    async with (
        running(config(fake_openai, tmp_path / "u.db")) as gw,
        aiohttp.ClientSession() as session,
    ):
        request_log = gw.app[keys.REQUEST_LOG]
        assert request_log is not None
        now = 1000.0
        for i in range(1, 101):
            request_log.finish(synthetic(now, i))
        failures = {"first_output": None, "usage": None, "error_type": "server_error"}
        request_log.finish(synthetic(now, 101, status=502, **failures))
        request_log.finish(synthetic(now, 102, status=200, **failures))  # an error event
        cancelled = {**failures, "error_type": "invalid_request_error", "error_code": "cancelled"}
        request_log.finish(synthetic(now, 103, **cancelled))
        await request_log.flush()
        iso = await usage(session, gw.root, **{"from": "2024-01-01", "to": "2024-01-02T00:00Z"})
        unix = await usage(session, gw.root, **{"from": str(JAN_1), "to": str(JAN_1 + 86400)})
        later = await usage(session, gw.root, **{"from": "2024-01-01T01:00:00+00:00"})
    assert iso["data"] == unix["data"]
    assert iso["from"] == "2024-01-01T00:00:00Z" and iso["to"] == "2024-01-02T00:00:00Z"
    (row,) = iso["data"]
    assert row["group"] == "syn"
    assert (row["requests"], row["errors"], row["error_rate"]) == (103, 2, round(2 / 103, 6))
    assert (row["ttft_p50_s"], row["ttft_p95_s"]) == (50.0, 95.0)
    assert row["tokens_per_s"] == 10.0
    assert row["prompt_tokens"] == 100 * 100 and row["completion_tokens"] == 11 * 100
    # Failed requests at a priced provider cost nothing.
    assert row["cost_usd"] == 100 * (100 * 2 + 11 * 8) / 1e6
    # From 01:00 on (requests 60..103): nearest ranks 21 and 39 of the 41 first tokens 60..100 s.
    (row,) = later["data"]
    assert (row["requests"], row["ttft_p50_s"], row["ttft_p95_s"]) == (44, 80.0, 98.0)


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ("group_by=week", "group_by"),
        ("from=yesterday", "from"),
        ("to=2024-13-01", "to"),
        ("from=2024-02-01&to=2024-01-01", "from"),
        ("from=nan", "from"),
        ("to=1e300", "to"),
    ],
)
async def test_bad_parameters_are_400_naming_them(
    fake_openai: FakeOpenAI, tmp_path: Any, query: str, param: str
) -> None:
    async with (
        running(config(fake_openai, tmp_path / "u.db")) as gw,
        aiohttp.ClientSession(headers=ALPHA) as session,
        session.get(f"{gw.root}/api/usage?{query}") as resp,
    ):
        body = await resp.json()
    assert resp.status == 400
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["param"] == param
    assert body["error"]["type"] == "invalid_request_error"


async def test_usage_and_metrics_need_the_gateway_key(
    fake_openai: FakeOpenAI, tmp_path: Any
) -> None:
    base = config(fake_openai, tmp_path / "u.db")
    # /metrics is open to loopback clients by default (server.open_metrics): closed here.
    closed = dataclasses.replace(base, server=dataclasses.replace(base.server, open_metrics=False))
    async with (
        running(closed) as gw,
        aiohttp.ClientSession() as session,
    ):
        for path in ("/api/usage", "/metrics"):
            async with session.get(gw.root + path) as resp:
                assert resp.status == 401, path
                assert (await resp.json())["error"]["type"] == "invalid_request_error"
            async with session.get(gw.root + path, headers={"x-api-key": "wrong"}) as resp:
                assert resp.status == 401, path
            for headers in (ALPHA, BETA):
                async with session.get(gw.root + path, headers=headers) as resp:
                    assert resp.status == 200, path


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"price_in": -1}, "providers.p.price_in: expected USD per million tokens"),
        ({"price_out": "3"}, "providers.p.price_out: expected USD per million tokens"),
        ({"price_in": True}, "providers.p.price_in: expected USD per million tokens"),
    ],
)
def test_prices_are_validated(entry: dict[str, Any], message: str) -> None:
    data = {"providers": {"p": {"type": "openai", "models": ["m"], **entry}}}
    with pytest.raises(ConfigError, match=message):
        parse_config(data, env={})


def test_prices_and_state_options_are_read() -> None:
    data = {
        "providers": {"p": {"type": "openai", "models": ["m"], "price_in": 0.15, "price_out": 0}},
        "state": {
            "request_log": "sqlite:~/x.db",
            "request_log_retention_days": 7,
            "request_log_queue": 100,
            "log_content": True,
        },
    }
    config = parse_config(data, env={})
    (p,) = config.providers
    assert (p.price_in, p.price_out) == (0.15, 0.0)
    state = config.state
    assert (state.request_log_retention_days, state.request_log_queue, state.log_content) == (
        7.0,
        100,
        True,
    )
    for bad, path in (
        ({"request_log": "postgres://x"}, "state.request_log"),
        ({"request_log_queue": 0}, "state.request_log_queue"),
        ({"log_content": "yes"}, "state.log_content"),
        ({"request_log_retention_days": -1}, "state.request_log_retention_days"),
    ):
        with pytest.raises(ConfigError, match=path):
            parse_config({**data, "state": bad}, env={})
