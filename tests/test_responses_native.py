"""Responses passthrough: `POST /v1/responses` for a model of an `openai` provider with
`"responses": true` goes to the upstream's own `/v1/responses` (a fake speaking OpenAI's
Responses SSE, checking Bearer auth), and its events are relayed, rewritten only where the
gateway answers for the response (its id, the client's model name, store/background).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import openai
import orjson
import pytest
from aiohttp.test_utils import TestServer

from tests.conftest import gateway_config
from tests.telemetry_app import samples, scrape, until, value
from tests.upstreams.openai import FakeOpenAI, error_script
from tests.upstreams.responses import ENCRYPTED, UPSTREAM_MODEL, frame, responses_events
from tests.upstreams.responses import responses_script as script

Gateway = Callable[..., Awaitable[str]]
KEY = "sk-upstream-responses"


@pytest.fixture
async def upstream() -> AsyncIterator[FakeOpenAI]:
    fake = FakeOpenAI(api_key=KEY)
    server = TestServer(fake.app, host="127.0.0.1")
    await server.start_server()
    fake.base_url = str(server.make_url("/v1"))  # type: ignore[attr-defined]
    yield fake
    await server.close()


def native(fake: FakeOpenAI, **extra: Any) -> dict[str, Any]:
    return {
        "type": "openai",
        "base_url": fake.base_url,  # type: ignore[attr-defined]
        "api_key": KEY,
        "responses": True,
        "models": {"test-model": UPSTREAM_MODEL},
        "timeouts": {"idle_s": 1, "first_token_s": 5, "answer_s": 5},
        **extra,
    }


async def gateway_for(
    make_gateway: Gateway, providers: dict[str, Any], tmp_path: Path, **routing: Any
) -> str:
    config = gateway_config(
        providers,
        routing={"max_attempts": 2, **routing},
        state={"responses": {"store": f"sqlite:{tmp_path / 'responses.db'}"}},
    )
    return str(await make_gateway(config))


def client_of(base: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=base, api_key="unused", max_retries=0)


def events_of(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for block in raw.decode().split("\n\n"):
        if block:
            head, data = block.split("\n")
            out.append((head.removeprefix("event: "), orjson.loads(data.removeprefix("data: "))))
    return out


async def post(base: str, body: dict[str, Any]) -> tuple[int, bytes]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{base}/responses", json=body) as answer,
    ):
        return answer.status, await answer.read()


def assert_numbered(events: list[tuple[str, dict[str, Any]]]) -> None:
    assert [data["sequence_number"] for _, data in events] == list(range(len(events)))
    assert all(name == data["type"] for name, data in events)


async def test_the_upstream_events_are_relayed_with_the_response_rewritten(
    upstream: FakeOpenAI, make_gateway: Gateway, tmp_path: Path
) -> None:
    """Exact bytes: each upstream event as it came but for its sequence number (the same
    here) and, in every Response object, the gateway's id, the client's model and store."""
    upstream.response_scripts[UPSTREAM_MODEL] = script(["Hel", "lo"], reasoning="Think.")
    base = await gateway_for(make_gateway, {"up": native(upstream)}, tmp_path)
    status, raw = await post(base, {"model": "test-model", "input": "hi", "stream": True})
    assert status == 200
    response_id = events_of(raw)[0][1]["response"]["id"]
    created_at = events_of(raw)[0][1]["response"]["created_at"]
    assert response_id.startswith("resp_") and response_id != "resp_upstream"
    expected = []
    for event in responses_events(["Hel", "lo"], reasoning="Think."):
        if "response" in event:
            event["response"].update(
                id=response_id,
                created_at=created_at,
                model="test-model",
                store=True,
                background=False,
                previous_response_id=None,
            )
        expected.append(frame(event))
    assert raw == b"".join(expected)
    [received] = upstream.received
    assert received.path == "/v1/responses"
    assert received.headers["Authorization"] == f"Bearer {KEY}"
    assert received.body["model"] == UPSTREAM_MODEL and received.body["input"] == "hi"
    assert received.body["stream"] is True and received.body["store"] is False
    # The gateway stores the response, so it asks for the reasoning state a later turn needs.
    assert received.body["include"] == ["reasoning.encrypted_content"]


async def test_built_in_tools_and_encrypted_reasoning_round_trip(
    upstream: FakeOpenAI, make_gateway: Gateway, tmp_path: Path
) -> None:
    """openai-python streams a web search and encrypted reasoning; the next turn continues it
    with previous_response_id, and the upstream gets the earlier items verbatim."""
    upstream.response_scripts[UPSTREAM_MODEL] = script(
        ["It is ", "sunny."], reasoning="Search first.", web_search=True
    )
    base = await gateway_for(make_gateway, {"up": native(upstream)}, tmp_path)
    client = client_of(base)
    stream = await client.responses.create(
        model="test-model",
        input="Weather?",
        tools=[{"type": "web_search"}],
        include=["reasoning.encrypted_content"],
        stream=True,
    )
    seen = [event async for event in stream]
    assert [e.sequence_number for e in seen] == list(range(len(seen)))
    final = seen[-1]
    assert final.type == "response.completed"
    response = final.response
    assert response.model == "test-model" and response.output_text == "It is sunny."
    kinds = [item.type for item in response.output]
    assert kinds == ["reasoning", "web_search_call", "message"]
    assert response.output[0].encrypted_content == ENCRYPTED  # type: ignore[union-attr]
    assert response.usage is not None and response.usage.output_tokens == 7
    first = upstream.received[0].body
    assert first["tools"] == [{"type": "web_search"}]
    assert first["include"] == ["reasoning.encrypted_content"]

    again = await client.responses.create(
        model="test-model", input="And tomorrow?", previous_response_id=response.id
    )
    assert again.status == "completed" and again.previous_response_id == response.id
    second = upstream.received[1].body
    assert "previous_response_id" not in second and second["store"] is False
    replayed = second["input"]
    assert replayed[0]["content"][0]["text"] == "Weather?"
    assert replayed[1]["type"] == "reasoning" and replayed[1]["encrypted_content"] == ENCRYPTED
    assert [item["type"] for item in replayed[2:4]] == ["web_search_call", "message"]
    assert replayed[-1] == {"type": "message", "role": "user", "content": "And tomorrow?"}
    stored = await client.responses.retrieve(again.id)
    assert stored.output_text == "It is sunny."  # the upstream answer, kept


@pytest.mark.parametrize(
    ("fault", "end"),
    [("reset", "completed"), (None, "none"), ("stall", "none")],
    ids=["reset", "no-completed", "stall"],
)
async def test_an_upstream_failing_mid_stream_ends_with_response_failed(
    upstream: FakeOpenAI, make_gateway: Gateway, tmp_path: Path, fault: str | None, end: str
) -> None:
    writes = script(["one ", "two"], end=end).writes
    cut = len(writes) - 3 if fault == "reset" else len(writes)
    upstream.response_scripts[UPSTREAM_MODEL] = script([], fault=fault)
    upstream.response_scripts[UPSTREAM_MODEL].writes = writes[:cut]
    base = await gateway_for(make_gateway, {"up": native(upstream)}, tmp_path)
    status, raw = await post(base, {"model": "test-model", "input": "hi", "stream": True})
    assert status == 200
    events = events_of(raw)
    assert_numbered(events)
    names = [name for name, _ in events]
    assert "response.output_text.delta" in names and "response.completed" not in names
    name, last = events[-1]
    assert name == "response.failed"
    assert last["response"]["status"] == "failed" and last["response"]["model"] == "test-model"
    assert last["response"]["error"]["code"] == "server_error"


async def test_malformed_bytes_mid_stream_end_with_response_failed(
    upstream: FakeOpenAI, make_gateway: Gateway, tmp_path: Path
) -> None:
    upstream.response_scripts[UPSTREAM_MODEL] = script(["one ", "two"])
    writes = list(upstream.response_scripts[UPSTREAM_MODEL].writes)
    writes.insert(5, b"event: response.output_text.delta\ndata: {not json\n\n")
    upstream.response_scripts[UPSTREAM_MODEL].writes = writes
    base = await gateway_for(make_gateway, {"up": native(upstream)}, tmp_path)
    status, raw = await post(base, {"model": "test-model", "input": "hi", "stream": True})
    events = events_of(raw)
    assert status == 200
    assert_numbered(events)
    assert events[-1][0] == "response.failed"
    assert "response.completed" not in [name for name, _ in events]


async def test_before_output_a_failure_falls_back_to_a_translated_provider(
    upstream: FakeOpenAI, make_gateway: Gateway, tmp_path: Path
) -> None:
    """The native provider answers 503: the chat provider serving the same model answers,
    translated, and the client never sees the first one."""
    upstream.response_scripts[UPSTREAM_MODEL] = error_script(
        503, {"error": {"message": "overloaded", "type": "server_error"}}
    )
    chat = FakeOpenAI()
    server = TestServer(chat.app, host="127.0.0.1")
    await server.start_server()
    try:
        translated = {
            "type": "openai",
            "base_url": str(server.make_url("/v1")),
            "models": {"test-model": "chat-model"},
        }
        base = await gateway_for(
            make_gateway, {"up": native(upstream), "chat": translated}, tmp_path
        )
        response = await client_of(base).responses.create(model="test-model", input="hi")
        assert response.output_text == "Hello, world!" and response.model == "test-model"
        assert [r.path for r in chat.received] == ["/v1/chat/completions"]
        assert [r.path for r in upstream.received] == ["/v1/responses"]
    finally:
        await server.close()


async def test_a_built_in_tool_is_refused_only_by_translated_providers(
    upstream: FakeOpenAI, make_gateway: Gateway, tmp_path: Path
) -> None:
    chat = {
        "type": "openai",
        "base_url": upstream.base_url,  # type: ignore[attr-defined]
        "api_key": KEY,
        "models": {"chat-only": "chat-model"},
    }
    base = await gateway_for(make_gateway, {"up": native(upstream), "chat": chat}, tmp_path)
    client = client_of(base)
    with pytest.raises(openai.BadRequestError) as refused:
        await client.responses.create(model="chat-only", input="hi", tools=[{"type": "web_search"}])
    assert refused.value.param == "tools[0].type"
    assert upstream.received == []
    answer = await client.responses.create(
        model="test-model", input="hi", tools=[{"type": "web_search"}]
    )
    assert answer.output_text == "Hello, world!"
    assert upstream.received[0].body["tools"] == [{"type": "web_search"}]


async def test_non_stream_answers_the_upstream_response_under_the_gateway_id(
    upstream: FakeOpenAI, make_gateway: Gateway, tmp_path: Path
) -> None:
    upstream.response_scripts[UPSTREAM_MODEL] = script(["Hi"], reasoning="Brief.")
    base = await gateway_for(make_gateway, {"up": native(upstream)}, tmp_path)
    client = client_of(base)
    response = await client.responses.create(model="test-model", input="hi", store=True)
    assert response.id.startswith("resp_") and response.id != "resp_upstream"
    assert response.model == "test-model" and response.output_text == "Hi"
    assert response.output[0].type == "reasoning"
    assert upstream.received[0].body["stream"] is False
    stored = await client.responses.retrieve(response.id)
    assert stored.model_dump() == response.model_dump()


async def test_a_background_response_on_a_native_provider_resumes(
    upstream: FakeOpenAI, make_gateway: Gateway, tmp_path: Path
) -> None:
    """The gateway's created and queued open the log; the upstream's events follow, numbered
    on; a reader resuming after event N gets the rest; the stored response is the upstream's."""
    upstream.response_scripts[UPSTREAM_MODEL] = script(["a", "b", "c"], reasoning="r")
    base = await gateway_for(make_gateway, {"up": native(upstream)}, tmp_path)
    client = client_of(base)
    stream = await client.responses.create(
        model="test-model", input="hi", background=True, stream=True
    )
    seen = [event async for event in stream]
    assert [e.sequence_number for e in seen] == list(range(len(seen)))
    types = [e.type for e in seen]
    assert types[:3] == ["response.created", "response.queued", "response.in_progress"]
    assert types.count("response.created") == 1 and types[-1] == "response.completed"
    response_id = seen[0].response.id  # type: ignore[union-attr]
    assert seen[-1].response.id == response_id  # type: ignore[union-attr]
    assert seen[-1].response.background is True  # type: ignore[union-attr]
    resumed = await client.responses.retrieve(response_id, stream=True, starting_after=4)
    rest = [event async for event in resumed]
    assert [e.sequence_number for e in rest] == [e.sequence_number for e in seen[5:]]
    stored = await client.responses.retrieve(response_id)
    assert stored.status == "completed" and stored.output_text == "abc"
    assert stored.output[0].type == "reasoning"
    assert "background" not in upstream.received[0].body


async def test_usage_is_recorded_from_the_upstream_response_completed(
    upstream: FakeOpenAI, make_gateway: Gateway, tmp_path: Path
) -> None:
    """Metrics count the tokens of the upstream's `response.completed` (12 in, 7 out)."""
    upstream.response_scripts[UPSTREAM_MODEL] = script(["Hi"])
    base = await gateway_for(make_gateway, {"up": native(upstream)}, tmp_path)
    status, _ = await post(base, {"model": "test-model", "input": "hi", "stream": True})
    assert status == 200
    root = base.removesuffix("/v1")

    async def counted() -> bool:
        async with aiohttp.ClientSession() as session:
            found = samples(await scrape(session, root))
        prompt = value(found, "llms_tokens_total", model="test-model", kind="prompt")
        return prompt == 12 and (
            value(found, "llms_tokens_total", model="test-model", kind="completion") == 7
        )

    await until(counted)


async def test_an_upstream_400_names_the_clients_own_field(
    upstream: FakeOpenAI, make_gateway: Gateway, tmp_path: Path
) -> None:
    """A passthrough upstream's `param` is already the client's field: never renamed as a
    translated request's would be."""
    error = {"message": "Invalid name.", "type": "invalid_request_error", "param": "tools[1].name"}
    upstream.response_scripts[UPSTREAM_MODEL] = error_script(400, {"error": error})
    base = await gateway_for(make_gateway, {"up": native(upstream)}, tmp_path)
    tools: Any = [
        {"type": "web_search"},
        {"type": "function", "name": "f", "parameters": {"type": "object"}},
    ]
    with pytest.raises(openai.BadRequestError) as refused:
        await client_of(base).responses.create(model="test-model", input="hi", tools=tools)
    assert refused.value.param == "tools[1].name" and "Invalid name." in refused.value.message
