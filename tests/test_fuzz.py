"""Fuzz POST /v1/chat/completions with hypothesis: never a 500, always OpenAI's error shape.

The gateway runs on its own event loop in a thread (hypothesis drives synchronous tests), in
front of four fake providers, one per protocol, so every adapter meets every body that the
validation lets through. Valid bodies get a 200; the gateway still serves afterwards.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import quote, urlencode

import orjson
import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llms import create_app
from llms.api.responses_request import KNOWN_FIELDS, from_request
from llms.server import responses as responses_routes
from llms.server.app import server_options
from tests.conftest import gateway_config
from tests.upstreams.anthropic import FakeAnthropic
from tests.upstreams.gemini import FakeGemini
from tests.upstreams.ollama import FakeOllama
from tests.upstreams.openai import FakeOpenAI, Script

KEY = "sk-fuzz"
MODELS = ("via-openai", "via-anthropic", "via-gemini", "via-ollama")
STALLED = "via-openai-stalled"
# Errors the gateway may answer a fuzzed body with (no upstream fails here).
CLIENT_ERRORS = {400, 403, 404, 413}


class ThreadedGateway:
    """The gateway and four fake providers on one event loop in a daemon thread; stored
    responses in a SQLite file of a temporary directory."""

    def __init__(self, **server: Any) -> None:
        self.server = server
        self.state_dir = tempfile.TemporaryDirectory(prefix="llms-fuzz-")
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.runners: list[web.AppRunner] = []
        self.port = 0

    def __enter__(self) -> ThreadedGateway:
        self.thread.start()
        self.port = asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(30)
        return self

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            for runner in reversed(self.runners):
                await runner.cleanup()
            # What outlived its server (a stalled fake upstream's handler) ends here.
            tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()
        self.state_dir.cleanup()

    async def _serve(self, app: web.Application, **options: Any) -> str:
        runner = web.AppRunner(app, **options)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        self.runners.append(runner)
        return f"http://127.0.0.1:{runner.addresses[0][1]}"

    async def _start(self) -> int:
        fakes = {
            "openai": (FakeOpenAI(), "/v1", {}),
            "anthropic": (FakeAnthropic(), "", {"api_key": "sk-ant-test"}),
            "gemini": (FakeGemini(), "/v1beta", {"api_key": "gm-test-key"}),
            "ollama": (FakeOllama(), "", {}),
        }
        providers = {}
        for name, (fake, path, extra) in fakes.items():
            root = await self._serve(fake.app, shutdown_timeout=1)
            providers[name] = {
                "type": name,
                "base_url": root + path,
                "models": {f"via-{name}": "up-model"},
                **extra,
            }
        # An upstream that sends its headers, then nothing: a generation to cancel.
        fakes["openai"][0].scripts["stalled"] = Script(fault="stall")  # type: ignore[attr-defined]
        providers["openai"]["models"][STALLED] = "stalled"
        config = gateway_config(
            providers,
            server={"api_keys": [KEY], "request_timeout_s": 10, **self.server},
            routing={"max_attempts": 1},
            state={"responses": {"store": f"sqlite:{self.state_dir.name}/responses.db"}},
        )
        await self._serve(create_app(config), shutdown_timeout=1, **server_options(config))
        return int(self.runners[-1].addresses[0][1])

    def call(
        self, method: str, path: str, body: bytes | None = None, **headers: str
    ) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            headers = {"Authorization": f"Bearer {KEY}", **headers}
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            conn.close()

    def post(
        self, body: bytes, path: str = "/v1/chat/completions"
    ) -> tuple[int, dict[str, str], bytes]:
        return self.call("POST", path, body, **{"Content-Type": "application/json"})


@pytest.fixture(scope="module")
def gateway() -> Iterator[ThreadedGateway]:
    with ThreadedGateway() as served:
        yield served


def check(answer: tuple[int, dict[str, str], bytes], *, valid: bool = False) -> None:
    """Never a 5xx; an error is OpenAI's shape; a valid body gets its answer."""
    status, headers, raw = answer
    if status == 200:
        return
    assert not valid, raw
    assert status in CLIENT_ERRORS, (status, raw[:500])
    assert headers["Content-Type"].startswith("application/json")
    error = orjson.loads(raw)["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str) and error["message"]


def dumps(value: Any) -> bytes:
    """JSON as a client may send it: integers of any size, non-ASCII as is."""
    return json.dumps(value, ensure_ascii=False, allow_nan=False).encode("utf-8", "surrogatepass")


scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=True,
)
BASE: dict[str, Any] = {"model": "via-openai", "messages": [{"role": "user", "content": "hi"}]}
TOP_FIELDS = [
    "model",
    "messages",
    "stream",
    "stream_options",
    "temperature",
    "top_p",
    "n",
    "max_tokens",
    "max_completion_tokens",
    "stop",
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
    "logprobs",
    "top_logprobs",
    "top_k",
    "seed",
    "user",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "response_format",
    "reasoning_effort",
    "metadata",
    "modalities",
    "audio",
    "functions",
    "function_call",
    "service_tier",
    "store",
    "prediction",
    "web_search_options",
]
MESSAGE_FIELDS = [
    "role",
    "content",
    "name",
    "tool_call_id",
    "tool_calls",
    "refusal",
    "function_call",
]
PART_TYPES = ("text", "image_url", "input_audio", "file", "refusal", "weird")
TOOLS_AND_FORMATS: list[tuple[str, Any]] = [
    ("tools", [{"type": "function", "function": {"name": "f", "parameters": {}}}]),
    ("tool_choice", {"type": "function", "function": {"name": "f"}}),
    ("tool_choice", {"type": "allowed_tools", "allowed_tools": {"mode": "auto", "tools": []}}),
    ("response_format", {"type": "json_schema", "json_schema": {"name": "n", "schema": {}}}),
]


@SETTINGS
@given(value=json_values)
def test_any_json_body(gateway: ThreadedGateway, value: Any) -> None:
    check(gateway.post(dumps(value)))


@SETTINGS
@given(data=st.binary(max_size=200))
def test_any_bytes(gateway: ThreadedGateway, data: bytes) -> None:
    check(gateway.post(data))


PER_FIELD = settings(SETTINGS, max_examples=40)


@pytest.mark.parametrize("field", TOP_FIELDS)
@PER_FIELD
@given(model=st.sampled_from(MODELS), value=json_values, stream=st.booleans())
def test_every_field_with_any_value(
    gateway: ThreadedGateway, field: str, model: str, value: Any, stream: bool
) -> None:
    body = {**BASE, "model": model, "stream": stream, field: value}
    check(gateway.post(dumps(body)))


@pytest.mark.parametrize("field", MESSAGE_FIELDS)
@PER_FIELD
@given(
    model=st.sampled_from(MODELS),
    role=st.sampled_from(("system", "developer", "user", "assistant", "tool", "function")),
    value=json_values,
)
def test_every_message_field_with_any_value(
    gateway: ThreadedGateway, field: str, model: str, role: str, value: Any
) -> None:
    message = {"role": role, "content": "x", "tool_call_id": "call_1", field: value}
    body = {**BASE, "model": model, "messages": [{"role": "user", "content": "hi"}, message]}
    check(gateway.post(dumps(body)))


@SETTINGS
@given(
    model=st.sampled_from(MODELS),
    kind=st.sampled_from(PART_TYPES),
    payload=json_values,
    role=st.sampled_from(("user", "assistant", "system", "tool")),
)
def test_content_parts_of_any_shape(
    gateway: ThreadedGateway, model: str, kind: str, payload: Any, role: str
) -> None:
    part = {"type": kind, kind: payload}
    message = {"role": role, "content": [part], "tool_call_id": "call_1"}
    check(gateway.post(dumps({**BASE, "model": model, "messages": [message]})))


@SETTINGS
@given(
    model=st.sampled_from(MODELS),
    choice=st.sampled_from(TOOLS_AND_FORMATS),
    path=st.lists(st.text(max_size=12), min_size=1, max_size=3),
    value=json_values,
)
def test_tool_and_format_shapes_with_any_value_inside(
    gateway: ThreadedGateway, model: str, choice: tuple[str, Any], path: list[str], value: Any
) -> None:
    field, template = choice
    document = json.loads(json.dumps(template))
    node = document[0] if isinstance(document, list) else document
    for key in path[:-1]:  # walk into the template where it has objects, then plant the value
        child = node.get(key) if isinstance(node, dict) else None
        if not isinstance(child, dict):
            break
        node = child
    node[path[-1]] = value
    tools = [{"type": "function", "function": {"name": "f"}}]
    body = {**BASE, "model": model, "tools": tools, field: document}
    check(gateway.post(dumps(body)))


@SETTINGS
@given(
    depth=st.integers(min_value=1, max_value=3000),
    opener=st.sampled_from((b"[", b'{"a":')),
    where=st.sampled_from(("body", "field", "message")),
)
def test_deep_nesting(gateway: ThreadedGateway, depth: int, opener: bytes, where: str) -> None:
    closer = b"]" if opener == b"[" else b"}"
    deep = opener * depth + b"1" + closer * depth
    if where == "body":
        data = deep
    elif where == "field":
        data = (
            b'{"model":"via-gemini","messages":[{"role":"user","content":"x"}],"metadata":' + deep
        )
        data += b"}"
    else:
        data = b'{"model":"via-anthropic","messages":[{"role":"user","content":' + deep + b"}]}"
    check(gateway.post(data))


@SETTINGS
@given(
    model=st.sampled_from(MODELS),
    field=st.sampled_from(
        ("temperature", "top_p", "n", "max_tokens", "seed", "top_logprobs", "top_k")
    ),
    number=st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats(allow_nan=False, allow_infinity=False),
)
def test_huge_and_tiny_numbers(
    gateway: ThreadedGateway, model: str, field: str, number: Any
) -> None:
    check(gateway.post(dumps({**BASE, "model": model, field: number})))


@settings(SETTINGS, max_examples=40)
@given(
    model=st.sampled_from(MODELS),
    stream=st.booleans(),
    temperature=st.none() | st.floats(min_value=0, max_value=1),
    max_tokens=st.none() | st.integers(min_value=1, max_value=4096),
    text=st.text(min_size=1, max_size=50),
)
def test_valid_bodies_are_answered(
    gateway: ThreadedGateway,
    model: str,
    stream: bool,
    temperature: float | None,
    max_tokens: int | None,
    text: str,
) -> None:
    body = {
        "model": model,
        "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": text}],
        "stream": stream,
        "temperature": temperature,
        "max_tokens": max_tokens,
    }
    status, _, raw = gateway.post(dumps(body))
    assert status == 200, raw
    assert (b"data: [DONE]" in raw) if stream else (b'"chat.completion"' in raw)


# --- POST /v1/responses and the stored responses' routes ---------------------------------------

RESPONSES = "/v1/responses"
RESPONSES_BASE: dict[str, Any] = {"model": "via-openai", "input": "hi"}
# Every field the gateway reads, and two it does not.
RESPONSES_FIELDS = sorted(KNOWN_FIELDS | {"messages", "unknown_field"})


def respond(gateway: ThreadedGateway, body: Any) -> tuple[int, dict[str, str], bytes]:
    return gateway.post(body if isinstance(body, bytes) else dumps(body), RESPONSES)


def check_response(answer: tuple[int, dict[str, str], bytes], *, valid: bool = False) -> None:
    """`check`, and a 200 is an honest answer: no fake upstream fails, so a Response that
    failed (or a stream's error event) is the gateway's own fault."""
    check(answer, valid=valid)
    status, headers, raw = answer
    if status != 200:
        return
    if headers["Content-Type"].startswith("text/event-stream"):
        assert b"event: response.failed" not in raw and b"event: error" not in raw, raw[-2000:]
        assert b"event: response.created" in raw, raw[:500]
    else:
        assert orjson.loads(raw)["status"] in ("completed", "incomplete", "queued"), raw[:2000]


@SETTINGS
@given(value=json_values)
def test_responses_any_json_body(gateway: ThreadedGateway, value: Any) -> None:
    check_response(respond(gateway, value))


@settings(SETTINGS, max_examples=50)
@given(data=st.binary(max_size=200))
def test_responses_any_bytes(gateway: ThreadedGateway, data: bytes) -> None:
    check_response(respond(gateway, data))


RESPONSES_PER_FIELD = settings(SETTINGS, max_examples=20)


@pytest.mark.parametrize("field", RESPONSES_FIELDS)
@RESPONSES_PER_FIELD
@given(model=st.sampled_from(MODELS), value=json_values, stream=st.booleans())
def test_responses_every_field_with_any_value(
    gateway: ThreadedGateway, field: str, model: str, value: Any, stream: bool
) -> None:
    body = {**RESPONSES_BASE, "model": model, "stream": stream, field: value}
    check_response(respond(gateway, body))


ITEMS: dict[str, list[dict[str, Any]]] = {
    "message": [{"type": "message", "role": "user", "content": "hi"}],
    "no type": [{"role": "developer", "content": [{"type": "input_text", "text": "hi"}]}],
    "function_call": [
        {"type": "function_call", "call_id": "call_1", "name": "f", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "call_1", "output": "ok"},
    ],
    "custom_tool_call": [
        {"type": "custom_tool_call", "call_id": "call_1", "name": "c", "input": "x"},
        {"type": "custom_tool_call_output", "call_id": "call_1", "output": "ok"},
    ],
    "reasoning": [
        {"type": "reasoning", "summary": [{"type": "summary_text", "text": "s"}]},
        {"type": "message", "role": "user", "content": "hi"},
    ],
    "item_reference": [{"type": "item_reference", "id": "msg_1"}],
    "web_search_call": [
        {"type": "web_search_call", "id": "ws_1", "status": "completed"},
        {"type": "message", "role": "user", "content": "hi"},
    ],
    "assistant": [
        {"type": "message", "role": "user", "content": "hi"},
        {"role": "assistant", "content": [{"type": "output_text", "text": "yo"}]},
        {"role": "user", "content": "again"},
    ],
}
ITEM_FIELDS = ("type", "role", "content", "id", "call_id", "name", "arguments", "input", "output",
               "summary", "encrypted_content", "status", "phase", "namespace")  # fmt: skip


@SETTINGS
@given(
    model=st.sampled_from(MODELS),
    shape=st.sampled_from(sorted(ITEMS)),
    which=st.integers(min_value=0, max_value=2),
    field=st.sampled_from(ITEM_FIELDS),
    value=json_values,
    stream=st.booleans(),
)
def test_responses_input_items_of_any_shape(
    gateway: ThreadedGateway,
    model: str,
    shape: str,
    which: int,
    field: str,
    value: Any,
    stream: bool,
) -> None:
    items = json.loads(json.dumps(ITEMS[shape]))
    items[which % len(items)][field] = value
    body = {**RESPONSES_BASE, "model": model, "input": items, "stream": stream}
    check_response(respond(gateway, body))


PART_KINDS = ("input_text", "output_text", "text", "refusal", "input_image", "input_file", "weird")
PART_FIELDS = ("text", "refusal", "image_url", "detail", "file_id", "file_data", "file_url",
               "filename", "annotations", "type")  # fmt: skip


@SETTINGS
@given(
    model=st.sampled_from(MODELS),
    kind=st.sampled_from(PART_KINDS),
    field=st.sampled_from(PART_FIELDS),
    value=json_values,
    where=st.sampled_from(("user", "assistant", "system", "developer", "tool output")),
)
def test_responses_content_parts_of_any_shape(
    gateway: ThreadedGateway, model: str, kind: str, field: str, value: Any, where: str
) -> None:
    part: dict[str, Any] = {"type": kind, "text": "t", "image_url": "data:image/png;base64,AA=="}
    part[field] = value
    if where == "tool output":
        items: list[Any] = [
            {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c", "output": [part]},
        ]
    else:
        items = [{"role": where, "content": [part]}]
    if where != "user":
        items.append({"role": "user", "content": "hi"})
    check_response(respond(gateway, {**RESPONSES_BASE, "model": model, "input": items}))


RESPONSES_SHAPES: list[tuple[str, Any]] = [
    ("tools", [{"type": "function", "name": "f", "parameters": {}, "strict": True}]),
    (
        "tools",
        [
            {
                "type": "custom",
                "name": "c",
                "format": {"type": "grammar", "syntax": "lark", "definition": "start: x"},
            }
        ],
    ),
    ("tools", [{"type": "namespace", "name": "ns", "tools": [{"type": "function", "name": "g"}]}]),
    ("tool_choice", {"type": "function", "name": "f"}),
    (
        "tool_choice",
        {"type": "allowed_tools", "mode": "auto", "tools": [{"type": "function", "name": "f"}]},
    ),
    ("text", {"format": {"type": "json_schema", "name": "n", "schema": {}}, "verbosity": "low"}),
    ("reasoning", {"effort": "low", "summary": "auto"}),
    ("stream_options", {"include_obfuscation": False}),
    ("metadata", {"k": "v"}),
]


@SETTINGS
@given(
    model=st.sampled_from(MODELS),
    choice=st.sampled_from(RESPONSES_SHAPES),
    path=st.lists(st.text(max_size=12), min_size=1, max_size=3),
    value=json_values,
    stream=st.booleans(),
)
def test_responses_tools_and_formats_with_any_value_inside(
    gateway: ThreadedGateway,
    model: str,
    choice: tuple[str, Any],
    path: list[str],
    value: Any,
    stream: bool,
) -> None:
    field, template = choice
    document = json.loads(json.dumps(template))
    node = document[0] if isinstance(document, list) else document
    for key in path[:-1]:  # walk into the template where it has objects, then plant the value
        child = node.get(key) if isinstance(node, dict) else None
        if isinstance(child, list) and child and isinstance(child[0], dict):
            child = child[0]
        if not isinstance(child, dict):
            break
        node = child
    node[path[-1]] = value
    tools = [{"type": "function", "name": "f"}]
    body = {**RESPONSES_BASE, "model": model, "tools": tools, "stream": stream, field: document}
    check_response(respond(gateway, body))


@settings(SETTINGS, max_examples=60)
@given(
    depth=st.integers(min_value=1, max_value=3000),
    opener=st.sampled_from((b"[", b'{"a":')),
    where=st.sampled_from(("body", "metadata", "input", "schema", "parameters", "output")),
)
def test_responses_deep_nesting(
    gateway: ThreadedGateway, depth: int, opener: bytes, where: str
) -> None:
    closer = b"]" if opener == b"[" else b"}"
    deep = opener * depth + b"1" + closer * depth
    heads = {
        "body": b"",
        "metadata": b'{"model":"via-gemini","input":"x","metadata":',
        "input": b'{"model":"via-anthropic","input":[{"role":"user","content":',
        "schema": b'{"model":"via-ollama","input":"x","text":{"format":{"type":"json_schema",'
        b'"name":"n","schema":{"a":',
        "parameters": b'{"model":"via-openai","input":"x","tools":[{"type":"function",'
        b'"name":"f","parameters":{"a":',
        "output": b'{"model":"via-openai","input":[{"type":"function_call","call_id":"c",'
        b'"name":"f","arguments":"{}"},{"type":"function_call_output","call_id":"c","output":',
    }
    tails = {"body": b"", "metadata": b"}", "input": b"}]}", "schema": b"}}}}",
             "parameters": b"}}]}", "output": b"}]}"}  # fmt: skip
    check_response(respond(gateway, heads[where] + deep + tails[where]))


@SETTINGS
@given(
    model=st.sampled_from(MODELS),
    field=st.sampled_from(
        (
            "temperature",
            "top_p",
            "max_output_tokens",
            "max_tool_calls",
            "top_logprobs",
            "presence_penalty",
            "frequency_penalty",
            "n",
        )
    ),
    number=st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats(allow_nan=False, allow_infinity=False),
    stream=st.booleans(),
)
def test_responses_huge_and_tiny_numbers(
    gateway: ThreadedGateway, model: str, field: str, number: Any, stream: bool
) -> None:
    body = {**RESPONSES_BASE, "model": model, field: number, "stream": stream}
    check_response(respond(gateway, body))


@settings(SETTINGS, max_examples=40)
@given(
    model=st.sampled_from(MODELS),
    stream=st.booleans(),
    store=st.booleans(),
    background=st.booleans(),
    temperature=st.none() | st.floats(min_value=0, max_value=1),
    max_output_tokens=st.none() | st.integers(min_value=1, max_value=4096),
    text=st.text(min_size=1, max_size=50),
)
def test_responses_valid_bodies_are_answered(
    gateway: ThreadedGateway,
    model: str,
    stream: bool,
    store: bool,
    background: bool,
    temperature: float | None,
    max_output_tokens: int | None,
    text: str,
) -> None:
    body = {
        "model": model,
        "instructions": "be brief",
        "input": [{"role": "user", "content": text}],
        "stream": stream,
        "store": store,
        "background": background,
        "temperature": temperature,
        "max_output_tokens": max_output_tokens,
    }
    answer = respond(gateway, body)
    check_response(answer, valid=True)
    raw = answer[2]
    assert (b"event: response.created" in raw) if stream else (b'"object":"response"' in raw)


@pytest.fixture(scope="module")
def stored(gateway: ThreadedGateway) -> dict[str, str]:
    """The ids of a stored response (two input items) and of a finished background one."""
    ids = {}
    for name, extra in (("foreground", {}), ("background", {"background": True})):
        body = {**RESPONSES_BASE, "input": [{"role": "user", "content": "a"},
                                            {"role": "user", "content": "b"}], **extra}  # fmt: skip
        status, _, raw = respond(gateway, body)
        assert status == 200, raw
        ids[name] = orjson.loads(raw)["id"]
    for _ in range(200):  # the background one ends (the fake upstream answers at once)
        status, _, raw = gateway.call("GET", f"{RESPONSES}/{ids['background']}")
        if orjson.loads(raw)["status"] not in ("queued", "in_progress"):
            break
        time.sleep(0.02)
    return ids


@SETTINGS
@given(
    model=st.sampled_from(MODELS),
    previous=json_values | st.sampled_from(("foreground", "background")),
    reference=st.none() | json_values,
    stream=st.booleans(),
)
def test_responses_continuing_with_any_previous_response_id(
    gateway: ThreadedGateway,
    stored: dict[str, str],
    model: str,
    previous: Any,
    reference: Any,
    stream: bool,
) -> None:
    previous = stored.get(previous, previous) if isinstance(previous, str) else previous
    items: list[Any] = [{"role": "user", "content": "more"}]
    if reference is not None:
        items.insert(0, {"type": "item_reference", "id": reference})
    body = {**RESPONSES_BASE, "model": model, "previous_response_id": previous, "input": items,
            "stream": stream}  # fmt: skip
    check_response(respond(gateway, body))


ROUTES = (("GET", ""), ("DELETE", ""), ("GET", "/input_items"), ("POST", "/cancel"))
QUERY_NAMES = ("stream", "starting_after", "after", "limit", "order", "include[]",
               "include_obfuscation", "x")  # fmt: skip
query_values = (
    st.text(max_size=30)
    | st.integers(min_value=-(2**70), max_value=2**70).map(str)
    | st.sampled_from(("true", "false", "True", "1", "asc", "desc", "0", "100", "101", "²"))
)


def check_route(answer: tuple[int, dict[str, str], bytes]) -> None:
    """Never a 5xx, a stream ends with its terminal event, an error is OpenAI's shape."""
    status, headers, raw = answer
    if status == 200 and headers["Content-Type"].startswith("text/event-stream"):
        assert b"event: error" not in raw, raw[-2000:]
        return
    if status == 200:
        orjson.loads(raw)
        return
    assert status in (400, 404), (status, raw[:500])
    error = orjson.loads(raw)["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str) and error["message"]


@SETTINGS
@given(
    route=st.sampled_from(ROUTES),
    response_id=st.text(max_size=60) | st.sampled_from(("foreground", "background", "resp_")),
    query=st.dictionaries(st.sampled_from(QUERY_NAMES), query_values, max_size=3),
)
def test_response_routes_with_any_id_and_query(
    gateway: ThreadedGateway,
    stored: dict[str, str],
    route: tuple[str, str],
    response_id: str,
    query: dict[str, str],
) -> None:
    method, tail = route
    if method == "DELETE" and response_id in stored:
        response_id = "resp_" + response_id  # keep the stored ones for the other examples
    response_id = stored.get(response_id, response_id)
    path = f"{RESPONSES}/{quote(response_id, safe='')}{tail}"
    if query:
        path += "?" + urlencode(query)
    check_route(gateway.call(method, path))


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ("stream=yes", "stream"),
        ("stream=", "stream"),
        ("starting_after=-1", "starting_after"),  # without `stream`: once silently ignored
        ("stream=false&starting_after=x", "starting_after"),
        ("stream=true&starting_after=%C2%B2", "starting_after"),
        ("stream=true&starting_after=" + "9" * 30, "starting_after"),
    ],
)
def test_retrieve_refuses_bad_query_values(
    gateway: ThreadedGateway, stored: dict[str, str], query: str, param: str
) -> None:
    for response_id in stored.values():
        status, _, raw = gateway.call("GET", f"{RESPONSES}/{response_id}?{query}")
        assert status == 400, raw
        assert orjson.loads(raw)["error"]["param"] == param
    status, _, raw = gateway.call("GET", f"{RESPONSES}/{stored['foreground']}?stream=FALSE")
    assert status == 200, raw


def test_a_large_request_is_translated_off_the_event_loop(
    gateway: ThreadedGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """95 000 input items took the loop 2 s to translate (every stream stalled): from
    OFF_LOOP_ITEMS on, the translation runs in a thread."""
    threads = []

    def recorded(*args: Any) -> Any:
        threads.append(threading.current_thread())
        return from_request(*args)

    monkeypatch.setattr(responses_routes, "from_request", recorded)
    items = [{"role": "user", "content": "x"}] * responses_routes.OFF_LOOP_ITEMS
    for body in ({**RESPONSES_BASE, "input": items}, RESPONSES_BASE):
        status, _, raw = respond(gateway, body)
        assert status == 200, raw
    assert threads[0] is not gateway.thread
    assert threads[1] is gateway.thread


def test_concurrent_cancels_of_a_background_response(gateway: ThreadedGateway) -> None:
    """Two cancels at once cancelled the pump twice; the second interrupted it while it stored
    and logged the end: both answered `queued` after 5 s, the response stayed `queued` and a
    reader of its stream waited for ever."""
    status, _, raw = respond(gateway, {"model": STALLED, "input": "x", "background": True})
    assert status == 200, raw
    path = f"{RESPONSES}/{orjson.loads(raw)['id']}"
    time.sleep(0.2)  # its pump waits for the upstream's first token
    with ThreadPoolExecutor(3) as pool:
        answers = list(pool.map(lambda _: gateway.call("POST", f"{path}/cancel"), range(3)))
    for status, _, raw in answers:
        assert status == 200, raw
        assert orjson.loads(raw)["status"] == "cancelled"
    status, _, raw = gateway.call("GET", path)
    assert orjson.loads(raw)["status"] == "cancelled"
    status, _, raw = gateway.call("GET", f"{path}?stream=true")  # ends (30 s socket timeout)
    assert status == 200 and b"event: response.created" in raw, raw


def test_the_gateway_still_serves_after_the_fuzzing(
    gateway: ThreadedGateway, stored: dict[str, str]
) -> None:
    for model in MODELS:
        status, _, raw = gateway.post(orjson.dumps({**BASE, "model": model}))
        assert status == 200, raw
        status, _, raw = respond(gateway, {**RESPONSES_BASE, "model": model})
        assert status == 200, raw
    for response_id in stored.values():
        status, _, raw = gateway.call("GET", f"{RESPONSES}/{response_id}")
        assert status == 200, raw
        assert orjson.loads(raw)["status"] == "completed"
    assert gateway.call("GET", "/health")[0] == 200
