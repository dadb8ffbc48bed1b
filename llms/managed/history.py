"""A managed key's spend over time: what the stores keep per UTC hour, and the daily series that
`GET /admin/keys/{id}/spend?days=N` answers.

The stores add each answer's cost to its key's bucket for the UTC hour (an integer: Unix
seconds // 3600) in the same transaction (SQLite) or script (Redis) that adds it to the budget's
counters, so the history and the budget never disagree. Buckets older than `RETENTION_DAYS` are
dropped (SQLite: at most once an hour per process; Redis: each day's hash expires).

The series is per UTC day, zero-filled, with the budget line: `spend_usd` is what the day cost,
`period_spend_usd` what the key had spent in its budget period by the day's end (the day itself
for a daily budget, the month so far for a monthly one, all time for a budget without a period),
which is the number the budget is compared with.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from llms.errors import InvalidRequest

HOUR_S = 3600
DAY_S = 86400
RETENTION_DAYS = 400
DEFAULT_DAYS = 30
MAX_DAYS = RETENTION_DAYS


def hour_of(now: float) -> int:
    return int(now // HOUR_S)


def oldest_kept_hour(now: float) -> int:
    return hour_of(now) - RETENTION_DAYS * 24


def parse_days(query: Mapping[str, str]) -> int:
    """`?days=N`: 1 to MAX_DAYS, DEFAULT_DAYS when absent."""
    raw = query.get("days")
    if raw is None:
        return DEFAULT_DAYS
    text = raw.strip()
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= MAX_DAYS:
        shown = raw if len(raw) <= 40 else raw[:40] + "…"
        raise InvalidRequest(
            f"`days` must be a whole number of days from 1 to {MAX_DAYS}; got {shown!r}.",
            param="days",
            code="invalid_value",
        )
    return int(text)


def _day_start(now: float) -> int:
    return int(now // DAY_S) * DAY_S


def _month_start(day: int) -> int:
    moment = datetime.fromtimestamp(day, UTC)
    return int(datetime(moment.year, moment.month, 1, tzinfo=UTC).timestamp())


def hours_needed(view: Mapping[str, Any], days: int, now: float) -> tuple[int, int]:
    """The first and last hour (inclusive) to read for the series: its days, and for a monthly
    budget the days of the first day's month before them (the month's running total)."""
    first_day = _day_start(now) - (days - 1) * DAY_S
    if view.get("budget_period") == "month":
        first_day = _month_start(first_day)
    return first_day // HOUR_S, hour_of(now)


def series(
    view: Mapping[str, Any], hours: Mapping[int, float], days: int, now: float
) -> dict[str, Any]:
    """The answer of `GET /admin/keys/{id}/spend`: `days` UTC days up to today, oldest first."""
    today = _day_start(now)
    per_day: dict[int, float] = {}
    for hour, usd in hours.items():
        day = hour * HOUR_S // DAY_S * DAY_S
        per_day[day] = per_day.get(day, 0.0) + usd
    first = today - (days - 1) * DAY_S
    shown = [first + i * DAY_S for i in range(days)]
    budget = view.get("budget_usd")
    period = view.get("budget_period")
    # All time: what the key has spent, less what came after each day.
    later = sum(usd for day, usd in per_day.items() if first <= day <= today)
    running = 0.0
    month = None
    data: list[dict[str, Any]] = []
    total = 0.0
    for day in shown:
        spent = per_day.get(day, 0.0)
        total += spent
        if period == "day":
            in_period = spent
        elif period == "month":
            start = _month_start(day)
            if start != month:
                month = start
                running = sum(usd for d, usd in per_day.items() if start <= d < day)
            running += spent
            in_period = running
        else:
            later -= spent
            in_period = max(0.0, float(view.get("total_spend_usd") or 0.0) - later)
        data.append(
            {
                "date": f"{datetime.fromtimestamp(day, UTC):%Y-%m-%d}",
                "start": day,
                "spend_usd": round(spent, 9),
                "period_spend_usd": round(in_period, 9),
                "budget_usd": budget,
            }
        )
    return {
        "object": "api_key.spend",
        "id": view["id"],
        "name": view["name"],
        "days": days,
        "budget_usd": budget,
        "budget_period": period,
        "spend_usd": view.get("spend_usd"),
        "total_spend_usd": view.get("total_spend_usd"),
        "window_spend_usd": round(total, 9),
        "data": data,
    }
