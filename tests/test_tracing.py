"""OpenTelemetry traces: the real gateway app with OTEL_EXPORTER_OTLP_ENDPOINT set, exporting
through the SDK's OTLP/HTTP exporter to a real receiver that decodes the protobuf payloads."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from tests.conftest import gateway_config
from tests.upstreams.openai import FakeOpenAI, error_script, text_script
from tests.upstreams.otlp import TOKEN, OTLPReceiver, Span, otlp_receiver

SERVER, CLIENT = 2, 3
ERROR = 2
CLIENT_TRACE = "0af7651916cd43dd8448eb211c80319c"
CLIENT_SPAN = "b7ad6b7169203331"


def otel_env(monkeypatch: pytest.MonkeyPatch, endpoint: str) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", f"Authorization=Bearer%20{TOKEN}")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "llms-test")
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")


@pytest.fixture
async def receiver() -> AsyncIterator[OTLPReceiver]:
    async with otlp_receiver() as receiver:
        yield receiver


@pytest.fixture
async def traced(
    receiver: OTLPReceiver,
    fake_openai: FakeOpenAI,
    make_gateway: Callable[..., Awaitable[str]],
    monkeypatch: pytest.MonkeyPatch,
) -> str:
    otel_env(monkeypatch, receiver.endpoint)
    config = gateway_config(
        {
            "fake": {
                "type": "openai",
                "base_url": fake_openai.base_url,  # type: ignore[attr-defined]
                "api_key": "sk-upstream-secret",
                "models": {"test-model": "up-model", "broken": "broken-up"},
                "timeouts": {"idle_s": 2, "first_token_s": 3, "answer_s": 3},
            }
        },
        routing={"max_attempts": 2},
    )
    return await make_gateway(config)


async def post(base: str, path: str, body: dict[str, Any], **headers: str) -> tuple[int, bytes]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{base}{path}", json=body, headers=headers) as response,
    ):
        return response.status, await response.read()


def one(spans: list[Span], kind: int, trace_id: str | None = None) -> Span:
    found = [s for s in spans if s.kind == kind and trace_id in (None, s.trace_id)]
    assert len(found) == 1, found
    return found[0]


CHAT = {"model": "test-model", "messages": [{"role": "user", "content": "a private prompt"}]}


async def test_a_streamed_chat_continues_the_clients_trace_and_propagates_it_upstream(
    traced: str, receiver: OTLPReceiver, fake_openai: FakeOpenAI
) -> None:
    status, body = await post(
        traced,
        "/chat/completions",
        {**CHAT, "stream": True, "stream_options": {"include_usage": True}},
        traceparent=f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01",
    )
    assert status == 200 and b"[DONE]" in body
    spans = await receiver.wait_for(2)
    server, client = one(spans, SERVER), one(spans, CLIENT)
    assert server.name == "chat test-model" and client.name == "chat up-model"
    assert server.trace_id == client.trace_id == CLIENT_TRACE
    assert server.parent_id == CLIENT_SPAN and client.parent_id == server.span_id
    assert server.service == "llms-test"
    sent = fake_openai.received[-1].headers["traceparent"]
    assert sent == f"00-{CLIENT_TRACE}-{client.span_id}-01"
    attributes = server.attributes
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.request.model"] == "test-model"
    assert attributes["gen_ai.response.model"] == "up-model"
    assert attributes["gen_ai.provider.name"] == attributes["gen_ai.system"] == "openai"
    assert attributes["gen_ai.usage.input_tokens"] == 5
    assert attributes["gen_ai.usage.output_tokens"] == 4
    assert attributes["gen_ai.response.finish_reasons"] == ["stop"]
    assert attributes["server.address"] == "127.0.0.1"
    assert attributes["llms.stream"] is True and attributes["http.response.status_code"] == 200
    assert attributes["gen_ai.response.time_to_first_chunk"] > 0
    assert "error.type" not in attributes and server.status != ERROR
    assert [name for name, _ in server.events] == ["gen_ai.first_token"]
    assert server.start_ns <= server.events[0][1] <= server.end_ns
    assert server.start_ns <= client.start_ns <= client.end_ns <= server.end_ns
    assert client.attributes["gen_ai.request.model"] == "up-model"
    assert client.attributes["server.port"] == int(fake_openai.base_url.split(":")[2][:5])  # type: ignore[attr-defined]
    # Neither the prompt, the answer nor a credential is in what was exported.
    for payload in receiver.payloads:
        for secret in (b"a private prompt", b"Hello", b"sk-upstream-secret"):
            assert secret not in payload


async def test_a_retry_is_two_attempt_spans_the_failed_one_an_error(
    traced: str, receiver: OTLPReceiver, fake_openai: FakeOpenAI
) -> None:
    quoted = "cannot read: a private prompt"  # an upstream's message may quote the prompt
    failure = error_script(500, {"error": {"message": quoted, "type": "server_error"}})
    fake_openai.scripts["up-model"] = [failure, text_script(["ok"])]
    status, _ = await post(traced, "/chat/completions", CHAT)
    assert status == 200
    spans = await receiver.wait_for(3)
    server = one(spans, SERVER)
    attempts = sorted((s for s in spans if s.kind == CLIENT), key=lambda s: s.start_ns)
    assert [a.parent_id for a in attempts] == [server.span_id] * 2
    assert [a.attributes["llms.attempt"] for a in attempts] == [1, 2]
    assert attempts[0].status == ERROR and "error.type" in attempts[0].attributes
    assert attempts[1].status != ERROR and "error.type" not in attempts[1].attributes
    assert attempts[0].end_ns <= attempts[1].start_ns
    assert server.status != ERROR and server.attributes["llms.attempts"] == 2
    # Without a client's traceparent the gateway starts the trace; each attempt sent its own.
    assert server.parent_id == ""
    sent = [r.headers["traceparent"] for r in fake_openai.received[-2:]]
    assert [value[:-3] for value in sent] == [f"00-{server.trace_id}-{a.span_id}" for a in attempts]
    assert all(int(value[-2:], 16) & 1 for value in sent)  # sampled
    assert not any(b"a private prompt" in payload for payload in receiver.payloads)


async def test_a_failed_upstream_is_an_error_span(
    traced: str, receiver: OTLPReceiver, fake_openai: FakeOpenAI
) -> None:
    fake_openai.scripts["broken-up"] = error_script(
        400, {"error": {"message": "bad", "type": "invalid_request_error"}}
    )
    status, _ = await post(traced, "/chat/completions", {**CHAT, "model": "broken"})
    assert status == 400
    spans = await receiver.wait_for(2)
    server, client = one(spans, SERVER), one(spans, CLIENT)
    assert server.name == "chat broken" and server.status == ERROR
    assert server.attributes["error.type"] and server.attributes["http.response.status_code"] == 400
    assert client.status == ERROR and client.parent_id == server.span_id
    # A request refused before routing (an unknown model) is still a span, with its error.
    status, _ = await post(traced, "/chat/completions", {**CHAT, "model": "nope"})
    assert status == 404
    spans = await receiver.wait_for(3)
    refused = [s for s in spans if s.name == "chat nope"]
    assert len(refused) == 1 and refused[0].status == ERROR
    assert refused[0].attributes["error.type"] == "model_not_found"


@pytest.mark.parametrize(
    ("path", "body", "name", "operation"),
    [
        ("/responses", {"model": "test-model", "input": "hi"}, "chat test-model", "chat"),
        (
            "/messages",
            {
                "model": "test-model",
                "max_tokens": 16,
                "messages": [{"role": "user", "content": "hi"}],
            },
            "chat test-model",
            "chat",
        ),
        (
            "/completions",
            {"model": "test-model", "prompt": "hi"},
            "text_completion test-model",
            "text_completion",
        ),
        (
            "/embeddings",
            {"model": "test-model", "input": "hi"},
            "embeddings test-model",
            "embeddings",
        ),
    ],
)
async def test_every_client_api_is_a_span(
    traced: str,
    receiver: OTLPReceiver,
    path: str,
    body: dict[str, Any],
    name: str,
    operation: str,
) -> None:
    status, answer = await post(traced, path, body)
    assert status == 200, answer
    spans = await receiver.wait_for(2)
    server, client = one(spans, SERVER), one(spans, CLIENT)
    assert server.name == name and server.attributes["gen_ai.operation.name"] == operation
    assert client.parent_id == server.span_id and client.trace_id == server.trace_id
    assert server.attributes["gen_ai.provider.name"] == "openai"
    assert server.attributes["gen_ai.usage.input_tokens"] >= 0


async def test_counting_tokens_is_a_span_of_its_own(traced: str, receiver: OTLPReceiver) -> None:
    body = {"model": "test-model", "messages": [{"role": "user", "content": "hi"}]}
    status, answer = await post(traced, "/messages/count_tokens", body)
    assert status == 200, answer
    spans = await receiver.wait_for(1)
    server = one(spans, SERVER)
    assert server.name == "count_tokens test-model"
    assert server.attributes["gen_ai.operation.name"] == "count_tokens"
    assert all(s.trace_id == server.trace_id for s in spans)


async def test_without_the_env_var_nothing_is_traced(
    receiver: OTLPReceiver,
    fake_openai: FakeOpenAI,
    gateway: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from llms import upstream

    status, _ = await post(
        gateway, "/chat/completions", CHAT, traceparent=f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"
    )
    assert status == 200
    assert "traceparent" not in fake_openai.received[-1].headers
    assert upstream.trace_headers is None and receiver.spans == []


def test_without_the_env_var_the_sdk_is_never_imported() -> None:
    # Only the trace SDK and the exporter: redis-py imports opentelemetry.sdk.metrics itself
    # whenever the SDK is installed.
    code = (
        "import sys\n"
        "from llms import create_app\n"
        "from llms.config import parse_config\n"
        "p = {'f': {'type': 'openai', 'base_url': 'http://127.0.0.1:9/v1', 'models': {'m': 'm'}}}\n"
        "create_app(parse_config({'providers': p}, source='t', env={}))\n"
        "traces = ('opentelemetry.sdk.trace', 'opentelemetry.exporter')\n"
        "print(sorted(m for m in sys.modules if m.startswith(traces)))\n"
    )
    env = {"PATH": "/usr/bin:/bin", "OTEL_SERVICE_NAME": "unused"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


async def test_a_resumable_streams_span_ends_with_its_pump(
    traced: str, receiver: OTLPReceiver, fake_openai: FakeOpenAI
) -> None:
    fake_openai.scripts["up-model"] = text_script(["a", "b", "c"], delay_s=0.05)
    status, body = await post(
        traced,
        "/chat/completions",
        {**CHAT, "stream": True},
        **{"X-Stream-Resumable": "true", "traceparent": f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"},
    )
    assert status == 200 and b"[DONE]" in body
    spans = await receiver.wait_for(2)
    server, client = one(spans, SERVER), one(spans, CLIENT)
    assert server.trace_id == CLIENT_TRACE and client.parent_id == server.span_id
    assert server.attributes["gen_ai.response.finish_reasons"] == ["stop"]
    assert server.attributes["llms.stream"] is True
    # The pump finished the record: both spans ended, the attempt (the whole stream) inside it.
    assert server.start_ns <= client.start_ns <= client.end_ns <= server.end_ns
    assert [name for name, _ in client.events] == ["gen_ai.first_token"]


def test_the_env_var_without_the_sdk_is_a_clear_config_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from llms.errors import ConfigError
    from llms.telemetry.tracing import Tracing

    # As if `llms[otel]` were not installed: importing the exporter fails.
    monkeypatch.setitem(sys.modules, "opentelemetry.exporter.otlp.proto.http.trace_exporter", None)
    with pytest.raises(ConfigError, match=r"pip install 'llms\[otel\]'"):
        Tracing.from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"})
    for off in ({"OTEL_SDK_DISABLED": "true"}, {"OTEL_TRACES_EXPORTER": "none"}, {}):
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", **off} if off else {}
        assert Tracing.from_env(env) is None
