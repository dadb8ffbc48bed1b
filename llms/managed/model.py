"""Managed keys: what the admin API accepts, what a store keeps, and the arithmetic they share.

A key's secret is `sk-llms-` + 32 random bytes (base64url). Only its SHA-256 is stored: the
secret carries 256 bits of entropy, so nobody can search for a preimage however fast the hash,
and a slow password hash (bcrypt, scrypt) would only add milliseconds to every request. The
hash is the lookup index, so a key is found in one indexed read whatever the number of keys.
"""

from __future__ import annotations

import hashlib
import math
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from llms.adapters.usage import from_count
from llms.errors import InvalidRequest, RateLimited
from llms.wire import Usage

SECRET_PREFIX = "sk-llms-"
NAME_MAX = 100
PERIODS = ("day", "month")
LIMITS = ("rpm", "tpm", "max_streams")
FIELDS = ("name", "models", "budget_usd", "budget_period", "expires_at", *LIMITS)
WINDOW_S = 60
# A stream slot whose release never came (its process died) is given up after this long.
LEASE_TTL_S = 3600
STREAM_RETRY_S = 1
Prices = Mapping[str, tuple[float | None, float | None]]


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def new_id() -> str:
    return "key_" + secrets.token_hex(8)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogateescape")).hexdigest()


def looks_managed(secret: str) -> bool:
    """Only a secret of our shape is looked up: any other wrong key costs no I/O."""
    return secret.startswith(SECRET_PREFIX) and len(secret) < 100


def period_of(budget_period: str | None, now: float) -> str:
    """The spend bucket a request at `now` counts in: the UTC day, the UTC month, or all time."""
    if budget_period is None:
        return "all"
    moment = datetime.fromtimestamp(now, UTC)
    return f"day:{moment:%Y-%m-%d}" if budget_period == "day" else f"month:{moment:%Y-%m}"


def cost_usd(prices: Prices, provider: str | None, usage: Usage | None) -> float:
    """USD for one answer: its usage x the provider's price per million tokens (0 unpriced)."""
    if not usage or not isinstance(usage, dict) or provider is None:
        return 0.0
    price_in, price_out = prices.get(provider, (None, None))
    prompt = from_count(usage.get("prompt_tokens")) or 0
    completion = from_count(usage.get("completion_tokens")) or 0
    return (prompt * (price_in or 0.0) + completion * (price_out or 0.0)) / 1e6


def tokens_of(usage: Usage | None) -> int:
    if not usage or not isinstance(usage, dict):
        return 0
    total = from_count(usage.get("total_tokens"))
    if total:
        return total
    counts = (from_count(usage.get("prompt_tokens")), from_count(usage.get("completion_tokens")))
    return sum(n for n in counts if n)


@dataclass(frozen=True, slots=True)
class Admitted:
    """A managed key let through: who it is, and (for a model request) its lease's handle."""

    id: str
    name: str
    models: frozenset[str] | None
    budget_period: str | None
    lease: str | None = None


# --- the admin API's bodies -------------------------------------------------------------------


def check_fields(body: Any, *, create: bool) -> dict[str, Any]:
    """The body of POST (create) or PATCH, checked; errors name the field as `param`."""
    if not isinstance(body, dict):
        raise InvalidRequest("The body must be a JSON object.", code="invalid_type")
    for name in body:
        if name not in FIELDS:
            shown = shorten(str(name))
            raise InvalidRequest(
                f"Unknown field `{shown}`; expected one of {', '.join(FIELDS)}.",
                param=shown,
                code="unknown_parameter",
            )
    if create and "name" not in body:
        raise InvalidRequest("`name` is required.", param="name", code="missing_required_parameter")
    out: dict[str, Any] = {}
    for name, value in body.items():
        out[name] = _field(name, value)
    return out


def _field(name: str, value: Any) -> Any:
    def bad(expected: str) -> InvalidRequest:
        return InvalidRequest(f"`{name}` must be {expected}.", param=name, code="invalid_value")

    if name == "name":
        if not isinstance(value, str) or not value.strip() or len(value) > NAME_MAX:
            raise bad(f"a non-empty string of at most {NAME_MAX} characters")
        return value
    if value is None:
        return None
    if name == "models":
        if not isinstance(value, list) or not all(isinstance(m, str) and m for m in value):
            raise bad("a list of model names or null")
        return sorted(set(value))
    if name in LIMITS:
        if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 2**53:
            raise bad("a positive integer or null")
        return value
    if name == "budget_usd":
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1e12:
            raise bad("a number of US dollars (0 or more) or null")
        return float(value) + 0.0  # -0.0 is 0
    if name == "budget_period":
        if value not in PERIODS:
            raise bad('"day", "month" or null')
        return value
    # expires_at: Unix seconds, or an ISO 8601 time with its offset.
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise bad("Unix seconds or an ISO 8601 time such as 2027-01-01T00:00:00Z") from None
        if moment.tzinfo is None:
            raise bad("a time with its offset (Z or +hh:mm)")
        seconds = moment.timestamp()
        if not 1 <= seconds < 2**40:
            raise bad("a time after 1970-01-01T00:00:00Z")
        return int(seconds)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 1 <= value < 2**40:
        raise bad("Unix seconds or an ISO 8601 time such as 2027-01-01T00:00:00Z")
    return int(value)


def shorten(text: str, limit: int = 64) -> str:
    """What a client sent, as an error message may quote it: never more than `limit` characters."""
    return text if len(text) <= limit else text[:limit] + "…"


def view(row: Mapping[str, Any], spend: float, total: float) -> dict[str, Any]:
    """A key as the admin API shows it: never its secret or its hash."""
    budget = row["budget_usd"]
    return {
        "id": row["id"],
        "object": "api_key",
        "name": row["name"],
        "models": row["models"],
        "rpm": row["rpm"],
        "tpm": row["tpm"],
        "max_streams": row["max_streams"],
        "budget_usd": budget,
        "budget_period": row["budget_period"],
        "expires_at": row["expires_at"],
        "created_at": row["created_at"],
        "last_used_at": row["last_used_at"],
        "spend_usd": round(spend, 9),
        "total_spend_usd": round(total, 9),
        "remaining_budget_usd": None if budget is None else round(max(0.0, budget - spend), 9),
    }


# --- refusals -----------------------------------------------------------------------------


def refused(name: str, limit: str, wait_s: float) -> RateLimited:
    seconds = max(1, math.ceil(wait_s))
    return RateLimited(
        f"Rate limit reached for the API key {name!r}: {limit}. Try again in {seconds} s.",
        headers={"Retry-After": str(seconds), "retry-after-ms": str(seconds * 1000)},
    )


def over_budget(
    name: str, budget: float, spend: float, period: str | None, now: float
) -> RateLimited:
    headers: dict[str, str] = {}
    if period is not None:
        moment = datetime.fromtimestamp(now, UTC)
        if period == "day":
            nxt = datetime(moment.year, moment.month, moment.day, tzinfo=UTC).timestamp() + 86400
        else:
            year, month = (
                (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
            )
            nxt = datetime(year, month, 1, tzinfo=UTC).timestamp()
        headers["Retry-After"] = str(max(1, math.ceil(nxt - now)))
    scope = f"this {period}" if period else "in total"
    return RateLimited(
        f"The API key {name!r} has spent ${spend:.6f} of its ${budget:.2f} budget {scope}.",
        code="budget_exceeded",
        headers=headers,
    )


def now_s() -> float:
    return time.time()
