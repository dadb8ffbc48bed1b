"""``python -m bench.responses_store``: the SQLite response store alone, what one put costs.

Issue 12's stored Responses path costs more CPU time than its instruction count says; this
separates the store's part. It puts ``--puts`` records of a 50-token streamed answer (the size
the Responses scenario stores) into a fresh SQLite file, ``--concurrency`` at a time, each after
a random pause of up to ``--jitter-ms`` (answers end at scattered moments), in alternating rounds
of three kinds on the same machine:

- ``store``: ``SQLiteResponseStore.put`` (aiosqlite's thread; puts waiting together go in one
  multi-row upsert);
- ``sqlite``: the same upserts straight through ``sqlite3`` in this thread, in batches of the size
  the store's batches averaged (SQLite's own work, without any thread trip);
- ``floor``: the same coroutines and pauses with no write (what the harness itself costs).

Reported per put: user and system CPU of this process (all threads, ``getrusage``), voluntary
context switches, and the median over rounds. ``store - floor`` is what storing an answer
costs; ``sqlite`` of that is SQLite's own. Every stored record is read back at the end.
CPU figures on a busy machine are noisy: compare kinds within a round (``uptime`` is printed).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import resource
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite
import orjson

from llms.store import SQLiteResponseStore, StoredResponse, new_response_id
from llms.store.sqlite import OPEN_STATEMENTS, _upsert

KINDS = ("store", "sqlite", "floor")
Row = tuple[Any, ...]
T = TypeVar("T")


def answer_record() -> StoredResponse:
    """A stored 50-token answer to the benchmark's prompt, as the gateway stores it."""
    rid = new_response_id()
    now = int(time.time())
    text = " ".join(f"token{i}" for i in range(50))
    output = [
        {
            "id": "msg_" + os.urandom(24).hex(),
            "type": "message",
            "role": "assistant",
            "status": "completed",
            "content": [{"type": "output_text", "text": text, "annotations": []}],
        }
    ]
    response = {
        "id": rid,
        "object": "response",
        "created_at": now,
        "status": "completed",
        "model": "bench-c50-d0-f0-s8",
        "output": output,
        "usage": {"input_tokens": 8, "output_tokens": 50, "total_tokens": 58},
        "store": True,
        "background": False,
        "tools": [],
        "text": {"format": {"type": "text"}},
    }
    prompt = [{"type": "message", "role": "user", "content": "Say something for the benchmark."}]
    return StoredResponse(
        id=rid,
        owner=None,
        created_at=now,
        status="completed",
        response=orjson.dumps(response),
        input_items=orjson.dumps(prompt),
        history=orjson.dumps({"earlier": []}),
    )


def as_row(record: StoredResponse) -> Row:
    return (
        record.id,
        record.owner,
        record.created_at,
        record.status,
        record.size,
        record.response,
        record.input_items,
        record.history,
    )


class Counted(SQLiteResponseStore):
    """The store, counting the batches its puts went in (to size the ``sqlite`` kind's)."""

    batches = 0

    async def _run(self, what: str, body: Callable[[aiosqlite.Connection], Awaitable[T]]) -> T:
        self.batches += what == "put"
        return await super()._run(what, body)


async def _round(kind: str, path: Path, args: argparse.Namespace, batch: int) -> dict[str, float]:
    records = [answer_record() for _ in range(args.puts)]
    store = Counted(path)
    await store.start()
    sqlite_db = sqlite3.connect(path, isolation_level=None) if kind == "sqlite" else None
    if sqlite_db is not None:
        for statement in OPEN_STATEMENTS:
            sqlite_db.execute(statement)
    gate = asyncio.Semaphore(args.concurrency)
    waiting: list[Row] = []

    async def one(record: StoredResponse) -> None:
        async with gate:
            await asyncio.sleep(random.random() * args.jitter_ms / 1000)
            if kind == "store":
                await store.put(record)
            elif sqlite_db is not None:
                waiting.append(as_row(record))
                if len(waiting) >= batch:
                    rows = waiting[:]
                    waiting.clear()
                    sqlite_db.execute(_upsert(len(rows)), [v for row in rows for v in row])

    try:
        before = resource.getrusage(resource.RUSAGE_SELF)
        await asyncio.gather(*(one(r) for r in records))
        if sqlite_db is not None and waiting:
            sqlite_db.execute(_upsert(len(waiting)), [v for row in waiting for v in row])
        after = resource.getrusage(resource.RUSAGE_SELF)
        if kind != "floor":
            for record in records:
                if await store.get(record.id, None) != record:
                    raise AssertionError(f"{kind}: {record.id} was not stored whole")
    finally:
        if sqlite_db is not None:
            sqlite_db.close()
        await store.close()
    n = args.puts
    return {
        "user_us": (after.ru_utime - before.ru_utime) / n * 1e6,
        "sys_us": (after.ru_stime - before.ru_stime) / n * 1e6,
        "switches": (after.ru_nvcsw - before.ru_nvcsw) / n,
        "puts_per_batch": n / store.batches if store.batches else 0.0,
    }


async def run(args: argparse.Namespace) -> dict[str, dict[str, float]]:
    runs: dict[str, list[dict[str, float]]] = {kind: [] for kind in KINDS}
    batch = 1
    with tempfile.TemporaryDirectory(prefix="llms-bench-store-") as tmp:
        for number in range(args.rounds):
            for kind in KINDS:
                figures = await _round(kind, Path(tmp) / f"{kind}{number}.db", args, batch)
                if kind == "store":
                    batch = max(1, round(figures["puts_per_batch"]))
                runs[kind].append(figures)
                cpu = figures["user_us"] + figures["sys_us"]
                per_batch = figures["puts_per_batch"]
                batched = f", {per_batch:.1f} puts a batch" if kind == "store" else ""
                print(
                    f"round {number} {kind:6}: {cpu:6.1f} us CPU per put "
                    f"(user {figures['user_us']:.1f}, sys {figures['sys_us']:.1f}), "
                    f"{figures['switches']:.2f} switches per put{batched}",
                    flush=True,
                )
    return {
        kind: {key: statistics.median(r[key] for r in rows) for key in rows[0]}
        for kind, rows in runs.items()
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.responses_store", description=__doc__)
    parser.add_argument("--puts", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--jitter-ms", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    print("uptime:", " ".join(Path("/proc/loadavg").read_text().split()[:3]))
    medians = asyncio.run(run(args))
    floor = medians["floor"]["user_us"] + medians["floor"]["sys_us"]
    for kind, figures in medians.items():
        cpu = figures["user_us"] + figures["sys_us"]
        print(f"median {kind:6}: {cpu:6.1f} us CPU per put, {cpu - floor:+6.1f} over the floor")
    print("uptime:", " ".join(Path("/proc/loadavg").read_text().split()[:3]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
