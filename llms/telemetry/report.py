"""Usage from the request log: per group, counts, errors, tokens, time to first token, cost."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from llms.telemetry.usage import RequestLog

# group_by -> the SQL expression grouping the rows (fixed strings: never built from input).
GROUPS = {
    "model": "model",
    "provider": "provider",
    "key": "key",
    "day": "strftime('%Y-%m-%d', time, 'unixepoch')",
}
# An error is an HTTP error status or an error event in a started stream; a cancel (by the
# client, or because nobody resumed the stream) is not.
_ERROR = (
    "(status >= 400 OR error_type IS NOT NULL) "
    "AND COALESCE(error_code, '') NOT IN ('cancelled', 'abandoned')"
)
_TOTALS = """
SELECT {group} AS g, COUNT(*), SUM(CASE WHEN {error} THEN 1 ELSE 0 END),
       COALESCE(SUM(prompt_tokens), 0), COALESCE(SUM(completion_tokens), 0),
       AVG(tokens_per_s), SUM(cost_micro_usd),
       SUM(CASE WHEN cost_micro_usd IS NULL AND provider IS NOT NULL THEN 1 ELSE 0 END)
FROM requests WHERE time >= ? AND time < ? GROUP BY g ORDER BY COUNT(*) DESC, g
"""
# Nearest-rank percentiles: the value at rank ceil(n * p / 100) of each group's sorted values.
_PERCENTILES = """
WITH ranked AS (
  SELECT {group} AS g, ttft_s,
         ROW_NUMBER() OVER (PARTITION BY {group} ORDER BY ttft_s) AS rank,
         COUNT(*) OVER (PARTITION BY {group}) AS n
  FROM requests WHERE time >= ? AND time < ? AND ttft_s IS NOT NULL
)
SELECT g, ttft_s, rank, n FROM ranked
WHERE rank = (n * 50 + 99) / 100 OR rank = (n * 95 + 99) / 100
"""


async def usage_report(log: RequestLog, start: float, end: float, group_by: str) -> dict[str, Any]:
    """The usage API's answer for rows with `start <= time < end` (Unix seconds)."""
    group = GROUPS[group_by]
    data = await _groups(log, group, start, end)
    totals = await _groups(log, "'all'", start, end)
    total = totals[0] if totals else _empty()
    total.pop("group", None)
    return {
        "object": "usage",
        "from": _iso(start),
        "to": _iso(end),
        "group_by": group_by,
        "data": data,
        "totals": total,
    }


async def _groups(log: RequestLog, group: str, start: float, end: float) -> list[dict[str, Any]]:
    params = (start, end)
    rows = await log.query(_TOTALS.format(group=group, error=_ERROR), params)
    ranks = await log.query(_PERCENTILES.format(group=group), params)
    percentiles: dict[object, dict[str, float]] = {}
    for g, ttft, rank, n in ranks:
        assert isinstance(rank, int) and isinstance(n, int) and isinstance(ttft, float)
        found = percentiles.setdefault(g, {})
        if rank == (n * 50 + 99) // 100:
            found["p50"] = ttft
        if rank == (n * 95 + 99) // 100:
            found["p95"] = ttft
    out: list[dict[str, Any]] = []
    for g, count, errors, prompt, completion, rate, cost, unpriced in rows:
        assert isinstance(count, int) and isinstance(errors, int)
        assert isinstance(prompt, int) and isinstance(completion, int)
        found = percentiles.get(g, {})
        out.append(
            {
                "group": g,
                "requests": count,
                "errors": errors,
                "error_rate": round(errors / count, 6) if count else 0.0,
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
                "ttft_p50_s": _round(found.get("p50")),
                "ttft_p95_s": _round(found.get("p95")),
                "tokens_per_s": _round(_number(rate)),
                # Requests served by a provider without prices add nothing (`unpriced_requests`).
                "cost_usd": _round(_number(cost), divisor=1e6, digits=9),
                "unpriced_requests": unpriced,
            }
        )
    return out


def _empty() -> dict[str, Any]:
    return {
        "requests": 0,
        "errors": 0,
        "error_rate": 0.0,
        "prompt_tokens": 0,
        "completion_tokens": 0,
        "total_tokens": 0,
        "ttft_p50_s": None,
        "ttft_p95_s": None,
        "tokens_per_s": None,
        "cost_usd": None,
        "unpriced_requests": 0,
    }


def _number(value: object) -> float | None:
    if value is None:
        return None
    assert isinstance(value, int | float)
    return float(value)


def _round(value: float | None, *, divisor: float = 1.0, digits: int = 6) -> float | None:
    return None if value is None else round(value / divisor, digits)


def _iso(seconds: float) -> str:
    spec = "seconds" if seconds == int(seconds) else "milliseconds"
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec=spec).replace("+00:00", "Z")


def parse_time(raw: str) -> float:
    """Unix seconds, or an ISO 8601 date or time (UTC when it has no offset); ValueError."""
    text = raw.strip()
    try:
        value = float(text)
    except ValueError:
        moment = datetime.fromisoformat(text)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        value = moment.timestamp()
    datetime.fromtimestamp(value, UTC)  # ValueError, OverflowError or OSError if out of range
    return value


def in_range(seconds: float) -> bool:
    """Whether Unix `seconds` is a time the report can show (years 1 to 9999)."""
    try:
        datetime.fromtimestamp(seconds, UTC)
    except (ValueError, OverflowError, OSError):
        return False
    return True


def default_window(now: float | None = None) -> tuple[float, float]:
    end = time.time() if now is None else now
    return end - 86400.0, end
