"""llms.adapters.openai.build_request: the streaming request it sends upstream (protocol.md §1.4).
No server, no I/O."""

from __future__ import annotations

import json
from typing import Any

import pytest

from llms.adapters import openai as adapter
from llms.config import ProviderConfig, Timeouts
from llms.wire import ChatRequest

# --- build_request --------------------------------------------------------------------------------


def provider(**kw: Any) -> ProviderConfig:
    fields: dict[str, Any] = {
        "name": "up",
        "type": "openai",
        "base_url": "http://127.0.0.1:9/v1",
        "models": {"pub": "vendor/model-x"},
        "timeouts": Timeouts(),
        "api_key": "sk-provider",
        **kw,
    }
    return ProviderConfig(**fields)


def request(**kw: Any) -> ChatRequest:
    body: dict[str, Any] = {"model": "pub", "messages": [{"role": "user", "content": "hi"}], **kw}
    return body  # type: ignore[return-value]


def build(req: ChatRequest, prov: ProviderConfig | None = None) -> tuple[Any, dict[str, Any]]:
    out = adapter.build_request(req, prov or provider(), "vendor/model-x")
    return out, json.loads(out.body)


def test_build_request_streams_rewrites_model_and_authorizes() -> None:
    out, body = build(request())
    assert out.method == "POST"
    assert out.url == "http://127.0.0.1:9/v1/chat/completions"
    assert out.headers["Authorization"] == "Bearer sk-provider"
    assert out.headers["Content-Type"] == "application/json"
    assert body["model"] == "vendor/model-x"
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert body["messages"] == [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize("stream", [False, True, None])
def test_build_request_always_streams(stream: bool | None) -> None:
    req = request() if stream is None else request(stream=stream)
    assert build(req)[1]["stream"] is True


def test_build_request_asks_for_usage_even_when_the_client_did_not() -> None:
    _, body = build(request(stream=True, stream_options={"include_usage": False}))
    assert body["stream_options"] == {"include_usage": True}


def test_build_request_without_provider_usage_drops_stream_options() -> None:
    _, body = build(
        request(stream=True, stream_options={"include_usage": True}),
        provider(include_usage=False),
    )
    assert "stream_options" not in body


def test_build_request_keeps_unknown_fields() -> None:
    extras = {
        "temperature": 0.2,
        "tools": [{"type": "function", "function": {"name": "f"}}],
        "reasoning_effort": "low",
        "top_k": 40,
        "vendor_extension": {"nested": [1, None, "x"]},
    }
    _, body = build(request(**extras))
    for key, value in extras.items():
        assert body[key] == value


def test_build_request_without_key_sends_no_authorization() -> None:
    out, _ = build(request(), provider(api_key=None))
    assert "Authorization" not in out.headers


def test_build_request_provider_headers_are_added() -> None:
    out, _ = build(request(), provider(headers={"HTTP-Referer": "https://example.org"}))
    assert out.headers["HTTP-Referer"] == "https://example.org"
    assert out.headers["Authorization"] == "Bearer sk-provider"


def test_build_request_does_not_change_the_clients_request() -> None:
    req = request(stream=False, stream_options={"include_usage": False})
    snapshot = json.loads(json.dumps(req))
    build(req)
    build(req, provider(include_usage=False))
    assert req == snapshot
