"""Managed keys in one SQLite file (WAL) that every worker of `llms serve --workers N` opens.

Each admission is one step of a `BEGIN IMMEDIATE` transaction: look the key up by its hash,
check it (expiry, rpm, tpm, concurrent streams, budget) and count the request, so two workers
never both take the last slot: the limits are exact to the request. Each release is another step
(free the stream slot, add the tokens and the spend). The steps run in this process's one SQLite
thread, a single hop off the event loop per transaction (plain sqlite3 in a one-thread executor:
aiosqlite would hop once per statement), and the steps that arrive while a transaction runs
share the next one (group commit): under load a transaction and a hop serve many requests.
rpm and tpm are per-second buckets summed over the last 60 s. A stream slot is a row naming its
process: a process that died is found out when the next one starts, and any slot older than an
hour is given up.

Revocation needs no cache to expire: every request of a managed key reads its row, so a deleted
key is refused by the next request on every worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import orjson

from llms.errors import AuthenticationFailed, Conflict, GatewayError, ServiceUnavailable
from llms.managed import history, model
from llms.managed.model import LEASE_TTL_S, WINDOW_S, Admitted

T = TypeVar("T")
log = logging.getLogger("llms.keys")
SCHEMA = (
    "CREATE TABLE IF NOT EXISTS keys (id TEXT PRIMARY KEY, hash TEXT NOT NULL UNIQUE,"
    " name TEXT NOT NULL UNIQUE, models TEXT, rpm INTEGER, tpm INTEGER, max_streams INTEGER,"
    " budget_usd REAL, budget_period TEXT, expires_at INTEGER, created_at INTEGER NOT NULL,"
    " last_used_at INTEGER)",
    "CREATE TABLE IF NOT EXISTS win (key_id TEXT NOT NULL, second INTEGER NOT NULL,"
    " requests INTEGER NOT NULL, tokens INTEGER NOT NULL, PRIMARY KEY (key_id, second))",
    "CREATE TABLE IF NOT EXISTS leases (id INTEGER PRIMARY KEY, key_id TEXT NOT NULL,"
    " pid INTEGER NOT NULL, started REAL NOT NULL)",
    "CREATE INDEX IF NOT EXISTS leases_key ON leases (key_id)",
    "CREATE TABLE IF NOT EXISTS spend (key_id TEXT NOT NULL, period TEXT NOT NULL,"
    " usd REAL NOT NULL, PRIMARY KEY (key_id, period))",
    # Spend per key per UTC hour (history.py); the index on hour serves the hourly pruning.
    "CREATE TABLE IF NOT EXISTS spend_hours (key_id TEXT NOT NULL, hour INTEGER NOT NULL,"
    " usd REAL NOT NULL, PRIMARY KEY (key_id, hour)) WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS spend_hours_hour ON spend_hours (hour)",
)
COLUMNS = (
    "id, name, models, rpm, tpm, max_streams, budget_usd, budget_period, expires_at,"
    " created_at, last_used_at"
)
NAMES = [c.strip() for c in COLUMNS.split(",")]


def _row(values: tuple[Any, ...]) -> dict[str, Any]:
    row = dict(zip(NAMES, values, strict=True))
    row["models"] = None if row["models"] is None else orjson.loads(row["models"])
    return row


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class SqliteKeys:
    def __init__(self, path: Path, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self.clock = clock
        self._db: sqlite3.Connection | None = None
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llms-keys")
        self._queue: list[tuple[Callable[[sqlite3.Connection], Any], asyncio.Future[Any]]] = []
        self._draining = False
        self._pruned_hour = 0  # the hour this process last dropped old spend history

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        db = self._db
        assert db is not None, "the key store is not started"
        try:
            return await asyncio.get_running_loop().run_in_executor(self._thread, fn, db)
        except sqlite3.Error as exc:
            raise _unavailable(exc) from None

    async def _batched(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn` in the next write transaction: the admissions and releases that wait while
        one transaction runs share the next (group commit), each seeing the ones before it."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.append((fn, future))
        if not self._draining:
            self._draining = True
            asyncio.get_running_loop().create_task(self._drain())
        try:
            return await future
        except sqlite3.Error as exc:
            raise _unavailable(exc) from None

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._queue:
                batch, self._queue = self._queue, []
                running = loop.run_in_executor(self._thread, self._batch, batch)
                await asyncio.wait([running])
                failure = running.exception()
                # A transaction that failed (rolled back) failed every step in it.
                results = [(False, failure)] * len(batch) if failure else running.result()
                for (_, future), (ok, value) in zip(batch, results, strict=True):
                    if future.done():
                        continue
                    if ok:
                        future.set_result(value)
                    else:
                        future.set_exception(value)
        finally:
            self._draining = False

    def _batch(
        self, batch: list[tuple[Callable[[sqlite3.Connection], Any], asyncio.Future[Any]]]
    ) -> list[tuple[bool, Any]]:
        db = self._db
        assert db is not None, "the key store is not started"
        out: list[tuple[bool, Any]] = []
        with _transaction(db):
            for fn, _ in batch:
                try:
                    out.append((True, fn(db)))
                except GatewayError as refusal:  # raised before the step wrote anything
                    out.append((False, refusal))
        return out

    # --- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        loop = asyncio.get_running_loop()
        self._db = await loop.run_in_executor(self._thread, self._open)

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA busy_timeout = 5000")
        deadline = time.monotonic() + 10
        while True:  # switching a new file to WAL needs it alone: workers start together
            try:
                db.execute("PRAGMA journal_mode = WAL")
                break
            except sqlite3.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        db.execute("PRAGMA synchronous = NORMAL")
        with _transaction(db):
            for statement in SCHEMA:
                db.execute(statement)
            # Stream slots of processes that are gone (a killed worker, the last run).
            pids = [pid for (pid,) in db.execute("SELECT DISTINCT pid FROM leases")]
            for pid in pids:
                if not _alive(pid):
                    db.execute("DELETE FROM leases WHERE pid = ?", (pid,))
        return db

    async def close(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            await asyncio.get_running_loop().run_in_executor(self._thread, db.close)
        self._thread.shutdown(wait=False)

    # --- the admin API ------------------------------------------------------------------------

    async def create(self, fields: dict[str, Any]) -> tuple[dict[str, Any], str]:
        secret = model.new_secret()
        key_id = model.new_id()
        now = int(self.clock())

        def insert(db: sqlite3.Connection) -> dict[str, Any]:
            models = fields.get("models")
            try:
                db.execute(
                    f"INSERT INTO keys (hash, {COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                    (
                        model.digest(secret),
                        key_id,
                        fields["name"],
                        None if models is None else orjson.dumps(models).decode(),
                        *(fields.get(name) for name in NAMES[3:9]),
                        now,
                        None,
                    ),
                )
            except sqlite3.IntegrityError:
                raise _name_taken(fields["name"]) from None
            found = self._get(db, key_id)
            assert found is not None
            return found

        return await self._run(insert), secret

    async def list(self) -> list[dict[str, Any]]:
        def select(db: sqlite3.Connection) -> list[dict[str, Any]]:
            ids = [i for (i,) in db.execute("SELECT id FROM keys ORDER BY created_at, id")]
            return [v for v in (self._get(db, i) for i in ids) if v is not None]

        return await self._run(select)

    async def get(self, key_id: str) -> dict[str, Any] | None:
        return await self._run(lambda db: self._get(db, key_id))

    def _get(self, db: sqlite3.Connection, key_id: str) -> dict[str, Any] | None:
        found = db.execute(f"SELECT {COLUMNS} FROM keys WHERE id = ?", (key_id,)).fetchone()
        if found is None:
            return None
        row = _row(found)
        period = model.period_of(row["budget_period"], self.clock())
        spend = dict(
            db.execute(
                "SELECT period, usd FROM spend WHERE key_id = ? AND period IN (?, 'all')",
                (key_id, period),
            ).fetchall()
        )
        return model.view(row, spend.get(period, 0.0), spend.get("all", 0.0))

    async def update(self, key_id: str, fields: dict[str, Any]) -> dict[str, Any] | None:
        def change(db: sqlite3.Connection) -> dict[str, Any] | None:
            values = dict(fields)
            if "models" in values and values["models"] is not None:
                values["models"] = orjson.dumps(values["models"]).decode()
            if values:
                assignments = ", ".join(f"{name} = ?" for name in values)
                try:
                    db.execute(
                        f"UPDATE keys SET {assignments} WHERE id = ?", (*values.values(), key_id)
                    )
                except sqlite3.IntegrityError:
                    raise _name_taken(fields["name"]) from None
            return self._get(db, key_id)

        return await self._run(change)

    async def delete(self, key_id: str) -> bool:
        def remove(db: sqlite3.Connection) -> bool:
            with _transaction(db):
                gone = db.execute("DELETE FROM keys WHERE id = ?", (key_id,)).rowcount > 0
                for table in ("win", "leases", "spend", "spend_hours"):
                    db.execute(f"DELETE FROM {table} WHERE key_id = ?", (key_id,))
            return gone

        return await self._run(remove)

    async def spend_hours(self, key_id: str, first: int, last: int) -> dict[int, float]:
        """The key's spend per UTC hour from `first` to `last` (hours since the epoch)."""

        def select(db: sqlite3.Connection) -> dict[int, float]:
            rows = db.execute(
                "SELECT hour, usd FROM spend_hours WHERE key_id = ? AND hour BETWEEN ? AND ?",
                (key_id, first, last),
            )
            return {hour: usd for hour, usd in rows}

        return await self._run(select)

    # --- the request path ---------------------------------------------------------------------

    async def admit(self, secret_hash: str, *, count: bool) -> Admitted | None:
        """The key with this hash (None: no such key); with `count`, its limits are checked
        and this request counted (a stream slot held until `release`)."""
        now = self.clock()
        pid = os.getpid()

        def admit(db: sqlite3.Connection) -> Admitted | None:
            if not count:
                found = db.execute(
                    f"SELECT {COLUMNS} FROM keys WHERE hash = ?", (secret_hash,)
                ).fetchone()
                return None if found is None else _admitted(_row(found), now, None)
            found = db.execute(
                f"SELECT {COLUMNS} FROM keys WHERE hash = ?", (secret_hash,)
            ).fetchone()
            if found is None:
                return None
            row = _row(found)
            _admitted(row, now, None)  # expired: refused before anything is counted
            _check(db, row, now)
            key_id = row["id"]
            db.execute(
                "INSERT INTO win VALUES (?, ?, 1, 0) ON CONFLICT (key_id, second)"
                " DO UPDATE SET requests = requests + 1",
                (key_id, math.floor(now)),
            )
            lease = db.execute(
                "INSERT INTO leases (key_id, pid, started) VALUES (?, ?, ?)",
                (key_id, pid, now),
            ).lastrowid
            db.execute("UPDATE keys SET last_used_at = ? WHERE id = ?", (int(now), key_id))
            return _admitted(row, now, str(lease))

        if not count:
            return await self._run(admit)
        return await self._batched(admit)

    async def release(self, admitted: Admitted, tokens: int, cost: float) -> None:
        now = self.clock()
        period = model.period_of(admitted.budget_period, now)

        def release(db: sqlite3.Connection) -> None:
            db.execute("DELETE FROM leases WHERE id = ?", (int(admitted.lease or 0),))
            if tokens:
                db.execute(
                    "INSERT INTO win VALUES (?, ?, 0, ?) ON CONFLICT (key_id, second)"
                    " DO UPDATE SET tokens = tokens + excluded.tokens",
                    (admitted.id, math.floor(now), tokens),
                )
            if cost > 0:
                for bucket in {period, "all"}:
                    db.execute(
                        "INSERT INTO spend VALUES (?, ?, ?) ON CONFLICT (key_id, period)"
                        " DO UPDATE SET usd = usd + excluded.usd",
                        (admitted.id, bucket, cost),
                    )
                db.execute(
                    "INSERT INTO spend_hours VALUES (?, ?, ?) ON CONFLICT (key_id, hour)"
                    " DO UPDATE SET usd = usd + excluded.usd",
                    (admitted.id, history.hour_of(now), cost),
                )
                if self._pruned_hour != history.hour_of(now):
                    self._pruned_hour = history.hour_of(now)
                    db.execute(
                        "DELETE FROM spend_hours WHERE hour < ?", (history.oldest_kept_hour(now),)
                    )

        await self._batched(release)


def _check(db: sqlite3.Connection, row: dict[str, Any], now: float) -> None:
    """Raises 429 when one more request of this key would go over a limit or its budget."""
    key_id, name = row["id"], row["name"]
    horizon = math.floor(now) - WINDOW_S
    db.execute("DELETE FROM win WHERE key_id = ? AND second <= ?", (key_id, horizon))
    rpm, tpm = row["rpm"], row["tpm"]
    if rpm is not None or tpm is not None:
        buckets = db.execute(
            "SELECT second, requests, tokens FROM win WHERE key_id = ? ORDER BY second", (key_id,)
        ).fetchall()
        requests = sum(b[1] for b in buckets)
        tokens = sum(b[2] for b in buckets)
        if rpm is not None and requests >= rpm:
            first = next(second for second, n, _ in buckets if n)
            raise model.refused(
                name,
                f"{rpm} requests per minute (rpm); {requests} were made in the last 60 s",
                first + WINDOW_S + 1 - now,
            )
        if tpm is not None and tokens >= tpm:
            left, wait = tokens, float(WINDOW_S)
            for second, _, n in buckets:
                left -= n
                if left < tpm:
                    wait = second + WINDOW_S + 1 - now
                    break
            raise model.refused(
                name, f"{tpm} tokens per minute (tpm); {tokens} were used in the last 60 s", wait
            )
    if row["max_streams"] is not None:
        db.execute(
            "DELETE FROM leases WHERE key_id = ? AND started < ?", (key_id, now - LEASE_TTL_S)
        )
        (streams,) = db.execute(
            "SELECT COUNT(*) FROM leases WHERE key_id = ?", (key_id,)
        ).fetchone()
        if streams >= row["max_streams"]:
            raise model.refused(
                name,
                f"{row['max_streams']} concurrent streams (max_streams); {streams} are running",
                model.STREAM_RETRY_S,
            )
    budget = row["budget_usd"]
    if budget is not None:
        period = model.period_of(row["budget_period"], now)
        spent = db.execute(
            "SELECT usd FROM spend WHERE key_id = ? AND period = ?", (key_id, period)
        ).fetchone()
        spend = spent[0] if spent else 0.0
        if spend >= budget:
            raise model.over_budget(name, budget, spend, row["budget_period"], now)


def _admitted(row: dict[str, Any], now: float, lease: str | None) -> Admitted:
    expires = row["expires_at"]
    if expires is not None and now >= expires:
        raise AuthenticationFailed(f"The API key {row['name']!r} expired.", code="expired_api_key")
    models = row["models"]
    return Admitted(
        id=row["id"],
        name=row["name"],
        models=None if models is None else frozenset(models),
        budget_period=row["budget_period"],
        lease=lease,
    )


def _unavailable(exc: sqlite3.Error) -> ServiceUnavailable:
    # A full disk, a file another program locked for over 5 s: the client may try again.
    log.warning("managed keys: SQLite failed: %s", exc)
    return ServiceUnavailable(
        "The gateway's key store is not answering.", headers={"Retry-After": "1"}
    )


def _name_taken(name: str) -> Conflict:
    return Conflict(f"A key named {name!r} already exists.", param="name", code="name_taken")


@contextlib.contextmanager
def _transaction(db: sqlite3.Connection) -> Any:
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
