"""POST /v1/completions through the real gateway with openai-python's `completions.create`,
stream and not: passed through to an OpenAI-compatible server that serves /v1/completions
(what it is sent, what comes back, echo/suffix/logprobs/n/batches kept), and translated onto
chat for Ollama, Anthropic, Gemini and an openai provider with `"completions": false` (the text
is what the same model answers in chat)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import openai
import pytest

from tests.completions_support import (
    OPENAI_KEY,
    Fakes,
    completions_config,
    running_fakes,
)
from tests.upstreams.anthropic import API_KEY as ANTHROPIC_KEY
from tests.upstreams.completions import CONTINUATION

TRANSLATED = ["chatty", "llama", "claude", "gem"]


@pytest.fixture
async def fakes() -> AsyncIterator[Fakes]:
    async with running_fakes() as made:
        yield made


@pytest.fixture
async def gateway(fakes: Fakes, make_gateway: Callable[..., Awaitable[str]]) -> str:
    return await make_gateway(completions_config(fakes))


@pytest.fixture
def client(gateway: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gateway, api_key="unused", max_retries=0)


async def test_passthrough_non_stream(client: openai.AsyncOpenAI, fakes: Fakes) -> None:
    answer = await client.completions.create(model="davinci", prompt="Tell me", max_tokens=3)
    assert answer.object == "text_completion"
    assert answer.id.startswith("cmpl-") and answer.id != "cmpl-upstream"
    assert answer.model == "davinci"
    assert [(c.index, c.text, c.finish_reason) for c in answer.choices] == [
        (0, "Once upon a", "length")
    ]
    assert answer.usage is not None
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (2, 3)
    sent = fakes.openai.received[-1]
    assert sent.path == "/v1/completions"
    assert sent.headers["Authorization"] == f"Bearer {OPENAI_KEY}"
    assert sent.body == {
        "model": "up-instruct",
        "prompt": "Tell me",
        "max_tokens": 3,
        "stream": False,
    }


async def test_passthrough_stream_with_usage(client: openai.AsyncOpenAI, fakes: Fakes) -> None:
    stream = await client.completions.create(
        model="davinci", prompt="Go", stream=True, stream_options={"include_usage": True}
    )
    chunks = [chunk async for chunk in stream]
    assert {c.object for c in chunks} == {"text_completion"}
    assert {c.model for c in chunks} == {"davinci"}
    assert len({c.id for c in chunks}) == 1
    assert "".join(c.choices[0].text for c in chunks if c.choices) == "".join(CONTINUATION)
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 5
    sent = fakes.openai.received[-1].body
    # OpenAI's default max_tokens (16), whatever the server's; usage always asked upstream.
    assert sent["max_tokens"] == 16
    assert sent["stream"] is True
    assert sent["stream_options"] == {"include_usage": True}


async def test_passthrough_without_usage_asked(client: openai.AsyncOpenAI, fakes: Fakes) -> None:
    stream = await client.completions.create(model="davinci", prompt="Go", stream=True)
    chunks = [chunk async for chunk in stream]
    assert all(c.choices for c in chunks)
    assert all(c.usage is None for c in chunks)
    # Asked of the upstream all the same, for the gateway's own record.
    assert fakes.openai.received[-1].body["stream_options"] == {"include_usage": True}


async def test_passthrough_keeps_what_only_raw_completions_have(
    client: openai.AsyncOpenAI, fakes: Fakes
) -> None:
    answer = await client.completions.create(
        model="davinci",
        prompt=["A", "B"],
        n=2,
        echo=True,
        suffix="!",
        logprobs=1,
        max_tokens=2,
        best_of=3,
        extra_body={"top_k": 5},  # a server's own field passes through
    )
    texts = {c.index: c.text for c in answer.choices}
    assert texts == {0: "AOnce upon!", 1: "AOnce upon #1!", 2: "BOnce upon!", 3: "BOnce upon #1!"}
    first = answer.choices[0].logprobs
    assert first is not None and first.tokens == ["A", "Once", " upon", "!"]
    sent = fakes.openai.received[-1].body
    assert sent["best_of"] == 3 and sent["top_k"] == 5 and sent["echo"] is True
    tokens = await client.completions.create(model="davinci", prompt=[[1, 2], [3]], max_tokens=1)
    assert [c.text for c in tokens.choices] == ["Once", "Once"]
    assert fakes.openai.received[-1].body["prompt"] == [[1, 2], [3]]


@pytest.mark.parametrize("model", TRANSLATED)
async def test_translated_answers_as_chat_would(
    client: openai.AsyncOpenAI, fakes: Fakes, model: str
) -> None:
    chat = await client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Hi"}], max_tokens=16
    )
    expected = chat.choices[0].message.content
    assert expected
    answer = await client.completions.create(model=model, prompt="Hi")
    assert answer.object == "text_completion"
    assert answer.model == model
    assert [(c.index, c.text, c.logprobs) for c in answer.choices] == [(0, expected, None)]
    assert answer.choices[0].finish_reason == chat.choices[0].finish_reason
    assert answer.usage is not None
    stream = await client.completions.create(
        model=model, prompt="Hi", stream=True, stream_options={"include_usage": True}
    )
    chunks = [chunk async for chunk in stream]
    assert {c.object for c in chunks} == {"text_completion"}
    assert "".join(c.choices[0].text for c in chunks if c.choices) == expected
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop" and set(finishes[:-1]) <= {None}


async def test_what_translated_upstreams_are_sent(client: openai.AsyncOpenAI, fakes: Fakes) -> None:
    await client.completions.create(
        model="chatty", prompt="Hello there", temperature=0.5, stop=["\n"], seed=3, user="u-1"
    )
    sent = fakes.openai.received[-1]
    assert sent.path == "/v1/chat/completions"
    assert sent.body == {
        "model": "up-chat",
        "messages": [{"role": "user", "content": "Hello there"}],
        "max_tokens": 16,
        "temperature": 0.5,
        "stop": ["\n"],
        "seed": 3,
        "user": "u-1",
        "stream": False,
    }
    await client.completions.create(model="claude", prompt="Hello there", max_tokens=40)
    sent = fakes.anthropic.received[-1]
    assert sent.path == "/v1/messages"
    assert sent.headers["x-api-key"] == ANTHROPIC_KEY
    assert sent.body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Hello there"}]}
    ]
    assert sent.body["max_tokens"] == 40


@pytest.mark.parametrize(
    ("param", "fields"),
    [
        ("echo", {"echo": True}),
        ("suffix", {"suffix": "end"}),
        ("logprobs", {"logprobs": 0}),
        ("best_of", {"best_of": 2}),
        ("prompt", {"prompt": ["a", "b"]}),
        ("prompt", {"prompt": [1, 2, 3]}),
        ("max_tokens", {"max_tokens": 0}),
    ],
)
async def test_what_chat_cannot_honour_is_a_400_naming_it(
    client: openai.AsyncOpenAI, fakes: Fakes, param: str, fields: dict[str, object]
) -> None:
    asked = len(fakes.anthropic.received)
    body = {"prompt": "Hi", **fields}
    with pytest.raises(openai.BadRequestError) as caught:
        await client.completions.create(model="claude", **body)  # type: ignore[call-overload]
    error = caught.value.body
    assert isinstance(error, dict)
    assert error["param"] == param
    assert error["code"] == "unsupported_parameter"
    assert "/v1/completions" in error["message"]
    assert len(fakes.anthropic.received) == asked  # never asked
    # A model with a provider that serves /v1/completions skips the others for it.
    mixed = await client.completions.create(model="rev", **body)  # type: ignore[call-overload]
    assert mixed.choices
    assert fakes.openai.received[-1].body["model"] == "oa-rev"
    assert len(fakes.anthropic.received) == asked


async def test_a_single_prompt_in_a_list_is_translated(client: openai.AsyncOpenAI) -> None:
    answer = await client.completions.create(model="llama", prompt=["Hi"])
    assert answer.choices[0].text == "Hello, world!"


async def test_n_reaches_chat_and_an_adapter_refusal_names_the_field(
    client: openai.AsyncOpenAI,
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await client.completions.create(model="claude", prompt="Hi", n=2)
    assert isinstance(caught.value.body, dict) and caught.value.body["param"] == "n"
