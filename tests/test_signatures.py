"""Multi-turn tool use with thinking on, through every client-facing API, to Anthropic and Gemini.

The fakes check what the real services check: Anthropic answers 400 when the assistant turn
whose tool_use the request answers does not start with the thinking block it signed (text and
signature intact); Gemini 3 answers 400 when a function call comes back without its
thoughtSignature, or with one it never gave. Each test is a two-turn round trip by an official
SDK (openai-python's chat completions and Responses, anthropic-python's Messages): the first
turn's signature reaches the client (chat: `thinking_blocks`; Responses: a reasoning item's
`encrypted_content`; Messages: `signature_delta`), the client replays the turn as it is, and the
upstream gets its signature back. Streams are checked byte for byte where the signature travels.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import anthropic
import openai
import orjson
import pytest
from aiohttp.test_utils import TestServer

from tests.conftest import gateway_config
from tests.upstreams import anthropic as anthropic_fake
from tests.upstreams import gemini as gemini_fake
from tests.upstreams.openai import FakeOpenAI, Script

Gateway = Callable[..., Awaitable[str]]
SIG = "EqQBCgIYAhIMsig"  # what the fake Anthropic signs "The tool knows." with
GSIG = "CiQBsigGemini3"  # the fake Gemini's signature of its function call
THOUGHT = "The tool knows."
ANSWER = "It is 22 C in Paris."
PARAMS = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
TOOLS: Any = [{"type": "function", "function": {"name": "get_weather", "parameters": PARAMS}}]
ASK: Any = [{"role": "user", "content": "Weather in Paris?"}]


def delta(kind: str, **fields: str) -> dict[str, Any]:
    return {"type": "content_block_delta", "index": 0, "delta": {"type": kind, **fields}}


def claude_call() -> Script:
    """Signed thinking, then a tool_use block: what Claude answers with thinking on."""
    start = {"type": "thinking", "thinking": "", "signature": ""}
    block = {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}
    return Script(
        writes=anthropic_fake.events(
            anthropic_fake.message_start(),
            {"type": "content_block_start", "index": 0, "content_block": start},
            delta("thinking_delta", thinking=THOUGHT),
            delta("signature_delta", signature=SIG),
            anthropic_fake.block_stop(0),
            {"type": "content_block_start", "index": 1, "content_block": block},
            anthropic_fake.block_stop(1),
            anthropic_fake.message_delta("tool_use"),
            anthropic_fake.MESSAGE_STOP,
        )
    )


def gemini_call() -> Script:
    """A thought summary, then a function call carrying its thoughtSignature (Gemini 3)."""
    call = {"name": "get_weather", "args": {"city": "Paris"}}
    parts = [{"text": THOUGHT, "thought": True}, {"functionCall": call, "thoughtSignature": GSIG}]
    usage = {"promptTokenCount": 5, "candidatesTokenCount": 3, "thoughtsTokenCount": 4}
    candidate = {"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}
    return Script(writes=gemini_fake.events({"candidates": [candidate], "usageMetadata": usage}))


def gemini_text() -> Script:
    candidate = {"content": {"role": "model", "parts": [{"text": ANSWER}]}, "finishReason": "STOP"}
    usage = {"promptTokenCount": 9, "candidatesTokenCount": 6, "thoughtsTokenCount": 0}
    return Script(writes=gemini_fake.events({"candidates": [candidate], "usageMetadata": usage}))


@dataclass
class Up:
    anthropic: anthropic_fake.FakeAnthropic
    gemini: gemini_fake.FakeGemini
    url: str  # the gateway's …/v1

    def fake(self, model: str) -> FakeOpenAI:
        return self.anthropic if model == "claude" else self.gemini

    def script(self, model: str) -> None:
        """Each model calls the tool, then answers."""
        if model == "claude":
            text = anthropic_fake.text_script([ANSWER])
            self.anthropic.scripts[anthropic_fake.MODEL] = [claude_call(), text]
        else:
            self.gemini.scripts["gemini-3-flash-preview"] = [gemini_call(), gemini_text()]

    def replayed(self, model: str) -> Any:
        """What the upstream got back of the first turn in the last request."""
        body = self.fake(model).received[-1].body
        if model == "claude":
            [turn] = [m for m in body["messages"] if m["role"] == "assistant"]
            return turn["content"][0]
        [turn] = [c for c in body["contents"] if c["role"] == "model"]
        return next(part for part in turn["parts"] if "functionCall" in part)

    def chat(self) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(base_url=self.url, api_key="x", max_retries=0)


@pytest.fixture
async def up(make_gateway: Gateway) -> AsyncIterator[Up]:
    claude, gemini = anthropic_fake.FakeAnthropic(), gemini_fake.FakeGemini()
    servers = [TestServer(claude.app, host="127.0.0.1"), TestServer(gemini.app, host="127.0.0.1")]
    for server in servers:
        await server.start_server()
    providers = {
        "anthropic": {
            "type": "anthropic",
            "base_url": str(servers[0].make_url("")).rstrip("/"),
            "api_key": anthropic_fake.API_KEY,
            "models": {"claude": anthropic_fake.MODEL},
        },
        "gm": {
            "type": "gemini",
            "base_url": str(servers[1].make_url("/v1beta")),
            "api_key": "gm-test-key",
            "models": {"gemini-3": "gemini-3-flash-preview"},
        },
    }
    url = await make_gateway(gateway_config(providers, routing={"max_attempts": 1}))
    yield Up(claude, gemini, url)
    for server in servers:
        await server.close()


def expected_replay(model: str) -> Any:
    if model == "claude":
        return {"type": "thinking", "thinking": THOUGHT, "signature": SIG}
    call = {"name": "get_weather", "args": {"city": "Paris"}}
    return {"functionCall": call, "thoughtSignature": GSIG}


MODELS = pytest.mark.parametrize("model", ["claude", "gemini-3"])


# --- chat completions ----------------------------------------------------------------------------


@MODELS
async def test_chat_completions_replays_the_signature_with_the_tool_call(
    up: Up, model: str
) -> None:
    up.script(model)
    client = up.chat()
    first = await client.chat.completions.create(
        model=model, messages=ASK, tools=TOOLS, reasoning_effort="high"
    )
    message = first.choices[0].message
    extra = message.model_extra or {}
    assert extra["reasoning_content"] == THOUGHT
    signed = {"type": "thinking", "thinking": THOUGHT if model == "claude" else "", "signature": ""}
    signed["signature"] = SIG if model == "claude" else GSIG
    assert extra["thinking_blocks"] == [signed]
    assert message.tool_calls is not None
    result = {"role": "tool", "tool_call_id": message.tool_calls[0].id, "content": "22C"}
    history: Any = [*ASK, message.model_dump(exclude_none=True), result]
    answer = await client.chat.completions.create(
        model=model, messages=history, tools=TOOLS, reasoning_effort="high"
    )
    assert answer.choices[0].message.content == ANSWER
    assert up.replayed(model) == expected_replay(model)


async def test_anthropic_refuses_a_tool_turn_replayed_without_its_thinking(up: Up) -> None:
    """The fake checks as Anthropic does: the 400 reaches the client, named as Anthropic put it."""
    up.script("claude")
    client = up.chat()
    first = await client.chat.completions.create(
        model="claude", messages=ASK, tools=TOOLS, reasoning_effort="high"
    )
    message = first.choices[0].message.model_dump(exclude_none=True)
    call_id = message["tool_calls"][0]["id"]
    result = {"role": "tool", "tool_call_id": call_id, "content": "22C"}
    for bad in ([], [{"type": "thinking", "thinking": "Edited.", "signature": SIG}]):
        history: Any = [*ASK, {**message, "thinking_blocks": bad}, result]
        with pytest.raises(openai.BadRequestError) as info:
            await client.chat.completions.create(
                model="claude", messages=history, tools=TOOLS, reasoning_effort="high"
            )
        assert "thinking" in str(info.value)


async def test_gemini_3_refuses_a_signature_it_never_gave(up: Up) -> None:
    up.script("gemini-3")
    client = up.chat()
    first = await client.chat.completions.create(model="gemini-3", messages=ASK, tools=TOOLS)
    message = first.choices[0].message.model_dump(exclude_none=True)
    message["thinking_blocks"] = [{"type": "thinking", "thinking": "", "signature": "forged"}]
    result = {"role": "tool", "tool_call_id": message["tool_calls"][0]["id"], "content": "22C"}
    with pytest.raises(openai.BadRequestError, match="thought signature"):
        await client.chat.completions.create(
            model="gemini-3", messages=[*ASK, message, result], tools=TOOLS
        )


async def sse_lines(url: str, body: dict[str, Any], **headers: str) -> list[bytes]:
    """The events of a stream as sent (each with its blank line)."""
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, json=body, headers={"Authorization": "Bearer x", **headers}) as reply,
    ):
        assert reply.status == 200, await reply.text()
        raw = await reply.read()
    return [part + b"\n\n" for part in raw.split(b"\n\n") if part]


@MODELS
async def test_the_chat_stream_carries_thinking_blocks_byte_for_byte(up: Up, model: str) -> None:
    up.script(model)
    body = {"model": model, "messages": ASK, "tools": TOOLS, "stream": True}
    lines = await sse_lines(f"{up.url}/chat/completions", {**body, "reasoning_effort": "high"})
    head = orjson.loads(lines[0].removeprefix(b"data: "))
    [line] = [line for line in lines if b"thinking_blocks" in line]
    thought = THOUGHT if model == "claude" else ""
    blocks = b'[{"type":"thinking","thinking":"%s","signature":"%s"}]' % (
        thought.encode(),
        (SIG if model == "claude" else GSIG).encode(),
    )
    sent = b'{"thinking_blocks":%s}' % blocks
    if model != "claude":  # Gemini's signature comes with its call, in one delta
        [call] = orjson.loads(line.removeprefix(b"data: "))["choices"][0]["delta"]["tool_calls"]
        sent = sent[:-1] + b',"tool_calls":[{"index":0,"id":"%s",' % call["id"].encode()
        sent += b'"type":"function","function":{"name":"get_weather",'
        sent += b'"arguments":"{\\"city\\":\\"Paris\\"}"}}]}'
    assert line == (
        b'data: {"id":"%s","object":"chat.completion.chunk","created":%d,"model":"%s",'
        b'"choices":[{"index":0,"delta":%s,"logprobs":null,"finish_reason":null}]}\n\n'
        % (head["id"].encode(), head["created"], model.encode(), sent)
    )


# --- the Responses API ---------------------------------------------------------------------------


@MODELS
@pytest.mark.parametrize("stream", [False, True])
async def test_responses_replays_the_signature_from_the_reasoning_item(
    up: Up, model: str, stream: bool
) -> None:
    up.script(model)
    client = up.chat()
    tools: Any = [{"type": "function", "name": "get_weather", "parameters": PARAMS}]
    ask: Any = [{"role": "user", "content": "Weather in Paris?"}]
    settings: Any = {"model": model, "tools": tools, "reasoning": {"effort": "high"}}
    if stream:
        events = [
            e async for e in await client.responses.create(input=ask, stream=True, **settings)
        ]
        first = events[-1].response  # type: ignore[union-attr]
    else:
        first = await client.responses.create(input=ask, **settings)
    reasoning, call = first.output
    assert reasoning.type == "reasoning" and call.type == "function_call"
    assert reasoning.encrypted_content == (SIG if model == "claude" else GSIG)
    given = [item.model_dump(exclude_none=True) for item in first.output]
    result = {"type": "function_call_output", "call_id": call.call_id, "output": "22C"}
    second = await client.responses.create(input=[*ask, *given, result], **settings)
    assert second.output_text == ANSWER
    assert up.replayed(model) == expected_replay(model)


# --- the Messages API ----------------------------------------------------------------------------


@MODELS
async def test_messages_replays_the_signed_thinking_block(up: Up, model: str) -> None:
    """Claude goes natively; Gemini's signature is a thinking block's signature before the
    tool_use, which anthropic-python gives back as it was."""
    up.script(model)
    client = anthropic.AsyncAnthropic(
        base_url=up.url.removesuffix("/v1"), api_key="x", max_retries=0
    )
    tools: Any = [{"name": "get_weather", "input_schema": PARAMS}]
    settings: Any = {
        "model": model,
        "max_tokens": 2048,
        "tools": tools,
        "thinking": {"type": "enabled", "budget_tokens": 1024},
    }
    first = await client.messages.create(messages=ASK, **settings)
    thinking, tool_use = first.content
    assert thinking.type == "thinking" and thinking.thinking == THOUGHT
    assert thinking.signature == (SIG if model == "claude" else GSIG)
    assert tool_use.type == "tool_use"
    result = {"type": "tool_result", "tool_use_id": tool_use.id, "content": "22C"}
    history: Any = [
        *ASK,
        {"role": "assistant", "content": [block.model_dump() for block in first.content]},
        {"role": "user", "content": [result]},
    ]
    second = await client.messages.create(messages=history, **settings)
    assert second.content[0].type == "text" and second.content[0].text == ANSWER
    assert up.replayed(model) == expected_replay(model)


async def test_the_messages_stream_sends_gemini_signature_as_a_signature_delta(up: Up) -> None:
    up.script("gemini-3")
    body = {
        "model": "gemini-3",
        "max_tokens": 2048,
        "messages": ASK,
        "tools": [{"name": "get_weather", "input_schema": PARAMS}],
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "stream": True,
    }
    lines = await sse_lines(f"{up.url}/messages", body, **{"anthropic-version": "2023-06-01"})
    starts = [line for line in lines if line.startswith(b"event: content_block_start")]
    assert starts[0] == (
        b"event: content_block_start\n"
        b'data: {"type":"content_block_start","index":0,'
        b'"content_block":{"type":"thinking","thinking":"","signature":""}}\n\n'
    )
    signature = [line for line in lines if b"signature_delta" in line]
    assert signature == [
        b"event: content_block_delta\n"
        b'data: {"type":"content_block_delta","index":0,'
        b'"delta":{"type":"signature_delta","signature":"%s"}}\n\n' % GSIG.encode()
    ]
    assert lines.index(signature[0]) < lines.index(starts[1])  # before the tool_use block
