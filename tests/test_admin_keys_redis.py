"""tests/test_admin_keys.py again with `state.redis_url` on a real redis-server: the same admin
API, limits, budgets, expiry, restart and secrecy, through the Redis key store's Lua scripts."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from tests import test_admin_keys
from tests.cluster import MISSING, SKIP_REASON, redis_port_fixture  # noqa: F401 (fixture)
from tests.test_admin_keys import (  # noqa: F401 (collected here too)
    test_a_new_key_with_a_revoked_keys_name_sees_nothing_it_left,
    test_a_resumable_stream_holds_its_slot_until_its_pump_ends,
    test_admin_auth_401_and_403,
    test_bad_bodies_are_400_naming_the_field,
    test_budget_exceeded_lets_a_running_stream_finish,
    test_concurrent_requests_get_exactly_the_limit,
    test_create_list_get_patch_delete,
    test_expiry,
    test_names_are_unique_and_bad_json_is_400,
    test_rpm_and_max_streams_and_patch_live,
    test_spend_survives_a_restart_and_secrets_stay_hidden,
    test_tpm_counts_the_usage_each_answer_reports,
)

pytestmark = pytest.mark.skipif(bool(MISSING), reason=SKIP_REASON)


@pytest.fixture(autouse=True)
def on_redis(
    redis_port: int, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> Iterator[None]:
    client = redis.Redis(port=redis_port, socket_timeout=5)
    client.flushall()
    monkeypatch.setattr(test_admin_keys, "REDIS_URL", f"redis://127.0.0.1:{redis_port}/0")
    yield
    if "bad_bodies" not in request.node.name:  # every other test made a key: in Redis
        assert client.exists("llms:keys:index") or client.keys("llms:keys:lease"), "not on Redis"
    client.close()
