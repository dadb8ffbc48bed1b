"""Embeddings in the gateway's bookkeeping: the request log row, the metrics, a key's models and
limits, the content only when asked."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import aiohttp

from tests.conftest import gateway_config
from tests.telemetry_app import provider, running, samples, scrape, until, value
from tests.upstreams.embeddings import tokens_in
from tests.upstreams.openai import FakeOpenAI, error_script

AUTH = {"Authorization": "Bearer sk-embed-team"}


def rows(path: Path) -> list[dict[str, Any]]:
    with sqlite3.connect(path) as db:
        db.row_factory = sqlite3.Row
        return [dict(row) for row in db.execute("SELECT * FROM requests ORDER BY id")]


def config(fake: FakeOpenAI, db: Path, **state: Any) -> Any:
    keys = [
        {"key": "sk-embed-team", "name": "team", "rpm": 3},
        {"key": "sk-chat-only", "name": "chat", "models": ["chat-model"]},
    ]
    return gateway_config(
        {"fake": provider(fake, {"emb": "up-emb", "bad": "up-bad", "chat-model": "up-chat"})},
        server={"api_keys": keys},
        routing={"max_attempts": 1},
        state={"request_log": f"sqlite:{db}", **state},
    )


async def embed(session: aiohttp.ClientSession, base: str, model: str, **kw: Any) -> Any:
    body = {"model": model, "input": ["hello world", "again"], **kw}
    async with session.post(f"{base}/embeddings", json=body) as resp:
        return resp.status, await resp.json()


async def test_request_log_metrics_and_key(fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    fake_openai.scripts["up-bad"] = error_script(400, {"error": {"message": "bad dimensions"}})
    db = tmp_path / "requests.db"
    tokens = tokens_in("hello world") + tokens_in("again")
    async with running(config(fake_openai, db)) as gw:
        async with aiohttp.ClientSession(headers=AUTH) as session:
            assert (await embed(session, gw.base, "emb"))[0] == 200
            status, error = await embed(session, gw.base, "bad")
            assert status == 400 and error["error"]["message"] == "bad dimensions"
            assert (await embed(session, gw.base, "emb"))[0] == 200
            # The key's rpm (3) counts embeddings too.
            status, error = await embed(session, gw.base, "emb")
            assert status == 429 and error["error"]["code"] == "rate_limit_exceeded"
            found = samples(await scrape(session, gw.root))
        headers = {"Authorization": "Bearer sk-chat-only"}
        async with aiohttp.ClientSession(headers=headers) as session:
            status, error = await embed(session, gw.base, "emb")
            assert status == 403 and error["error"]["code"] == "model_not_allowed"
        await until(lambda: len(rows(db)) == 5)
    ok, failed, _, limited, denied = rows(db)
    assert (ok["model"], ok["provider"], ok["status"], ok["key"]) == ("emb", "fake", 200, "team")
    assert (ok["prompt_tokens"], ok["completion_tokens"], ok["stream"]) == (tokens, 0, 0)
    assert ok["attempts"] == 1 and ok["error_type"] is None
    assert ok["duration_s"] > 0
    assert ok["request_content"] is None  # content is logged only when asked
    assert (failed["status"], failed["error_type"]) == (400, "invalid_request_error")
    assert limited["status"] == 429
    assert (denied["status"], denied["key"]) == (403, "chat")
    assert value(found, "llms_tokens_total", model="emb", kind="prompt") == 2 * tokens
    assert value(found, "llms_requests_total", model="emb", status="200") == 2
    assert value(found, "llms_requests_total", model="bad", status="400") == 1


async def test_content_is_logged_only_when_asked(fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    db = tmp_path / "requests.db"
    async with (
        running(config(fake_openai, db, log_content=True)) as gw,
        aiohttp.ClientSession(headers=AUTH) as session,
    ):
        assert (await embed(session, gw.base, "emb"))[0] == 200
        await until(lambda: len(rows(db)) == 1)
    (row,) = rows(db)
    assert row["request_content"] == '["hello world","again"]'
