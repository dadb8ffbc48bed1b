"""tests/test_admin_spend.py again on a real redis-server: the spend history as a hash per key
per UTC day (fields: its hours) that expires with the retention and goes with its key."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from llms.managed import history
from tests import test_admin_keys
from tests.cluster import MISSING, SKIP_REASON, redis_port_fixture  # noqa: F401 (fixture)
from tests.test_admin_keys import Gateway, admin, chat, config, create, spend_of
from tests.test_admin_spend import (  # noqa: F401 (collected here too)
    COST,
    test_bad_days_are_400_naming_days,
    test_spend_of_an_unknown_key_is_404_and_needs_the_admin_key,
    test_spend_per_day_against_the_budget_survives_a_restart,
)
from tests.upstreams.openai import FakeOpenAI

pytestmark = pytest.mark.skipif(bool(MISSING), reason=SKIP_REASON)


@pytest.fixture(autouse=True)
def on_redis(redis_port: int, monkeypatch: pytest.MonkeyPatch) -> Iterator[redis.Redis]:
    client = redis.Redis(port=redis_port, socket_timeout=5)
    client.flushall()
    monkeypatch.setattr(test_admin_keys, "REDIS_URL", f"redis://127.0.0.1:{redis_port}/0")
    yield client
    assert client.exists("llms:keys:index") or client.keys("llms:keys:lease"), "not on Redis"
    client.close()


async def test_the_days_hashes_expire_and_go_with_their_key(
    fake_openai: FakeOpenAI, make_gateway: Gateway, tmp_path: Path, on_redis: redis.Redis
) -> None:
    base = await make_gateway(config(fake_openai, tmp_path))
    made = await create(base)
    assert (await chat(base, made["secret"]))[0] == 200
    await spend_of(base, made["id"], at_least=COST)
    days = on_redis.keys(f"llms:keys:sd:{made['id']}:*")
    assert len(days) == 1
    ttl = on_redis.ttl(days[0])
    assert history.RETENTION_DAYS * history.DAY_S < ttl <= (history.RETENTION_DAYS + 1) * 86400
    [(hour, usd)] = on_redis.hgetall(days[0]).items()
    assert 0 <= int(hour) < 24 and float(usd) == pytest.approx(COST)
    assert (await admin(base, "DELETE", f"/keys/{made['id']}"))[0] == 200
    assert on_redis.keys(f"llms:keys:sd:{made['id']}:*") == []
