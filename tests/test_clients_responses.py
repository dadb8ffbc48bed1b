"""Real clients of `POST /v1/responses`, unmodified: openai-node, the Agents SDK and Codex CLI.

Each runs against the real gateway app in front of a fake upstream of every protocol (OpenAI
chat completions, Ollama, Anthropic, Gemini). The fake scripts a function call first and answers
in text once the request it receives carries that call's result, so a client passes only if the
call reaches it intact, it runs the tool, and the result finds its way back to the upstream.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import agents
import orjson
import pytest
from aiohttp.test_utils import TestServer
from openai import AsyncOpenAI, InternalServerError
from openai.types.shared import Reasoning

from tests.conftest import gateway_config
from tests.node_client import NODE_DIR, needs_node
from tests.upstreams import anthropic as anthropic_fake
from tests.upstreams import gemini as gemini_fake
from tests.upstreams import ollama as ollama_fake
from tests.upstreams import openai as openai_fake
from tests.upstreams.openai import FakeOpenAI, Script

Gateway = Callable[..., Awaitable[str]]
Args = dict[str, Any]

KEY = "sk-gateway"  # every client authenticates to the gateway with it
ANSWER = "It is 22 C and sunny in Paris."
TOOL_RESULT = "22C, sunny"


# --- upstreams that call a tool, then answer once they see its result -------------------------


def openai_call(call_id: str, name: str, args: Args) -> Script:
    """OpenAI streams a call as its id and name, then the arguments in two pieces."""
    text = orjson.dumps(args).decode()
    head = {"index": 0, "id": call_id, "type": "function", "function": {"name": name}}
    return Script(
        writes=openai_fake.sse(
            openai_fake.chunk({"role": "assistant", "content": None, "tool_calls": [head]}),
            openai_fake.chunk({"tool_calls": [{"index": 0, "function": {"arguments": text[:5]}}]}),
            openai_fake.chunk({"tool_calls": [{"index": 0, "function": {"arguments": text[5:]}}]}),
            openai_fake.chunk({}, "tool_calls"),
            openai_fake.usage_chunk(),
            "[DONE]",
        )
    )


def ollama_call(call_id: str, name: str, args: Args) -> Script:
    call = {"function": {"name": name, "arguments": args}}
    return ollama_fake.ndjson(ollama_fake.line("", tool_calls=[call]), ollama_fake.done())


def anthropic_call(call_id: str, name: str, args: Args) -> Script:
    text = orjson.dumps(args).decode()
    block = {"type": "tool_use", "id": call_id, "name": name, "input": {}}
    return Script(
        writes=anthropic_fake.events(
            anthropic_fake.message_start(),
            {"type": "content_block_start", "index": 0, "content_block": block},
            *(
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "input_json_delta", "partial_json": piece},
                }
                for piece in (text[:5], text[5:])
            ),
            anthropic_fake.block_stop(),
            anthropic_fake.message_delta("tool_use"),
            anthropic_fake.MESSAGE_STOP,
        )
    )


def gemini_part(part: Args, reason: str | None = None) -> Args:
    candidate: Args = {"content": {"parts": [part], "role": "model"}, "index": 0}
    if reason is not None:
        candidate["finishReason"] = reason
    usage = {"promptTokenCount": 12, "candidatesTokenCount": 5, "totalTokenCount": 17}
    return {"candidates": [candidate], "usageMetadata": usage, "modelVersion": "gemini-2.5-flash"}


def gemini_call(call_id: str, name: str, args: Args) -> Script:
    return Script(
        writes=gemini_fake.events(
            gemini_part({"functionCall": {"name": name, "args": args}}, "STOP")
        )
    )


def gemini_text(pieces: list[str]) -> Script:
    parts = [gemini_part({"text": piece}) for piece in pieces[:-1]]
    return Script(writes=gemini_fake.events(*parts, gemini_part({"text": pieces[-1]}, "STOP")))


def openai_results(body: Args) -> list[str]:
    """The tool results in a chat completions (or Ollama) request."""
    return [str(m.get("content")) for m in body.get("messages", ()) if m.get("role") == "tool"]


def anthropic_results(body: Args) -> list[str]:
    return [
        orjson.dumps(block.get("content")).decode()
        for message in body.get("messages", ())
        if isinstance(message.get("content"), list)
        for block in message["content"]
        if block.get("type") == "tool_result"
    ]


def gemini_results(body: Args) -> list[str]:
    return [
        orjson.dumps(part["functionResponse"]).decode()
        for content in body.get("contents", ())
        for part in content.get("parts", ())
        if "functionResponse" in part
    ]


def orphans(body: Args) -> list[str]:
    """Tool results in an upstream request that answer no earlier call, in any protocol's shape."""
    calls: set[str] = set()
    out: list[str] = []
    for message in [*body.get("messages", ()), *body.get("contents", ())]:
        calls.update(call.get("id") for call in message.get("tool_calls") or ())
        if message.get("role") == "tool" and message.get("tool_call_id") not in calls:
            out.append(str(message.get("tool_call_id")))
        blocks = message.get("content")
        for block in [*(blocks if isinstance(blocks, list) else ()), *message.get("parts", ())]:
            if block.get("type") == "tool_use":
                calls.add(block["id"])
            elif block.get("type") == "tool_result" and block["tool_use_id"] not in calls:
                out.append(block["tool_use_id"])
            elif "functionCall" in block:
                calls.add(block["functionCall"]["name"])
            elif "functionResponse" in block and block["functionResponse"]["name"] not in calls:
                out.append(block["functionResponse"]["name"])
    return out


@dataclass(frozen=True)
class Protocol:
    """How one upstream protocol is faked, configured and scripted."""

    name: str
    fake: type[FakeOpenAI]
    path: str
    upstream_model: str
    provider: Callable[[str], Args]
    call: Callable[[str, str, Args], Script]
    text: Callable[[list[str]], Script]
    results: Callable[[Args], list[str]]


PROTOCOLS = [
    Protocol(
        "openai",
        FakeOpenAI,
        "/v1",
        "up-model",
        lambda url: {"type": "openai", "base_url": url, "api_key": "sk-up"},
        openai_call,
        openai_fake.text_script,
        openai_results,
    ),
    Protocol(
        "ollama",
        ollama_fake.FakeOllama,
        "",
        "llama3.2",
        lambda url: {"type": "ollama", "base_url": url},
        ollama_call,
        ollama_fake.text_script,
        openai_results,
    ),
    Protocol(
        "anthropic",
        anthropic_fake.FakeAnthropic,
        "",
        "claude-sonnet-4-5",
        lambda url: {"type": "anthropic", "base_url": url, "api_key": anthropic_fake.API_KEY},
        anthropic_call,
        anthropic_fake.text_script,
        anthropic_results,
    ),
    Protocol(
        "gemini",
        gemini_fake.FakeGemini,
        "/v1beta",
        "gemini-2.5-flash",
        lambda url: {"type": "gemini", "base_url": url, "api_key": "gm-test-key"},
        gemini_call,
        gemini_text,
        gemini_results,
    ),
]
EVERY_PROTOCOL = pytest.mark.parametrize("protocol", PROTOCOLS, ids=[p.name for p in PROTOCOLS])


@dataclass
class Upstream:
    """A started fake and the gateway in front of it, serving it as `test-model`."""

    fake: FakeOpenAI
    protocol: Protocol
    base_url: str

    def results(self) -> list[list[str]]:
        """The tool results each request to the upstream carried, in order.

        Each must answer a call made earlier in the same request (its id, or Gemini's name).
        """
        for received in self.fake.received:
            assert orphans(received.body) == [], received.body
        return [self.protocol.results(received.body) for received in self.fake.received]


def tool_then_text(
    protocol: Protocol, name: str, args: Args, *, answer: str = ANSWER, call_id: str = "call_w1"
) -> FakeOpenAI:
    """A fake that calls `name(args)` until a request carries a tool result, then answers."""

    class Scripted(protocol.fake):  # type: ignore[name-defined,misc]
        def script_for(self, model: str) -> Script:
            # Every fake records the request before it picks a script.
            if protocol.results(self.received[-1].body):
                return protocol.text([answer[:9], answer[9:]])
            return protocol.call(call_id, name, args)

    fake: FakeOpenAI = Scripted()
    return fake


async def serve(
    make_gateway: Gateway, protocol: Protocol, fake: FakeOpenAI, store: Path | None = None
) -> AsyncIterator[Upstream]:
    server = TestServer(fake.app, host="127.0.0.1")
    await server.start_server()
    try:
        provider = protocol.provider(str(server.make_url(protocol.path)))
        provider["models"] = {"test-model": protocol.upstream_model}
        provider["timeouts"] = {"idle_s": 5, "first_token_s": 10, "answer_s": 30}
        state = {"responses": {"store": f"sqlite:{store}" if store else None}}
        config = gateway_config(
            {"up": provider}, routing={"max_attempts": 1}, server={"api_keys": [KEY]}, state=state
        )
        yield Upstream(fake, protocol, await make_gateway(config))
    finally:
        await server.close()


@pytest.fixture
async def upstreams(make_gateway: Gateway) -> AsyncIterator[Callable[..., Awaitable[Upstream]]]:
    """Start a scripted fake of a protocol and the gateway in front of it."""
    running: list[AsyncIterator[Upstream]] = []

    async def start(protocol: Protocol, fake: FakeOpenAI, store: Path | None = None) -> Upstream:
        started = serve(make_gateway, protocol, fake, store)
        running.append(started)
        return await anext(started)

    yield start
    for started in reversed(running):
        await started.aclose()


# --- the OpenAI Agents SDK: its default model is OpenAIResponsesModel -------------------------


def weather_agent(calls: list[str]) -> agents.Agent[Any]:
    @agents.function_tool
    def get_weather(city: str) -> str:
        """The current weather in a city."""
        calls.append(city)
        return TOOL_RESULT

    return agents.Agent(
        name="weather",
        instructions="Answer with the tool.",
        model="test-model",
        tools=[get_weather],
    )


def use_gateway(base_url: str) -> None:
    """What a user of the Agents SDK writes to send every agent through the gateway."""
    agents.set_tracing_disabled(True)  # no export to OpenAI's trace endpoint
    agents.set_default_openai_api("responses")
    agents.set_default_openai_client(
        AsyncOpenAI(base_url=base_url, api_key=KEY, max_retries=0),
        use_for_tracing=False,
    )


@EVERY_PROTOCOL
@pytest.mark.parametrize("streamed", [False, True], ids=["run", "run_streamed"])
async def test_agents_sdk_calls_a_function_tool_and_uses_its_result(
    upstreams: Callable[..., Awaitable[Upstream]], protocol: Protocol, streamed: bool
) -> None:
    up = await upstreams(protocol, tool_then_text(protocol, "get_weather", {"city": "Paris"}))
    use_gateway(up.base_url)
    calls: list[str] = []
    agent = weather_agent(calls)
    if streamed:
        result = agents.Runner.run_streamed(agent, "Weather in Paris?")
        kinds = [event.type async for event in result.stream_events()]
        assert "raw_response_event" in kinds and "run_item_stream_event" in kinds
    else:
        result = await agents.Runner.run(agent, "Weather in Paris?")
    assert result.final_output == ANSWER
    assert calls == ["Paris"]
    items = [item.type for item in result.new_items]
    assert items == ["tool_call_item", "tool_call_output_item", "message_output_item"]
    # Two upstream requests: the second carries the tool's result, paired with the call.
    results = up.results()
    assert len(results) == 2 and results[0] == []
    assert len(results[1]) == 1 and TOOL_RESULT in results[1][0]
    assert result.context_wrapper.usage.requests == 2


@EVERY_PROTOCOL
async def test_agents_sdk_chains_stored_responses_through_a_tool_call(
    upstreams: Callable[..., Awaitable[Upstream]], protocol: Protocol, tmp_path: Path
) -> None:
    """`auto_previous_response_id`: the second call sends only the tool's output and the id."""
    fake = tool_then_text(protocol, "get_weather", {"city": "Paris"})
    up = await upstreams(protocol, fake, tmp_path / "responses.db")
    use_gateway(up.base_url)
    calls: list[str] = []
    result = await agents.Runner.run(
        weather_agent(calls), "Weather in Paris?", auto_previous_response_id=True
    )
    assert result.final_output == ANSWER and calls == ["Paris"]
    first, second = result.raw_responses
    assert second.response_id is not None and result.last_response_id == second.response_id
    # The upstream still got the whole conversation, the call and its result paired.
    results = up.results()
    assert len(results) == 2 and results[0] == []
    assert len(results[1]) == 1 and TOOL_RESULT in results[1][0]
    client = AsyncOpenAI(base_url=up.base_url, api_key=KEY, max_retries=0)
    stored = await client.responses.retrieve(second.response_id)
    assert stored.previous_response_id == first.response_id
    assert stored.output_text == ANSWER
    items = await client.responses.input_items.list(second.response_id)
    assert [item.type for item in items.data] == ["function_call_output"]


def anthropic_thinking_call(call_id: str, name: str, args: Args) -> Script:
    """Extended thinking (signed) before the tool_use block, as Claude answers with thinking on."""
    thinking = [
        {
            "type": "content_block_start",
            "index": 0,
            "content_block": {"type": "thinking", "thinking": "", "signature": ""},
        },
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "thinking_delta", "thinking": "The tool knows."},
        },
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "signature_delta", "signature": "EqQBCgIYAhIMsig"},
        },
        anthropic_fake.block_stop(0),
    ]
    block = {"type": "tool_use", "id": call_id, "name": name, "input": args}
    return Script(
        writes=anthropic_fake.events(
            anthropic_fake.message_start(),
            *thinking,
            {"type": "content_block_start", "index": 1, "content_block": block},
            anthropic_fake.block_stop(1),
            anthropic_fake.message_delta("tool_use"),
            anthropic_fake.MESSAGE_STOP,
        )
    )


async def test_agents_sdk_with_reasoning_replays_claude_thinking_before_its_tool_use(
    upstreams: Callable[..., Awaitable[Upstream]],
) -> None:
    """With thinking on, Anthropic wants the last assistant turn's signed thinking block back
    during tool use; Codex and the Agents SDK send `reasoning` and replay the reasoning items
    they were given, so the signature has to travel in the reasoning item."""
    protocol = replace(PROTOCOLS[2], call=anthropic_thinking_call)
    up = await upstreams(protocol, tool_then_text(protocol, "get_weather", {"city": "Paris"}))
    use_gateway(up.base_url)
    agent = weather_agent([]).clone(
        model_settings=agents.ModelSettings(reasoning=Reasoning(effort="high"))
    )
    result = await agents.Runner.run(agent, "Weather in Paris?")
    assert result.final_output == ANSWER
    second = up.fake.received[1].body
    assert second["thinking"]["type"] == "enabled"
    [assistant] = [m for m in second["messages"] if m["role"] == "assistant"]
    assert assistant["content"][0] == {
        "type": "thinking",
        "thinking": "The tool knows.",
        "signature": "EqQBCgIYAhIMsig",
    }


def cut_short() -> Script:
    """Some text, then the upstream connection breaks."""
    return Script(
        writes=openai_fake.sse(
            openai_fake.chunk({"role": "assistant", "content": "Hel"}),
            openai_fake.chunk({"content": "lo"}),
        ),
        fault="reset",
    )


async def test_agents_sdk_runs_fail_when_the_upstream_breaks_mid_answer(
    upstreams: Callable[..., Awaitable[Upstream]],
) -> None:
    fake = FakeOpenAI()
    fake.default = cut_short()
    up = await upstreams(PROTOCOLS[0], fake)
    use_gateway(up.base_url)
    streamed = agents.Runner.run_streamed(weather_agent([]), "hi")
    with pytest.raises(agents.exceptions.ModelBehaviorError, match=r"response\.failed"):
        async for _ in streamed.stream_events():
            pass
    # Not streamed, the failure comes before any output: an HTTP error (no retries here).
    with pytest.raises(InternalServerError, match="broke mid-stream"):
        await agents.Runner.run(weather_agent([]), "hi")


# --- openai-node: client.responses -----------------------------------------------------------


async def finished(proc: asyncio.subprocess.Process, within_s: float) -> tuple[bytes, bytes]:
    """The program's output once it exits; if it runs longer than `within_s`, its process group
    (it was started in a session of its own: codex.js runs the native binary as a child) is
    killed."""
    try:
        return await asyncio.wait_for(proc.communicate(), timeout=within_s)
    except TimeoutError:
        os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()
        raise


async def run_node(base_url: str, mode: str) -> Args:
    proc = await asyncio.create_subprocess_exec(
        "node",
        str(NODE_DIR / "responses.mjs"),
        base_url,
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


def text_fake(protocol: Protocol, pieces: list[str]) -> FakeOpenAI:
    """A fake of the protocol that answers every request with the same text."""

    class Scripted(protocol.fake):  # type: ignore[name-defined,misc]
        def script_for(self, model: str) -> Script:
            return protocol.text(pieces)

    fake: FakeOpenAI = Scripted()
    return fake


@needs_node
@pytest.mark.process
@EVERY_PROTOCOL
async def test_node_streams_folds_and_answers_whole(
    upstreams: Callable[..., Awaitable[Upstream]], protocol: Protocol
) -> None:
    up = await upstreams(protocol, text_fake(protocol, ["Hello", ", ", "world!"]))
    events = (await run_node(up.base_url, "stream"))["events"]
    types = [event["type"] for event in events]
    assert types[:2] == ["response.created", "response.in_progress"]
    assert types[-1] == "response.completed"
    assert [event["sequence_number"] for event in events] == list(range(len(events)))
    deltas = [e["delta"] for e in events if e["type"] == "response.output_text.delta"]
    assert "".join(deltas) == "Hello, world!"
    added = next(e for e in events if e["type"] == "response.output_item.added")["item"]
    done = next(e for e in events if e["type"] == "response.output_item.done")["item"]
    final = events[-1]["response"]
    assert added["id"] == done["id"] == final["output"][0]["id"]
    assert final["model"] == "test-model" and final["status"] == "completed"
    assert final["id"] == events[0]["response"]["id"]
    assert final["usage"]["input_tokens"] > 0 and final["usage"]["output_tokens"] > 0

    final_mode = await run_node(up.base_url, "final")
    assert final_mode["output_text"] == "".join(final_mode["deltas"]) == "Hello, world!"
    assert final_mode["types"][-1] == "response.completed"
    assert final_mode["response"]["status"] == "completed"

    plain = await run_node(up.base_url, "plain")
    assert plain["output_text"] == "Hello, world!"
    assert plain["response"]["object"] == "response"
    assert plain["response"]["status"] == "completed"
    assert plain["response"]["output"][0]["content"][0]["type"] == "output_text"


@needs_node
@pytest.mark.process
@EVERY_PROTOCOL
async def test_node_function_tool_round_trip(
    upstreams: Callable[..., Awaitable[Upstream]], protocol: Protocol
) -> None:
    up = await upstreams(protocol, tool_then_text(protocol, "get_weather", {"city": "Paris"}))
    result = await run_node(up.base_url, "tools")
    [call] = result["calls"]
    assert call["name"] == "get_weather" and orjson.loads(call["arguments"]) == {"city": "Paris"}
    if protocol.name in ("openai", "anthropic"):  # the protocols whose calls carry an id
        assert call["call_id"] == "call_w1"
    assert result["first"]["status"] == "completed"
    assert result["output_text"] == ANSWER
    results = up.results()
    assert len(results) == 2 and results[0] == []
    assert len(results[1]) == 1 and "22C, sunny in Paris" in results[1][0]


# --- Codex CLI: `codex exec` with the gateway as a model provider ----------------------------

CODEX = NODE_DIR / "node_modules" / ".bin" / "codex"
needs_codex = pytest.mark.skipif(
    shutil.which("node") is None or not CODEX.exists(),
    reason="Codex CLI is not installed (make test runs npm ci in tests/node: @openai/codex)",
)


def codex_config(base_url: str, *, web_search: bool = False) -> str:
    """The config.toml the README gives: the gateway as a provider speaking Responses."""
    lines = [
        'model = "test-model"',
        'model_provider = "llms"',
        # Codex offers the model OpenAI's hosted web search, which only a Responses upstream can
        # run; the gateway refuses built-in tools it cannot honour rather than dropping them.
        *([] if web_search else ['web_search = "disabled"']),
        "",
        "[model_providers.llms]",
        'name = "llms gateway"',
        f'base_url = "{base_url}"',
        'wire_api = "responses"',
        'env_key = "LLMS_API_KEY"',
    ]
    return "\n".join(lines) + "\n"


async def run_codex(
    tmp_path: Path, config: str, prompt: str, *, resume: bool = False
) -> list[Args]:
    """`codex exec --json` in an empty directory; returns its JSONL events.

    `resume` continues the last session in the same CODEX_HOME (`codex exec resume --last`).
    """
    home, work = tmp_path / "codex-home", tmp_path / "work"
    home.mkdir(exist_ok=True)
    work.mkdir(exist_ok=True)
    (home / "config.toml").write_text(config)
    command = ["exec", "resume", "--last"] if resume else ["exec", "--cd", str(work)]
    proc = await asyncio.create_subprocess_exec(
        str(CODEX),
        *command,
        "--json",
        "--strict-config",
        "--skip-git-repo-check",
        # The fake asks for `echo hi` only; no sandbox helper is needed.
        "--dangerously-bypass-approvals-and-sandbox",
        prompt,
        cwd=work,
        env={**os.environ, "CODEX_HOME": str(home), "LLMS_API_KEY": KEY, "NO_COLOR": "1"},
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    out, err = await finished(proc, 90)
    events = [orjson.loads(line) for line in out.splitlines() if line.startswith(b"{")]
    assert proc.returncode == 0 or any(e["type"] == "turn.failed" for e in events), err.decode()
    return events


def items_of(events: list[Args], kind: str) -> list[Args]:
    return [
        e["item"] for e in events if e["type"] == "item.completed" and e["item"]["type"] == kind
    ]


@needs_codex
@pytest.mark.process
async def test_codex_answers_in_text(
    upstreams: Callable[..., Awaitable[Upstream]], tmp_path: Path
) -> None:
    fake = FakeOpenAI()
    fake.default = openai_fake.text_script(["Hello", " from", " the gateway"])
    up = await upstreams(PROTOCOLS[0], fake)
    events = await run_codex(tmp_path, codex_config(up.base_url), "Say hello")
    assert [m["text"] for m in items_of(events, "agent_message")] == ["Hello from the gateway"]
    assert events[-1]["type"] == "turn.completed"
    assert events[-1]["usage"]["output_tokens"] == 3
    [received] = fake.received
    # The gateway let Codex in with the key from `env_key`, and used its own upstream.
    assert received.headers["Authorization"] == "Bearer sk-up"
    body = received.body
    assert body["model"] == "up-model" and body["stream"] is True
    assert body["messages"][0]["role"] == "system"  # Codex's instructions
    assert body["messages"][-1] == {"role": "user", "content": "Say hello"}
    assert "exec_command" in [tool["function"]["name"] for tool in body["tools"]]


@needs_codex
@pytest.mark.process
async def test_codex_reports_the_built_in_tool_the_gateway_refuses(
    upstreams: Callable[..., Awaitable[Upstream]], tmp_path: Path
) -> None:
    fake = FakeOpenAI()
    up = await upstreams(PROTOCOLS[0], fake)
    events = await run_codex(tmp_path, codex_config(up.base_url, web_search=True), "Say hello")
    assert events[-1]["type"] == "turn.failed"
    assert "web_search" in events[-1]["error"]["message"]
    assert fake.received == []


@needs_codex
@pytest.mark.process
@EVERY_PROTOCOL
async def test_codex_runs_its_shell_tool_and_answers(
    upstreams: Callable[..., Awaitable[Upstream]], protocol: Protocol, tmp_path: Path
) -> None:
    fake = tool_then_text(protocol, "exec_command", {"cmd": "echo hi"}, answer="It printed hi.")
    up = await upstreams(protocol, fake)
    events = await run_codex(tmp_path, codex_config(up.base_url), "Run echo hi")
    [command] = items_of(events, "command_execution")
    assert "echo hi" in command["command"]
    assert command["exit_code"] == 0 and command["aggregated_output"].strip() == "hi"
    assert [m["text"] for m in items_of(events, "agent_message")] == ["It printed hi."]
    assert events[-1]["type"] == "turn.completed"
    results = up.results()
    assert len(results) == 2 and results[0] == []
    [output] = results[1]
    assert "hi" in output


@needs_codex
@pytest.mark.process
async def test_codex_resumes_a_session_with_its_whole_history(
    upstreams: Callable[..., Awaitable[Upstream]], tmp_path: Path
) -> None:
    """A second `codex exec` turn replays every item of the first (a reasoning item, the call,
    its output, the answer) as input; the gateway must take them all back."""
    call = openai_call("call_r1", "exec_command", {"cmd": "echo hi"})
    thought = openai_fake.sse(openai_fake.chunk({"reasoning_content": "Run it first."}))
    fake = FakeOpenAI()
    fake.scripts["up-model"] = [
        Script(writes=[*thought, *call.writes]),
        openai_fake.text_script(["It printed", " hi."]),
        openai_fake.text_script(["Bye", "."]),
    ]
    up = await upstreams(PROTOCOLS[0], fake)
    config = codex_config(up.base_url)
    first = await run_codex(tmp_path, config, "Run echo hi")
    assert [c["aggregated_output"] for c in items_of(first, "command_execution")] == ["hi\n"]
    assert [m["text"] for m in items_of(first, "agent_message")] == ["It printed hi."]
    second = await run_codex(tmp_path, config, "Now say bye", resume=True)
    assert [m["text"] for m in items_of(second, "agent_message")] == ["Bye."]
    assert len(fake.received) == 3
    messages = fake.received[2].body["messages"]
    assert orphans(fake.received[2].body) == []
    turns = [(m["role"], m.get("content")) for m in messages if m["role"] != "system"]
    assert turns[-1] == ("user", "Now say bye")
    assert ("assistant", "It printed hi.") in turns
    [calling] = [m for m in messages if m.get("tool_calls")]
    assert calling["tool_calls"][0]["id"] == "call_r1"
    assert calling["tool_calls"][0]["function"]["name"] == "exec_command"
    [result] = [m for m in messages if m["role"] == "tool"]
    assert result["tool_call_id"] == "call_r1" and "hi" in result["content"]


@needs_codex
@pytest.mark.process
async def test_codex_reports_an_upstream_that_breaks_mid_answer(
    upstreams: Callable[..., Awaitable[Upstream]], tmp_path: Path
) -> None:
    fake = FakeOpenAI()
    fake.default = cut_short()
    up = await upstreams(PROTOCOLS[0], fake)
    retries = "stream_max_retries = 0\nrequest_max_retries = 0\n"  # in [model_providers.llms]
    events = await run_codex(tmp_path, codex_config(up.base_url) + retries, "hi")
    assert events[-1]["type"] == "turn.failed"
    assert "broke mid-stream" in events[-1]["error"]["message"]
    assert items_of(events, "agent_message") == []  # the partial "Hello" is no answer
    assert len(fake.received) == 1
