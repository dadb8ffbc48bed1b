"""The fake upstream's answers as OpenAI would send them, encoded once into HTTP/1.1 bytes.

Streamed answers use the chunked transfer encoding, one SSE event per HTTP chunk, split where
pacing may put a sleep (see ``Encoded``); everything else carries a Content-Length.
"""

from __future__ import annotations

from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import orjson

from bench.shape import Shape, content_pieces

_CHUNK_ID = "chatcmpl-BnchF4k3Up5tr3amQx7Lm2Vz9Rt1Wc"
_FINGERPRINT = "fp_b3nch0001"
_PROMPT_TOKENS = 12


@dataclass(frozen=True)
class Encoded:
    """A streamed answer as ready-to-write bytes, split where pacing may put a sleep."""

    head: bytes
    first: bytes
    rest: tuple[bytes, ...]
    tail: bytes

    @property
    def whole(self) -> bytes:
        """The entire response when no pacing is asked for."""
        return self.head + self.first + b"".join(self.rest) + self.tail


def _frame(payload: bytes) -> bytes:
    """One HTTP/1.1 chunk of the chunked transfer encoding."""
    return b"%x\r\n%b\r\n" % (len(payload), payload)


def _event(obj: Any) -> bytes:
    """One SSE event carrying a JSON object, framed as one HTTP chunk."""
    return _frame(b"data: " + orjson.dumps(obj) + b"\n\n")


def _head(status: int, content_type: bytes, extra: bytes) -> bytes:
    """A status line and headers, ending with the blank line."""
    reason = HTTPStatus(status).phrase.encode()
    return b"HTTP/1.1 %d %b\r\nContent-Type: %b\r\n%b\r\n" % (status, reason, content_type, extra)


def _usage(shape: Shape) -> dict[str, int]:
    """Token counts that match the shape."""
    completion = shape.chunks * shape.size
    return {
        "prompt_tokens": _PROMPT_TOKENS,
        "completion_tokens": completion,
        "total_tokens": _PROMPT_TOKENS + completion,
    }


def encode_stream(shape: Shape, created: int, include_usage: bool) -> Encoded:
    """Build the SSE answer OpenAI would send for this shape, as bytes."""
    model = shape.model

    def chunk(delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
        """One chat.completion.chunk object."""
        body: dict[str, Any] = {
            "id": _CHUNK_ID,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "system_fingerprint": _FINGERPRINT,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if include_usage:
            # OpenAI puts "usage": null on every chunk once include_usage is asked for.
            body["usage"] = None
        return body

    pieces = content_pieces(shape)
    role = _event(chunk({"role": "assistant", "content": "", "refusal": None}, None))
    contents = [_event(chunk({"content": piece}, None)) for piece in pieces]
    tail = _event(chunk({}, "stop"))
    if include_usage:
        final = chunk({}, None)
        final["choices"] = []
        final["usage"] = _usage(shape)
        tail += _event(final)
    tail += _frame(b"data: [DONE]\n\n") + b"0\r\n\r\n"
    head = _head(
        200,
        b"text/event-stream",
        b"Transfer-Encoding: chunked\r\nCache-Control: no-cache\r\n",
    )
    return Encoded(head=head, first=role + contents[0], rest=tuple(contents[1:]), tail=tail)


def encode_completion(shape: Shape, created: int) -> bytes:
    """Build the non-streamed chat.completion answer for this shape, as a full response."""
    body = orjson.dumps(
        {
            "id": _CHUNK_ID,
            "object": "chat.completion",
            "created": created,
            "model": shape.model,
            "system_fingerprint": _FINGERPRINT,
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": "".join(content_pieces(shape)),
                        "refusal": None,
                    },
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": _usage(shape),
        }
    )
    return _head(200, b"application/json", b"Content-Length: %d\r\n" % len(body)) + body


def encode_json(status: int, obj: Any, close: bool) -> bytes:
    """A small JSON response (models list, errors)."""
    body = orjson.dumps(obj)
    extra = b"Content-Length: %d\r\n" % len(body)
    if close:
        extra += b"Connection: close\r\n"
    return _head(status, b"application/json", extra) + body


def error_body(message: str, code: str) -> dict[str, Any]:
    """The OpenAI error body."""
    return {
        "error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}
    }
