"""POST /v1/responses through the real gateway, driven by openai-python's own Responses client.

Every upstream protocol answers (fake OpenAI-compatible, Ollama, Anthropic and Gemini servers on
loopback); stored responses live in a real SQLite file.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import openai
import orjson
import pydantic
import pytest
from aiohttp.test_utils import TestServer

from tests.conftest import gateway_config
from tests.upstreams import anthropic as anthropic_fake
from tests.upstreams import gemini as gemini_fake
from tests.upstreams import ollama as ollama_fake
from tests.upstreams.openai import FakeOpenAI, Script, chunk, error_script, sse, usage_chunk

Gateway = Callable[..., Awaitable[str]]


async def started(fake: FakeOpenAI, path: str = "/v1") -> AsyncIterator[str]:
    server = TestServer(fake.app, host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url(path))
    finally:
        await server.close()


@pytest.fixture
async def upstream() -> AsyncIterator[FakeOpenAI]:
    fake = FakeOpenAI()
    async for url in started(fake):
        fake.base_url = url  # type: ignore[attr-defined]
        yield fake


def openai_provider(fake: FakeOpenAI) -> dict[str, Any]:
    return {
        "type": "openai",
        "base_url": fake.base_url,  # type: ignore[attr-defined]
        "api_key": "sk-upstream",
        "models": {"test-model": "up-model"},
        "timeouts": {"idle_s": 3, "first_token_s": 5, "answer_s": 5},
    }


async def gateway_for(
    make_gateway: Gateway, providers: dict[str, Any], tmp_path: Path | None, **server: Any
) -> str:
    state: dict[str, Any] = {}
    if tmp_path is not None:
        state["responses"] = {"store": f"sqlite:{tmp_path / 'responses.db'}"}
    config = gateway_config(
        providers, routing={"max_attempts": 1}, state=state, server=server or {}
    )
    return str(await make_gateway(config))


def client_of(base: str, key: str = "unused") -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=base, api_key=key, max_retries=0)


async def test_a_text_answer_non_stream(
    upstream: FakeOpenAI, make_gateway: Gateway, tmp_path: Path
) -> None:
    base = await gateway_for(make_gateway, {"fake": openai_provider(upstream)}, tmp_path)
    response = await client_of(base).responses.create(
        model="test-model", input="Say hello", instructions="Be brief."
    )
    assert response.status == "completed"
    assert response.output_text == "Hello, world!"
    assert response.model == "test-model"
    assert response.id.startswith("resp_")
    assert response.usage is not None and response.usage.output_tokens == 4
    sent = upstream.received[-1].body
    assert sent["model"] == "up-model"
    assert sent["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Say hello"},
    ]


async def test_a_streamed_answer_has_the_full_event_sequence(
    upstream: FakeOpenAI, make_gateway: Gateway
) -> None:
    base = await gateway_for(make_gateway, {"fake": openai_provider(upstream)}, None)
    stream = await client_of(base).responses.create(model="test-model", input="hi", stream=True)
    events = [event async for event in stream]
    types = [event.type for event in events]
    assert types[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert types[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert deltas == ["Hello", ", ", "world", "!"]
    final = events[-1].response  # type: ignore[union-attr]
    assert final.output_text == "Hello, world!"
    assert final.usage is not None and final.usage.input_tokens == 5


async def test_the_stream_helper_and_raw_bytes(upstream: FakeOpenAI, make_gateway: Gateway) -> None:
    base = await gateway_for(make_gateway, {"fake": openai_provider(upstream)}, None)
    async with client_of(base).responses.stream(model="test-model", input="hi") as stream:
        text = [event.delta async for event in stream if event.type == "response.output_text.delta"]
        final = await stream.get_final_response()
    assert "".join(text) == final.output_text == "Hello, world!"
    # The wire: named events, no [DONE], no id: lines in default mode.
    raw = await client_of(base).responses.with_raw_response.create(
        model="test-model", input="hi", stream=True
    )
    body = await raw.http_response.aread()
    assert raw.http_response.headers["content-type"].startswith("text/event-stream")
    assert body.startswith(b"event: response.created\ndata: {")
    assert b"[DONE]" not in body and b"\nid:" not in body
    assert body.endswith(b"\n\n") and b"event: response.completed\n" in body


async def test_a_tool_call_round_trip_keeps_the_call_id(
    upstream: FakeOpenAI, make_gateway: Gateway
) -> None:
    call = {
        "index": 0,
        "id": "call_abc",
        "type": "function",
        "function": {"name": "get_weather", "arguments": ""},
    }
    upstream.scripts["up-model"] = [
        Script(
            writes=sse(
                chunk({"role": "assistant", "content": None, "tool_calls": [call]}),
                chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city":'}}]}),
                chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"Paris"}'}}]}),
                chunk({}, "tool_calls"),
                usage_chunk(),
                "[DONE]",
            )
        ),
        Script(
            writes=sse(chunk({"content": "Sunny."}), chunk({}, "stop"), usage_chunk(), "[DONE]")
        ),
    ]
    base = await gateway_for(make_gateway, {"fake": openai_provider(upstream)}, None)
    client = client_of(base)
    tools: Any = [
        {
            "type": "function",
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            "strict": False,
        }
    ]
    first = await client.responses.create(model="test-model", input="Weather?", tools=tools)
    calls = [item for item in first.output if item.type == "function_call"]
    assert len(calls) == 1
    assert calls[0].call_id == "call_abc" and calls[0].name == "get_weather"
    assert orjson.loads(calls[0].arguments) == {"city": "Paris"}
    assert upstream.received[0].body["tools"][0]["function"]["name"] == "get_weather"
    second = await client.responses.create(
        model="test-model",
        tools=tools,
        input=[
            {"role": "user", "content": "Weather?"},
            {
                "type": "function_call",
                "call_id": "call_abc",
                "name": "get_weather",
                "arguments": '{"city":"Paris"}',
            },
            {"type": "function_call_output", "call_id": "call_abc", "output": "22C, sun"},
        ],
    )
    assert second.output_text == "Sunny."
    messages = upstream.received[1].body["messages"]
    assert messages[1]["tool_calls"][0]["id"] == "call_abc"
    assert messages[2] == {"role": "tool", "tool_call_id": "call_abc", "content": "22C, sun"}


async def test_stored_responses_continue_retrieve_list_and_delete(
    upstream: FakeOpenAI, make_gateway: Gateway, tmp_path: Path
) -> None:
    base = await gateway_for(make_gateway, {"fake": openai_provider(upstream)}, tmp_path)
    client = client_of(base)
    first = await client.responses.create(model="test-model", input="My name is Ada.")
    # Streamed, it is stored before the stream ends: it can be read at once.
    stream = await client.responses.create(
        model="test-model", input="What is my name?", previous_response_id=first.id, stream=True
    )
    events = [event async for event in stream]
    second_id = events[-1].response.id  # type: ignore[union-attr]
    messages = upstream.received[-1].body["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert messages[0]["content"] == "My name is Ada."
    assert messages[1]["content"] == "Hello, world!"
    assert messages[2]["content"] == "What is my name?"
    again = await client.responses.retrieve(second_id)
    assert again.id == second_id and again.output_text == "Hello, world!"
    assert again.previous_response_id == first.id
    items = await client.responses.input_items.list(second_id)
    assert [item.type for item in items.data] == ["message"]
    await client.responses.delete(first.id)
    with pytest.raises(openai.NotFoundError):
        await client.responses.retrieve(first.id)
    with pytest.raises(openai.BadRequestError) as caught:
        await client.responses.create(
            model="test-model", input="more", previous_response_id=first.id
        )
    assert caught.value.code == "previous_response_not_found"
    assert caught.value.param == "previous_response_id"


async def test_a_stored_response_keeps_the_turns_before_it_once(
    upstream: FakeOpenAI, make_gateway: Gateway, tmp_path: Path
) -> None:
    """A stored row's history is the turns before its input (its input and output are in its
    own columns, not again there); continuing it sends every turn once, in order. A row stored
    before this form, with the whole conversation as a list there, still continues."""
    base = await gateway_for(make_gateway, {"fake": openai_provider(upstream)}, tmp_path)
    client = client_of(base)
    first = await client.responses.create(model="test-model", input="My name is Ada.")
    second = await client.responses.create(
        model="test-model", input="And yours?", previous_response_id=first.id
    )
    await client.responses.retrieve(second.id)  # its write has landed
    with sqlite3.connect(tmp_path / "responses.db") as db:
        rows = {
            row[0]: row[1:] for row in db.execute("SELECT id, history, input_items FROM responses")
        }
    assert orjson.loads(rows[first.id][0]) == {"earlier": []}
    earlier = orjson.loads(rows[second.id][0])["earlier"]
    said = [(item["role"], item["content"][0]["text"]) for item in earlier]
    assert said == [("user", "My name is Ada."), ("assistant", "Hello, world!")]

    def sent() -> list[tuple[str, str]]:
        return [(m["role"], m["content"]) for m in upstream.received[-1].body["messages"]]

    await client.responses.create(
        model="test-model", input="Third.", previous_response_id=second.id
    )
    turns = [("user", "My name is Ada."), ("assistant", "Hello, world!")]
    turns += [("user", "And yours?"), ("assistant", "Hello, world!")]
    assert sent() == [*turns, ("user", "Third.")]
    # The earlier form: the whole conversation in `history` (here naming Grace).
    output = orjson.loads(second.model_dump_json())["output"]
    whole = [*earlier, *orjson.loads(rows[second.id][1]), *output]
    whole[0]["content"][0]["text"] = "My name is Grace."
    with sqlite3.connect(tmp_path / "responses.db") as db:
        db.execute(
            "UPDATE responses SET history = ? WHERE id = ?", (orjson.dumps(whole), second.id)
        )
    await client.responses.create(
        model="test-model", input="Again.", previous_response_id=second.id
    )
    turns = [("user", "My name is Grace."), ("assistant", "Hello, world!")]
    turns += [("user", "And yours?"), ("assistant", "Hello, world!")]
    assert sent() == [*turns, ("user", "Again.")]


async def test_only_the_key_that_created_a_response_sees_it(
    upstream: FakeOpenAI, make_gateway: Gateway, tmp_path: Path
) -> None:
    base = await gateway_for(
        make_gateway,
        {"fake": openai_provider(upstream)},
        tmp_path,
        api_keys=[{"key": "sk-a", "name": "a"}, {"key": "sk-b", "name": "b"}],
    )
    mine = await client_of(base, "sk-a").responses.create(model="test-model", input="hi")
    other = client_of(base, "sk-b")
    with pytest.raises(openai.NotFoundError):
        await other.responses.retrieve(mine.id)
    with pytest.raises(openai.NotFoundError):
        await other.responses.delete(mine.id)
    with pytest.raises(openai.BadRequestError):
        await other.responses.create(model="test-model", input="x", previous_response_id=mine.id)
    assert (await client_of(base, "sk-a").responses.retrieve(mine.id)).id == mine.id


async def test_store_false_keeps_nothing(
    upstream: FakeOpenAI, make_gateway: Gateway, tmp_path: Path
) -> None:
    base = await gateway_for(make_gateway, {"fake": openai_provider(upstream)}, tmp_path)
    client = client_of(base)
    response = await client.responses.create(model="test-model", input="hi", store=False)
    assert response.store is False
    with pytest.raises(openai.NotFoundError):
        await client.responses.retrieve(response.id)


class Weather(pydantic.BaseModel):
    city: str
    celsius: int


async def test_parse_with_a_pydantic_model(upstream: FakeOpenAI, make_gateway: Gateway) -> None:
    answer = '{"city": "Paris", "celsius": 22}'
    upstream.scripts["up-model"] = Script(
        writes=sse(chunk({"content": answer}), chunk({}, "stop"), usage_chunk(), "[DONE]")
    )
    base = await gateway_for(make_gateway, {"fake": openai_provider(upstream)}, None)
    parsed = await client_of(base).responses.parse(
        model="test-model", input="Weather in Paris?", text_format=Weather
    )
    assert parsed.output_parsed == Weather(city="Paris", celsius=22)
    response_format = upstream.received[-1].body["response_format"]
    assert response_format["type"] == "json_schema"
    assert response_format["json_schema"]["name"] == "Weather"
    assert response_format["json_schema"]["strict"] is True


async def test_errors_before_output_are_http_errors_in_openai_shape(
    upstream: FakeOpenAI, make_gateway: Gateway
) -> None:
    upstream.scripts["up-model"] = error_script(503, {"error": {"message": "busy"}})
    base = await gateway_for(make_gateway, {"fake": openai_provider(upstream)}, None)
    client = client_of(base)
    with pytest.raises(openai.NotFoundError) as missing:
        await client.responses.create(model="nope", input="hi")
    assert missing.value.code == "model_not_found"
    with pytest.raises(openai.InternalServerError) as failed:
        await client.responses.create(model="test-model", input="hi", stream=True)
    assert failed.value.status_code == 503
    with pytest.raises(openai.BadRequestError) as builtin:
        await client.responses.create(
            model="test-model", input="hi", tools=[{"type": "web_search"}]
        )
    assert builtin.value.param == "tools[0].type"
    with pytest.raises(openai.BadRequestError) as background:
        await client.responses.create(model="test-model", input="hi", background=True)
    assert background.value.param == "background"


async def test_a_failure_after_output_is_response_failed_never_completed(
    upstream: FakeOpenAI, make_gateway: Gateway
) -> None:
    upstream.scripts["up-model"] = Script(
        writes=sse(chunk({"role": "assistant", "content": "Hel"}), chunk({"content": "lo"})),
        fault="reset",
    )
    base = await gateway_for(make_gateway, {"fake": openai_provider(upstream)}, None)
    stream = await client_of(base).responses.create(model="test-model", input="hi", stream=True)
    events = [event async for event in stream]
    assert events[-1].type == "response.failed"
    assert not any(event.type == "response.completed" for event in events)
    failed = events[-1].response  # type: ignore[union-attr]
    assert failed.error is not None and failed.error.code == "server_error"
    assert failed.output[0].content[0].text == "Hello"  # type: ignore[union-attr]


async def test_a_max_tokens_cut_is_incomplete(upstream: FakeOpenAI, make_gateway: Gateway) -> None:
    upstream.scripts["up-model"] = Script(
        writes=sse(chunk({"content": "Once upon"}), chunk({}, "length"), usage_chunk(), "[DONE]")
    )
    base = await gateway_for(make_gateway, {"fake": openai_provider(upstream)}, None)
    response = await client_of(base).responses.create(
        model="test-model", input="story", max_output_tokens=2
    )
    assert response.status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"
    assert upstream.received[-1].body.get("max_tokens") == 2


NATIVE = [
    pytest.param(
        lambda: ollama_fake.FakeOllama(),
        "",
        lambda url: {"type": "ollama", "base_url": url, "models": {"m": "llama3.2"}},
        "Hello, world!",
        id="ollama",
    ),
    pytest.param(
        lambda: anthropic_fake.FakeAnthropic(),
        "",
        lambda url: {
            "type": "anthropic",
            "base_url": url,
            "api_key": anthropic_fake.API_KEY,
            "models": {"m": "claude-sonnet-4-5"},
        },
        None,
        id="anthropic",
    ),
    pytest.param(
        lambda: gemini_fake.FakeGemini(),
        "/v1beta",
        lambda url: {
            "type": "gemini",
            "base_url": url,
            "api_key": "gm-test-key",
            "models": {"m": "gemini-2.5-flash"},
        },
        None,
        id="gemini",
    ),
]


@pytest.mark.parametrize(("fake_of", "path", "provider_of", "text"), NATIVE)
@pytest.mark.parametrize("stream", [True, False], ids=["stream", "whole"])
async def test_every_upstream_protocol_answers_responses(
    make_gateway: Gateway,
    fake_of: Callable[[], FakeOpenAI],
    path: str,
    provider_of: Callable[[str], dict[str, Any]],
    text: str | None,
    stream: bool,
) -> None:
    fake = fake_of()
    async for url in started(fake, path):
        base = await gateway_for(make_gateway, {"up": provider_of(url)}, None)
        client = client_of(base)
        if stream:
            async with client.responses.stream(model="m", input="hi") as events:
                response = await events.get_final_response()
        else:
            response = await client.responses.create(model="m", input="hi")
        assert response.status == "completed"
        assert response.output_text
        if text is not None:
            assert response.output_text == text
        assert response.usage is not None and response.usage.input_tokens > 0


# --- background responses: the resumable stream in OpenAI's contract -----------------------


def slow_script(pieces: list[str], delay_s: float) -> Script:
    objects: list[Any] = [chunk({"role": "assistant", "content": ""})]
    objects += [chunk({"content": piece}) for piece in pieces]
    objects += [chunk({}, "stop"), usage_chunk(completion=len(pieces)), "[DONE]"]
    return Script(writes=sse(*objects), delay_s=delay_s)


async def until_status(
    client: openai.AsyncOpenAI, response_id: str, statuses: set[str], within_s: float = 10
) -> Any:

    loop = asyncio.get_running_loop()
    end = loop.time() + within_s
    seen = []
    while loop.time() < end:
        response = await client.responses.retrieve(response_id)
        seen.append(response.status)
        if response.status in statuses:
            return response, seen
        await asyncio.sleep(0.02)
    raise AssertionError(f"{response_id} never reached {statuses}; seen {seen}")


async def test_a_background_response_is_polled_to_completion(
    upstream: FakeOpenAI, make_gateway: Gateway, tmp_path: Path
) -> None:
    upstream.scripts["up-model"] = slow_script(["a", "b", "c", "d"], 0.1)
    base = await gateway_for(make_gateway, {"fake": openai_provider(upstream)}, tmp_path)
    client = client_of(base)
    queued = await client.responses.create(model="test-model", input="hi", background=True)
    assert queued.status == "queued" and queued.background is True
    running, _ = await until_status(client, queued.id, {"in_progress"})
    assert running.status == "in_progress"
    done, _ = await until_status(client, queued.id, {"completed"})
    assert done.output_text == "abcd"
    assert done.usage is not None and done.usage.output_tokens == 4


async def test_a_background_stream_resumes_after_a_drop_with_nothing_lost_or_repeated(
    upstream: FakeOpenAI, make_gateway: Gateway, tmp_path: Path
) -> None:
    pieces = [f"w{i} " for i in range(12)]
    upstream.scripts["up-model"] = slow_script(pieces, 0.05)
    base = await gateway_for(make_gateway, {"fake": openai_provider(upstream)}, tmp_path)
    client = client_of(base)
    stream = await client.responses.create(
        model="test-model", input="hi", background=True, stream=True
    )
    first: list[Any] = []
    async for event in stream:
        first.append(event)
        if event.type == "response.output_text.delta" and len(first) > 6:
            break
    await stream.close()  # the connection drops; the generation goes on
    response_id = first[0].response.id
    assert first[0].type == "response.created" and first[0].response.status == "queued"
    assert first[1].type == "response.queued"
    last = first[-1].sequence_number
    rest_stream = await client.responses.retrieve(response_id, stream=True, starting_after=last)
    rest = [event async for event in rest_stream]
    events = first + rest
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert events[-1].type == "response.completed"
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == "".join(pieces)
    assert events[-1].response.output_text == text  # type: ignore[union-attr]
    # From the start, again, on the same stream.
    again = await client.responses.retrieve(response_id, stream=True)
    assert [e.type async for e in again][-1] == "response.completed"


async def test_cancel_stops_a_background_response_and_its_upstream(
    upstream: FakeOpenAI, make_gateway: Gateway, tmp_path: Path
) -> None:
    upstream.scripts["up-model"] = [
        slow_script([f"{i} " for i in range(200)], 0.05),
        slow_script(["quick"], 0),
    ]
    base = await gateway_for(make_gateway, {"fake": openai_provider(upstream)}, tmp_path)
    client = client_of(base)
    queued = await client.responses.create(model="test-model", input="hi", background=True)
    await until_status(client, queued.id, {"in_progress"})
    cancelled = await client.responses.cancel(queued.id)
    assert cancelled.status == "cancelled"

    for _ in range(100):
        if upstream.gone:
            break
        await asyncio.sleep(0.02)
    assert upstream.gone, "the upstream request was not closed"
    # Cancelling again answers the same; the stream of events simply ends.
    assert (await client.responses.cancel(queued.id)).status == "cancelled"
    events = [e async for e in await client.responses.retrieve(queued.id, stream=True)]
    assert not any(e.type == "response.completed" for e in events)
    foreground = await client.responses.create(model="test-model", input="hi")
    with pytest.raises(openai.BadRequestError):
        await client.responses.cancel(foreground.id)


async def test_background_needs_the_store_and_a_bad_position_is_400(
    upstream: FakeOpenAI, make_gateway: Gateway, tmp_path: Path
) -> None:
    without = await gateway_for(make_gateway, {"fake": openai_provider(upstream)}, None)
    with pytest.raises(openai.BadRequestError) as caught:
        await client_of(without).responses.create(model="test-model", input="hi", background=True)
    assert caught.value.param == "background"
    base = await gateway_for(make_gateway, {"fake": openai_provider(upstream)}, tmp_path)
    client = client_of(base)
    queued = await client.responses.create(model="test-model", input="hi", background=True)
    with pytest.raises(openai.BadRequestError) as bad:
        await client.responses.retrieve(queued.id, stream=True, starting_after=-1)
    assert bad.value.param == "starting_after"
    foreground = await client.responses.create(model="test-model", input="hi")
    with pytest.raises(openai.NotFoundError):
        await client.responses.retrieve(foreground.id, stream=True)


async def test_compaction_is_a_clear_404(upstream: FakeOpenAI, make_gateway: Gateway) -> None:
    """Not served: a 404 in OpenAI's shape that says so (the path is no response id)."""
    base = await gateway_for(make_gateway, {"fake": openai_provider(upstream)}, None)
    client = client_of(base)
    with pytest.raises(openai.NotFoundError) as caught:
        await client.post("/responses/compact", cast_to=object, body={"model": "test-model"})
    assert caught.value.code == "unknown_url"
    assert "compact" in caught.value.message and "previous_response_id" in caught.value.message
    assert upstream.received == []
