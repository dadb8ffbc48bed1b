"""Managed keys across two replicas sharing Redis (real redis-server, real `llms serve`
processes): a limit and a budget hold for both, a PATCH on one is seen by the other, a key
revoked on one is refused on the other within a second."""

from __future__ import annotations

import http.client

import pytest

from tests.cluster import (
    MISSING,
    MODELS,
    SKIP_REASON,
    ClusterFactory,
    ThreadedUpstream,
    redis_port_fixture,  # noqa: F401 (fixtures)
    start_cluster_fixture,  # noqa: F401
    upstream_fixture,  # noqa: F401
)
from tests.test_admin_keys_workers import ADMIN, COST, PRICES, call, chat, refused_within, spend_of

pytestmark = pytest.mark.skipif(bool(MISSING), reason=SKIP_REASON)


def test_replicas_share_limits_budget_and_revocation_through_redis(
    upstream: ThreadedUpstream, start_cluster: ClusterFactory
) -> None:
    provider = {"type": "openai", "base_url": upstream.base_url, "models": MODELS, **PRICES}
    cluster = start_cluster(server={"admin_key": ADMIN}, providers={"fake": provider})
    a = http.client.HTTPConnection("127.0.0.1", cluster.a.port, timeout=10)
    b = http.client.HTTPConnection("127.0.0.1", cluster.b.port, timeout=10)
    status, team = call(a, "POST", "/admin/keys", ADMIN, {"name": "team", "rpm": 3})
    assert status == 201, team
    assert call(b, "GET", "/admin/keys", ADMIN)[1]["data"][0]["id"] == team["id"]
    # rpm 3 for the deployment: per replica it would be 3 each.
    statuses = [chat(conn, team["secret"]) for conn in (a, b) * 3]
    assert statuses == [200] * 3 + [429] * 3
    status, view = call(b, "PATCH", f"/admin/keys/{team['id']}", ADMIN, {"rpm": 4})
    assert (status, view["rpm"]) == (200, 4)
    assert chat(a, team["secret"]) == 200  # raised on b, seen by a
    # A budget for two answers: spent on a and b, refused on either.
    status, paid = call(b, "POST", "/admin/keys", ADMIN, {"name": "paid", "budget_usd": 1.5 * COST})
    assert status == 201, paid
    assert chat(a, paid["secret"]) == 200
    spend_of(b, paid["id"], at_least=COST)
    assert chat(b, paid["secret"]) == 200  # under budget when it started
    view = spend_of(a, paid["id"], at_least=2 * COST)
    assert view["spend_usd"] == pytest.approx(2 * COST)
    assert view["remaining_budget_usd"] == 0
    # The spend per day, written on a and on b, read on either.
    for conn in (a, b):
        status, series = call(conn, "GET", f"/admin/keys/{paid['id']}/spend?days=3", ADMIN)
        assert status == 200, series
        assert [row["spend_usd"] for row in series["data"]] == [0, 0, pytest.approx(2 * COST)]
        assert [row["budget_usd"] for row in series["data"]] == [1.5 * COST] * 3
    for conn in (a, b):
        status, body = call(
            conn,
            "POST",
            "/v1/chat/completions",
            paid["secret"],
            {"model": "m", "messages": [{"role": "user", "content": "hi"}]},
        )
        assert (status, body["error"]["code"]) == (429, "budget_exceeded")
    status, _ = call(b, "DELETE", f"/admin/keys/{team['id']}", ADMIN)
    assert status == 200
    refused_within([a, b], team["secret"])
    log = cluster.logs()
    assert team["secret"] not in log and paid["secret"] not in log
