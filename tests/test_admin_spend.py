"""A managed key's spend over time: `GET /admin/keys/{id}/spend?days=N` (zero-filled UTC days,
the budget line, each budget period's running total), kept across a restart, its errors (400
naming `days`, 404, 401/403), and the history's pruning in the SQLite store. Run again on Redis
by tests/test_admin_spend_redis.py."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from llms.managed import history
from llms.managed.model import Admitted
from llms.managed.sqlite import SqliteKeys
from tests.test_admin_keys import ADMIN, Gateway, admin, chat, config, create, root, spend_of
from tests.test_http_errors import assert_error_shape, request
from tests.upstreams.openai import FakeOpenAI

COST = 0.000013  # one answer of the fake: 5 prompt x $1 + 4 completion x $2 per million tokens
DAY = 86400


def today() -> str:
    return f"{datetime.now(UTC):%Y-%m-%d}"


async def series(base: str, key_id: str, query: str = "") -> dict[str, Any]:
    status, headers, raw = await admin(base, "GET", f"/keys/{key_id}/spend{query}")
    assert status == 200, raw
    assert headers["Content-Type"].startswith("application/json")
    return dict(orjson.loads(raw))


async def test_spend_per_day_against_the_budget_survives_a_restart(
    fake_openai: FakeOpenAI, make_gateway: Gateway, tmp_path: Path
) -> None:
    cfg = config(fake_openai, tmp_path)
    base = await make_gateway(cfg)
    daily = await create(base, name="daily", budget_usd=1, budget_period="day")
    monthly = await create(base, name="monthly", budget_usd=2, budget_period="month")
    forever = await create(base, name="forever")
    for made, answers in ((daily, 2), (monthly, 1), (forever, 3)):
        for n in range(answers):
            assert (await chat(base, made["secret"], stream=n == 1))[0] == 200
        await spend_of(base, made["id"], at_least=answers * COST)
    view = await series(base, daily["id"])
    assert (view["object"], view["id"], view["name"], view["days"]) == (
        "api_key.spend",
        daily["id"],
        "daily",
        30,
    )
    assert (view["budget_usd"], view["budget_period"]) == (1, "day")
    data = view["data"]
    assert len(data) == 30 and data[-1]["date"] == today()
    assert [row["start"] for row in data] == [data[0]["start"] + i * DAY for i in range(30)]
    assert all(row["spend_usd"] == 0 and row["period_spend_usd"] == 0 for row in data[:-1])
    assert all(row["budget_usd"] == 1 for row in data)  # the budget line
    assert data[-1]["spend_usd"] == pytest.approx(2 * COST)
    assert data[-1]["period_spend_usd"] == pytest.approx(2 * COST)
    assert view["window_spend_usd"] == pytest.approx(2 * COST)
    assert view["spend_usd"] == pytest.approx(2 * COST)

    month = await series(base, monthly["id"], "?days=3")
    assert [row["budget_usd"] for row in month["data"]] == [2, 2, 2]
    assert month["data"][-1]["period_spend_usd"] == pytest.approx(COST)
    lifetime = await series(base, forever["id"], "?days=400")
    assert len(lifetime["data"]) == 400 and lifetime["budget_usd"] is None
    assert lifetime["data"][-1]["spend_usd"] == pytest.approx(3 * COST)
    assert lifetime["data"][-1]["period_spend_usd"] == pytest.approx(3 * COST)
    assert lifetime["data"][-2]["period_spend_usd"] == 0
    assert {row["budget_usd"] for row in lifetime["data"]} == {None}

    again = await make_gateway(cfg)  # the same files: a restart keeps the history
    assert (await series(again, daily["id"]))["data"] == data
    assert (await chat(again, daily["secret"]))[0] == 200
    await spend_of(again, daily["id"], at_least=3 * COST)
    assert (await series(base, daily["id"], "?days=1"))["data"][0]["spend_usd"] == pytest.approx(
        3 * COST
    )
    # A revoked key's history goes with it.
    assert (await admin(again, "DELETE", f"/keys/{daily['id']}"))[0] == 200
    status, _, _ = await admin(again, "GET", f"/keys/{daily['id']}/spend")
    assert status == 404


@pytest.mark.parametrize(
    "query", ["?days=0", "?days=401", "?days=-1", "?days=1.5", "?days=x", "?days=", "?days=%C2%B2"]
)
async def test_bad_days_are_400_naming_days(
    fake_openai: FakeOpenAI, make_gateway: Gateway, tmp_path: Path, query: str
) -> None:
    base = await make_gateway(config(fake_openai, tmp_path))
    made = await create(base)
    status, headers, raw = await admin(base, "GET", f"/keys/{made['id']}/spend{query}")
    assert status == 400, raw
    error = assert_error_shape(status, headers, raw)
    assert (error["param"], error["code"], error["type"]) == (
        "days",
        "invalid_value",
        "invalid_request_error",
    )


async def test_spend_of_an_unknown_key_is_404_and_needs_the_admin_key(
    fake_openai: FakeOpenAI, make_gateway: Gateway, tmp_path: Path
) -> None:
    base = await make_gateway(config(fake_openai, tmp_path))
    made = await create(base)
    status, headers, raw = await admin(base, "GET", "/keys/key_0000000000000000/spend")
    assert status == 404
    error = assert_error_shape(status, headers, raw)
    assert (error["param"], error["code"]) == ("id", "key_not_found")
    url = f"{root(base)}/admin/keys/{made['id']}/spend"
    assert (await request("GET", url))[0] == 401
    for key in ("sk-config", made["secret"]):
        status, headers, raw = await request("GET", url, Authorization=f"Bearer {key}")
        assert status == 403, raw
        assert made["secret"].encode() not in raw
    status, _, raw = await admin(base, "GET", f"/keys/{made['id']}/spend", key="wrong-" + ADMIN)
    assert status == 401


def test_the_series_of_a_monthly_budget_runs_from_the_month_start() -> None:
    now = datetime(2026, 3, 2, 12, tzinfo=UTC).timestamp()
    view = {"id": "key_1", "name": "t", "budget_usd": 5.0, "budget_period": "month"}
    first, last = history.hours_needed(view, 3, now)
    assert first == int(datetime(2026, 2, 1, tzinfo=UTC).timestamp()) // 3600  # Feb's start
    assert last == int(now) // 3600
    hour = int(datetime(2026, 2, 27, 5, tzinfo=UTC).timestamp()) // 3600
    hours = {hour: 1.0, hour + 24: 0.5, hour + 48 + 1: 0.25, last: 2.0}
    rows = history.series(view, hours, 3, now)["data"]
    assert [r["date"] for r in rows] == ["2026-02-28", "2026-03-01", "2026-03-02"]
    assert [r["spend_usd"] for r in rows] == [0.5, 0.25, 2.0]
    assert [r["period_spend_usd"] for r in rows] == [1.5, 0.25, 2.25]  # March starts again
    lifetime = {**view, "budget_period": None, "total_spend_usd": 10.0}
    rows = history.series(lifetime, hours, 3, now)["data"]
    assert [r["period_spend_usd"] for r in rows] == [7.75, 8.0, 10.0]


async def test_sqlite_drops_history_older_than_the_retention(tmp_path: Path) -> None:
    clock = [time.time() - 401 * DAY]
    store = SqliteKeys(tmp_path / "keys.db", clock=lambda: clock[0])
    await store.start()
    try:
        view, _ = await store.create({"name": "old"})
        key = Admitted(id=view["id"], name="old", models=None, budget_period=None, lease=None)
        await store.release(key, 10, 1.0)
        old = history.hour_of(clock[0])
        assert await store.spend_hours(view["id"], old, old) == {old: 1.0}
        clock[0] += 401 * DAY  # a process running 401 days later
        await store.release(key, 10, 2.0)
        now = history.hour_of(clock[0])
        assert await store.spend_hours(view["id"], old, now) == {now: 2.0}
        assert (await store.get(view["id"]) or {})["total_spend_usd"] == 3.0
    finally:
        await store.close()
