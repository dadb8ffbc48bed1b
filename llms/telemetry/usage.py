"""The request log: one SQLite row per chat request, written off the request path.

`finish(record)` (a telemetry sink) turns the record into a row and puts it in a bounded queue;
it never waits. One writer task drains the queue in batches, each batch one transaction. When
the queue is full (a slow or full disk, a burst), the row is dropped and counted, so memory
stays bounded and no stream is slowed. Rows older than the retention are pruned periodically.
The content of requests and answers is stored only with `state.log_content`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import operator
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from itertools import compress
from pathlib import Path
from typing import Any

import aiosqlite

from llms.config import Config
from llms.telemetry import timing
from llms.telemetry.record import RequestRecord

log = logging.getLogger("llms.telemetry")

SCHEMA_VERSION = 2  # 2: the `endpoint` column
BATCH = 500
LINGER_S = 0.05
PRUNE_EVERY_S = 3600.0
STOP_TIMEOUT_S = 5.0
COLUMNS = (
    "time",  # Unix seconds when the request arrived
    "request_id",
    "key",  # the API key's name, never the key
    "model",
    "provider",
    "status",
    "stream",
    "ttft_s",
    "duration_s",
    "prompt_tokens",
    "completion_tokens",
    "tokens_per_s",
    "finish_reason",
    "error_type",
    "error_code",
    "attempts",
    "stream_id",
    "disconnected",
    "cost_micro_usd",  # USD x 1e6 = tokens x price per million tokens; NULL: not priced
    "request_content",
    "answer_content",
    "endpoint",  # the API's path: /v1/chat/completions, /v1/messages/count_tokens, ...
)
_TYPES = {
    "time": "REAL NOT NULL",
    "status": "INTEGER",
    "stream": "INTEGER",
    "attempts": "INTEGER",
    "disconnected": "INTEGER",
    "prompt_tokens": "INTEGER",
    "completion_tokens": "INTEGER",
    "ttft_s": "REAL",
    "duration_s": "REAL",
    "tokens_per_s": "REAL",
    "cost_micro_usd": "REAL",
}
SCHEMA = (
    "CREATE TABLE IF NOT EXISTS requests (id INTEGER PRIMARY KEY, "
    + ", ".join(f"{name} {_TYPES.get(name, 'TEXT')}" for name in COLUMNS)
    + ")"
)
# Run by every connection: WAL and the busy timeout let several processes (`llms serve
# --workers N`) write one file, each waiting its turn for at most 5 s.
OPEN_STATEMENTS = (
    "PRAGMA busy_timeout = 5000",
    "PRAGMA journal_mode = WAL",
    "PRAGMA synchronous = NORMAL",
    SCHEMA,
    "CREATE INDEX IF NOT EXISTS requests_time ON requests (time)",
)
# A log written by an older version gains the columns added since (NULL in its old rows).
ADDED_COLUMNS = ("endpoint",)
VERSION = f"PRAGMA user_version = {SCHEMA_VERSION}"


def migrations(present: set[str]) -> list[str]:
    """The statements that add the columns a log written by an older version lacks."""
    return [
        f"ALTER TABLE requests ADD COLUMN {name} {_TYPES.get(name, 'TEXT')}"
        for name in ADDED_COLUMNS
        if name not in present
    ]


def _added(error: sqlite3.OperationalError) -> bool:
    """Another process added the column first (workers opening one old log at once)."""
    return "duplicate column" in str(error)


Row = tuple[object, ...]
Present = tuple[bool, ...]  # per column: whether a row's value is not None
_NONES = (None,) * len(COLUMNS)


def insert_of(present: Present) -> str:
    """The INSERT of the columns present; the others are left to SQLite, which makes them NULL
    (no column has a default): the same row as binding None, which costs Python's sqlite3 an
    adapter lookup per None (a usual row's half-dozen: ~12k of its ~41k instructions)."""
    names = [name for name, here in zip(COLUMNS, present, strict=True) if here]
    return f"INSERT INTO requests ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"


def by_columns(rows: list[Row], inserts: dict[Present, str]) -> list[tuple[str, list[Row]]]:
    """The rows, in order, as runs of rows that bind the same columns (a batch is mostly one
    run), each row without its Nones, under its INSERT (made once per set of columns and kept
    in `inserts`). In order: a row's id is its place in the log."""
    runs: list[tuple[str, list[Row]]] = []
    last = ""
    run: list[Row] = []
    for row in rows:
        present = tuple(map(operator.is_not, row, _NONES))
        insert = inserts.get(present)
        if insert is None:
            insert = inserts[present] = insert_of(present)
        if insert != last:
            last, run = insert, []
            runs.append((insert, run))
        run.append(tuple(compress(row, present)))
    return runs


Prices = Mapping[str, tuple[float | None, float | None]]


def path_of(url: str) -> Path:
    """`sqlite:<path>` -> the file, `~` expanded."""
    return Path(url.removeprefix("sqlite:")).expanduser()


def prepare(path: Path) -> None:
    """Create the database (WAL mode, schema) before several processes open it at once.

    Switching a new file to WAL needs it to itself; N workers starting together would race.
    Raises sqlite3.Error or OSError.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.closing(sqlite3.connect(path)) as db:
        for statement in OPEN_STATEMENTS:
            db.execute(statement)
        present = {row[1] for row in db.execute("PRAGMA table_info(requests)")}
        for statement in migrations(present):
            try:
                db.execute(statement)
            except sqlite3.OperationalError as error:
                if not _added(error):
                    raise
        db.execute(VERSION)
        db.commit()


class RequestLog:
    """A bounded queue in front of one SQLite writer task; also answers usage queries."""

    def __init__(
        self,
        path: Path,
        *,
        retention_days: float | None,
        capacity: int,
        prices: Prices,
        on_drop: Callable[[int], None],
        log_content: bool = False,
    ) -> None:
        self.path = path
        self.retention_days = retention_days
        self.prices = dict(prices)
        self.log_content = log_content
        self.queue: asyncio.Queue[Row] = asyncio.Queue(maxsize=capacity)
        self.dropped = 0
        self._on_drop = on_drop
        self._db: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        self._open = False
        # See by_columns: one INSERT per set of columns rows have had (a few dozen at most: the
        # columns that may be None are those of failures, content, prices, keys, usage).
        self._inserts: dict[Present, str] = {}

    @classmethod
    def from_config(cls, config: Config, on_drop: Callable[[int], None]) -> RequestLog | None:
        state = config.state
        if state.request_log is None:
            return None
        return cls(
            path_of(state.request_log),
            retention_days=state.request_log_retention_days,
            capacity=state.request_log_queue,
            prices={p.name: (p.price_in, p.price_out) for p in config.providers},
            on_drop=on_drop,
            log_content=state.log_content,
        )

    # --- the request path -----------------------------------------------------------------

    def finish(self, record: RequestRecord) -> None:
        """Queue the record's row; when the queue is full (or the log closed), drop and count."""
        if not self._open:
            self._drop(1)
            return
        try:
            self.queue.put_nowait(self.row_of(record))
        except asyncio.QueueFull:
            self._drop(1)

    def _drop(self, count: int) -> None:
        self.dropped += count
        self._on_drop(count)

    def row_of(self, record: RequestRecord) -> Row:
        # SQLite's INTEGER holds less than 2^63: a count past it (not a count: None) would
        # fail the whole batch.
        duration, ttft, _, _, _, rate, prompt, completion = timing.measures(record)
        price_in, price_out = self.prices.get(record.provider or "", (None, None))
        cost: float | None = None
        if price_in is not None or price_out is not None:
            cost = (prompt or 0) * (price_in or 0.0) + (completion or 0) * (price_out or 0.0)
        answer = record.answer_parts
        return (
            record.wall,
            record.request_id,
            record.key,
            record.model[:200],
            record.provider,
            record.status,
            int(record.stream) + int(record.resumable),  # 0 no, 1 default mode, 2 resumable
            ttft,
            duration,
            prompt,
            completion,
            rate,
            record.finish_reason,
            record.error_type,
            record.error_code,
            record.attempts,
            record.stream_id,
            int(record.disconnected),
            cost,
            record.prompt_content if self.log_content else None,
            "".join(answer) if self.log_content and answer is not None else None,
            record.endpoint,
        )

    # --- the writer -----------------------------------------------------------------------

    async def start(self) -> None:
        """Open (creating) the database and start the writer; on failure, log without it."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = await aiosqlite.connect(self.path)
            for statement in OPEN_STATEMENTS:
                await db.execute(statement)
            async with db.execute("PRAGMA table_info(requests)") as cursor:
                present = {row[1] for row in await cursor.fetchall()}
            for statement in migrations(present):
                try:
                    await db.execute(statement)
                except sqlite3.OperationalError as error:
                    if not _added(error):
                        raise
            await db.execute(VERSION)
            await db.commit()
        except (sqlite3.Error, OSError) as exc:
            log.warning(
                "request log %s cannot be opened (%s); requests are not logged", self.path, exc
            )
            return
        self._db = db
        self._open = True
        await self.prune()
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._write_forever(db), name="request log writer"),
            loop.create_task(self._prune_forever(), name="request log retention"),
        ]

    async def stop(self) -> None:
        """Write what is queued (for up to STOP_TIMEOUT_S), then close; the rest is dropped."""
        self._open = False
        if self._db is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.queue.join(), STOP_TIMEOUT_S)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        left = self.queue.qsize()
        if left:
            self._drop(left)
        db, self._db = self._db, None
        await db.close()

    async def flush(self) -> None:
        """Wait until every row queued so far is written."""
        await self.queue.join()

    async def _write_forever(self, db: aiosqlite.Connection) -> None:
        queue = self.queue
        while True:
            rows = [await queue.get()]
            # Linger a moment so that a busy gateway writes many rows per transaction: each
            # write is a round trip to aiosqlite's thread and a commit.
            await asyncio.sleep(LINGER_S)
            while len(rows) < BATCH and not queue.empty():
                rows.append(queue.get_nowait())
            try:
                async with self._lock:
                    for insert, values in by_columns(rows, self._inserts):
                        await db.executemany(insert, values)
                    await db.commit()
            except (sqlite3.Error, OSError, OverflowError) as exc:
                # The disk, or a row SQLite cannot bind: that batch is lost, not the writer.
                log.warning("request log: %d row(s) not written: %s", len(rows), exc)
                await self._failed(db, rows)
            except Exception:
                # Anything else that fails a batch costs that batch only: were the writer to
                # stop, nothing would be logged again and the drop counter would not say so.
                log.exception("request log: %d row(s) not written", len(rows))
                await self._failed(db, rows)
            finally:
                for _ in rows:
                    queue.task_done()

    async def _failed(self, db: aiosqlite.Connection, rows: list[Row]) -> None:
        self._drop(len(rows))
        with contextlib.suppress(sqlite3.Error, ValueError):
            await db.rollback()

    async def _prune_forever(self) -> None:
        while True:
            await asyncio.sleep(PRUNE_EVERY_S)
            await self.prune()

    async def prune(self, now: float | None = None) -> int:
        """Delete rows older than the retention; the number deleted."""
        if self.retention_days is None or self._db is None:
            return 0
        cutoff = (time.time() if now is None else now) - self.retention_days * 86400
        try:
            async with self._lock:
                cursor = await self._db.execute("DELETE FROM requests WHERE time < ?", (cutoff,))
                await self._db.commit()
        except sqlite3.Error as exc:
            log.warning("request log: pruning failed: %s", exc)
            return 0
        return cursor.rowcount

    @property
    def available(self) -> bool:
        """Whether the database is open (start succeeded and stop has not run)."""
        return self._db is not None

    async def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """Rows of a read-only query (the usage API)."""
        if self._db is None:
            return []
        async with self._lock:
            cursor = await self._db.execute(sql, params)
            rows = await cursor.fetchall()
        return [tuple(row) for row in rows]
