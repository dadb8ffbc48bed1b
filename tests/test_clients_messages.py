"""Real clients of `POST /v1/messages`, unmodified: the Anthropic TypeScript SDK and Claude Code.

Each runs against the real gateway app in front of a fake upstream of every protocol (OpenAI
chat completions, Ollama, Anthropic, Gemini), scripted as in tests/test_clients_responses.py:
a tool call first, then a text answer once the request carries that call's result, so a client
passes only if the call reaches it intact, it runs the tool, and the result gets back upstream.

Claude Code (npm `@anthropic-ai/claude-code`, a native binary: it needs no Node at run time and
no network or login with `ANTHROPIC_API_KEY` set) runs as `claude -p … --output-format json` in a
temporary HOME, with `ANTHROPIC_BASE_URL` at the gateway. What it calls, as seen from 2.1.332:
`HEAD /api/hello` (a preconnect without a key whose answer it ignores: the 401 stops nothing),
then `POST /v1/messages?beta=true`, always streamed, with `thinking`, `output_config.effort`,
`context_management`, `cache_control`, a `defer_loading` tool and up to eight `anthropic-beta`
flags; for a model name it does not know (and its newest defaults) also `role: "system"`
messages after the user's turn. `/context` calls `POST /v1/messages/count_tokens?beta=true`.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from llms import create_app
from llms.api.messages_request import from_request
from llms.errors import GatewayError
from tests.conftest import gateway_config
from tests.node_client import NODE_DIR
from tests.test_clients_responses import (
    ANSWER,
    EVERY_PROTOCOL,
    PROTOCOLS,
    Protocol,
    finished,
    openai_call,
    orphans,
    text_fake,
    tool_then_text,
)
from tests.upstreams import openai as openai_fake
from tests.upstreams.openai import FakeOpenAI, Script

Args = dict[str, Any]

KEY = "sk-gateway"  # every client authenticates to the gateway with it
# The names Claude Code is told to use (ANTHROPIC_MODEL, ANTHROPIC_DEFAULT_HAIKU_MODEL), mapped to
# the upstream's model in the gateway's config as a user would.
MAIN_MODEL = "claude-sonnet-4-5"
SMALL_MODEL = "claude-haiku-4-5"

CLAUDE = NODE_DIR / "node_modules" / ".bin" / "claude"
SDK = NODE_DIR / "node_modules" / "@anthropic-ai" / "sdk"


def _claude_runs() -> str | None:
    """Why Claude Code cannot run here, or None: `claude --version` must answer offline."""
    if not CLAUDE.exists():
        return "Claude Code is not installed (make test runs npm ci in tests/node)"
    try:
        with tempfile.TemporaryDirectory() as home:  # never the real ~/.claude
            done = subprocess.run(
                [str(CLAUDE), "--version"],
                capture_output=True,
                timeout=30,
                env={"PATH": "/usr/bin:/bin", "HOME": home},
            )
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"`claude --version` did not run: {error}"
    if done.returncode != 0 or b"Claude Code" not in done.stdout:
        # e.g. the postinstall that puts the native binary in place was not run
        return f"`claude --version` failed: {(done.stdout + done.stderr).decode()[:200]}"
    return None


needs_sdk = pytest.mark.skipif(
    shutil.which("node") is None or not SDK.exists(),
    reason="@anthropic-ai/sdk is not installed (make test runs npm ci in tests/node)",
)
_NO_CLAUDE = _claude_runs()
needs_claude = pytest.mark.skipif(_NO_CLAUDE is not None, reason=_NO_CLAUDE or "")


# --- a `role: "system"` message in `messages` (Claude Code 2.1.332 sends them) ------------------


def test_system_messages_in_messages_become_chat_system_messages_in_place() -> None:
    call = from_request(
        {
            "model": "m",
            "max_tokens": 10,
            "system": [{"type": "text", "text": "Top.", "cache_control": {"type": "ephemeral"}}],
            "messages": [
                {"role": "user", "content": "Run it"},
                {"role": "system", "content": "Gone.", "clear_at": "next_user_message"},
                {
                    "role": "assistant",
                    "content": [{"type": "tool_use", "id": "t1", "name": "Bash", "input": {}}],
                },
                # Between a call and its result: sent after the result, so the pair stays whole.
                {"role": "system", "content": [{"type": "text", "text": "Env."}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1"}]},
                {"role": "system", "content": "Still shown.", "clear_at": "next_user_message"},
                {"role": "system", "content": [], "output_config": {"effort": "low"}},
            ],
        }
    )
    assert [(m["role"], m.get("content")) for m in call.chat["messages"]] == [
        ("system", "Top."),
        ("user", "Run it"),
        ("assistant", None),
        ("tool", ""),
        ("system", "Env."),
        ("system", "Still shown."),
    ]
    assert call.messages_param("messages[4]") == "messages[3]"  # errors name the system message


@pytest.mark.parametrize(
    ("message", "param"),
    [
        ({"role": "robot", "content": "x"}, "messages[1].role"),
        ({"role": "system", "content": "x", "clear_at": "later"}, "messages[1].clear_at"),
        ({"role": "system", "content": 5}, "messages[1].content"),
        (
            {"role": "system", "content": [{"type": "tool_removal", "tool": {"name": "Bash"}}]},
            "messages[1].content[0].type",
        ),
    ],
)
def test_a_system_message_the_gateway_cannot_honour_is_a_400_naming_it(
    message: Args, param: str
) -> None:
    body = {"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
    with pytest.raises(GatewayError) as error:
        from_request({**body, "messages": [*body["messages"], message]})
    assert error.value.status == 400 and error.value.param == param


# --- the gateway in front of a scripted fake, with a log of what the client called ---------------


@dataclass
class Gateway:
    fake: FakeOpenAI
    protocol: Protocol
    root: str  # ANTHROPIC_BASE_URL: the gateway's root, no /v1
    seen: list[tuple[str, str, int]] = field(default_factory=list)  # (method, path?query, status)

    def results(self) -> list[list[str]]:
        """The tool results each upstream request carried, each paired with its call."""
        for received in self.fake.received:
            assert orphans(received.body) == [], received.body
        return [self.protocol.results(received.body) for received in self.fake.received]


@pytest.fixture
async def gateways() -> AsyncIterator[Callable[[Protocol, FakeOpenAI], Awaitable[Gateway]]]:
    cleanups: list[Callable[[], Awaitable[None]]] = []

    async def start(protocol: Protocol, fake: FakeOpenAI) -> Gateway:
        server = TestServer(fake.app, host="127.0.0.1")
        await server.start_server()
        cleanups.append(server.close)
        provider = protocol.provider(str(server.make_url(protocol.path)))
        up = protocol.upstream_model
        provider["models"] = {"test-model": up, MAIN_MODEL: up, SMALL_MODEL: up}
        provider["timeouts"] = {"idle_s": 5, "first_token_s": 10, "answer_s": 30}
        config = gateway_config(
            {"up": provider}, routing={"max_attempts": 1}, server={"api_keys": [KEY]}
        )
        app = create_app(config)
        gateway = Gateway(fake, protocol, "")

        async def log(request: web.Request, response: web.StreamResponse) -> None:
            gateway.seen.append((request.method, request.path_qs, response.status))

        app.on_response_prepare.append(log)
        runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=5)
        await runner.setup()
        cleanups.append(runner.cleanup)
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        gateway.root = f"http://127.0.0.1:{runner.addresses[0][1]}"
        return gateway

    yield start
    for cleanup in reversed(cleanups):
        await cleanup()


# --- the Anthropic TypeScript SDK (tests/node/messages.mjs) -------------------------------------


async def run_sdk(root: str, mode: str) -> Args:
    proc = await asyncio.create_subprocess_exec(
        "node",
        str(NODE_DIR / "messages.mjs"),
        root,
        "test-model",
        mode,
        env={**os.environ, "LLMS_API_KEY": KEY},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    out, err = await finished(proc, 60)
    assert proc.returncode == 0, err.decode()
    result: Args = orjson.loads(out.splitlines()[-1])
    assert result["ok"], result
    return result


@needs_sdk
@pytest.mark.process
@EVERY_PROTOCOL
async def test_typescript_sdk_creates_and_streams_messages(
    gateways: Callable[[Protocol, FakeOpenAI], Awaitable[Gateway]], protocol: Protocol
) -> None:
    gateway = await gateways(protocol, text_fake(protocol, ["Hello", ", ", "world!"]))
    created = (await run_sdk(gateway.root, "create"))["message"]
    assert created["type"] == "message" and created["role"] == "assistant"
    assert created["id"].startswith("msg_") and created["model"] == "test-model"
    assert created["content"] == [{"type": "text", "text": "Hello, world!"}]
    assert created["stop_reason"] == "end_turn"
    assert created["usage"]["input_tokens"] > 0 and created["usage"]["output_tokens"] > 0

    streamed = await run_sdk(gateway.root, "stream")
    types = [event["type"] for event in streamed["events"]]
    assert types[0] == "message_start" and types[-1] == "message_stop"
    assert types.count("content_block_start") == types.count("content_block_stop") == 1
    assert streamed["events"][0]["message"]["usage"]["input_tokens"] > 0
    assert "".join(streamed["deltas"]) == "Hello, world!"
    final = streamed["message"]
    assert final["content"] == [{"type": "text", "text": "Hello, world!"}]
    assert final["stop_reason"] == "end_turn" and final["id"].startswith("msg_")
    assert final["usage"]["output_tokens"] > 0
    assert {path for _, path, _ in gateway.seen} == {"/v1/messages"}


@needs_sdk
@pytest.mark.process
@EVERY_PROTOCOL
async def test_typescript_sdk_tool_use_round_trip(
    gateways: Callable[[Protocol, FakeOpenAI], Awaitable[Gateway]], protocol: Protocol
) -> None:
    fake = tool_then_text(protocol, "get_weather", {"city": "Paris"})
    gateway = await gateways(protocol, fake)
    result = await run_sdk(gateway.root, "tools")
    first, second = result["first"], result["second"]
    assert first["stop_reason"] == "tool_use"
    [use] = [block for block in first["content"] if block["type"] == "tool_use"]
    assert use["name"] == "get_weather" and use["input"] == {"city": "Paris"}
    if protocol.name in ("openai", "anthropic"):  # the protocols whose calls carry an id
        assert use["id"] == "call_w1"
    assert second["content"] == [{"type": "text", "text": ANSWER}]
    assert second["stop_reason"] == "end_turn"
    results = gateway.results()
    assert len(results) == 2 and results[0] == []
    assert len(results[1]) == 1 and "22C, sunny in Paris" in results[1][0]


# --- Claude Code: `claude -p` with ANTHROPIC_BASE_URL at the gateway ---------------------------


def claude_env(
    home: Path, root: str, *, auth: str = "ANTHROPIC_API_KEY", model: str = MAIN_MODEL
) -> dict[str, str]:
    """What a user exports to put Claude Code on the gateway (the README's setup), in a HOME
    of its own so the real ~/.claude is never read or written."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "SHELL": "/bin/bash",
        "HOME": str(home),
        "CLAUDE_CONFIG_DIR": str(home / ".claude"),
        "ANTHROPIC_BASE_URL": root,
        auth: KEY,
        "ANTHROPIC_MODEL": model,
        "ANTHROPIC_DEFAULT_SONNET_MODEL": MAIN_MODEL,
        "ANTHROPIC_DEFAULT_HAIKU_MODEL": SMALL_MODEL,
        "ANTHROPIC_SMALL_FAST_MODEL": SMALL_MODEL,
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",  # no telemetry, error reports, updates
        "DISABLE_AUTOUPDATER": "1",
        "NO_COLOR": "1",
    }


async def run_claude(
    tmp_path: Path,
    root: str,
    prompt: str,
    *,
    auth: str = "ANTHROPIC_API_KEY",
    model: str = MAIN_MODEL,
) -> Args:
    """`claude -p <prompt> --output-format json` in an empty directory; returns its result."""
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir(exist_ok=True)
    work.mkdir(exist_ok=True)
    proc = await asyncio.create_subprocess_exec(
        str(CLAUDE),
        "-p",
        prompt,
        "--output-format",
        "json",
        "--allowedTools",
        "Bash",  # run unattended: the fake asks for `echo hi` only
        cwd=work,
        env=claude_env(home, root, auth=auth, model=model),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    out, err = await finished(proc, 90)
    assert out.strip(), err.decode()
    result: Args = orjson.loads(out.splitlines()[-1])
    assert proc.returncode == 0 and not result["is_error"], (result, err.decode())
    return result


def messages_calls(gateway: Gateway) -> list[tuple[str, str, int]]:
    """Every call but the `HEAD /api/hello` probe, which carries no key (401): a preconnect
    whose answer Claude Code ignores."""
    calls = [seen for seen in gateway.seen if seen[:2] != ("HEAD", "/api/hello")]
    assert calls and all(status == 200 for _, _, status in calls), gateway.seen
    return calls


# Claude Code shapes its requests by the model's name: for a name it does not know (the gateway's
# own `test-model`) it sends its environment as a `role: "system"` message after the user's turn.
MODELS = pytest.mark.parametrize("model", [MAIN_MODEL, "test-model"])


def system_after_the_user(gateway: Gateway, model: str) -> None:
    """On a chat upstream, Claude Code's `role: "system"` message is a system message in place."""
    if gateway.protocol.name != "openai" or model == MAIN_MODEL:
        return
    roles = [m["role"] for m in gateway.fake.received[0].body["messages"]]
    assert roles[:3] == ["system", "user", "system"], roles


@needs_claude
@pytest.mark.process
@EVERY_PROTOCOL
@MODELS
async def test_claude_code_answers_in_text(
    gateways: Callable[[Protocol, FakeOpenAI], Awaitable[Gateway]],
    protocol: Protocol,
    model: str,
    tmp_path: Path,
) -> None:
    gateway = await gateways(protocol, text_fake(protocol, ["Hello", " from", " the gateway"]))
    result = await run_claude(tmp_path, gateway.root, "Say hello", model=model)
    assert result["type"] == "result" and result["subtype"] == "success"
    assert result["result"] == "Hello from the gateway"
    assert result["stop_reason"] == "end_turn" and result["num_turns"] == 1
    assert result["usage"]["input_tokens"] > 0 and result["usage"]["output_tokens"] > 0
    assert list(result["modelUsage"]) == [model]
    system_after_the_user(gateway, model)
    assert messages_calls(gateway) == [("POST", "/v1/messages?beta=true", 200)]
    [received] = gateway.fake.received
    assert "Say hello" in orjson.dumps(received.body).decode()
    assert (tmp_path / "home" / ".claude").is_dir()  # its state stayed in the temporary HOME


@needs_claude
@pytest.mark.process
async def test_claude_code_authenticates_with_an_auth_token(
    gateways: Callable[[Protocol, FakeOpenAI], Awaitable[Gateway]], tmp_path: Path
) -> None:
    """ANTHROPIC_AUTH_TOKEN is sent as `Authorization: Bearer`, which the gateway takes too."""
    protocol = PROTOCOLS[0]
    gateway = await gateways(protocol, text_fake(protocol, ["Hi"]))
    result = await run_claude(tmp_path, gateway.root, "Say hi", auth="ANTHROPIC_AUTH_TOKEN")
    assert result["result"] == "Hi"
    assert messages_calls(gateway) == [("POST", "/v1/messages?beta=true", 200)]


@needs_claude
@pytest.mark.process
@EVERY_PROTOCOL
@MODELS
async def test_claude_code_runs_bash_and_answers(
    gateways: Callable[[Protocol, FakeOpenAI], Awaitable[Gateway]],
    protocol: Protocol,
    model: str,
    tmp_path: Path,
) -> None:
    args = {"command": "echo hi", "description": "Print hi"}
    fake = tool_then_text(protocol, "Bash", args, answer="It printed hi.")
    gateway = await gateways(protocol, fake)
    result = await run_claude(tmp_path, gateway.root, "Run echo hi", model=model)
    assert result["result"] == "It printed hi."
    assert result["num_turns"] == 2 and result["permission_denials"] == []
    calls = messages_calls(gateway)
    assert [path for _, path, _ in calls] == ["/v1/messages?beta=true"] * 2
    # The second upstream request carries the output of the command Claude Code ran.
    results = gateway.results()
    assert len(results) == 2 and results[0] == []
    [output] = results[1]
    assert "hi" in output
    first = gateway.fake.received[0].body
    tools = first.get("tools") or []
    names = orjson.dumps(tools).decode()
    assert "Bash" in names  # Claude Code's tools reached the upstream in its own shape
    system_after_the_user(gateway, model)


@needs_claude
@pytest.mark.process
async def test_claude_code_replays_a_reasoning_models_thinking_with_its_tool_call(
    gateways: Callable[[Protocol, FakeOpenAI], Awaitable[Gateway]], tmp_path: Path
) -> None:
    """A chat model's `reasoning_content` reaches Claude Code as a thinking block (no signature:
    the model has none); Claude Code sends it back before its tool_use in the next turn, and the
    gateway takes it without showing it to the model as text."""
    thought = openai_fake.sse(
        openai_fake.chunk({"role": "assistant", "reasoning_content": "Q7 plan: run it."})
    )
    call = openai_call("call_t1", "Bash", {"command": "echo hi", "description": "Print hi"})
    fake = FakeOpenAI()
    fake.scripts["up-model"] = [
        Script(writes=[*thought, *call.writes]),
        openai_fake.text_script(["It printed", " hi."]),
    ]
    gateway = await gateways(PROTOCOLS[0], fake)
    result = await run_claude(tmp_path, gateway.root, "Run echo hi")
    assert result["result"] == "It printed hi." and result["num_turns"] == 2
    assert len(messages_calls(gateway)) == 2
    second = fake.received[1].body["messages"]
    [calling] = [m for m in second if m.get("tool_calls")]
    assert calling["tool_calls"][0]["id"] == "call_t1"
    assert "Q7 plan" not in orjson.dumps(second).decode()  # thinking is never replayed as text
    [output] = [m["content"] for m in second if m["role"] == "tool"]
    assert output.startswith("hi")


@needs_claude
@pytest.mark.process
async def test_claude_code_context_counts_tokens_through_the_gateway(
    gateways: Callable[[Protocol, FakeOpenAI], Awaitable[Gateway]], tmp_path: Path
) -> None:
    """`/context` asks `POST /v1/messages/count_tokens?beta=true` for each part of the prompt
    (system prompt, every tool, the messages) and answers without calling the model."""
    protocol = PROTOCOLS[0]
    gateway = await gateways(protocol, text_fake(protocol, ["unused"]))
    result = await run_claude(tmp_path, gateway.root, "/context")
    calls = messages_calls(gateway)
    assert calls and {path for _, path, _ in calls} == {"/v1/messages/count_tokens?beta=true"}
    assert "Context Usage" in result["result"] and MAIN_MODEL in result["result"]
    assert gateway.fake.received == []  # counted by the gateway, no generation upstream
