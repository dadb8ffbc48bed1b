"""The fake upstream's other protocols: Ollama NDJSON, Anthropic Messages SSE, Gemini SSE.

Each answer carries exactly :func:`bench.shape.content_pieces`, one piece per native event, and
the usage each real provider sends: Ollama's final ``done: true`` line with ``prompt_eval_count``
and ``eval_count``; Anthropic's ``message_start`` usage and cumulative ``message_delta`` usage;
Gemini's cumulative ``usageMetadata`` on every event. Nothing here depends on
``stream_options.include_usage`` (an OpenAI-only option). Like ``bench.answers`` the answers are
encoded once into HTTP/1.1 bytes (one event per HTTP chunk) and then written as stored bytes.

The gateway reaches these protocols through providers declared by :func:`gateway_providers`:
the public model ``<protocol>-<bench model>`` (``ollama-bench-c50-d0-f0-s8``) routes to the
provider ``bench-<protocol>``, which asks the fake upstream for the bench model.
"""

from __future__ import annotations

import re
from typing import Any, Literal

import orjson

from bench.answers import Encoded, _frame, _head
from bench.shape import Shape, content_pieces

Protocol = Literal["openai", "ollama", "anthropic", "gemini"]
NATIVE: tuple[Protocol, ...] = ("ollama", "anthropic", "gemini")
PROMPT_TOKENS = 12

_GEMINI_PATH = re.compile(r"/v1beta/models/([^/:]+):(streamGenerateContent|generateContent)")
_CREATED_AT = "2025-06-01T10:00:00.000000000Z"
_MESSAGE_ID = "msg_bench01F4k3Up5tr3am"
_RESPONSE_ID = "bEnChF4k3Up5tr3am"
_END = b"0\r\n\r\n"


def completion_tokens(shape: Shape) -> int:
    """The completion tokens every protocol reports for a shape (as ``bench.answers`` does)."""
    return shape.chunks * shape.size


def public_model(protocol: Protocol, model: str) -> str:
    """The model id a client sends the gateway to reach ``model`` through ``protocol``."""
    return model if protocol == "openai" else f"{protocol}-{model}"


def gateway_providers(upstream_url: str, models: list[str]) -> dict[str, Any]:
    """One provider per native protocol, all on the fake upstream, in config.json's shape."""
    bases = {
        "ollama": upstream_url,
        "anthropic": upstream_url,
        "gemini": f"{upstream_url}/v1beta",
    }
    return {
        f"bench-{protocol}": {
            "type": protocol,
            "base_url": bases[protocol],
            "api_key": "bench",
            "models": {public_model(protocol, m): m for m in models},
        }
        for protocol in NATIVE
    }


# --- what a direct run sends -------------------------------------------------------------------


def native_url(protocol: Protocol, base_url: str, model: str) -> str:
    """Where a client of ``protocol`` posts a streamed chat for ``model``."""
    if protocol == "ollama":
        return f"{base_url}/api/chat"
    if protocol == "anthropic":
        return f"{base_url}/v1/messages"
    if protocol == "gemini":
        return f"{base_url}/v1beta/models/{model}:streamGenerateContent?alt=sse"
    return f"{base_url}/v1/chat/completions"


def native_body(protocol: Protocol, model: str, prompt: str) -> bytes:
    """The streamed chat request a client of ``protocol`` sends."""
    body: dict[str, Any]
    if protocol == "gemini":
        body = {"contents": [{"role": "user", "parts": [{"text": prompt}]}]}
    else:
        body = {"model": model, "messages": [{"role": "user", "content": prompt}], "stream": True}
        if protocol == "anthropic":
            body["max_tokens"] = 4096
    return orjson.dumps(body)


# --- what the fake upstream answers ------------------------------------------------------------


def route(method: str, path: str) -> tuple[Protocol, str | None, bool] | None:
    """(protocol, model named by the path, streamed by the path) for a native chat request."""
    if method != "POST":
        return None
    if path == "/api/chat":
        return "ollama", None, True
    if path == "/v1/messages":
        return "anthropic", None, True
    match = _GEMINI_PATH.fullmatch(path)
    if match is not None:
        return "gemini", match.group(1), match.group(2) == "streamGenerateContent"
    return None


def request_problem(protocol: Protocol, payload: Any, query: str, streamed: bool) -> str | None:
    """Why this native request is not one the fake can answer (as a stream); None if it is."""
    if not isinstance(payload, dict):
        return "body must be a JSON object"
    if protocol == "gemini":
        if not streamed or "alt=sse" not in query.split("&"):
            return "this fake answers only :streamGenerateContent?alt=sse"
        if not payload.get("contents"):
            return "contents is not specified"
        return None
    if not payload.get("messages"):
        return "messages is required"
    if protocol == "ollama" and payload.get("stream") is False:
        return "this fake answers /api/chat only as a stream"
    if protocol == "anthropic":
        if payload.get("stream") is not True:
            return "this fake answers /v1/messages only with stream: true"
        if not isinstance(payload.get("max_tokens"), int):
            return "max_tokens: Field required"
    return None


def error_answer(protocol: Protocol, status: int, message: str) -> Any:
    """An error body in the protocol's own shape."""
    if protocol == "ollama":
        return {"error": message}
    if protocol == "anthropic":
        return {"type": "error", "error": {"type": "invalid_request_error", "message": message}}
    return {"error": {"code": status, "message": message, "status": "INVALID_ARGUMENT"}}


def encode_native(protocol: Protocol, shape: Shape) -> Encoded:
    """The streamed answer of ``protocol`` for ``shape``, as bytes split where pacing sleeps."""
    if protocol == "ollama":
        return _ollama(shape)
    if protocol == "anthropic":
        return _anthropic(shape)
    if protocol == "gemini":
        return _gemini(shape)
    raise ValueError(f"not a native protocol: {protocol}")


def _stream_head(content_type: bytes) -> bytes:
    return _head(200, content_type, b"Transfer-Encoding: chunked\r\nCache-Control: no-cache\r\n")


def _ollama(shape: Shape) -> Encoded:
    """NDJSON: one ``done: false`` line per piece, then the ``done: true`` line with the counts."""
    model = shape.model

    def line(obj: dict[str, Any]) -> bytes:
        return _frame(orjson.dumps(obj) + b"\n")

    contents = [
        line(
            {
                "model": model,
                "created_at": _CREATED_AT,
                "message": {"role": "assistant", "content": piece},
                "done": False,
            }
        )
        for piece in content_pieces(shape)
    ]
    final = line(
        {
            "model": model,
            "created_at": _CREATED_AT,
            "message": {"role": "assistant", "content": ""},
            "done_reason": "stop",
            "done": True,
            "total_duration": 4_883_583_458,
            "load_duration": 31_852_125,
            "prompt_eval_count": PROMPT_TOKENS,
            "prompt_eval_duration": 342_546_000,
            "eval_count": completion_tokens(shape),
            "eval_duration": 4_535_599_000,
        }
    )
    return Encoded(
        head=_stream_head(b"application/x-ndjson"),
        first=contents[0],
        rest=tuple(contents[1:]),
        tail=final + _END,
    )


def _anthropic_event(obj: dict[str, Any]) -> bytes:
    """``event: <type>`` + ``data: <json>``, as Anthropic frames every event."""
    return _frame(b"event: " + obj["type"].encode() + b"\ndata: " + orjson.dumps(obj) + b"\n\n")


def _anthropic(shape: Shape) -> Encoded:
    """message_start, a text block of one delta per piece, message_delta (usage), message_stop."""
    start = {
        "type": "message_start",
        "message": {
            "id": _MESSAGE_ID,
            "type": "message",
            "role": "assistant",
            "content": [],
            "model": shape.model,
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {
                "input_tokens": PROMPT_TOKENS,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
                "output_tokens": 1,
                "service_tier": "standard",
            },
        },
    }
    opening = b"".join(
        _anthropic_event(obj)
        for obj in (
            start,
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
            {"type": "ping"},
        )
    )
    deltas = [
        _anthropic_event(
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": piece},
            }
        )
        for piece in content_pieces(shape)
    ]
    closing = b"".join(
        _anthropic_event(obj)
        for obj in (
            {"type": "content_block_stop", "index": 0},
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": completion_tokens(shape)},
            },
            {"type": "message_stop"},
        )
    )
    return Encoded(
        head=_stream_head(b"text/event-stream; charset=utf-8"),
        first=opening + deltas[0],
        rest=tuple(deltas[1:]),
        tail=closing + _END,
    )


def _gemini(shape: Shape) -> Encoded:
    """One ``data:`` event per piece, CRLF-framed; the last carries ``finishReason: STOP``.

    Every event carries the cumulative ``usageMetadata``, as Gemini does; there is no ``[DONE]``.
    """
    pieces = content_pieces(shape)
    events = []
    for index, piece in enumerate(pieces):
        candidate: dict[str, Any] = {
            "content": {"parts": [{"text": piece}], "role": "model"},
            "index": 0,
        }
        if index == len(pieces) - 1:
            candidate["finishReason"] = "STOP"
        candidates_tokens = (index + 1) * shape.size
        event = {
            "candidates": [candidate],
            "usageMetadata": {
                "promptTokenCount": PROMPT_TOKENS,
                "candidatesTokenCount": candidates_tokens,
                "totalTokenCount": PROMPT_TOKENS + candidates_tokens,
                "promptTokensDetails": [{"modality": "TEXT", "tokenCount": PROMPT_TOKENS}],
            },
            "modelVersion": shape.model,
            "responseId": _RESPONSE_ID,
        }
        events.append(_frame(b"data: " + orjson.dumps(event) + b"\r\n\r\n"))
    return Encoded(
        head=_stream_head(b"text/event-stream"),
        first=events[0],
        rest=tuple(events[1:]),
        tail=_END,
    )
