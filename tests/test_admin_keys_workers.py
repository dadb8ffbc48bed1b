"""Managed keys across processes: `llms serve --workers 2` sharing the SQLite key store. A limit
holds for the deployment (not per process), a key revoked on one worker is refused on the other
within a second, and keys, spend and the minute's requests survive a restart."""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.test_cli import ThreadedUpstream, start_serve, write_config
from tests.test_workers import config_for, connect_to, worker_pids

ADMIN = "adm-0123456789abcdef"
COST = 0.000013  # the fake's answer: 5 prompt x $1 + 4 completion x $2 per million tokens
PRICES = {"price_in": 1.0, "price_out": 2.0}
REVOKED_WITHIN_S = 1.0


@pytest.fixture(scope="module", name="upstream")
def upstream_fixture() -> Iterator[ThreadedUpstream]:
    server = ThreadedUpstream()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def call(
    conn: http.client.HTTPConnection, method: str, path: str, key: str, body: Any = None
) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    conn.request(method, path, data, headers)
    response = conn.getresponse()
    raw = response.read()
    return response.status, json.loads(raw) if raw else None


def chat(conn: http.client.HTTPConnection, key: str) -> int:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    return call(conn, "POST", "/v1/chat/completions", key, body)[0]


def refused_within(connections: list[http.client.HTTPConnection], secret: str) -> float:
    """Seconds until every connection's process refuses the secret with 401 (polled)."""
    started = time.monotonic()
    pending = list(connections)
    while pending:
        conn = pending[0]
        status = chat(conn, secret)
        if status == 401:
            pending.pop(0)
            continue
        assert status == 200, status
        assert time.monotonic() - started < REVOKED_WITHIN_S, "the revoked key still works"
        time.sleep(0.02)
    return time.monotonic() - started


def spend_of(conn: http.client.HTTPConnection, key_id: str, at_least: float) -> dict[str, Any]:
    deadline = time.monotonic() + 5
    while True:
        status, view = call(conn, "GET", f"/admin/keys/{key_id}", ADMIN)
        assert status == 200, view
        if view["total_spend_usd"] >= at_least - 1e-12 or time.monotonic() > deadline:
            return dict(view)
        time.sleep(0.02)


def test_workers_share_limits_revocation_and_spend(
    upstream: ThreadedUpstream, tmp_path: Path
) -> None:
    data = config_for(upstream, tmp_path, server={"admin_key": ADMIN})
    data["state"]["keys_store"] = f"sqlite:{tmp_path / 'keys.db'}"
    data["providers"]["fake"].update(PRICES)
    config = write_config(tmp_path / "config.json", data)
    served = start_serve(config, tmp_path, "--workers", "2")
    try:
        served.wait_ready(timeout=60)
        first, second = sorted(worker_pids(served.port))
        one, _ = connect_to(served.port, first)
        two, _ = connect_to(served.port, second)
        status, team = call(one, "POST", "/admin/keys", ADMIN, {"name": "team", "rpm": 4})
        assert status == 201, team
        status, gone = call(two, "POST", "/admin/keys", ADMIN, {"name": "gone"})
        assert status == 201, gone
        # rpm 4 for the deployment: per worker it would be 4 each (8 in all).
        statuses = [chat(conn, team["secret"]) for conn in (one, two) * 3]
        assert statuses == [200] * 4 + [429] * 2
        assert (chat(one, gone["secret"]), chat(two, gone["secret"])) == (200, 200)
        status, _ = call(one, "DELETE", f"/admin/keys/{gone['id']}", ADMIN)
        assert status == 200
        refused_within([two, one], gone["secret"])
        before = spend_of(two, team["id"], at_least=4 * COST)
        assert before["total_spend_usd"] == pytest.approx(4 * COST)
        one.close()
        two.close()
    finally:
        served.stop()
    again = start_serve(config, tmp_path, "--workers", "2")
    try:
        again.wait_ready(timeout=60)
        conn = http.client.HTTPConnection("127.0.0.1", again.port, timeout=10)
        after = spend_of(conn, team["id"], at_least=4 * COST)
        assert after["total_spend_usd"] == before["total_spend_usd"]
        assert after["last_used_at"] == before["last_used_at"]
        assert chat(conn, gone["secret"]) == 401
        assert chat(conn, team["secret"]) == 429  # the minute's requests survived too
        # The spend per day, written by both workers, survived the restart too.
        status, series = call(conn, "GET", f"/admin/keys/{team['id']}/spend?days=2", ADMIN)
        assert status == 200, series
        assert [row["spend_usd"] for row in series["data"]] == [0, pytest.approx(4 * COST)]
    finally:
        again.stop()
    log = served.stderr() + served.stdout() + again.stderr() + again.stdout()
    assert team["secret"] not in log and gone["secret"] not in log
