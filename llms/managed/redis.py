"""Managed keys in Redis (`state.redis_url`): every replica sees the same keys, counters and spend.

Each admission is one Lua script, atomic in Redis: find the key by its hash, check expiry, rpm,
tpm, concurrent streams and budget, then count the request and take a stream slot; each release
another (free the slot, add the tokens and the spend). rpm and tpm are per-second counters in
a hash per key summed over the last 60 s (expiring after two minutes of silence); stream slots
a sorted set by start time, a slot older than an hour given up (its replica died); spend a hash
of periods (`HINCRBYFLOAT`). Time is the gateway's clock (replicas keep theirs in step: NTP).

Every request of a managed key runs the script, so a key deleted on one replica is refused by
the next request on any other.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import orjson
from redis.asyncio import BlockingConnectionPool, Redis
from redis.exceptions import RedisError

from llms.errors import AuthenticationFailed, Conflict, ServiceUnavailable
from llms.managed import history, model
from llms.managed.model import LEASE_TTL_S, Admitted

log = logging.getLogger("llms.keys")
PREFIX = "llms:keys:"
MAX_CONNECTIONS = 64
FIELDS = (
    "name",
    "models",
    "rpm",
    "tpm",
    "max_streams",
    "budget_usd",
    "budget_period",
    "expires_at",
    "created_at",
    "last_used_at",
)
INTEGERS = frozenset(("rpm", "tpm", "max_streams", "expires_at", "created_at", "last_used_at"))

ADMIT = """
local p = ARGV[1]
local id = redis.call('GET', p .. 'hash:' .. ARGV[2])
if not id then return {0} end
local k = p .. 'key:' .. id
local f = redis.call('HMGET', k, 'name', 'models', 'rpm', 'tpm', 'max_streams', 'budget_usd',
  'budget_period', 'expires_at')
if not f[1] then return {0} end
local now = tonumber(ARGV[3])
if f[8] ~= '' and now >= tonumber(f[8]) then return {2, f[1]} end
if ARGV[5] == '0' then return {1, id, f[1], f[2], f[7], ''} end
local sec = math.floor(now)
local rk, tk = p .. 'r:' .. id, p .. 't:' .. id
local function window(key)
  local all = redis.call('HGETALL', key)
  local total, rows = 0, {}
  for i = 1, #all, 2 do
    local s = tonumber(all[i])
    if s <= sec - 60 then redis.call('HDEL', key, all[i]) else
      local n = tonumber(all[i + 1]); total = total + n; rows[#rows + 1] = {s, n}
    end
  end
  table.sort(rows, function(a, b) return a[1] < b[1] end)
  return total, rows
end
if f[3] ~= '' then
  local total, rows = window(rk)
  if total >= tonumber(f[3]) then
    local wait = 60
    for _, r in ipairs(rows) do if r[2] > 0 then wait = r[1] + 61 - now; break end end
    return {3, 'rpm', f[1], f[3], tostring(total), tostring(wait)}
  end
end
if f[4] ~= '' then
  local total, rows = window(tk)
  local limit = tonumber(f[4])
  if total >= limit then
    local left, wait = total, 60
    for _, r in ipairs(rows) do
      left = left - r[2]
      if left < limit then wait = r[1] + 61 - now; break end
    end
    return {3, 'tpm', f[1], f[4], tostring(total), tostring(wait)}
  end
end
local sk = p .. 's:' .. id
if f[5] ~= '' then
  redis.call('ZREMRANGEBYSCORE', sk, '-inf', now - tonumber(ARGV[6]))
  local n = redis.call('ZCARD', sk)
  if n >= tonumber(f[5]) then return {3, 'streams', f[1], f[5], tostring(n), '1'} end
end
if f[6] ~= '' then
  local period = 'all'
  if f[7] == 'day' then period = ARGV[4] elseif f[7] == 'month' then period = ARGV[7] end
  local spent = tonumber(redis.call('HGET', p .. 'sp:' .. id, period) or '0')
  if spent >= tonumber(f[6]) then return {3, 'budget', f[1], f[6], tostring(spent), f[7]} end
end
redis.call('HINCRBY', rk, sec, 1)
redis.call('EXPIRE', rk, 120)
local lease = redis.call('INCR', p .. 'lease')
redis.call('ZADD', sk, now, lease)
redis.call('EXPIRE', sk, ARGV[6])
redis.call('HSET', k, 'last_used_at', sec)
return {1, id, f[1], f[2], f[7], tostring(lease)}
"""
RELEASE = """
local p, id = ARGV[1], ARGV[2]
redis.call('ZREM', p .. 's:' .. id, ARGV[3])
if redis.call('EXISTS', p .. 'key:' .. id) == 0 then return 0 end
if tonumber(ARGV[4]) > 0 then
  local tk = p .. 't:' .. id
  redis.call('HINCRBY', tk, math.floor(tonumber(ARGV[7])), ARGV[4])
  redis.call('EXPIRE', tk, 120)
end
if tonumber(ARGV[5]) > 0 then
  local sp = p .. 'sp:' .. id
  redis.call('HINCRBYFLOAT', sp, ARGV[6], ARGV[5])
  if ARGV[6] ~= 'all' then redis.call('HINCRBYFLOAT', sp, 'all', ARGV[5]) end
  local dk = p .. 'sd:' .. id .. ':' .. ARGV[8]
  redis.call('HINCRBYFLOAT', dk, ARGV[9], ARGV[5])
  redis.call('EXPIRE', dk, ARGV[10])
end
return 1
"""
# ARGV: prefix, id, hash (create) or '' (update), name or '', then field/value pairs.
SAVE = """
local p, id = ARGV[1], ARGV[2]
local k = p .. 'key:' .. id
local old = redis.call('HGET', k, 'name')
if ARGV[3] == '' and not old then return 0 end
if ARGV[4] ~= '' and ARGV[4] ~= old then
  if redis.call('SETNX', p .. 'name:' .. ARGV[4], id) == 0 then return -1 end
  if old then redis.call('DEL', p .. 'name:' .. old) end
end
if ARGV[3] ~= '' then
  redis.call('SET', p .. 'hash:' .. ARGV[3], id)
  redis.call('HSET', k, 'hash', ARGV[3])
end
for i = 5, #ARGV, 2 do redis.call('HSET', k, ARGV[i], ARGV[i + 1]) end
redis.call('ZADD', p .. 'index', redis.call('HGET', k, 'created_at'), id)
return 1
"""
DELETE = """
local p, id = ARGV[1], ARGV[2]
local k = p .. 'key:' .. id
local f = redis.call('HMGET', k, 'name', 'hash')
if not f[1] then return 0 end
redis.call('DEL', k, p .. 'name:' .. f[1], p .. 'hash:' .. f[2], p .. 'r:' .. id,
  p .. 't:' .. id, p .. 's:' .. id, p .. 'sp:' .. id)
redis.call('ZREM', p .. 'index', id)
local today = tonumber(ARGV[3])
for day = today - tonumber(ARGV[4]), today do redis.call('DEL', p .. 'sd:' .. id .. ':' .. day) end
return 1
"""


def _encode(name: str, value: Any) -> str:
    if value is None:
        return ""
    if name == "models":
        return orjson.dumps(value).decode()
    return str(value)


def _decode(name: str, raw: bytes | None) -> Any:
    if raw is None or raw == b"":
        return None
    text = raw.decode()
    if name == "models":
        return orjson.loads(text)
    if name in INTEGERS:
        return int(float(text))
    return float(text) if name == "budget_usd" else text


class RedisKeys:
    def __init__(
        self, url: str, *, prefix: str = PREFIX, clock: Callable[[], float] = time.time
    ) -> None:
        pool = BlockingConnectionPool.from_url(url, max_connections=MAX_CONNECTIONS, timeout=10)
        self.redis: Redis = Redis.from_pool(pool)
        self.prefix = prefix
        self.clock = clock
        self._admit = self.redis.register_script(ADMIT)
        self._release = self.redis.register_script(RELEASE)
        self._save = self.redis.register_script(SAVE)
        self._delete = self.redis.register_script(DELETE)

    async def start(self) -> None:
        with _translated("start"):
            await self.redis.ping()

    async def close(self) -> None:
        with contextlib.suppress(RedisError):
            await self.redis.aclose()

    # --- the admin API ------------------------------------------------------------------------

    async def create(self, fields: dict[str, Any]) -> tuple[dict[str, Any], str]:
        secret = model.new_secret()
        key_id = model.new_id()
        values = {name: fields.get(name) for name in FIELDS}
        values["created_at"] = int(self.clock())
        with _translated("create"):
            done = await self._save(
                args=[self.prefix, key_id, model.digest(secret), fields["name"], *_pairs(values)]
            )
        if done == -1:
            raise _name_taken(fields["name"])
        view = await self.get(key_id)
        assert view is not None
        return view, secret

    async def list(self) -> list[dict[str, Any]]:
        with _translated("list"):
            ids = await self.redis.zrange(self.prefix + "index", 0, -1)
        views = [await self.get(str(raw, "utf-8")) for raw in ids]  # type: ignore[arg-type]
        return [v for v in views if v is not None]

    async def get(self, key_id: str) -> dict[str, Any] | None:
        period_now = self.clock()
        with _translated("get"):
            pipe = self.redis.pipeline(transaction=False)
            pipe.hmget(self.prefix + "key:" + key_id, FIELDS)
            pipe.hgetall(self.prefix + "sp:" + key_id)
            raw, spend = await pipe.execute()
        if raw[0] is None:
            return None
        row = {name: _decode(name, value) for name, value in zip(FIELDS, raw, strict=True)}
        row["id"] = key_id
        spent = {k.decode(): float(v) for k, v in spend.items()}
        period = model.period_of(row["budget_period"], period_now)
        return model.view(row, spent.get(period, 0.0), spent.get("all", 0.0))

    async def update(self, key_id: str, fields: dict[str, Any]) -> dict[str, Any] | None:
        name = fields.get("name") or ""
        with _translated("update"):
            done = await self._save(args=[self.prefix, key_id, "", name, *_pairs(fields)])
        if done == -1:
            raise _name_taken(name)
        return None if done == 0 else await self.get(key_id)

    async def delete(self, key_id: str) -> bool:
        today = int(self.clock() // history.DAY_S)
        args: list[str | int] = [self.prefix, key_id, today, history.RETENTION_DAYS]
        with _translated("delete"):
            return bool(await self._delete(args=args))

    async def spend_hours(self, key_id: str, first: int, last: int) -> dict[int, float]:
        """The key's spend per UTC hour from `first` to `last` (hours since the epoch): a hash
        per UTC day (`sd:<id>:<day>`, its fields the hours of the day, expiring with retention)."""
        days = range(first // 24, last // 24 + 1)
        with _translated("spend"):
            pipe = self.redis.pipeline(transaction=False)
            for day in days:
                pipe.hgetall(f"{self.prefix}sd:{key_id}:{day}")
            found = await pipe.execute()
        out: dict[int, float] = {}
        for day, hours in zip(days, found, strict=True):
            for hour, usd in hours.items():
                at = day * 24 + int(hour)
                if first <= at <= last:
                    out[at] = float(usd)
        return out

    # --- the request path ---------------------------------------------------------------------

    async def admit(self, secret_hash: str, *, count: bool) -> Admitted | None:
        now = self.clock()
        day, month = model.period_of("day", now), model.period_of("month", now)
        flag = "1" if count else "0"
        with _translated("admit"):
            answer = await self._admit(
                args=[self.prefix, secret_hash, repr(now), day, flag, LEASE_TTL_S, month]
            )
        kind = int(answer[0])
        if kind == 0:
            return None
        if kind == 2:
            raise AuthenticationFailed(
                f"The API key {answer[1].decode()!r} expired.", code="expired_api_key"
            )
        if kind == 3:
            raise _refusal([part.decode() for part in answer[1:]], now)
        models = _decode("models", answer[3])
        period = answer[4].decode() or None
        return Admitted(
            id=answer[1].decode(),
            name=answer[2].decode(),
            models=None if models is None else frozenset(models),
            budget_period=period,
            lease=answer[5].decode() or None,
        )

    async def release(self, admitted: Admitted, tokens: int, cost: float) -> None:
        now = self.clock()
        period = model.period_of(admitted.budget_period, now)
        lease = admitted.lease or ""
        args: list[str | int] = [self.prefix, admitted.id, lease, tokens, repr(cost), period]
        hour = history.hour_of(now)
        ttl = (history.RETENTION_DAYS + 1) * history.DAY_S
        args += [repr(now), hour // 24, hour % 24, ttl]
        with _translated("release"):
            await self._release(args=args)


def _pairs(values: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for name, value in values.items():
        out += [name, _encode(name, value)]
    return out


def _refusal(parts: list[str], now: float) -> Exception:
    kind, name, limit, used, wait = parts
    if kind == "budget":
        return model.over_budget(name, float(limit), float(used), wait or None, now)
    text = {
        "rpm": f"{limit} requests per minute (rpm); {used} were made in the last 60 s",
        "tpm": f"{limit} tokens per minute (tpm); {used} were used in the last 60 s",
        "streams": f"{limit} concurrent streams (max_streams); {used} are running",
    }[kind]
    return model.refused(name, text, float(wait))


def _name_taken(name: str) -> Conflict:
    return Conflict(f"A key named {name!r} already exists.", param="name", code="name_taken")


@contextlib.contextmanager
def _translated(what: str) -> Any:
    try:
        yield
    except RedisError as exc:
        log.warning("managed keys: Redis failed on %s: %s", what, exc)
        raise ServiceUnavailable(
            "The gateway's shared key store (Redis) is not answering.",
            headers={"Retry-After": "1"},
        ) from None
