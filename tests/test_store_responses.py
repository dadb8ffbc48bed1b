"""The stored responses: SQLite files in tmp_path and a real redis-server on a loopback port.

The contract tests run on both backends; time is an injected clock, so retention needs no sleep
(except to see Redis expire a key, which takes a fraction of a second).
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio

from cluster.run import find_binary, free_port, kill_group, start_redis, wait_for_redis
from llms.errors import GatewayError
from llms.store import (
    RedisResponseStore,
    ResponseStore,
    ResponseTooLarge,
    SQLiteResponseStore,
    StoredResponse,
    StoreUnavailable,
    is_response_id,
    new_response_id,
    new_response_store,
)
from llms.store.sqlite import prepare

REDIS_SERVER = find_binary("redis-server")
NOW = 1_800_000_000.0
DAY = 86400.0
KIB = 1024


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


def record(
    owner: str | None = "team",
    *,
    id: str | None = None,
    created_at: int = int(NOW),
    size: int = 0,
    status: Any = "completed",
) -> StoredResponse:
    rid = new_response_id() if id is None else id
    return StoredResponse(
        id=rid,
        owner=owner,
        created_at=created_at,
        status=status,
        response=b'{"id": "%s", "object": "response"}' % rid.encode(),
        input_items=b'[{"role": "user", "content": "hi"}]',
        history=b"[" + b"x" * size + b"]",
    )


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    workdir = tmp_path_factory.mktemp("redis")
    port = free_port()
    with (workdir / "redis.out").open("wb") as out:
        proc = start_redis(workdir, port, binary=REDIS_SERVER, log=out)
    try:
        wait_for_redis(port, proc)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        kill_group(proc)


Factory = Callable[..., Awaitable[Any]]


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[Factory]:
    """Opens SQLite stores (default: one file in tmp_path); closes them all at the end."""
    stores: list[SQLiteResponseStore] = []

    async def make(path: Path | str | None = None, **options: Any) -> SQLiteResponseStore:
        store = SQLiteResponseStore(path or tmp_path / "state" / "responses.db", **options)
        await store.start()
        stores.append(store)
        return store

    yield make
    for store in stores:
        await store.close()


@pytest.fixture
async def redis_store(request: pytest.FixtureRequest) -> AsyncIterator[Factory]:
    """Opens Redis stores under one prefix of this test's own (as replicas would share it)."""
    url = request.getfixturevalue("redis_url")
    prefix = f"test:{uuid.uuid4().hex}:"
    stores: list[RedisResponseStore] = []

    async def make(**options: Any) -> RedisResponseStore:
        options.setdefault("prefix", prefix)
        store = RedisResponseStore(url, **options)
        await store.start()
        stores.append(store)
        return store

    yield make
    for store in stores:
        await store.close()


@pytest.fixture(params=["sqlite", "sqlite_behind", "redis"])
def make_store(request: pytest.FixtureRequest) -> Factory:
    """Either backend, for the tests of the contract both follow; SQLite also written behind
    (one gateway process alone on the file: a put returns before its write lands)."""
    if request.param == "sqlite_behind":
        sqlite: Factory = request.getfixturevalue("sqlite_store")
        return functools.partial(sqlite, write_behind=True)
    factory: Factory = request.getfixturevalue(f"{request.param}_store")
    return factory


# --- the contract, on both backends ---------------------------------------------------------


async def test_a_stored_response_reads_back_whole(make_store: Factory) -> None:
    store = await make_store(clock=Clock())
    stored = record(size=100)
    await store.put(stored)
    assert await store.get(stored.id, "team") == stored
    anonymous = record(None, status="queued")
    await store.put(anonymous)
    assert await store.get(anonymous.id, None) == anonymous


async def test_only_the_owner_sees_reads_or_deletes_it(make_store: Factory) -> None:
    store = await make_store(clock=Clock())
    team, anonymous = record("team"), record(None)
    await store.put(team)
    await store.put(anonymous)
    for other in ("other", None, "-", "k:team", "TEAM", "team "):
        assert await store.get(team.id, other) is None, other
        assert not await store.delete(team.id, other), other
    for other in ("team", "-", "k:", "k:-"):
        assert await store.get(anonymous.id, other) is None, other
        assert not await store.delete(anonymous.id, other), other
    assert await store.get(team.id, "team") == team
    assert await store.get(anonymous.id, None) == anonymous


async def test_a_put_replaces_and_a_delete_removes(make_store: Factory) -> None:
    store = await make_store(clock=Clock())
    first = record(status="in_progress")
    await store.put(first)
    second = replace(first, status="completed", response=b'{"v": 2}', history=b"[1, 2]")
    await store.put(second)
    assert await store.get(first.id, "team") == second
    assert await store.delete(first.id, "team")
    assert await store.get(first.id, "team") is None
    assert not await store.delete(first.id, "team")


async def test_update_response_changes_response_and_status_only(make_store: Factory) -> None:
    store = await make_store(clock=Clock())
    queued = record(status="queued")
    await store.put(queued)
    assert await store.update_response(queued.id, b'{"status": "in_progress"}', "in_progress")
    running = await store.get(queued.id, "team")
    assert running == replace(queued, status="in_progress", response=b'{"status": "in_progress"}')
    done = b'{"status": "completed"}'
    assert await store.update_response(queued.id, done, "completed")
    assert await store.get(queued.id, "team") == replace(queued, status="completed", response=done)
    assert not await store.update_response(new_response_id(), done, "completed")
    assert not await store.update_response("no/such id", done, "completed")


async def test_expired_records_are_invisible_at_once(make_store: Factory) -> None:
    clock = Clock()
    store = await make_store(clock=clock, retention_s=60)
    old = record(created_at=int(NOW) - 30)
    await store.put(old)
    clock.now = NOW + 29
    assert await store.get(old.id, "team") == old
    clock.now = NOW + 30
    assert await store.get(old.id, "team") is None
    assert not await store.delete(old.id, "team")
    assert not await store.update_response(old.id, b"{}", "completed")
    # A put of a record already past its retention keeps nothing.
    await store.put(record(id=old.id, created_at=int(NOW) - 60))
    clock.now = NOW
    assert await store.get(old.id, "team") is None


async def test_a_record_over_the_cap_is_a_413_and_nothing_is_kept(make_store: Factory) -> None:
    store = await make_store(clock=Clock(), max_record_mb=4 / 1024)  # 4 KiB
    fits = record(size=3 * KIB)
    await store.put(fits)
    big = record(size=4 * KIB)
    with pytest.raises(ResponseTooLarge) as caught:
        await store.put(big)
    error = caught.value
    assert isinstance(error, GatewayError)
    assert (error.status, error.code, error.type) == (
        413,
        "response_too_large",
        "invalid_request_error",
    )
    assert "store: false" in error.message, error.message
    assert await store.get(big.id, "team") is None
    with pytest.raises(ResponseTooLarge):
        await store.update_response(fits.id, b"r" * 2 * KIB, "completed")
    assert await store.get(fits.id, "team") == fits


@pytest.mark.parametrize(
    "bad", ["", "../x", "resp_*", "resp x", "resp:1", "-resp", "r" * 129, "resp_\u00e9", "resp_\n"]
)
async def test_a_bad_id_is_unknown_and_never_stored(make_store: Factory, bad: str) -> None:
    store = await make_store(clock=Clock())
    assert await store.get(bad, "team") is None
    assert not await store.delete(bad, "team")
    assert not await store.update_response(bad, b"{}", "completed")
    with pytest.raises(ValueError, match="response id"):
        await store.put(record(id=bad))


async def test_an_unknown_id_is_none(make_store: Factory) -> None:
    store = await make_store(clock=Clock())
    assert await store.get(new_response_id(), "team") is None
    assert await store.get("resp_" + "0" * 48, None) is None


async def test_records_that_can_never_be_right_are_refused(make_store: Factory) -> None:
    store = await make_store(clock=Clock())
    with pytest.raises(ValueError, match="owner"):
        await store.put(record(""))
    with pytest.raises(ValueError, match="status"):
        await store.put(record(status="done"))


def test_ids() -> None:
    ids = {new_response_id() for _ in range(100)}
    assert len(ids) == 100
    for rid in ids:
        assert rid.startswith("resp_") and len(rid) == 53 and is_response_id(rid)
    assert is_response_id("resp_abc-DEF_123")
    assert not is_response_id("resp_abc/..")


# --- SQLite ---------------------------------------------------------------------------------


async def test_sqlite_two_workers_share_one_file(sqlite_store: Factory, tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    a, b = await asyncio.gather(sqlite_store(path), sqlite_store(path))
    stored = record()
    await a.put(stored)
    assert await b.get(stored.id, "team") == stored
    assert await b.delete(stored.id, "team")
    assert await a.get(stored.id, "team") is None
    # Both writing at once: every write lands (WAL + busy timeout + BEGIN IMMEDIATE).
    records = [record(size=i) for i in range(100)]
    await asyncio.gather(*(store.put(r) for store, r in zip([a, b] * 50, records, strict=True)))
    for store, r in zip([b, a] * 50, records, strict=True):
        assert await store.get(r.id, "team") == r
    assert await a.total_bytes() == sum(r.size for r in records)
    # Updates read, then write: two workers updating at once never fail half-way.
    await asyncio.gather(
        *(
            store.update_response(r.id, b'{"n": %d}' % i, "completed")
            for i, (store, r) in enumerate(zip([a, b] * 50, records, strict=True))
        )
    )
    for i, r in enumerate(records):
        assert await a.get(r.id, "team") == replace(r, response=b'{"n": %d}' % i)
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)


WORKER = """
import asyncio, sys, time
from llms.store import SQLiteResponseStore, StoredResponse

async def main(path: str, name: str) -> None:
    store = SQLiteResponseStore(path)
    await store.start()
    for i in range(100):
        rid = f"resp_{name}{i}"
        now = int(time.time())
        await store.put(StoredResponse(rid, name, now, "queued", b"{}", b"[]", b"[%d]" % i))
        assert await store.update_response(rid, b'{"done": 1}', "completed")
    await store.close()

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


async def test_sqlite_two_processes_write_one_new_file_at_once(tmp_path: Path) -> None:
    path = tmp_path / "new" / "responses.db"
    root = Path(__file__).parent.parent
    workers = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", WORKER, str(path), name, cwd=root
        )
        for name in ("a", "b")
    ]
    try:
        codes = await asyncio.wait_for(asyncio.gather(*(w.wait() for w in workers)), 60)
    finally:
        for worker in workers:
            if worker.returncode is None:
                worker.kill()
                await worker.wait()
    assert codes == [0, 0]
    store = SQLiteResponseStore(path)
    await store.start()
    try:
        for name in ("a", "b"):
            for i in range(100):
                got = await store.get(f"resp_{name}{i}", name)
                assert got is not None and got.history == b"[%d]" % i, (name, i)
                assert (got.status, got.response) == ("completed", b'{"done": 1}')
        assert await store.total_bytes() == sum(13 + len(b"[%d]" % i) for i in range(100)) * 2
    finally:
        await store.close()


async def test_sqlite_workers_opening_a_new_file_together(
    sqlite_store: Factory, tmp_path: Path
) -> None:
    path = tmp_path / "fresh" / "responses.db"
    stores = await asyncio.gather(*(sqlite_store(path) for _ in range(4)))
    stored = record()
    await stores[0].put(stored)
    assert [await s.get(stored.id, "team") for s in stores] == [stored] * 4


async def test_sqlite_written_behind_a_put_returns_first_and_this_process_waits_for_it(
    sqlite_store: Factory, tmp_path: Path
) -> None:
    """With write_behind a put returns while its write still waits (here for another
    connection's write lock); this store's own reads of the id wait until it lands, another
    connection does not see it before."""
    path = tmp_path / "behind.db"
    store = await sqlite_store(path, write_behind=True)
    kept, gone, changed = record(), record(), record()
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # holds the write lock: the store's write must wait
        for each in (kept, gone, changed):
            await asyncio.wait_for(store.put(each), 2)  # returns although nothing is written
        seen = other.execute("SELECT count(*) FROM responses").fetchone()[0]
        reads = [
            asyncio.create_task(store.get(kept.id, "team")),
            asyncio.create_task(store.delete(gone.id, "team")),
            asyncio.create_task(store.update_response(changed.id, b'{"x": 1}', "failed")),
        ]
        # The write is written on the event loop's thread: busy, it is tried again later
        # rather than waited for there (the loop keeps running other tasks meanwhile).
        ticks = 0
        for _ in range(30):
            await asyncio.sleep(0.01)
            ticks += 1
        assert seen == 0 and not any(task.done() for task in reads) and ticks == 30
        other.execute("ROLLBACK")
        got, deleted, updated = await asyncio.wait_for(asyncio.gather(*reads), 5)
    finally:
        other.close()
    assert (got, deleted, updated) == (kept, True, True)
    assert await store.get(gone.id, "team") is None
    assert await store.get(changed.id, "team") == replace(
        changed, status="failed", response=b'{"x": 1}'
    )


async def test_sqlite_written_behind_puts_wait_to_be_written_together_unless_read(
    sqlite_store: Factory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write-behind store gathers puts before writing them (fewer thread trips on a busy
    gateway); a read of one of them, or close(), ends that pause: nobody waits for it."""
    monkeypatch.setattr("llms.store.sqlite.WRITE_BEHIND_S", 3600.0)
    path = tmp_path / "gathered.db"
    store = await sqlite_store(path, write_behind=True)
    first, second = record(), record()
    await store.put(first)
    await store.put(second)
    await asyncio.sleep(0.2)
    with sqlite3.connect(path) as other:
        assert other.execute("SELECT count(*) FROM responses").fetchone()[0] == 0  # gathering
    assert await asyncio.wait_for(store.get(first.id, "team"), 5) == first
    with sqlite3.connect(path) as other:
        assert other.execute("SELECT count(*) FROM responses").fetchone()[0] == 2  # one batch
    third = record()
    await store.put(third)
    await asyncio.wait_for(store.close(), 5)
    again = await sqlite_store(path)
    assert await again.get(third.id, "team") == third


async def test_sqlite_written_behind_the_wal_is_checkpointed_off_the_loop(
    sqlite_store: Factory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The write-behind connection never checkpoints (it could wait on the disk with the event
    loop); past CHECKPOINT_BYTES the aiosqlite connection does, in its thread."""
    monkeypatch.setattr("llms.store.sqlite.CHECKPOINT_BYTES", 64 * KIB)
    path = tmp_path / "checkpointed.db"
    store = await sqlite_store(path, write_behind=True)
    before = path.stat().st_size
    stored = [record(size=4 * KIB) for _ in range(40)]
    for each in stored:
        await store.put(each)
    assert await store.get(stored[-1].id, "team") == stored[-1]  # written now
    for _ in range(500):
        if path.stat().st_size > before + 100 * KIB:
            break
        await asyncio.sleep(0.01)
    assert path.stat().st_size > before + 100 * KIB  # the pages reached the database file
    with sqlite3.connect(path) as other:
        assert other.execute("SELECT count(*) FROM responses").fetchone()[0] == 40


async def test_sqlite_written_behind_a_close_writes_what_is_queued(tmp_path: Path) -> None:
    path = tmp_path / "behind.db"
    first = SQLiteResponseStore(path, write_behind=True)
    await first.start()
    stored = [record(size=KIB) for _ in range(20)]
    for each in stored:
        await first.put(each)
    await first.close()  # without waiting for anything else
    again = SQLiteResponseStore(path)
    await again.start()
    try:
        assert [await again.get(each.id, "team") for each in stored] == stored
    finally:
        await again.close()


async def test_sqlite_written_behind_a_failed_write_is_logged_not_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "behind.db"
    store = SQLiteResponseStore(path, write_behind=True)
    await store.start()
    lost = record()
    await store.close()  # the write then finds no connection
    await store.put(lost)  # the answer it belongs to is not failed by it
    for _ in range(200):
        if f"response {lost.id} was not stored" in caplog.text:
            break
        await asyncio.sleep(0.01)
    assert f"response {lost.id} was not stored" in caplog.text
    with pytest.raises(StoreUnavailable):
        await store.get(lost.id, "team")  # waits for the failed write, then the closed store


async def test_sqlite_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "responses.db"
    prepare(path)  # as the supervisor would, before the workers
    first = SQLiteResponseStore(path)
    await first.start()
    stored = record(size=KIB)
    await first.put(stored)
    await first.close()
    await first.close()
    with pytest.raises(StoreUnavailable):
        await first.get(stored.id, "team")
    again = SQLiteResponseStore(path)
    await again.start()
    try:
        assert await again.get(stored.id, "team") == stored
        assert await again.total_bytes() == stored.size
    finally:
        await again.close()


async def test_sqlite_expands_home_and_creates_the_directory(
    sqlite_store: Factory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    store = await sqlite_store("~/.llms/responses.db")
    await store.put(record())
    assert (tmp_path / ".llms" / "responses.db").is_file()


async def test_sqlite_purge_deletes_expired_records(sqlite_store: Factory, tmp_path: Path) -> None:
    clock = Clock()
    store = await sqlite_store(clock=clock, retention_s=DAY)
    old, new = record(created_at=int(NOW - DAY + 10)), record(created_at=int(NOW))
    await store.put(old)
    await store.put(new)
    assert await store.purge() == 0
    clock.now = NOW + 10
    assert await store.purge() == 1
    assert await store.total_bytes() == new.size
    with sqlite3.connect(tmp_path / "state" / "responses.db") as db:
        assert db.execute("SELECT id FROM responses").fetchall() == [(new.id,)]


async def test_sqlite_purge_gives_the_space_back(sqlite_store: Factory, tmp_path: Path) -> None:
    path = tmp_path / "responses.db"
    clock = Clock()
    store = await sqlite_store(path, clock=clock, retention_s=60)
    for _ in range(10):
        await store.put(record(size=200 * KIB))

    def file_size() -> int:
        with sqlite3.connect(path) as db:
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return path.stat().st_size

    assert file_size() > 2000 * KIB
    clock.now = NOW + 60
    assert await store.purge() == 10
    assert file_size() < 200 * KIB


async def test_sqlite_purges_periodically(sqlite_store: Factory, tmp_path: Path) -> None:
    clock = Clock()
    store = await sqlite_store(clock=clock, retention_s=60, purge_every_s=0.05)
    await store.put(record())
    clock.now = NOW + 61
    deadline = time.monotonic() + 5
    while await store.total_bytes() and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert await store.total_bytes() == 0
    with sqlite3.connect(tmp_path / "state" / "responses.db") as db:
        assert db.execute("SELECT count(*) FROM responses").fetchone() == (0,)


async def test_sqlite_total_cap_evicts_the_oldest_first(sqlite_store: Factory) -> None:
    store = await sqlite_store(clock=Clock(), max_total_mb=10 / 1024, max_record_mb=4 / 1024)
    records = [record(created_at=int(NOW) - 100 + i, size=3 * KIB) for i in range(5)]
    for r in records:
        await store.put(r)
    # 10 KiB hold three of ~3 KiB: the two oldest went.
    kept = [await store.get(r.id, "team") for r in records]
    assert kept == [None, None, *records[2:]]
    assert await store.total_bytes() <= 10 * KIB
    # A record that grows pushes out others, never itself, though it is the oldest.
    assert await store.update_response(records[2].id, b"r" * 900, "completed")
    kept = [await store.get(r.id, "team") for r in records[2:]]
    assert kept[0] is not None and kept[0].response == b"r" * 900
    assert kept[1:] == [None, records[4]]
    # Nor does a put of a record older than every other.
    older = record(created_at=int(NOW) - 1000, size=3 * KIB)
    await store.put(older)
    kept = [await store.get(r.id, "team") for r in (records[2], records[4], older)]
    assert kept == [None, records[4], older]
    assert await store.total_bytes() <= 10 * KIB


async def test_sqlite_total_follows_every_kind_of_write(
    sqlite_store: Factory, tmp_path: Path
) -> None:
    clock = Clock()
    store = await sqlite_store(clock=clock, retention_s=60)

    async def check() -> None:
        with sqlite3.connect(tmp_path / "state" / "responses.db") as db:
            (total,) = db.execute("SELECT coalesce(sum(size), 0) FROM responses").fetchone()
            (sizes,) = db.execute(
                "SELECT coalesce(sum(length(response) + length(input_items) "
                "+ length(history)), 0) FROM responses"
            ).fetchone()
        assert await store.total_bytes() == total == sizes

    a, b = record(size=100), record(size=200)
    await store.put(a)
    await store.put(b)
    await check()
    await store.put(replace(a, history=b"[]"))
    await check()
    await store.update_response(b.id, b"{" + b" " * 500 + b"}", "completed")
    await check()
    await store.update_response(b.id, b"{}", "completed")
    await check()
    await store.delete(a.id, "team")
    await check()
    clock.now = NOW + 100
    assert await store.purge() == 1
    await check()
    assert await store.total_bytes() == 0


async def test_sqlite_that_cannot_open_is_a_503_in_plain_words(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    store = SQLiteResponseStore(blocker / "responses.db")
    with pytest.raises(StoreUnavailable) as caught:
        await store.start()
    assert caught.value.status == 503
    assert str(tmp_path) not in caught.value.message
    with pytest.raises(StoreUnavailable):
        await store.put(record())
    await store.close()


def test_sqlite_caps_must_leave_room_for_one_record(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="max_record_mb"):
        SQLiteResponseStore(tmp_path / "x.db", max_record_mb=8, max_total_mb=4)


# --- Redis ----------------------------------------------------------------------------------


async def test_redis_keys_expire_with_the_retention(redis_store: Factory) -> None:
    clock = Clock()
    store: RedisResponseStore = await redis_store(clock=clock, retention_s=DAY)
    fresh = record(created_at=int(NOW))
    await store.put(fresh)
    ttl_ms = await store.redis.pttl(store.key(fresh.id))
    assert DAY * 1000 - 5000 < ttl_ms <= DAY * 1000
    # Updates keep the expiry.
    assert await store.update_response(fresh.id, b"{}", "completed")
    assert 0 < await store.redis.pttl(store.key(fresh.id)) <= DAY * 1000
    # A record with 150 ms left: Redis itself drops the key.
    clock.now = NOW + DAY - 0.15
    nearly = record(created_at=int(NOW))
    await store.put(nearly)
    assert 0 < await store.redis.pttl(store.key(nearly.id)) <= 151  # rounded up
    await asyncio.sleep(0.4)
    assert await store.redis.exists(store.key(nearly.id)) == 0
    # An update of a record that is gone does not bring a key back (without an expiry).
    assert not await store.update_response(nearly.id, b"{}", "completed")
    assert await store.redis.exists(store.key(nearly.id)) == 0
    assert await store.purge() == 0


async def test_redis_replicas_share_records(redis_store: Factory) -> None:
    a, b = await redis_store(), await redis_store()
    stored = record(size=KIB)
    await a.put(stored)
    assert await b.get(stored.id, "team") == stored
    assert await b.update_response(stored.id, b'{"done": true}', "completed")
    assert (await a.get(stored.id, "team")).response == b'{"done": true}'  # type: ignore[union-attr]
    assert await a.delete(stored.id, "team")
    assert await b.get(stored.id, "team") is None


async def test_redis_record_is_one_hash_under_the_prefix(redis_store: Factory) -> None:
    store: RedisResponseStore = await redis_store(clock=Clock())
    stored = record("team")
    await store.put(stored)
    keys = [k async for k in store.redis.scan_iter(match=store.prefix + "*")]
    assert keys == [(store.prefix + stored.id).encode()]
    fields = await store.redis.hgetall(store.key(stored.id))
    assert fields[b"owner"] == b"k:team"
    assert set(fields) == {
        b"owner",
        b"created_at",
        b"status",
        b"response",
        b"input_items",
        b"history",
    }


async def test_redis_with_a_client_of_the_callers_own(redis_url: str) -> None:
    client = redis.asyncio.Redis.from_url(redis_url)
    store = RedisResponseStore(redis=client, prefix=f"test:{uuid.uuid4().hex}:")
    await store.start()
    stored = record()
    await store.put(stored)
    await store.close()
    assert await client.exists(store.key(stored.id)) == 1  # the client is still open
    await client.aclose()
    text_client = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
    with pytest.raises(ValueError, match="bytes"):
        RedisResponseStore(redis=text_client)
    await text_client.aclose()


async def test_redis_not_answering_is_a_503_naming_no_address(
    caplog: pytest.LogCaptureFixture,
) -> None:
    port = free_port()  # nobody listens there
    store = RedisResponseStore(f"redis://127.0.0.1:{port}/0")
    try:
        with pytest.raises(StoreUnavailable) as caught:
            await store.start()
        for call in (
            store.put(record()),
            store.get(new_response_id(), "team"),
            store.delete(new_response_id(), "team"),
            store.update_response(new_response_id(), b"{}", "completed"),
        ):
            with pytest.raises(StoreUnavailable) as caught:
                await call
            error = caught.value
            assert (error.status, error.code) == (503, "store_unavailable")
            assert "Redis" in error.message and str(port) not in error.message, error.message
        assert str(port) in caplog.text  # the operator learns where
    finally:
        await store.close()


async def test_the_factory_picks_redis_only_with_a_url(tmp_path: Path) -> None:
    stores: list[ResponseStore] = [
        new_response_store(redis_url=None, sqlite_path=tmp_path / "r.db"),
        new_response_store(redis_url="redis://127.0.0.1:1/0", sqlite_path=tmp_path / "r.db"),
    ]
    assert [type(s) for s in stores] == [SQLiteResponseStore, RedisResponseStore]
    for store in stores:
        await store.close()
    # Written behind only for a process alone on its file (not one of `--workers N`).
    for alone in (False, True):
        store = new_response_store(redis_url=None, sqlite_path=tmp_path / "r.db", alone=alone)
        assert isinstance(store, SQLiteResponseStore) and store.write_behind is alone


async def test_sqlite_a_cancelled_write_leaves_no_transaction_open(sqlite_store: Factory) -> None:
    store = await sqlite_store(clock=Clock())
    kept = record()
    await store.put(kept)
    for delay in range(40):
        task = asyncio.create_task(store.put(record(size=10 * KIB)))
        for _ in range(delay):
            await asyncio.sleep(0)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await store.update_response(kept.id, b'{"n": %d}' % delay, "in_progress")
    assert await store.get(kept.id, "team") == replace(
        kept, status="in_progress", response=b'{"n": 39}'
    )


async def test_redis_out_of_memory_is_a_503_and_keeps_nothing(redis_store: Factory) -> None:
    store: RedisResponseStore = await redis_store()
    await store.redis.config_set("maxmemory-policy", "noeviction")
    used = int((await store.redis.info("memory"))["used_memory"])
    await store.redis.config_set("maxmemory", used + 512 * KIB)
    try:
        big = record(size=1024 * KIB)
        with pytest.raises(StoreUnavailable) as caught:
            await store.put(big)
        assert "refused" in caught.value.message, caught.value.message
    finally:
        await store.redis.config_set("maxmemory", 0)
    assert await store.get(big.id, "team") is None
    assert await store.redis.exists(store.key(big.id)) == 0


def test_ids_made_later_sort_later() -> None:
    """Like OpenAI's, an id starts with its time: a stored response's index entry lands beside
    the last ones (random ids made SQLite rewrite an index page per answer)."""
    ids = [new_response_id() for _ in range(200)]
    times = [i[5:19] for i in ids]  # microseconds (two made in the same one: either order)
    assert times == sorted(times) and len(set(ids)) == 200
    assert all(len(i) == len("resp_") + 48 and is_response_id(i) for i in ids)
    assert len({i[-34:] for i in ids}) == 200  # and 136 random bits after it
