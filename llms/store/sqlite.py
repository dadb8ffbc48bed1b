"""Stored responses in one SQLite file: the embedded default.

WAL and a busy timeout let the processes of `llms serve --workers N` share the file, each write
waiting its turn; the file outlives restarts. Each write is one `BEGIN IMMEDIATE` transaction
(it takes the write lock first, so a transaction that reads then writes never fails half-way
because another process wrote in between). A trigger-maintained total of the bytes held makes
the total cap cheap to check on every write; past it the oldest records go first. Records past
the retention are invisible at once and deleted by `purge()`, which runs every PURGE_EVERY_S.

Puts waiting together are one multi-row upsert, one trip through aiosqlite's thread. A trip is
slow to start on a busy gateway: that thread waits for the GIL each time it wakes and after each
SQLite step (up to `sys.getswitchinterval()`, 5 ms, while the event loop is busy), so a put took
~10-20 ms to land under load, and the threads' GIL handoffs cost the process more CPU than
SQLite's own work (~9 µs an answer in batches).

With `write_behind` (one gateway process alone on the file) a put returns once queued; this
process's own reads of that id (get, delete, update) wait for it to land, so nothing here can
tell, while another process on the file may not see it for a moment (so `--workers N` keeps
waiting). The queued puts are gathered for WRITE_BEHIND_S and written on the event loop's
thread, on a connection of their own: one transaction, never waiting for a lock (busy_timeout
0: busy is tried again a moment later), never checkpointing (the aiosqlite connection
checkpoints in its thread once CHECKPOINT_BYTES were written). No thread, no handoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar, cast

import aiosqlite

from llms.store.responses import (
    MAX_RECORD_MB,
    MIB,
    RETENTION_S,
    STATUSES,
    ResponseStatus,
    ResponseTooLarge,
    StoredResponse,
    StoreUnavailable,
    check_record,
    is_response_id,
)

log = logging.getLogger("llms.store")

T = TypeVar("T")
MAX_TOTAL_MB = 1024.0
PURGE_EVERY_S = 3600.0
BUSY_TIMEOUT_MS = 5000
EVICT_BATCH = 256
# Run by every connection. auto_vacuum only takes on a new file (before the first table): then
# the pages of purged records are given back to the file system by `PRAGMA incremental_vacuum`.
OPEN_STATEMENTS = (
    f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}",
    "PRAGMA auto_vacuum = INCREMENTAL",
    "PRAGMA journal_mode = WAL",
    "PRAGMA synchronous = NORMAL",
    "CREATE TABLE IF NOT EXISTS responses (id TEXT PRIMARY KEY, owner TEXT, "
    "created_at INTEGER NOT NULL, status TEXT NOT NULL, size INTEGER NOT NULL, "
    "response BLOB NOT NULL, input_items BLOB NOT NULL, history BLOB NOT NULL)",
    "CREATE INDEX IF NOT EXISTS responses_created ON responses (created_at)",
    "CREATE TABLE IF NOT EXISTS responses_total "
    "(one INTEGER PRIMARY KEY CHECK (one = 1), bytes INTEGER NOT NULL)",
    "INSERT OR IGNORE INTO responses_total VALUES (1, 0)",
    "CREATE TRIGGER IF NOT EXISTS responses_added AFTER INSERT ON responses "
    "BEGIN UPDATE responses_total SET bytes = bytes + NEW.size; END",
    "CREATE TRIGGER IF NOT EXISTS responses_removed AFTER DELETE ON responses "
    "BEGIN UPDATE responses_total SET bytes = bytes - OLD.size; END",
    "CREATE TRIGGER IF NOT EXISTS responses_resized AFTER UPDATE OF size ON responses "
    "BEGIN UPDATE responses_total SET bytes = bytes - OLD.size + NEW.size; END",
)
# An upsert, not INSERT OR REPLACE: a replace deletes without firing the delete trigger.
UPSERT_INTO = (
    "INSERT INTO responses (id, owner, created_at, status, size, response, input_items, history) "
    "VALUES "
)
UPSERT_ROW = "(?, ?, ?, ?, ?, ?, ?, ?)"
UPSERT_ON_CONFLICT = (
    " ON CONFLICT (id) DO UPDATE SET owner = excluded.owner, "
    "created_at = excluded.created_at, status = excluded.status, size = excluded.size, "
    "response = excluded.response, input_items = excluded.input_items, "
    "history = excluded.history"
)
# Rows a statement upserts at most (8 parameters each; SQLite allows 32,766 a statement).
UPSERT_MAX_ROWS = 256
SELECT = (
    "SELECT id, owner, created_at, status, response, input_items, history FROM responses "
    "WHERE id = ? AND owner IS ? AND created_at > ?"
)


def prepare(path: Path) -> None:
    """Create the database once, before the workers open it (as the supervisor does for the
    request log), so that a file that cannot be created is said once. Optional: start() creates
    it too, and workers opening a new file at once wait for each other (busy_timeout).

    Raises sqlite3.Error or OSError.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.closing(sqlite3.connect(path)) as db:
        for statement in OPEN_STATEMENTS:
            db.execute(statement)
        db.commit()


EVICT_CHECKS = 64


# A background response's progress: its new Response and status, sized where the bytes are;
# nothing when the record is gone, expired or would grow past the per-record cap (the caller
# tells which).
UPDATE_RESPONSE = (
    "UPDATE responses SET response = :response, status = :status, "
    "size = length(:response) + length(input_items) + length(history) "
    "WHERE id = :id AND created_at > :cutoff "
    "AND length(:response) + length(input_items) + length(history) <= :cap"
)


OPEN_TRIES = 20
# How long a write-behind store gathers puts before it writes them.
WRITE_BEHIND_S = 0.02
# A write-behind store checkpoints its WAL once this much was written behind.
CHECKPOINT_BYTES = 4 * MIB


def _open_sync(path: Path) -> sqlite3.Connection:
    """The write-behind connection (used on the event loop's thread only): it never waits for
    a lock nor checkpoints; synchronous is per connection (NORMAL: no fsync a commit in WAL)."""
    db = sqlite3.connect(path, isolation_level=None)
    try:
        for statement in (
            "PRAGMA busy_timeout = 0",
            "PRAGMA synchronous = NORMAL",
            "PRAGMA wal_autocheckpoint = 0",
        ):
            db.execute(statement)
    except BaseException:
        db.close()
        raise
    return db


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


async def _open_statements(db: aiosqlite.Connection) -> None:
    """OPEN_STATEMENTS, busy_timeout first. Processes making a new file at once can still be
    told "database is locked" without the busy handler being asked (SQLite does so where
    waiting could deadlock, as when two connections switch a new file to WAL together): the
    statements are idempotent, so they are run again, a moment later, a bounded number of
    times. (`llms serve --workers N` makes the file before its workers, see `prepare`.)"""
    for attempt in range(OPEN_TRIES):
        try:
            for statement in OPEN_STATEMENTS:
                await db.execute(statement)
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == OPEN_TRIES - 1:
                raise
            await asyncio.sleep(0.01 * (attempt + 1))


@functools.lru_cache(maxsize=64)
def _upsert(rows: int) -> str:
    return UPSERT_INTO + ", ".join([UPSERT_ROW] * rows) + UPSERT_ON_CONFLICT


async def _put_rows(rows: list[tuple[Any, ...]], db: aiosqlite.Connection) -> None:
    # One statement for the whole batch: one trip through aiosqlite's thread and one implicit
    # transaction (executemany autocommits each row: a commit, its locks and WAL frames each).
    for start in range(0, len(rows), UPSERT_MAX_ROWS):
        part = rows[start : start + UPSERT_MAX_ROWS]
        await db.execute(_upsert(len(part)), [value for row in part for value in row])


class SQLiteResponseStore:
    """The ResponseStore protocol on one SQLite file."""

    def __init__(
        self,
        path: Path | str,
        *,
        retention_s: float = RETENTION_S,
        max_record_mb: float = MAX_RECORD_MB,
        max_total_mb: float = MAX_TOTAL_MB,
        purge_every_s: float = PURGE_EVERY_S,
        clock: Callable[[], float] = time.time,
        write_behind: bool = False,
    ) -> None:
        self.path = Path(path).expanduser()
        self.retention_s = retention_s
        self.max_record_bytes = int(max_record_mb * MIB)
        self.max_total_bytes = int(max_total_mb * MIB)
        if self.max_record_bytes > self.max_total_bytes:
            raise ValueError("max_record_mb is more than max_total_mb: no record could be kept")
        self.purge_every_s = purge_every_s
        self._clock = clock
        self._db: aiosqlite.Connection | None = None
        # One connection: a transaction must not interleave with another coroutine's statements.
        self._lock = asyncio.Lock()
        self._purging: asyncio.Task[None] | None = None
        self._unchecked = 0  # bytes written since the total was last checked
        self._pending: list[tuple[tuple[Any, ...], asyncio.Future[None]]] = []
        self._writing: asyncio.Task[None] | None = None
        # Write-behind: the puts queued or being written, by id (their batch's future).
        self.write_behind = write_behind
        self._landing: dict[str, asyncio.Future[None]] = {}
        self._gathering: asyncio.Future[None] | None = None  # the writer's pause, cut short
        self._sync: sqlite3.Connection | None = None  # write-behind's own, on the loop's thread
        self._closing = False
        self._unsynced = 0  # bytes written behind since the last checkpoint
        self._checkpointing: asyncio.Task[None] | None = None

    # --- life -----------------------------------------------------------------------------------

    async def start(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = await aiosqlite.connect(self.path, isolation_level=None)
        except (sqlite3.Error, OSError) as exc:
            raise self._unavailable("open", exc) from None
        try:
            await _open_statements(db)
        except sqlite3.Error as exc:
            await db.close()
            raise self._unavailable("open", exc) from None
        self._db = db
        if self.write_behind:
            try:
                self._sync = _open_sync(self.path)
            except sqlite3.Error as exc:
                self._db = None
                await db.close()
                raise self._unavailable("open", exc) from None
        await self.purge()
        self._purging = asyncio.create_task(self._purge_forever(), name="response store purge")

    async def close(self) -> None:
        self._closing = True
        self._write_now()
        if self._writing is not None:
            await asyncio.gather(self._writing, return_exceptions=True)
        if self._checkpointing is not None:
            await asyncio.gather(self._checkpointing, return_exceptions=True)
        sync, self._sync = self._sync, None
        if sync is not None:
            sync.close()
        task, self._purging = self._purging, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        db, self._db = self._db, None
        if db is not None:
            async with self._lock:
                await db.close()

    # --- the protocol ---------------------------------------------------------------------------

    async def put(self, record: StoredResponse) -> None:
        check_record(record, self.max_record_bytes)
        row = (
            record.id,
            record.owner,
            record.created_at,
            record.status,
            record.size,
            record.response,
            record.input_items,
            record.history,
        )

        # Puts made while one is being written go together in the next trip through aiosqlite's
        # thread (each trip costs wake-ups of the loop and of that thread): one statement for
        # them all, autocommitted, atomic with the triggers that keep the total.
        written = asyncio.get_running_loop().create_future()
        self._pending.append((row, written))
        if self._writing is None:
            self._writing = asyncio.create_task(self._write_pending(), name="response store put")
        if not self.write_behind:
            await written
            return
        # Returns now; reads of this id wait for `written` (_landed), a failure is logged.
        self._landing[record.id] = written
        written.add_done_callback(functools.partial(self._landed, record.id))

    def _landed(self, response_id: str, written: asyncio.Future[None]) -> None:
        if self._landing.get(response_id) is written:
            del self._landing[response_id]
        if not written.cancelled() and written.exception() is not None:
            log.warning("response %s was not stored: %s", response_id, written.exception())

    async def _after_put(self, response_id: str) -> None:
        """Wait until a write-behind put of this id has landed (or failed)."""
        written = self._landing.get(response_id)
        if written is not None:
            self._write_now()
            await asyncio.wait((written,))

    def _write_now(self) -> None:
        """End the writer's pause: a read waits for a put, or the store closes."""
        if self._gathering is not None:
            _settle(self._gathering)

    async def _write_pending(self) -> None:
        """The writer: takes the queued puts as one batch and tells each put it landed (or why
        not). Through aiosqlite's thread; written behind, it first gathers puts for
        WRITE_BEHIND_S (unless a read of one of them, or close(), asks now) and writes them on
        this thread, a batch that finds another connection writing tried again after the next
        pause, for up to BUSY_TIMEOUT_MS."""
        loop = asyncio.get_running_loop()
        give_up: float | None = None
        try:
            while self._pending:
                if self.write_behind and not self._closing:
                    gathering = self._gathering = loop.create_future()
                    timer = loop.call_later(WRITE_BEHIND_S, _settle, gathering)
                    try:
                        await gathering
                    finally:
                        timer.cancel()
                        self._gathering = None
                batch, self._pending = self._pending, []
                rows = [row for row, _ in batch]
                failure: StoreUnavailable | None = None
                try:
                    await self._write_batch(rows)
                except sqlite3.OperationalError as exc:  # written behind: SQLite's own error
                    busy = "locked" in str(exc) or "busy" in str(exc)
                    give_up = loop.time() + BUSY_TIMEOUT_MS / 1000 if give_up is None else give_up
                    if busy and loop.time() < give_up and not self._closing:
                        self._pending[:0] = batch  # first in the next try
                        continue
                    failure = self._unavailable("put", exc)
                except (sqlite3.Error, OSError) as exc:
                    failure = self._unavailable("put", exc)
                except StoreUnavailable as error:
                    failure = error
                else:
                    give_up = None
                    await self._check_total(rows)
                for _, written in batch:
                    if written.done():  # its caller was cancelled
                        continue
                    if failure is None:
                        written.set_result(None)
                    else:
                        written.set_exception(failure)
        finally:
            self._writing = None

    async def _write_batch(self, rows: list[tuple[Any, ...]]) -> None:
        """One batch of puts written: written behind, in one transaction on this thread (and
        counted towards the next checkpoint); else through aiosqlite's thread."""
        if self.write_behind:
            self._write_rows(rows)
            self._synced(rows)
        else:
            await self._run("put", functools.partial(_put_rows, rows))

    def _write_rows(self, rows: list[tuple[Any, ...]]) -> None:
        """The rows in one transaction on the write-behind connection (rolled back on any
        failure). Raises StoreUnavailable when closed, sqlite3.Error as SQLite does."""
        db = self._sync
        if db is None:
            raise StoreUnavailable("The gateway's response store is not open.")
        db.execute("BEGIN IMMEDIATE")
        try:
            for start in range(0, len(rows), UPSERT_MAX_ROWS):
                part = rows[start : start + UPSERT_MAX_ROWS]
                db.execute(_upsert(len(part)), [value for row in part for value in row])
            db.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):  # none open: nothing to undo
                db.execute("ROLLBACK")
            raise

    def _synced(self, rows: list[tuple[Any, ...]]) -> None:
        """Count what was written behind; past CHECKPOINT_BYTES, checkpoint in the aiosqlite
        connection's thread (the write-behind connection never does: it could wait on the
        disk with the event loop)."""
        self._unsynced += sum(row[4] for row in rows)
        if self._unsynced < CHECKPOINT_BYTES or self._checkpointing is not None:
            return
        self._unsynced = 0

        async def checkpoint() -> None:
            async def run(db: aiosqlite.Connection) -> None:
                await db.execute("PRAGMA wal_checkpoint(PASSIVE)")

            try:
                await self._run("checkpoint", run)
            except StoreUnavailable:  # logged; the next one tries again
                pass
            finally:
                self._checkpointing = None

        self._checkpointing = asyncio.create_task(checkpoint(), name="response store checkpoint")

    async def _check_total(self, rows: list[tuple[Any, ...]]) -> None:
        """Once this process has written a 64th of the cap since it last did (every write,
        for records that large), evict past the cap, sparing the rows just written: the file
        stays within the cap plus that much per process. Before the puts are told they landed.
        """
        self._unchecked += sum(row[4] for row in rows)
        if self._unchecked < self.max_total_bytes // EVICT_CHECKS:
            return
        self._unchecked = 0
        keep = [row[0] for row in rows[-UPSERT_MAX_ROWS:]]

        async def evict(db: aiosqlite.Connection) -> None:
            await self._evict(db, keep=keep)

        with contextlib.suppress(StoreUnavailable):  # logged; the rows themselves are stored
            await self._write("put", evict)

    async def get(self, response_id: str, owner: str | None) -> StoredResponse | None:
        if not is_response_id(response_id):
            return None
        await self._after_put(response_id)

        async def read(db: aiosqlite.Connection) -> Any:
            cursor = await db.execute(SELECT, (response_id, owner, self._cutoff()))
            return await cursor.fetchone()

        row = await self._run("get", read)
        if row is None:
            return None
        return StoredResponse(
            id=row[0],
            owner=row[1],
            created_at=row[2],
            status=cast(ResponseStatus, row[3]),
            response=bytes(row[4]),
            input_items=bytes(row[5]),
            history=bytes(row[6]),
        )

    async def delete(self, response_id: str, owner: str | None) -> bool:
        if not is_response_id(response_id):
            return False
        await self._after_put(response_id)

        async def remove(db: aiosqlite.Connection) -> int:
            cursor = await db.execute(
                "DELETE FROM responses WHERE id = ? AND owner IS ? AND created_at > ?",
                (response_id, owner, self._cutoff()),
            )
            return cursor.rowcount

        return await self._write("delete", remove) == 1

    async def update_response(
        self,
        response_id: str,
        response: bytes,
        status: ResponseStatus,
    ) -> bool:
        if not is_response_id(response_id):
            return False
        if status not in STATUSES:
            raise ValueError(f"not a response status: {status!r}")
        await self._after_put(response_id)
        values = {
            "response": response,
            "status": status,
            "id": response_id,
            "cutoff": self._cutoff(),
            "cap": self.max_record_bytes,
        }

        async def update(db: aiosqlite.Connection) -> bool:
            # One statement (autocommit, atomic with the total's triggers): one trip through
            # aiosqlite's thread; the size is computed where the bytes are.
            cursor = await db.execute(UPDATE_RESPONSE, values)
            if cursor.rowcount == 1:
                return True
            cursor = await db.execute(
                "SELECT length(input_items) + length(history) FROM responses "
                "WHERE id = :id AND created_at > :cutoff",
                values,
            )
            row = await cursor.fetchone()
            if row is None:
                return False  # unknown or expired
            raise ResponseTooLarge(int(row[0]) + len(response), self.max_record_bytes)

        updated = await self._run("update", update)
        self._unchecked += len(response)
        if updated and self._unchecked >= self.max_total_bytes // EVICT_CHECKS:
            self._unchecked = 0

            async def evict(db: aiosqlite.Connection) -> None:
                await self._evict(db, keep=[response_id])

            await self._write("update", evict)
        return updated

    async def purge(self) -> int:
        if self._db is None:
            return 0

        async def remove(db: aiosqlite.Connection) -> int:
            cursor = await db.execute(
                "DELETE FROM responses WHERE created_at <= ?", (self._cutoff(),)
            )
            return cursor.rowcount

        async def vacuum(db: aiosqlite.Connection) -> None:
            # Each step of this statement frees one page, and execute() steps once: a script
            # runs it to its end.
            await db.executescript("PRAGMA incremental_vacuum;")

        try:
            removed = await self._write("purge", remove)
            if removed:
                await self._run("vacuum", vacuum)
        except StoreUnavailable:  # logged; the next purge tries again
            return 0
        return removed

    # --- inside ---------------------------------------------------------------------------------

    def _cutoff(self) -> float:
        """A record created at or before this has expired."""
        return self._clock() - self.retention_s

    async def total_bytes(self) -> int:
        """The bytes the records hold together (what max_total_mb caps)."""

        async def read(db: aiosqlite.Connection) -> int:
            cursor = await db.execute("SELECT bytes FROM responses_total")
            row = await cursor.fetchone()
            return int(row[0]) if row is not None else 0

        return await self._run("total", read)

    async def _evict(self, db: aiosqlite.Connection, *, keep: list[str]) -> None:
        """Past the total cap, delete the oldest records (never those in `keep`) until under it."""
        cursor = await db.execute("SELECT bytes FROM responses_total")
        row = await cursor.fetchone()
        excess = (int(row[0]) if row is not None else 0) - self.max_total_bytes
        if excess <= 0:
            return
        victims: list[tuple[str]] = []
        spared = ", ".join("?" * len(keep))
        cursor = await db.execute(
            f"SELECT id, size FROM responses WHERE id NOT IN ({spared}) ORDER BY created_at, rowid",
            keep,
        )
        while excess > 0:
            rows: Iterable[Any] = await cursor.fetchmany(EVICT_BATCH)
            if not rows:
                break
            for victim, size in rows:
                victims.append((victim,))
                excess -= size
                if excess <= 0:
                    break
        await cursor.close()
        await db.executemany("DELETE FROM responses WHERE id = ?", victims)
        log.info(
            "response store: over %d MiB, evicted %d record(s)",
            self.max_total_bytes // MIB,
            len(victims),
        )

    async def _write(self, what: str, body: Callable[[aiosqlite.Connection], Awaitable[T]]) -> T:
        """`body` in one write transaction, rolled back on any failure."""

        async def transaction(db: aiosqlite.Connection) -> T:
            # BEGIN inside the try: a caller cancelled while it waits has still begun (aiosqlite's
            # thread runs it), and the transaction must not stay open on the shared connection.
            try:
                await db.execute("BEGIN IMMEDIATE")
                result = await body(db)
                await db.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):  # none open: nothing to undo
                    await db.execute("ROLLBACK")
                raise
            return result

        return await self._run(what, transaction)

    async def _run(self, what: str, body: Callable[[aiosqlite.Connection], Awaitable[T]]) -> T:
        async with self._lock:
            # Read under the lock: close() may have taken the connection while this waited.
            db = self._db
            if db is None:
                raise StoreUnavailable("The gateway's response store is not open.")
            try:
                return await body(db)
            except (sqlite3.Error, OSError) as exc:
                raise self._unavailable(what, exc) from None

    def _unavailable(self, what: str, exc: BaseException) -> StoreUnavailable:
        """The failure in plain words for the client; its own text (and the path) is logged."""
        log.warning("response store %s: %s failed: %s", self.path, what, exc)
        return StoreUnavailable("The gateway's response store (SQLite) is not answering.")

    async def _purge_forever(self) -> None:
        while True:
            await asyncio.sleep(self.purge_every_s)
            await self.purge()
