"""Background responses across replicas: two gateways share a real redis-server (streams and
the response store); what one starts, the other resumes, polls and cancels."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.conftest import gateway_config
from tests.test_hardening_memory import RedisServer, needs_redis
from tests.test_hardening_memory import redis_server as redis_server  # the fixture
from tests.test_responses_api import client_of, slow_script, until_status
from tests.upstreams.openai import FakeOpenAI

pytestmark = [needs_redis, pytest.mark.process]

Gateway = Callable[..., Awaitable[str]]


async def replicas(
    make_gateway: Gateway, fake: FakeOpenAI, redis: RedisServer, tmp_path: Path
) -> tuple[openai.AsyncOpenAI, openai.AsyncOpenAI]:
    provider: dict[str, Any] = {
        "type": "openai",
        "base_url": fake.base_url,  # type: ignore[attr-defined]
        "api_key": "sk-upstream",
        "models": {"test-model": "up-model"},
    }
    clients = []
    for name in ("a", "b"):
        state = {
            "redis_url": redis.url,
            # With redis_url the store is Redis: the file is never opened.
            "responses": {"store": f"sqlite:{tmp_path / name / 'unused.db'}"},
        }
        config = gateway_config({"fake": provider}, routing={"max_attempts": 1}, state=state)
        clients.append(client_of(str(await make_gateway(config))))
    return clients[0], clients[1]


async def test_a_background_stream_started_on_one_replica_resumes_on_the_other(
    fake_openai: FakeOpenAI, make_gateway: Gateway, redis_server: RedisServer, tmp_path: Path
) -> None:
    pieces = [f"w{i} " for i in range(10)]
    fake_openai.scripts["up-model"] = slow_script(pieces, 0.05)
    a, b = await replicas(make_gateway, fake_openai, redis_server, tmp_path)
    stream = await a.responses.create(model="test-model", input="hi", background=True, stream=True)
    first: list[Any] = []
    async for event in stream:
        first.append(event)
        if event.type == "response.output_text.delta" and len(first) > 5:
            break
    await stream.close()
    response_id = first[0].response.id
    rest = [
        event
        async for event in await b.responses.retrieve(
            response_id, stream=True, starting_after=first[-1].sequence_number
        )
    ]
    events = first + rest
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert events[-1].type == "response.completed"
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == "".join(pieces)
    done, _ = await until_status(b, response_id, {"completed"})
    assert done.output_text == text
    # The conversation continues on either replica.
    follow = await b.responses.create(
        model="test-model", input="and then?", previous_response_id=response_id
    )
    messages = fake_openai.received[-1].body["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert messages[1]["content"] == text
    assert (await a.responses.retrieve(follow.id)).id == follow.id


async def test_a_background_response_is_cancelled_from_the_other_replica(
    fake_openai: FakeOpenAI, make_gateway: Gateway, redis_server: RedisServer, tmp_path: Path
) -> None:
    fake_openai.scripts["up-model"] = slow_script([f"{i} " for i in range(200)], 0.05)
    a, b = await replicas(make_gateway, fake_openai, redis_server, tmp_path)
    queued = await a.responses.create(model="test-model", input="hi", background=True)
    await until_status(b, queued.id, {"in_progress"})
    cancelled = await b.responses.cancel(queued.id)
    assert cancelled.status == "cancelled"
    for _ in range(100):
        if fake_openai.gone:
            break
        await asyncio.sleep(0.02)
    assert fake_openai.gone, "the upstream request was not closed"
    assert (await a.responses.retrieve(queued.id)).status == "cancelled"
