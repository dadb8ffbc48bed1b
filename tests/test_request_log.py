"""The request log: a row per chat request in SQLite, written off the request path, bounded."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from llms.server import keys
from llms.telemetry.record import RequestRecord
from llms.telemetry.usage import RequestLog
from tests.conftest import gateway_config
from tests.telemetry_app import chat, provider, running, samples, scrape, until, value
from tests.upstreams.openai import FakeOpenAI, error_script, text_script


def rows(path: Path, where: str = "1") -> list[dict[str, Any]]:
    with sqlite3.connect(path) as db:
        db.row_factory = sqlite3.Row
        return [
            dict(row) for row in db.execute(f"SELECT * FROM requests WHERE {where} ORDER BY id")
        ]


def files_bytes(folder: Path) -> bytes:
    return b"".join(path.read_bytes() for path in sorted(folder.iterdir()))


def config(fake: FakeOpenAI, db: Path | None, **state: Any) -> Any:
    return gateway_config(
        {"fake": provider(fake, {"m": "up", "e": "err-up"}, api_key="sk-upstream-log-secret")},
        server={"api_keys": [{"key": "sk-gateway-log-secret", "name": "team-a"}]},
        routing={"max_attempts": 1},
        state={"request_log": None if db is None else f"sqlite:{db}", **state},
    )


AUTH = {"Authorization": "Bearer sk-gateway-log-secret"}


@pytest.mark.parametrize("queue", [10_000, 8], ids=["roomy-queue", "tiny-queue"])
async def test_1000_concurrent_streams_are_all_logged_or_counted(
    fake_openai: FakeOpenAI, tmp_path: Path, queue: int
) -> None:
    fake_openai.scripts["up"] = text_script(["a", "b"])
    db = tmp_path / "requests.db"
    total = 1000
    async with running(config(fake_openai, db, request_log_queue=queue)) as gw:
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector, headers=AUTH) as session:
            results = await asyncio.gather(
                *(chat(session, gw.base, "m", stream=True) for _ in range(total))
            )
            assert all(
                status == 200 and body.endswith(b"data: [DONE]\n\n") for status, body in results
            )
            request_log = gw.app[keys.REQUEST_LOG]
            assert request_log is not None
            await until(lambda: len(gw.app[keys.ACTIVE]) == 0)
            await request_log.flush()
            written = len(rows(db))
            assert written + request_log.dropped == total
            found = samples(await scrape(session, gw.root))
            assert value(found, "llms_request_log_dropped_total") == request_log.dropped
            assert value(found, "llms_requests_total") == total
    if queue == 10_000:
        assert request_log.dropped == 0
    # After shutdown too: nothing is lost between the queue and the file.
    assert len(rows(db)) + request_log.dropped == total


async def test_a_paced_streams_finish_reason_is_logged(
    fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    """Each chunk its own read (a paced upstream): the finish reason, which arrives alone in
    the last batch, is the row's (the generation reads a one-chunk batch's without a call)."""
    fake_openai.scripts["up"] = text_script(["a", "b"], finish="length", delay_s=0.02)
    db = tmp_path / "requests.db"
    async with running(config(fake_openai, db)) as gw, aiohttp.ClientSession(headers=AUTH) as s:
        status, body = await chat(s, gw.base, "m", stream=True)
        assert status == 200 and b'"finish_reason":"length"' in body
    [row] = rows(db)
    assert row["finish_reason"] == "length"


async def test_rows_hold_the_request_and_not_its_content(
    fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    fake_openai.scripts["up"] = text_script(["secret ", "answer"])
    fake_openai.scripts["err-up"] = error_script(400, {"error": {"message": "nope"}})
    db = tmp_path / "requests.db"
    async with running(config(fake_openai, db)) as gw, aiohttp.ClientSession(headers=AUTH) as s:
        assert (await chat(s, gw.base, "m", stream=True))[0] == 200
        assert (await chat(s, gw.base, "m"))[0] == 200
        assert (await chat(s, gw.base, "e", stream=True))[0] == 400
    ok_stream, ok_plain, failed = rows(db)
    assert ok_stream["key"] == "team-a" and ok_stream["model"] == "m"
    assert ok_stream["provider"] == "fake" and ok_stream["status"] == 200
    assert ok_stream["stream"] == 1 and ok_plain["stream"] == 0
    assert (ok_stream["prompt_tokens"], ok_stream["completion_tokens"]) == (5, 2)
    assert ok_stream["finish_reason"] == "stop" and ok_stream["attempts"] == 1
    assert ok_stream["stream_id"].startswith("chatcmpl") and ok_stream["request_id"]
    assert 0 < ok_stream["ttft_s"] <= ok_stream["duration_s"]
    assert ok_stream["tokens_per_s"] > 0
    assert abs(ok_stream["time"] - time.time()) < 600
    assert ok_stream["error_type"] is None and ok_stream["cost_micro_usd"] is None
    assert (failed["status"], failed["error_type"], failed["attempts"]) == (
        400,
        "invalid_request_error",
        1,
    )
    assert failed["ttft_s"] is None
    for row in (ok_stream, ok_plain, failed):
        assert row["request_content"] is None and row["answer_content"] is None
    raw = files_bytes(tmp_path)
    for needle in (b"secret answer", b"sk-gateway-log-secret", b"sk-upstream-log-secret"):
        assert needle not in raw


async def test_responses_and_messages_rows_are_named_by_their_answers(
    fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    """A Responses row's stream id is the response's id, a Messages row's the message's: what
    the client saw, so a log row and a client's report can be matched."""
    fake_openai.scripts["up"] = text_script(["Hi", "!"])
    db = tmp_path / "requests.db"
    async with running(config(fake_openai, db)) as gw, aiohttp.ClientSession(headers=AUTH) as s:
        async with s.post(
            f"{gw.base}/responses", json={"model": "m", "input": "hi", "store": False}
        ) as resp:
            assert resp.status == 200
            response = await resp.json()
        async with s.post(
            f"{gw.base}/messages",
            json={"model": "m", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]},
        ) as resp:
            assert resp.status == 200
            message = await resp.json()
        await until(lambda: len(rows(db)) == 2)
    on_responses, on_messages = rows(db)
    assert response["id"].startswith("resp_") and message["id"].startswith("msg_")
    assert on_responses["stream_id"] == response["id"]
    assert on_messages["stream_id"] == message["id"]


@pytest.mark.parametrize("resumable", [False, True])
async def test_content_is_logged_only_when_asked(
    fake_openai: FakeOpenAI, tmp_path: Path, resumable: bool
) -> None:
    fake_openai.scripts["up"] = text_script(["Hello", ", ", "world"])
    db = tmp_path / "requests.db"
    headers = {**AUTH, **({"X-Stream-Resumable": "true"} if resumable else {})}
    async with (
        running(config(fake_openai, db, log_content=True)) as gw,
        aiohttp.ClientSession(headers=headers) as session,
    ):
        assert (await chat(session, gw.base, "m", stream=True))[0] == 200
        await until(lambda: len(rows(db)) == 1)
    (row,) = rows(db)
    assert row["request_content"] == '[{"role":"user","content":"hi"}]'
    assert row["answer_content"] == "Hello, world"
    assert row["stream"] == (2 if resumable else 1)


async def test_retention_prunes_old_rows(fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    db = tmp_path / "requests.db"
    async with (
        running(config(fake_openai, db, request_log_retention_days=30)) as gw,
        aiohttp.ClientSession(headers=AUTH) as session,
    ):
        assert (await chat(session, gw.base, "m", stream=True))[0] == 200
    day = 86400.0
    now = time.time()
    with sqlite3.connect(db) as conn:
        for age_days in (45, 31, 29, 1):
            conn.execute(
                "INSERT INTO requests (time, model, status) VALUES (?, 'old', 200)",
                (now - age_days * day,),
            )
    assert len(rows(db, "model = 'old'")) == 4
    # Pruned when the gateway starts (and every hour after).
    async with running(config(fake_openai, db, request_log_retention_days=30)) as gw:
        request_log = gw.app[keys.REQUEST_LOG]
        assert request_log is not None
        assert [round((now - r["time"]) / day) for r in rows(db, "model = 'old'")] == [29, 1]
        assert len(rows(db, "model = 'm'")) == 1
        # Two days later the 29-day-old row is past the retention too.
        assert await request_log.prune(now=now + 2 * day) == 1
        assert len(rows(db, "model = 'old'")) == 1


async def test_disabled_log(fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    async with running(config(fake_openai, None)) as gw, aiohttp.ClientSession(headers=AUTH) as s:
        assert gw.app[keys.REQUEST_LOG] is None
        assert (await chat(s, gw.base, "m", stream=True))[0] == 200
        assert (await chat(s, gw.base, "m"))[0] == 200
        async with s.get(f"{gw.root}/api/usage") as resp:
            assert resp.status == 404
            assert (await resp.json())["error"]["code"] == "request_log_disabled"

        async def counted() -> bool:
            return value(samples(await scrape(s, gw.root, **AUTH)), "llms_requests_total") == 2

        await until(counted)
    assert not files_bytes(tmp_path)


async def test_a_full_queue_drops_and_counts(tmp_path: Path) -> None:
    dropped: list[int] = []
    request_log = RequestLog(
        tmp_path / "r.db", retention_days=None, capacity=5, prices={}, on_drop=dropped.append
    )
    loop = asyncio.get_running_loop()

    def record(i: int) -> RequestRecord:
        return RequestRecord(f"req{i}", "m", True, loop.time(), time.time(), ended=loop.time())

    request_log.finish(record(-1))  # before start: not open, dropped
    await request_log.start()
    for i in range(8):  # no await in between: the writer cannot run, the queue fills at 5
        request_log.finish(record(i))
    await request_log.flush()
    await request_log.stop()
    request_log.finish(record(99))  # after stop: dropped too
    assert request_log.dropped == 1 + 3 + 1 == sum(dropped)
    assert [r["request_id"] for r in rows(tmp_path / "r.db")] == [f"req{i}" for i in range(5)]


async def test_an_unwritable_log_does_not_stop_the_gateway(
    fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    async with (
        running(config(fake_openai, blocker / "requests.db")) as gw,
        aiohttp.ClientSession(headers=AUTH) as session,
    ):
        assert gw.app[keys.REQUEST_LOG] is not None
        assert (await chat(session, gw.base, "m", stream=True))[0] == 200

        async def dropped() -> bool:
            found = samples(await scrape(session, gw.root))
            return value(found, "llms_request_log_dropped_total") == 1

        await until(dropped)


async def test_rows_bind_only_their_values_and_keep_their_order(tmp_path: Path) -> None:
    """A row's Nones are left out of its INSERT (SQLite makes them NULL): what is stored is
    the row itself, and rows of different columns, mixed in one batch, keep their order."""
    request_log = RequestLog(
        tmp_path / "r.db",
        retention_days=None,
        capacity=100,
        prices={"priced": (1.5, None)},
        on_drop=lambda _: None,
        log_content=True,
    )
    loop = asyncio.get_running_loop()
    made: list[tuple[object, ...]] = []
    await request_log.start()
    for i in range(12):
        now = loop.time()
        record = RequestRecord(f"req{i}", "m", i % 2 == 0, now, time.time(), ended=now + 0.5)
        if i % 3 == 0:
            record.provider, record.key, record.first_output = "priced", "team", now + 0.1
            record.usage = {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}
            record.prompt_content, record.answer_parts = '[{"role":"user"}]', ["a", "b"]
        if i % 4 == 1:
            record.status, record.error_type, record.error_code = 502, "server_error", None
        made.append(request_log.row_of(record))
        request_log.finish(record)  # no await in between: one batch of several shapes
    await request_log.flush()
    await request_log.stop()
    with sqlite3.connect(tmp_path / "r.db") as db:
        stored = db.execute("SELECT * FROM requests ORDER BY id").fetchall()
    assert [row[1:] for row in stored] == made  # without the id
    assert len({tuple(value is None for value in row) for row in made}) == 4  # shapes
