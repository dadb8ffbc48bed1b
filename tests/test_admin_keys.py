"""The admin API and managed keys, in process: auth (401/403), the key's life (create, list, get,
PATCH live, DELETE), limits, budgets (budget_exceeded), expiry, spend kept across a restart, and
a secret that never shows after its creation."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from llms.config import parse_config
from llms.errors import ConfigError
from tests.conftest import gateway_config
from tests.test_http_errors import assert_error_shape, request
from tests.upstreams.openai import FakeOpenAI, Script, sse, text_script
from tests.upstreams.openai import chunk as up_chunk

ADMIN = "adm-0123456789abcdef"
# Set by tests/test_admin_keys_redis.py, which runs these tests again on a real Redis.
REDIS_URL: str | None = None
Gateway = Callable[..., Awaitable[str]]
MSG = [{"role": "user", "content": "hi"}]


def config(
    fake: FakeOpenAI,
    tmp: Path,
    *,
    request_log: bool = False,
    state: dict[str, Any] | None = None,
    **server: Any,
) -> Any:
    state = {"keys_store": f"sqlite:{tmp / 'keys.db'}", **(state or {})}
    if REDIS_URL is not None:
        state["redis_url"] = REDIS_URL
    if request_log:
        state["request_log"] = f"sqlite:{tmp / 'requests.db'}"
    return gateway_config(
        {
            "fake": {
                "type": "openai",
                "base_url": fake.base_url,  # type: ignore[attr-defined]
                "models": {"m": "up-model", "other": "up-model", "stall": "stall-up"},
                # $ per million tokens: each answer (5 prompt + 4 completion) costs $0.000013.
                "price_in": 1.0,
                "price_out": 2.0,
            }
        },
        server={
            "admin_key": ADMIN,
            "api_keys": [
                {"key": "sk-config", "name": "cfg"},
                {"key": "sk-llms-a-config-key-of-that-shape", "name": "shaped"},
            ],
            **server,
        },
        routing={"max_attempts": 1},
        state=state,
    )


def root(base: str) -> str:
    return base.removesuffix("/v1")


async def admin(base: str, method: str, path: str, body: Any = None, key: str = ADMIN) -> Any:
    raw = None if body is None else orjson.dumps(body)
    status, headers, data = await request(
        method, f"{root(base)}/admin{path}", raw, Authorization=f"Bearer {key}"
    )
    return status, headers, data


async def create(base: str, **fields: Any) -> dict[str, Any]:
    status, _, raw = await admin(base, "POST", "/keys", {"name": "team", **fields})
    assert status == 201, raw
    return dict(orjson.loads(raw))


async def chat(base: str, key: str, *, model: str = "m", stream: bool = False) -> Any:
    body = orjson.dumps({"model": model, "messages": MSG, "stream": stream})
    return await request("POST", f"{base}/chat/completions", body, Authorization=f"Bearer {key}")


async def test_admin_auth_401_and_403(
    fake_openai: FakeOpenAI, make_gateway: Gateway, tmp_path: Path
) -> None:
    base = await make_gateway(config(fake_openai, tmp_path))
    secret = (await create(base))["secret"]
    url = f"{root(base)}/admin/keys"
    status, headers, raw = await request("GET", url)
    assert status == 401
    assert "admin key" in assert_error_shape(status, headers, raw)["message"]
    for wrong in ("nope", "sk-llms-" + "x" * 43):
        status, headers, raw = await request("GET", url, Authorization=f"Bearer {wrong}")
        assert status == 401
        assert assert_error_shape(status, headers, raw)["code"] == "invalid_api_key"
    for api_key in ("sk-config", secret):  # a gateway API key: known, but not for /admin
        status, headers, raw = await request("GET", url, None, **{"x-api-key": api_key})
        assert status == 403, raw
        error = assert_error_shape(status, headers, raw)
        assert (error["type"], error["code"]) == ("permission_error", "admin_key_required")
    # The admin key is not an API key.
    assert (await chat(base, ADMIN))[0] == 401


async def test_create_list_get_patch_delete(
    fake_openai: FakeOpenAI, make_gateway: Gateway, tmp_path: Path
) -> None:
    base = await make_gateway(config(fake_openai, tmp_path))
    made = await create(
        base,
        models=["m"],
        rpm=10,
        budget_usd=5,
        budget_period="month",
        expires_at="2999-01-01T00:00:00Z",
    )
    secret = made.pop("secret")
    assert secret.startswith("sk-llms-") and len(secret) > 40
    assert made["name"] == "team" and made["models"] == ["m"] and made["rpm"] == 10
    assert made["expires_at"] == 32472144000  # 2999-01-01T00:00:00Z
    assert (made["spend_usd"], made["remaining_budget_usd"], made["last_used_at"]) == (0, 5, None)
    status, _, raw = await admin(base, "GET", "/keys")
    assert status == 200
    assert orjson.loads(raw)["data"] == [made]
    assert secret.encode() not in raw and secret[8:].encode() not in raw
    status, _, raw = await admin(base, "GET", f"/keys/{made['id']}")
    assert (status, orjson.loads(raw)) == (200, made)
    # The key works, within its models.
    assert (await chat(base, secret))[0] == 200
    status, headers, raw = await chat(base, secret, model="other")
    assert status == 403
    assert assert_error_shape(status, headers, raw)["code"] == "model_not_allowed"
    status, _, raw = await admin(
        base, "PATCH", f"/keys/{made['id']}", {"models": None, "rpm": None}
    )
    assert status == 200
    changed = orjson.loads(raw)
    assert (changed["models"], changed["rpm"], changed["budget_usd"]) == (None, None, 5)
    assert changed["last_used_at"] is not None
    assert (await chat(base, secret, model="other"))[0] == 200  # the change holds at once
    # Revoked: refused at once; gone from the list.
    status, _, raw = await admin(base, "DELETE", f"/keys/{made['id']}")
    assert (status, orjson.loads(raw)["deleted"]) == (200, True)
    status, headers, raw = await chat(base, secret)
    assert status == 401
    assert assert_error_shape(status, headers, raw)["code"] == "invalid_api_key"
    assert orjson.loads((await admin(base, "GET", "/keys"))[2])["data"] == []
    for method in ("GET", "PATCH", "DELETE"):
        status, headers, raw = await admin(
            base, method, f"/keys/{made['id']}", {} if method == "PATCH" else None
        )
        assert status == 404
        assert assert_error_shape(status, headers, raw)["param"] == "id"
    assert (await chat(base, "sk-config"))[0] == 200  # config keys keep working
    assert (await chat(base, "sk-llms-a-config-key-of-that-shape"))[0] == 200


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": "x", "rpm": 0}, "rpm"),
        ({"name": "x", "tpm": "5"}, "tpm"),
        ({"name": "x", "max_streams": True}, "max_streams"),
        ({"name": "x", "budget_usd": -1}, "budget_usd"),
        ({"name": "x", "budget_period": "week"}, "budget_period"),
        ({"name": "x", "expires_at": "tomorrow"}, "expires_at"),
        ({"name": "x", "expires_at": "2030-01-01T00:00:00"}, "expires_at"),
        ({"name": "x", "models": "m"}, "models"),
        ({"name": "x", "secret": "mine"}, "secret"),
    ],
)
async def test_bad_bodies_are_400_naming_the_field(
    fake_openai: FakeOpenAI, make_gateway: Gateway, tmp_path: Path, body: Any, param: str
) -> None:
    base = await make_gateway(config(fake_openai, tmp_path))
    status, headers, raw = await admin(base, "POST", "/keys", body)
    assert status == 400, raw
    error = assert_error_shape(status, headers, raw)
    assert (error["type"], error["param"]) == ("invalid_request_error", param)


async def test_names_are_unique_and_bad_json_is_400(
    fake_openai: FakeOpenAI, make_gateway: Gateway, tmp_path: Path
) -> None:
    base = await make_gateway(config(fake_openai, tmp_path))
    await create(base)
    for name in ("team", "cfg"):  # a managed key's name, a config key's name
        status, headers, raw = await admin(base, "POST", "/keys", {"name": name})
        assert status == 409
        assert assert_error_shape(status, headers, raw)["param"] == "name"
    status, headers, raw = await request(
        "POST", f"{root(base)}/admin/keys", b"{nope", Authorization=f"Bearer {ADMIN}"
    )
    assert status == 400
    assert assert_error_shape(status, headers, raw)["code"] == "invalid_json"


async def test_rpm_and_max_streams_and_patch_live(
    fake_openai: FakeOpenAI, make_gateway: Gateway, tmp_path: Path
) -> None:
    fake_openai.scripts["stall-up"] = Script(
        writes=sse(up_chunk({"role": "assistant", "content": "x"})), fault="stall"
    )
    base = await make_gateway(config(fake_openai, tmp_path))
    made = await create(base, rpm=2)
    secret = made["secret"]
    assert (await chat(base, secret))[0] == 200
    assert (await chat(base, secret, stream=True))[0] == 200
    status, headers, raw = await chat(base, secret)
    assert status == 429
    error = assert_error_shape(status, headers, raw)
    assert (error["code"], "2 requests per minute (rpm); 2 were made" in error["message"]) == (
        "rate_limit_exceeded",
        True,
    )
    assert 1 <= int(headers["Retry-After"]) <= 61
    assert len(fake_openai.received) == 2  # the refused request never reached the upstream
    await admin(base, "PATCH", f"/keys/{made['id']}", {"rpm": 4, "max_streams": 1})
    async with aiohttp.ClientSession() as session:
        response = await session.post(
            f"{base}/chat/completions",
            data=orjson.dumps({"model": "stall", "messages": MSG, "stream": True}),
            headers={"Authorization": f"Bearer {secret}"},
        )
        assert response.status == 200
        await response.content.readline()
        status, headers, raw = await chat(base, secret)
        assert status == 429  # one stream is running: max_streams
        assert "max_streams" in assert_error_shape(status, headers, raw)["message"]
        response.close()


async def test_budget_exceeded_lets_a_running_stream_finish(
    fake_openai: FakeOpenAI, make_gateway: Gateway, tmp_path: Path
) -> None:
    fake_openai.scripts["up-model"] = text_script(["a", "b", "c", "d"])  # 5 + 4 tokens
    base = await make_gateway(config(fake_openai, tmp_path))
    made = await create(base, budget_usd=0.00002, budget_period="day")
    secret = made["secret"]
    async with aiohttp.ClientSession() as session:
        # A stream admitted under budget...
        response = await session.post(
            f"{base}/chat/completions",
            data=orjson.dumps({"model": "m", "messages": MSG, "stream": True}),
            headers={"Authorization": f"Bearer {secret}"},
        )
        assert response.status == 200
        assert (await chat(base, secret))[0] == 200  # $0.000013 spent
        assert (await spend_of(base, made["id"]))["spend_usd"] >= 0.000013
        # ...finishes whatever the spend now.
        body = await response.read()
        assert body.endswith(b"data: [DONE]\n\n")
    view = await spend_of(base, made["id"], at_least=0.000026)
    assert view["spend_usd"] == pytest.approx(0.000026)
    assert view["remaining_budget_usd"] == 0
    status, headers, raw = await chat(base, secret)
    assert status == 429
    error = assert_error_shape(status, headers, raw)
    assert (error["type"], error["code"]) == ("rate_limit_error", "budget_exceeded")
    assert int(headers["Retry-After"]) <= 86400  # the next UTC day
    # A bigger budget lets it through again.
    await admin(base, "PATCH", f"/keys/{made['id']}", {"budget_usd": 1})
    assert (await chat(base, secret))[0] == 200


async def spend_of(base: str, key_id: str, at_least: float = 0.0) -> dict[str, Any]:
    """The key's view once its spend reached `at_least` (a release is written just after the
    answer's end)."""
    deadline = time.monotonic() + 5
    while True:
        view = dict(orjson.loads((await admin(base, "GET", f"/keys/{key_id}"))[2]))
        if view["spend_usd"] >= at_least - 1e-12 or time.monotonic() > deadline:
            return view
        await asyncio.sleep(0.02)


async def test_expiry(fake_openai: FakeOpenAI, make_gateway: Gateway, tmp_path: Path) -> None:
    base = await make_gateway(config(fake_openai, tmp_path))
    made = await create(base, expires_at=int(time.time()) + 3600)
    assert (await chat(base, made["secret"]))[0] == 200
    await admin(base, "PATCH", f"/keys/{made['id']}", {"expires_at": int(time.time()) - 1})
    status, headers, raw = await chat(base, made["secret"])
    assert status == 401
    assert assert_error_shape(status, headers, raw)["code"] == "expired_api_key"


async def test_spend_survives_a_restart_and_secrets_stay_hidden(
    fake_openai: FakeOpenAI, make_gateway: Gateway, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    cfg = config(fake_openai, tmp_path, request_log=True)
    base = await make_gateway(cfg)
    made = await create(base, budget_usd=1)
    secret = made["secret"]
    assert (await chat(base, secret))[0] == 200
    assert (await chat(base, secret, stream=True))[0] == 200
    before = await spend_of(base, made["id"], at_least=0.000026)
    status, _, metrics = await request("GET", f"{root(base)}/metrics")
    assert status == 200
    again = await make_gateway(cfg)  # a second gateway on the same files: a restart
    after = dict(orjson.loads((await admin(again, "GET", f"/keys/{made['id']}"))[2]))
    assert after["total_spend_usd"] == before["total_spend_usd"] == pytest.approx(0.000026)
    assert (await chat(again, secret))[0] == 200
    await spend_of(again, made["id"], at_least=0.000039)
    await asyncio.sleep(0.3)  # the request log's writer lingers 50 ms
    rows = sqlite3.connect(tmp_path / "requests.db").execute("SELECT * FROM requests").fetchall()
    assert len(rows) >= 3 and "team" in {row[3] for row in rows}
    for where, text in (
        ("/metrics", metrics.decode()),
        ("the logs", caplog.text),
        ("the request log", repr(rows)),
        (
            "the key store",
            files_text(tmp_path, "keys.db*"),
        ),
    ):
        assert secret not in text, where
        assert secret[8:20] not in text, where


def files_text(folder: Path, pattern: str) -> str:
    return b"".join(p.read_bytes() for p in folder.glob(pattern)).decode("latin-1")


async def test_concurrent_requests_get_exactly_the_limit(
    fake_openai: FakeOpenAI, make_gateway: Gateway, tmp_path: Path
) -> None:
    # Admissions arriving together share transactions (group commit) and still count one by one.
    base = await make_gateway(config(fake_openai, tmp_path))
    made = await create(base, rpm=5)
    statuses = await asyncio.gather(*(chat(base, made["secret"]) for _ in range(12)))
    assert sorted(status for status, _, _ in statuses) == [200] * 5 + [429] * 7


async def test_tpm_counts_the_usage_each_answer_reports(
    fake_openai: FakeOpenAI, make_gateway: Gateway, tmp_path: Path
) -> None:
    fake_openai.scripts["up-model"] = text_script(["a", "b", "c", "d"])  # 5 + 4 = 9 tokens
    base = await make_gateway(config(fake_openai, tmp_path))
    made = await create(base, tpm=20)
    for n in (1, 2, 3):  # 0, 9, 18 tokens used before each: under 20, admitted
        assert (await chat(base, made["secret"], stream=n == 2))[0] == 200
        await spend_of(base, made["id"], at_least=n * 0.000013)  # its release was written
    status, headers, raw = await chat(base, made["secret"])
    assert status == 429
    error = assert_error_shape(status, headers, raw)
    assert "20 tokens per minute (tpm); 27 were used in the last 60 s" in error["message"]
    assert 1 <= int(headers["Retry-After"]) <= 61


def test_config_admin_key_and_keys_store() -> None:
    providers = {"p": {"type": "openai", "base_url": "http://127.0.0.1:1/v1", "models": ["m"]}}

    def parse(server: dict[str, Any], state: dict[str, Any] | None = None) -> Any:
        data = {"providers": providers, "server": server, "state": state or {}}
        return parse_config(data, source="c", env={"ADMIN": ADMIN})

    config = parse({"admin_key": "$ADMIN"})
    assert (config.server.admin_key, config.state.keys_store) == (ADMIN, "sqlite:~/.llms/keys.db")
    assert parse({}).server.admin_key is None  # off unless asked
    unset = parse({"admin_key": "$NOT_SET"})
    assert unset.server.admin_key is None
    assert "server.admin_key: $NOT_SET is not set; the admin API is off" in unset.notes
    with pytest.raises(ConfigError, match=r"server\.admin_key: expected at least 16"):
        parse({"admin_key": "short"})
    with pytest.raises(ConfigError, match=r"state\.keys_store: expected \"sqlite:<path>\""):
        parse({}, {"keys_store": "postgres://x"})


async def test_a_resumable_stream_holds_its_slot_until_its_pump_ends(
    fake_openai: FakeOpenAI, make_gateway: Gateway, tmp_path: Path
) -> None:
    fake_openai.scripts["stall-up"] = Script(
        writes=sse(up_chunk({"role": "assistant", "content": "x"})), fault="stall"
    )
    base = await make_gateway(config(fake_openai, tmp_path, state={"resume_grace_s": 1}))
    made = await create(base, max_streams=1)
    async with aiohttp.ClientSession() as session:
        response = await session.post(
            f"{base}/chat/completions",
            data=orjson.dumps({"model": "stall", "messages": MSG, "stream": True}),
            headers={"Authorization": f"Bearer {made['secret']}", "X-Stream-Resumable": "true"},
        )
        assert response.status == 200
        await response.content.readline()
        response.close()  # the reader leaves; the pump waits for a resume during the grace
    status, headers, raw = await chat(base, made["secret"])
    assert status == 429
    assert "max_streams" in assert_error_shape(status, headers, raw)["message"]
    deadline = time.monotonic() + 15
    while (await chat(base, made["secret"]))[0] == 429:  # the grace ran out: the slot is freed
        assert time.monotonic() < deadline, "the stream slot was never freed"
        await asyncio.sleep(0.05)


async def test_a_new_key_with_a_revoked_keys_name_sees_nothing_it_left(
    fake_openai: FakeOpenAI, make_gateway: Gateway, tmp_path: Path
) -> None:
    """Stored responses and resumable streams belong to the managed key's id, not its name:
    a name freed by a revocation may be given again, to someone else."""
    stored = {"responses": {"store": f"sqlite:{tmp_path / 'responses.db'}"}}
    base = await make_gateway(config(fake_openai, tmp_path, state=stored))
    first = await create(base, name="team")
    old = first["secret"]
    body = orjson.dumps({"model": "m", "input": "hi"})
    status, _, raw = await request("POST", f"{base}/responses", body, Authorization=f"Bearer {old}")
    assert status == 200, raw
    response_id = orjson.loads(raw)["id"]
    url = f"{base}/responses/{response_id}"
    assert (await request("GET", url, Authorization=f"Bearer {old}"))[0] == 200
    assert (await admin(base, "DELETE", f"/keys/{first['id']}"))[0] == 200
    new = (await create(base, name="team"))["secret"]
    status, headers, raw = await request("GET", url, Authorization=f"Bearer {new}")
    assert status == 404, raw
    assert "not found" in assert_error_shape(status, headers, raw)["message"]
