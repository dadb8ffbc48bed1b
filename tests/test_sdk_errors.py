"""The official openai SDK against the real gateway: errors, /v1/models and concurrency.

protocol.md §1.8, §1.9 and §5 items 24-25, 27, 29-30, 34-35, 40, 42, 52. Clients run with
`max_retries=0`, so every status the gateway returns reaches the test unchanged.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import openai
import pytest

from tests.upstreams.openai import FakeOpenAI, Script, chunk, error_script, sse, text_script

MESSAGES: list[Any] = [{"role": "user", "content": "hi"}]
PUBLIC_MODELS = {"test-model", "other", "ns/name:tag"}


# --- /v1/models -----------------------------------------------------------------------------------


async def test_models_list(client: openai.AsyncOpenAI) -> None:
    page = await client.models.list()
    assert {model.id for model in page.data} == PUBLIC_MODELS
    assert len(page.data) == len(PUBLIC_MODELS)
    for model in page.data:
        assert model.object == "model"
        assert isinstance(model.created, int)
        assert model.owned_by == "fake"


async def test_models_list_sync_client(gateway: str) -> None:
    def run() -> set[str]:
        with openai.OpenAI(base_url=gateway, api_key="unused", max_retries=0) as sync:
            return {model.id for model in sync.models.list()}

    assert await asyncio.to_thread(run) == PUBLIC_MODELS


@pytest.mark.parametrize("model", sorted(PUBLIC_MODELS))
async def test_models_retrieve(model: str, client: openai.AsyncOpenAI) -> None:
    """openai-python 3.x sends `ns%2Fname:tag` for a model id with a slash."""
    card = await client.models.retrieve(model)
    assert card.id == model
    assert card.object == "model"
    assert isinstance(card.created, int)
    assert card.owned_by == "fake"


async def test_models_retrieve_raw_slash(gateway: str) -> None:
    """openai-python 1.x sends the slash unencoded."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{gateway}/models/ns/name:tag") as response,
    ):
        assert response.status == 200
        assert response.headers["x-request-id"]
        card = await response.json()
    assert card["id"] == "ns/name:tag"
    assert card["object"] == "model"


async def test_models_retrieve_unknown(client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        await client.models.retrieve("no-such-model")
    assert info.value.status_code == 404
    assert info.value.code == "model_not_found"
    assert info.value.request_id


async def test_slash_model_chats(fake_openai: FakeOpenAI, client: openai.AsyncOpenAI) -> None:
    completion = await client.chat.completions.create(model="ns/name:tag", messages=MESSAGES)
    assert completion.model == "ns/name:tag"
    assert completion.choices[0].message.content == "Hello, world!"
    assert fake_openai.received[-1].body["model"] == "up-model"


# --- errors before the stream starts -------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
async def test_unknown_model(
    stream: bool, fake_openai: FakeOpenAI, client: openai.AsyncOpenAI
) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        # For stream=True the error must come from create() itself, before any chunk.
        await client.chat.completions.create(model="nope", messages=MESSAGES, stream=stream)
    error = info.value
    assert error.status_code == 404
    assert error.code == "model_not_found"
    assert error.type == "invalid_request_error"
    assert error.request_id
    assert error.response.headers["content-type"].startswith("application/json")
    assert fake_openai.received == []


@pytest.mark.parametrize(
    ("overrides", "param"),
    [
        ({"messages": []}, "messages"),
        ({"temperature": "hot"}, "temperature"),
        ({"n": 0}, "n"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
async def test_bad_params(
    overrides: dict[str, Any],
    param: str,
    stream: bool,
    fake_openai: FakeOpenAI,
    client: openai.AsyncOpenAI,
) -> None:
    kwargs: dict[str, Any] = {"model": "test-model", "messages": MESSAGES, **overrides}
    with pytest.raises(openai.BadRequestError) as info:
        await client.chat.completions.create(stream=stream, **kwargs)
    assert info.value.status_code == 400
    assert info.value.param == param
    assert info.value.type == "invalid_request_error"
    assert fake_openai.received == []


@pytest.mark.parametrize("stream", [False, True])
async def test_upstream_429_passes_retry_after(
    stream: bool, fake_openai: FakeOpenAI, client: openai.AsyncOpenAI
) -> None:
    fake_openai.scripts["up-model"] = error_script(
        429,
        {"error": {"message": "Slow down", "type": "requests", "code": "rate_limit_exceeded"}},
        headers={
            "Retry-After": "7",
            "x-ratelimit-remaining-requests": "0",
            "x-ratelimit-reset-requests": "7s",
        },
    )
    with pytest.raises(openai.RateLimitError) as info:
        await client.chat.completions.create(model="test-model", messages=MESSAGES, stream=stream)
    error = info.value
    assert error.status_code == 429
    assert error.code == "rate_limit_exceeded"
    assert error.response.headers["retry-after"] == "7"
    assert error.response.headers["x-ratelimit-remaining-requests"] == "0"
    assert error.response.headers["x-ratelimit-reset-requests"] == "7s"
    assert "Slow down" in str(error)
    assert len(fake_openai.received) == 1


@pytest.mark.parametrize("stream", [False, True])
async def test_upstream_500_is_502(
    stream: bool, fake_openai: FakeOpenAI, client: openai.AsyncOpenAI
) -> None:
    fake_openai.scripts["up-model"] = error_script(
        500, {"error": {"message": "The server had an error", "type": "server_error"}}
    )
    with pytest.raises(openai.InternalServerError) as info:
        await client.chat.completions.create(model="test-model", messages=MESSAGES, stream=stream)
    assert info.value.status_code == 502
    assert isinstance(info.value.body, dict)
    assert set(info.value.body) == {"message", "type", "param", "code"}
    assert info.value.request_id


async def test_upstream_401_hides_upstream_text(
    fake_openai: FakeOpenAI, client: openai.AsyncOpenAI
) -> None:
    fake_openai.scripts["up-model"] = error_script(
        401, {"error": {"message": "Incorrect API key provided: sk-upst****cret"}}
    )
    with pytest.raises(openai.InternalServerError) as info:
        await client.chat.completions.create(model="test-model", messages=MESSAGES)
    assert info.value.status_code == 502
    assert "sk-upst" not in info.value.response.text


# --- errors after the stream started -------------------------------------------------------------

BOOM = {"error": {"message": "boom", "type": "server_error", "code": "x"}}


def failing_script(*, delay_s: float) -> Script:
    return Script(
        writes=sse(
            chunk({"role": "assistant", "content": "Hel"}),
            chunk({"content": "lo"}),
            BOOM,
            "[DONE]",
        ),
        delay_s=delay_s,
    )


async def read_until_error(
    stream: openai.AsyncStream[Any],
) -> tuple[list[str], list[str | None], openai.APIError]:
    contents: list[str] = []
    finishes: list[str | None] = []

    async def consume() -> None:
        async for item in stream:
            for choice in item.choices:
                contents.append(choice.delta.content or "")
                finishes.append(choice.finish_reason)

    with pytest.raises(openai.APIError) as info:
        await consume()
    return contents, finishes, info.value


async def test_upstream_error_mid_stream(
    fake_openai: FakeOpenAI, client: openai.AsyncOpenAI
) -> None:
    fake_openai.scripts["up-model"] = failing_script(delay_s=0.05)
    stream = await client.chat.completions.create(
        model="test-model", messages=MESSAGES, stream=True
    )
    contents, finishes, error = await read_until_error(stream)
    assert contents == ["Hel", "lo"]
    assert finishes == [None, None]
    assert not isinstance(error, openai.APIStatusError)
    assert error.message == "boom"
    assert error.code == "x"
    assert error.type == "server_error"


async def test_upstream_error_mid_stream_in_one_read(
    fake_openai: FakeOpenAI, client: openai.AsyncOpenAI
) -> None:
    """The same bytes in one network write: what the client gets must not depend on it."""
    script = failing_script(delay_s=0)
    fake_openai.scripts["up-model"] = Script(writes=[b"".join(script.writes)])
    stream = await client.chat.completions.create(
        model="test-model", messages=MESSAGES, stream=True
    )
    contents, finishes, error = await read_until_error(stream)
    assert contents == ["Hel", "lo"]
    assert finishes == [None, None]
    assert error.message == "boom"


async def test_upstream_error_after_commit_in_one_read(
    fake_openai: FakeOpenAI, client: openai.AsyncOpenAI
) -> None:
    """After the commit: the last content chunk and the error arrive in one network write."""
    script = failing_script(delay_s=0)
    first, second, error, done = script.writes
    fake_openai.scripts["up-model"] = Script(writes=[first, second + error + done], delay_s=0.05)
    stream = await client.chat.completions.create(
        model="test-model", messages=MESSAGES, stream=True
    )
    contents, finishes, raised = await read_until_error(stream)
    assert contents == ["Hel", "lo"]
    assert finishes == [None, None]
    assert raised.message == "boom"


async def test_upstream_error_mid_stream_non_stream(
    fake_openai: FakeOpenAI, client: openai.AsyncOpenAI
) -> None:
    """A non-stream request whose upstream fails half way is an error, never a partial answer."""
    fake_openai.scripts["up-model"] = failing_script(delay_s=0)
    with pytest.raises(openai.APIStatusError) as info:
        await client.chat.completions.create(model="test-model", messages=MESSAGES)
    assert info.value.status_code >= 500
    assert "boom" in str(info.value)


async def test_upstream_reset_mid_answer_non_stream(
    fake_openai: FakeOpenAI, client: openai.AsyncOpenAI
) -> None:
    """Asked non-stream, the upstream sends half its answer and resets: an error, never half."""
    fake_openai.scripts["up-model"] = Script(
        writes=text_script(["Hel", "lo"]).writes, fault="reset"
    )
    with pytest.raises(openai.APIStatusError) as info:
        await client.chat.completions.create(model="test-model", messages=MESSAGES)
    assert info.value.status_code == 502
    assert fake_openai.received[-1].body["stream"] is False


@pytest.mark.parametrize("n", [1, 3])
async def test_upstream_reset_after_n_chunks(
    n: int, fake_openai: FakeOpenAI, client: openai.AsyncOpenAI
) -> None:
    pieces = [f"p{i}" for i in range(n)]
    script = text_script(pieces, usage=False, done=False, delay_s=0.02)
    # Role chunk and the content chunks only: no finish chunk, then the connection is cut.
    fake_openai.scripts["up-model"] = Script(
        writes=list(script.writes[: 1 + n]), delay_s=0.02, fault="reset"
    )
    stream = await client.chat.completions.create(
        model="test-model",
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
    )
    contents, finishes, error = await read_until_error(stream)
    assert contents == ["", *pieces]
    assert finishes == [None] * (n + 1)
    assert not isinstance(error, openai.APIStatusError)
    assert error.message


async def test_upstream_clean_eof_before_finish_is_an_error(
    fake_openai: FakeOpenAI, client: openai.AsyncOpenAI
) -> None:
    """A body that ends without a finish or [DONE] was cut short: never a normal `stop`."""
    fake_openai.scripts["up-model"] = Script(
        writes=sse(chunk({"role": "assistant", "content": "par"}), chunk({"content": "tial"})),
        delay_s=0.02,
    )
    stream = await client.chat.completions.create(
        model="test-model", messages=MESSAGES, stream=True
    )
    contents, finishes, error = await read_until_error(stream)
    assert contents == ["par", "tial"]
    assert finishes == [None, None]
    assert error.code == "upstream_incomplete"


async def test_mid_stream_error_raw_bytes(fake_openai: FakeOpenAI, gateway: str) -> None:
    """The error event is an unnamed `data:` line with all four keys, then [DONE] (§1.9)."""
    fake_openai.scripts["up-model"] = failing_script(delay_s=0.05)
    body = {"model": "test-model", "messages": MESSAGES, "stream": True}
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{gateway}/chat/completions", json=body) as response,
    ):
        assert response.status == 200
        raw = await response.read()
    events = raw.split(b"\n\n")
    assert events[-1] == b""
    assert events[-2] == b"data: [DONE]"
    assert events[-3] == (
        b'data: {"error":{"message":"boom","type":"server_error","param":null,"code":"x"}}'
    )
    assert all(e.startswith(b"data: {") for e in events[:-2])
    assert b"event:" not in raw
    assert b"id:" not in raw.replace(b'"id":', b"")


# --- concurrency ----------------------------------------------------------------------------------


async def test_twenty_concurrent_streams(
    fake_openai: FakeOpenAI, client: openai.AsyncOpenAI
) -> None:
    pieces = [f"w{i} " for i in range(12)]
    fake_openai.scripts["up-model"] = text_script(pieces, delay_s=0.005)
    fake_openai.scripts["other-up"] = text_script(["other"], delay_s=0.005)

    async def one(model: str) -> tuple[str, str, int]:
        stream = await client.chat.completions.create(
            model=model,
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
        )
        ids: set[str] = set()
        text = []
        finishes = 0
        async for item in stream:
            ids.add(item.id)
            assert item.model == model
            for choice in item.choices:
                text.append(choice.delta.content or "")
                finishes += choice.finish_reason is not None
        assert len(ids) == 1
        return ids.pop(), "".join(text), finishes

    models = ["test-model" if i % 4 else "other" for i in range(20)]
    results = await asyncio.gather(*(one(model) for model in models))
    assert len({stream_id for stream_id, _, _ in results}) == 20
    for model, (_, text, finishes) in zip(models, results, strict=True):
        assert text == ("".join(pieces) if model == "test-model" else "other")
        assert finishes == 1
    assert len(fake_openai.received) == 20
