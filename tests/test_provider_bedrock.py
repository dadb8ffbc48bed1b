"""AWS Bedrock (Converse) through the real gateway: the openai SDK, the anthropic SDK, `llms check`.

A fake Bedrock runtime (tests/upstreams/bedrock.py) recomputes every request's SigV4 signature
as AWS does and answers with binary event-stream messages cut in odd-sized pieces, or whole
JSON for `/converse`; it injects AWS's exception messages and HTTP errors.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import anthropic
import openai
import pytest
from aiohttp.test_utils import TestServer

from llms.probe import probe
from tests.conftest import gateway_config
from tests.test_responses_api import started
from tests.upstreams.bedrock import ACCESS_KEY, SECRET_KEY, FakeBedrock, Turn, text_turn
from tests.upstreams.openai import FakeOpenAI

MODEL = "anthropic.claude-3-5-sonnet-20240620-v1:0"
MESSAGES: list[Any] = [{"role": "user", "content": "hi"}]
TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]
Gateway = Callable[..., Awaitable[str]]


@pytest.fixture
async def fake() -> AsyncIterator[FakeBedrock]:
    bedrock = FakeBedrock()
    server = TestServer(bedrock.app, host="127.0.0.1")
    await server.start_server()
    bedrock.base_url = str(server.make_url("")).rstrip("/")  # type: ignore[attr-defined]
    yield bedrock
    await server.close()


def provider(fake: FakeBedrock, **over: Any) -> dict[str, Any]:
    entry = {
        "type": "bedrock",
        "region": "us-east-1",
        "base_url": fake.base_url,  # type: ignore[attr-defined]
        "access_key_id": ACCESS_KEY,
        "secret_access_key": SECRET_KEY,
        "models": {"claude-br": MODEL},
        "timeouts": {"idle_s": 2, "first_token_s": 5},
    }
    return {**entry, **over}


async def gateway_of(make_gateway: Gateway, fake: FakeBedrock, **over: Any) -> str:
    config = gateway_config({"br": provider(fake, **over)}, routing={"max_attempts": 1})
    return str(await make_gateway(config))


def client_of(base: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=base, api_key="x", max_retries=0)


async def test_a_signed_stream_through_chat_completions(
    fake: FakeBedrock, make_gateway: Gateway
) -> None:
    fake.turns[MODEL] = text_turn("The capital of France is Paris.")
    client = client_of(await gateway_of(make_gateway, fake))
    stream = await client.chat.completions.create(
        model="claude-br",
        messages=[{"role": "system", "content": "Be brief."}, *MESSAGES],
        stream=True,
        stream_options={"include_usage": True},
        max_tokens=50,
        temperature=0.2,
        stop=["\n\n"],
    )
    chunks = [item async for item in stream]
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.delta.content or "" for i in chunks for c in i.choices)
    assert text == "The capital of France is Paris."
    assert [c.finish_reason for i in chunks for c in i.choices if c.finish_reason] == ["stop"]
    usage = chunks[-1].usage
    assert usage is not None and chunks[-1].choices == []
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (11, 7, 18)
    # What AWS received: the model id one path segment, a signature it recomputed and accepted.
    assert fake.raw_paths == [f"/model/{MODEL}/converse-stream"]
    assert len(fake.signatures) == 1
    sent = fake.received[0]
    assert sent.body == {
        "messages": [{"role": "user", "content": [{"text": "hi"}]}],
        "system": [{"text": "Be brief."}],
        "inferenceConfig": {"maxTokens": 50, "temperature": 0.2, "stopSequences": ["\n\n"]},
    }
    assert sent.headers["Accept"] == "application/vnd.amazon.eventstream"
    assert "X-Amz-Security-Token" not in sent.headers


async def test_non_stream_asks_converse_and_folds_the_same_answer(
    fake: FakeBedrock, make_gateway: Gateway
) -> None:
    fake.turns[MODEL] = Turn(
        [{"text": "Done."}], stop="max_tokens", usage={"inputTokens": 3, "outputTokens": 2}
    )
    client = client_of(await gateway_of(make_gateway, fake))
    completion = await client.chat.completions.create(model="claude-br", messages=MESSAGES)
    assert completion.choices[0].message.content == "Done."
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage is not None and completion.usage.total_tokens == 5
    assert fake.raw_paths == [f"/model/{MODEL}/converse"]
    assert fake.received[0].headers["Accept"] == "application/json"


async def test_a_tool_round_trip(fake: FakeBedrock, make_gateway: Gateway) -> None:
    call = {"toolUseId": "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q", "name": "get_weather"}
    fake.turns[MODEL] = [
        Turn(
            [{"text": "Checking."}, {"toolUse": {**call, "input": {"city": "Paris"}}}],
            stop="tool_use",
        ),
        text_turn("It is sunny in Paris."),
    ]
    client = client_of(await gateway_of(make_gateway, fake))
    stream = await client.chat.completions.create(
        model="claude-br", messages=MESSAGES, tools=TOOLS, tool_choice="required", stream=True
    )
    chunks = [item async for item in stream]
    calls = [t for i in chunks for c in i.choices for t in c.delta.tool_calls or ()]
    assert calls[0].id == call["toolUseId"] and calls[0].function is not None
    assert calls[0].function.name == "get_weather"
    arguments = "".join(t.function.arguments or "" for t in calls if t.function is not None)
    assert json.loads(arguments) == {"city": "Paris"}
    assert [c.finish_reason for i in chunks for c in i.choices if c.finish_reason] == ["tool_calls"]
    assert fake.received[0].body["toolConfig"] == {
        "tools": [
            {
                "toolSpec": {
                    "name": "get_weather",
                    "description": "Current weather",
                    "inputSchema": {"json": TOOLS[0]["function"]["parameters"]},
                }
            }
        ],
        "toolChoice": {"any": {}},
    }

    answer = await client.chat.completions.create(
        model="claude-br",
        tools=TOOLS,
        messages=[
            *MESSAGES,
            {
                "role": "assistant",
                "content": "Checking.",
                "tool_calls": [
                    {
                        "id": call["toolUseId"],
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": arguments},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": call["toolUseId"], "content": "sunny, 24 C"},
        ],
    )
    assert answer.choices[0].message.content == "It is sunny in Paris."
    assert fake.received[1].body["messages"] == [
        {"role": "user", "content": [{"text": "hi"}]},
        {
            "role": "assistant",
            "content": [
                {"text": "Checking."},
                {"toolUse": {**call, "input": {"city": "Paris"}}},
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "toolResult": {
                        "toolUseId": call["toolUseId"],
                        "content": [{"text": "sunny, 24 C"}],
                    }
                }
            ],
        },
    ]


async def test_messages_api_thinking_with_its_signature_and_back(
    fake: FakeBedrock, make_gateway: Gateway
) -> None:
    thought = {"text": "Paris is the capital.", "signature": "EqQBCkgIARABGAIiQL0sig"}
    fake.turns[MODEL] = Turn([{"reasoningContent": {"reasoningText": thought}}, {"text": "Paris."}])
    base = (await gateway_of(make_gateway, fake)).removesuffix("/v1")
    client = anthropic.AsyncAnthropic(base_url=base, api_key="x", max_retries=0)
    async with client.messages.stream(
        model="claude-br", max_tokens=2000, messages=[{"role": "user", "content": "Capital?"}]
    ) as stream:
        message = await stream.get_final_message()
    assert [block.type for block in message.content] == ["thinking", "text"]
    thinking = message.content[0]
    assert thinking.type == "thinking"
    assert (thinking.thinking, thinking.signature) == (thought["text"], thought["signature"])
    assert message.content[1].type == "text" and message.content[1].text == "Paris."
    assert message.stop_reason == "end_turn"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (11, 7)

    # The Messages API replays the turn's thinking block to Bedrock, signature intact.
    fake.turns[MODEL] = text_turn("Yes.")
    replay: list[Any] = [
        {"role": "user", "content": "Capital?"},
        {"role": "assistant", "content": [b.model_dump() for b in message.content]},
        {"role": "user", "content": "Sure?"},
    ]
    again = await client.messages.create(model="claude-br", max_tokens=2000, messages=replay)
    assert again.content[0].type == "text" and again.content[0].text == "Yes."
    assert fake.received[1].body["messages"][1] == {
        "role": "assistant",
        "content": [{"reasoningContent": {"reasoningText": thought}}, {"text": "Paris."}],
    }

    # And through chat completions' `thinking_blocks` extension, redacted reasoning too.
    chat = client_of(f"{base}/v1")
    thinking_blocks = [{"type": "thinking", **{"thinking": thought["text"]}}]
    thinking_blocks[0]["signature"] = thought["signature"]
    assistant_turn: Any = {
        "role": "assistant",
        "content": "Paris.",
        "thinking_blocks": [*thinking_blocks, {"type": "redacted_thinking", "data": "ZW5j"}],
    }
    chat_again = await chat.chat.completions.create(
        model="claude-br",
        messages=[*MESSAGES, assistant_turn, {"role": "user", "content": "Sure?"}],
    )
    assert chat_again.choices[0].message.content == "Yes."
    assert fake.received[2].body["messages"][1] == {
        "role": "assistant",
        "content": [
            {"reasoningContent": {"reasoningText": thought}},
            {"reasoningContent": {"redactedContent": "ZW5j"}},
            {"text": "Paris."},
        ],
    }


async def test_responses_api(fake: FakeBedrock, make_gateway: Gateway) -> None:
    fake.turns[MODEL] = text_turn("Bonjour!")
    client = client_of(await gateway_of(make_gateway, fake))
    response = await client.responses.create(model="claude-br", input="Say hello in French.")
    assert response.output_text == "Bonjour!"
    assert response.status == "completed"


async def test_a_session_token_is_signed(fake: FakeBedrock, make_gateway: Gateway) -> None:
    fake.session_token = "IQoJb3JpZ2luX2VjEFAKE//session+token=="
    client = client_of(await gateway_of(make_gateway, fake, session_token=fake.session_token))
    completion = await client.chat.completions.create(model="claude-br", messages=MESSAGES)
    assert completion.choices[0].message.content == "Hello from Bedrock!"
    assert fake.received[0].headers["X-Amz-Security-Token"] == fake.session_token


async def test_a_wrong_secret_is_502_upstream_auth_failed_without_the_secret(
    fake: FakeBedrock, make_gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = "wrong/Secret+Key/0123456789abcdefghijklmn"
    base = await gateway_of(make_gateway, fake, secret_access_key=wrong)
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{base}/chat/completions", json={"model": "claude-br", "messages": MESSAGES}
        ) as response,
    ):
        assert response.status == 502
        body = await response.text()
    assert json.loads(body)["error"]["code"] == "upstream_auth_failed"
    assert wrong not in body and "Secret" not in body
    assert wrong not in caplog.text and "signature" not in body.lower()
    assert fake.signatures == [] and len(fake.raw_paths) == 1


async def test_a_bedrock_api_key_is_a_bearer_token(
    fake: FakeBedrock, make_gateway: Gateway
) -> None:
    fake.api_key = "ABSKQmVkcm9ja0FQSUtleS1fake"
    entry = provider(fake, api_key=fake.api_key)
    del entry["access_key_id"], entry["secret_access_key"]
    config = gateway_config({"br": entry}, routing={"max_attempts": 1})
    client = client_of(str(await make_gateway(config)))
    completion = await client.chat.completions.create(model="claude-br", messages=MESSAGES)
    assert completion.choices[0].message.content == "Hello from Bedrock!"
    assert "X-Amz-Date" not in fake.received[0].headers


@pytest.mark.parametrize(
    ("kind", "status", "code"),
    [
        ("throttlingException", 429, "rate_limit_exceeded"),
        ("serviceUnavailableException", 503, "upstream_unavailable"),
        ("validationException", 400, "validation_exception"),
        ("modelStreamErrorException", 502, "upstream_error"),
        ("internalServerException", 502, "upstream_error"),
    ],
)
async def test_an_exception_before_any_output_is_an_http_error(
    kind: str, status: int, code: str, fake: FakeBedrock, make_gateway: Gateway
) -> None:
    fake.turns[MODEL] = Turn([{"text": "never"}], fail=(kind, f"{kind} says no"), fail_after=1)
    client = client_of(await gateway_of(make_gateway, fake))
    with pytest.raises(openai.APIStatusError) as caught:
        await client.chat.completions.create(model="claude-br", messages=MESSAGES, stream=True)
    assert caught.value.status_code == status
    error = caught.value.body
    assert isinstance(error, dict) and error["code"] == code
    assert f"{kind} says no" in error["message"]


async def test_an_exception_after_output_ends_the_stream_with_an_error(
    fake: FakeBedrock, make_gateway: Gateway
) -> None:
    fake.turns[MODEL] = Turn(
        [{"text": "Once upon a time"}], fail=("throttlingException", "Slow down"), fail_after=3
    )
    client = client_of(await gateway_of(make_gateway, fake))
    stream = await client.chat.completions.create(model="claude-br", messages=MESSAGES, stream=True)
    texts: list[str] = []

    async def consume() -> None:
        async for item in stream:
            texts.extend(c.delta.content or "" for c in item.choices)

    with pytest.raises(openai.APIError, match="Slow down") as caught:
        await consume()
    assert caught.value.code == "rate_limit_exceeded"
    assert "".join(texts) == "Once upon a time"[:8]


@pytest.mark.parametrize(
    ("http", "status", "code"),
    [
        (
            (429, "ThrottlingException", "Too many requests, please wait."),
            429,
            "rate_limit_exceeded",
        ),
        ((400, "ValidationException", "maxTokens is too big"), 400, "validation_exception"),
        ((404, "ResourceNotFoundException", "Model not found"), 404, "model_not_found"),
        ((403, "AccessDeniedException", "No access to model"), 502, "upstream_auth_failed"),
        ((503, "ServiceUnavailableException", "Try later"), 503, "upstream_unavailable"),
        ((424, "ModelErrorException", "The model failed"), 502, "upstream_error"),
    ],
)
async def test_aws_http_errors(
    http: tuple[int, str, str], status: int, code: str, fake: FakeBedrock, make_gateway: Gateway
) -> None:
    fake.turns[MODEL] = Turn([], http_error=http)
    client = client_of(await gateway_of(make_gateway, fake))
    with pytest.raises(openai.APIStatusError) as caught:
        await client.chat.completions.create(model="claude-br", messages=MESSAGES)
    assert caught.value.status_code == status
    assert isinstance(caught.value.body, dict) and caught.value.body["code"] == code


async def test_a_bad_crc_is_upstream_malformed(fake: FakeBedrock, make_gateway: Gateway) -> None:
    fake.turns[MODEL] = Turn([{"text": "Hello"}], bad_crc_at=0)
    client = client_of(await gateway_of(make_gateway, fake))
    with pytest.raises(openai.APIStatusError) as caught:
        await client.chat.completions.create(model="claude-br", messages=MESSAGES, stream=True)
    assert caught.value.status_code == 502
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["code"] == "upstream_malformed"


async def test_a_stream_cut_before_message_stop_is_incomplete(
    fake: FakeBedrock, make_gateway: Gateway
) -> None:
    fake.turns[MODEL] = Turn([{"text": "Hello there"}], cut_after=3)
    client = client_of(await gateway_of(make_gateway, fake))
    stream = await client.chat.completions.create(model="claude-br", messages=MESSAGES, stream=True)
    with pytest.raises(openai.APIError, match="before it finished"):
        async for _ in stream:
            pass


async def test_llms_check_probes_it(fake: FakeBedrock) -> None:
    config = gateway_config({"br": provider(fake)})
    result = await probe(config, config.providers[0])
    assert result.ok, result.detail
    assert result.type == "bedrock" and result.model == "claude-br"
    assert fake.received[0].body["inferenceConfig"] == {"maxTokens": 1}
    assert len(fake.signatures) == 1
    fake.secret_key = "another/Secret+Key/0123456789abcdefghijk"
    failed = await probe(config, config.providers[0])
    assert not failed.ok and "credentials" in failed.detail


async def ready(gateway: str) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{gateway.removesuffix('/v1')}/ready") as response,
    ):
        providers: dict[str, Any] = (await response.json())["providers"]
        return providers


@pytest.mark.parametrize(
    ("fail", "fell_back"),
    [
        (("throttlingException", "Too many requests"), True),
        (("serviceUnavailableException", "Try again"), True),
        (("validationException", "maxTokens exceeds the model's limit"), False),
    ],
)
async def test_throttling_falls_back_a_client_mistake_does_not(
    fail: tuple[str, str], fell_back: bool, fake: FakeBedrock, make_gateway: Gateway
) -> None:
    fake.turns[MODEL] = Turn([{"text": "never"}], fail=fail, fail_after=1)
    backup = FakeOpenAI()
    async for url in started(backup):
        config = gateway_config(
            {
                "br": provider(fake),
                "backup": {"type": "openai", "base_url": url, "models": {"claude-br": "m"}},
            },
            routing={"max_attempts": 2},
        )
        gateway = str(await make_gateway(config))
        client = client_of(gateway)
        # The stream's exception message, then /converse's HTTP error.
        if fell_back:
            chunks = await client.chat.completions.create(
                model="claude-br", messages=MESSAGES, stream=True
            )
            text = "".join([c.delta.content or "" async for i in chunks for c in i.choices])
            completion = await client.chat.completions.create(model="claude-br", messages=MESSAGES)
            assert text == completion.choices[0].message.content == "Hello, world!"
        else:
            with pytest.raises(openai.BadRequestError, match="maxTokens exceeds"):
                await client.chat.completions.create(
                    model="claude-br", messages=MESSAGES, stream=True
                )
            with pytest.raises(openai.BadRequestError, match="maxTokens exceeds"):
                await client.chat.completions.create(model="claude-br", messages=MESSAGES)
        assert len(backup.received) == (2 if fell_back else 0)
        assert len(fake.received) == 2
        states = await ready(gateway)
        # Throttling and a client's mistake never count against Bedrock's circuit.
        failures = 2 if fail[0] == "serviceUnavailableException" else 0
        assert states["br"]["consecutive_failures"] == failures
