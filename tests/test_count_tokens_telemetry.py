"""POST /v1/messages/count_tokens in the gateway's bookkeeping: the key's rpm and models, the
request log row (its own endpoint, the provider asked, an upstream's failure behind an estimate),
its own metric family (never the chat requests'), and a request log of the previous schema."""

from __future__ import annotations

import contextlib
import sqlite3
import time
from pathlib import Path
from typing import Any

import aiohttp

from tests.conftest import gateway_config
from tests.telemetry_app import running, samples, scrape, until, value
from tests.test_responses_api import started
from tests.upstreams import anthropic as anthropic_fake

AUTH = {"Authorization": "Bearer sk-count-team"}
ENDPOINT = "/v1/messages/count_tokens"
REQUEST: Any = {"messages": [{"role": "user", "content": "What is the weather in Paris?"}]}


def rows(path: Path) -> list[dict[str, Any]]:
    with sqlite3.connect(path) as db:
        db.row_factory = sqlite3.Row
        return [dict(row) for row in db.execute("SELECT * FROM requests ORDER BY id")]


def config(url: str, db: Path) -> Any:
    keys = [
        {"key": "sk-count-team", "name": "team", "rpm": 3},
        {"key": "sk-other", "name": "other", "models": ["other-model"]},
    ]
    upstream = {
        "type": "anthropic",
        "base_url": url,
        "api_key": anthropic_fake.API_KEY,
        "models": {"m": anthropic_fake.MODEL, "broken": "claude-broken", "other-model": "o"},
    }
    return gateway_config(
        {"up": upstream},
        server={"api_keys": keys},
        routing={"max_attempts": 1},
        state={"request_log": f"sqlite:{db}"},
    )


async def count(session: aiohttp.ClientSession, root: str, model: str) -> tuple[int, Any, str]:
    async with session.post(f"{root}{ENDPOINT}", json={"model": model, **REQUEST}) as resp:
        return resp.status, await resp.json(), resp.headers.get("X-Token-Count", "")


async def test_counts_are_limited_logged_and_metered(tmp_path: Path) -> None:
    fake = anthropic_fake.FakeAnthropic()
    fake.scripts["claude-broken"] = anthropic_fake.error_script(500, "api_error", "Internal")
    db = tmp_path / "requests.db"
    async for url in started(fake, ""):
        async with running(config(url, db)) as gw:
            async with aiohttp.ClientSession(headers=AUTH) as session:
                status, answer, how = await count(session, gw.root, "m")
                exact = anthropic_fake.count_of({**REQUEST, "model": anthropic_fake.MODEL})
                assert (status, answer, how) == (200, {"input_tokens": exact}, "exact")
                # The upstream fails: an estimate, and the record says whose failure it was.
                status, answer, how = await count(session, gw.root, "broken")
                assert (status, how) == (200, "estimate") and answer["input_tokens"] > 0
                assert (await count(session, gw.root, "m"))[0] == 200
                # The key's rpm (3) counts token counts too; the error in Anthropic's shape.
                status, error, _ = await count(session, gw.root, "m")
                assert status == 429 and error["type"] == "error"
                assert error["error"]["type"] == "rate_limit_error"
                found = samples(await scrape(session, gw.root))
            async with aiohttp.ClientSession(headers={"Authorization": "Bearer sk-other"}) as s:
                status, error, _ = await count(s, gw.root, "m")
                assert status == 403 and error["error"]["type"] == "permission_error"
            await until(lambda: len(rows(db)) == 5)
    assert [r.path for r in fake.received] == [ENDPOINT] * 3  # the refused ones never left
    ok, failed, _, limited, denied = rows(db)
    assert {row["endpoint"] for row in rows(db)} == {ENDPOINT}
    assert (ok["model"], ok["provider"], ok["status"], ok["key"]) == ("m", "up", 200, "team")
    assert (ok["attempts"], ok["error_type"], ok["stream"]) == (1, None, 0)
    # A count uses no tokens: none are logged (and none are priced or charged to a budget).
    assert (ok["prompt_tokens"], ok["completion_tokens"], ok["cost_micro_usd"]) == (None,) * 3
    assert (failed["model"], failed["provider"], failed["status"]) == ("broken", "up", 200)
    assert (failed["error_type"], failed["attempts"]) == ("server_error", 1)
    assert (limited["status"], limited["error_code"]) == (429, "rate_limit_exceeded")
    assert (denied["status"], denied["key"], denied["provider"]) == (403, "other", None)

    def counted(model: str, provider: str, status: str, result: str) -> float:
        labels = {"model": model, "provider": provider, "status": status, "result": result}
        return value(found, "llms_token_counts_total", **labels)

    assert counted("m", "up", "200", "exact") == 2
    assert counted("broken", "up", "200", "estimate") == 1
    assert counted("m", "none", "429", "none") == 1
    errors = value(found, "llms_errors_total", model="broken", provider="up", type="server_error")
    assert errors == 1
    # Counts are not chat requests: the chat families never hear of them.
    assert not [key for key in found if key[0] == "llms_requests_total"]


async def test_a_request_log_of_the_previous_schema_gains_the_endpoint(tmp_path: Path) -> None:
    db = tmp_path / "requests.db"
    with contextlib.closing(sqlite3.connect(db)) as old:  # version 1: all but `endpoint`
        old.execute(
            "CREATE TABLE requests (id INTEGER PRIMARY KEY, time REAL NOT NULL, request_id TEXT, "
            "key TEXT, model TEXT, provider TEXT, status INTEGER, stream INTEGER, ttft_s REAL, "
            "duration_s REAL, prompt_tokens INTEGER, completion_tokens INTEGER, "
            "tokens_per_s REAL, finish_reason TEXT, error_type TEXT, error_code TEXT, "
            "attempts INTEGER, stream_id TEXT, disconnected INTEGER, cost_micro_usd REAL, "
            "request_content TEXT, answer_content TEXT)"
        )
        row = (time.time() - 60, "old", "m")  # recent: retention keeps it
        old.execute("INSERT INTO requests (time, request_id, model) VALUES (?, ?, ?)", row)
        old.execute("PRAGMA user_version = 1")
        old.commit()
    fake = anthropic_fake.FakeAnthropic()
    async for url in started(fake, ""):
        async with (
            running(config(url, db)) as gw,
            aiohttp.ClientSession(headers=AUTH) as session,
        ):
            assert (await count(session, gw.root, "m"))[0] == 200
            await until(lambda: len(rows(db)) == 2)
    before, after = rows(db)
    assert (before["request_id"], before["endpoint"]) == ("old", None)
    assert (after["model"], after["endpoint"]) == ("m", ENDPOINT)
    with sqlite3.connect(db) as reopened:
        assert reopened.execute("PRAGMA user_version").fetchone() == (2,)
