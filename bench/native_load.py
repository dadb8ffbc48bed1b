"""The load generator's side of the adapter scenarios: native parsers and checks.

A direct run of an adapter scenario talks to the fake upstream in the provider's own protocol,
so its answer is read here: Ollama NDJSON lines, Anthropic SSE with named events, Gemini SSE
(CRLF-framed, no terminator). The checks are those of ``bench.load``: every piece present, in
order, intact; one opening; one ``stop``; the protocol's terminator; plus the usage each provider
reports. These parsers are the benchmark's own (not the gateway's), so a gateway bug cannot hide
behind the same bug in its checker.

For per-chunk figures a native answer counts as the OpenAI chunks it stands for (role, one per
piece, finish), so direct and gateway runs share one denominator; ``events`` counts native
events (lines for Ollama).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import aiohttp
import orjson

from bench.load import Failure, LoadClient, LoadSpec, Stream
from bench.native import (
    PROMPT_TOKENS,
    Protocol,
    completion_tokens,
    native_body,
    native_url,
    public_model,
)
from bench.shape import parse_model

PROMPT = "Say something for the benchmark."
_CONTENT_TYPES = {
    "ollama": "application/x-ndjson",
    "anthropic": "text/event-stream",
    "gemini": "text/event-stream",
}
_FINISH = {"stop": "stop", "end_turn": "stop", "STOP": "stop", "length": "length"}
_FINISH |= {"max_tokens": "length", "MAX_TOKENS": "length"}


class LineSplitter:
    """NDJSON: complete lines (without ``\\n``) from bytes split anywhere; blank lines skipped."""

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, data: bytes) -> list[bytes]:
        """Consume bytes; return every line they complete."""
        lines = (self._buf + data).split(b"\n")
        self._buf = lines.pop()
        return [line for line in lines if line.strip()]

    def close(self) -> list[bytes]:
        """The body ended: a last line without ``\\n`` still counts (Ollama may send one)."""
        rest, self._buf = self._buf, b""
        return [rest] if rest.strip() else []


class NativeSSE:
    """SSE as providers send it: named events allowed, LF or CRLF line endings.

    ``feed`` returns ``(event name or None, data)`` pairs; ``problems`` notes what no provider
    sends (unknown fields, an event cut off by the end of the body).
    """

    def __init__(self) -> None:
        self._buf = b""
        self._event: bytes | None = None
        self._data: list[bytes] = []
        self.problems: list[str] = []

    def feed(self, data: bytes) -> list[tuple[bytes | None, bytes]]:
        """Consume bytes; return every event they complete."""
        lines = (self._buf + data).split(b"\n")
        self._buf = lines.pop()
        events: list[tuple[bytes | None, bytes]] = []
        for raw in lines:
            line = raw[:-1] if raw.endswith(b"\r") else raw
            if not line:
                if self._data:
                    events.append((self._event, b"\n".join(self._data)))
                self._event, self._data = None, []
            elif line.startswith(b":"):
                continue
            else:
                name, _, value = line.partition(b":")
                value = value[1:] if value.startswith(b" ") else value
                if name == b"data":
                    self._data.append(value)
                elif name == b"event":
                    self._event = value
                else:
                    self.problems.append(f"unexpected line {line[:80]!r}")
        return events

    def close(self) -> list[tuple[bytes | None, bytes]]:
        """Note an event left unterminated when the body ended (it is never dispatched)."""
        if self._buf.strip(b"\r") or self._data:
            self.problems.append(f"body ended inside an event: {self._buf[:80]!r}")
        return []


@dataclass
class NativeStream(Stream):
    """``bench.load.Stream`` plus the usage the answer reported: (prompt, completion)."""

    usage: tuple[Any, Any] | None = None
    input_tokens: Any = None


def _json(data: bytes) -> dict[str, Any]:
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise Failure("bad_json", f"{exc}: {data[:80]!r}") from exc
    if not isinstance(obj, dict):
        raise Failure("bad_json", f"not an object: {data[:80]!r}")
    return obj


def _piece(text: Any, now: float, state: Stream) -> None:
    if text:
        state.pieces.append(text)
        state.times.append(now)


def _finish(reason: Any, state: Stream) -> None:
    state.finishes.append(_FINISH.get(reason, str(reason)))


def check_ollama(line: bytes, now: float, model: str, state: NativeStream) -> None:
    """One NDJSON line of ``/api/chat``; the ``done: true`` line ends the answer."""
    if state.done:
        raise Failure("after_done", f"line after done: {line[:80]!r}")
    obj = _json(line)
    if "error" in obj:
        raise Failure("error_event", str(obj["error"])[:200])
    if obj.get("model") != model:
        raise Failure("wrong_model", f"model={obj.get('model')!r}, asked {model!r}")
    message = obj.get("message") or {}
    if not state.events:
        state.roles += message.get("role") == "assistant"
    _piece(message.get("content"), now, state)
    if obj.get("done") is True:
        state.done = True
        _finish(obj.get("done_reason"), state)
        state.usage = (obj.get("prompt_eval_count"), obj.get("eval_count"))


def check_anthropic(
    event: bytes | None, data: bytes, now: float, model: str, state: NativeStream
) -> None:
    """One named event of ``/v1/messages``; ``message_stop`` ends the answer."""
    if state.done:
        raise Failure("after_done", f"event after message_stop: {data[:80]!r}")
    obj = _json(data)
    kind = obj.get("type")
    if event is None or event.decode() != kind:
        raise Failure("sse_framing", f"event {event!r} carries type {kind!r}")
    if kind == "error":
        raise Failure("error_event", orjson.dumps(obj.get("error")).decode()[:200])
    if kind == "message_start":
        message = obj.get("message") or {}
        if message.get("model") != model:
            raise Failure("wrong_model", f"model={message.get('model')!r}, asked {model!r}")
        state.roles += 1
        state.input_tokens = (message.get("usage") or {}).get("input_tokens")
    elif kind == "content_block_delta":
        delta = obj.get("delta") or {}
        if delta.get("type") != "text_delta":
            raise Failure("shape", f"unexpected delta {delta.get('type')!r}")
        _piece(delta.get("text"), now, state)
    elif kind == "content_block_start":
        _piece((obj.get("content_block") or {}).get("text"), now, state)
    elif kind == "message_delta":
        reason = (obj.get("delta") or {}).get("stop_reason")
        if reason is not None:
            _finish(reason, state)
        output = (obj.get("usage") or {}).get("output_tokens")
        state.usage = (state.input_tokens, output)
    elif kind == "message_stop":
        state.done = True


def check_gemini(
    event: bytes | None, data: bytes, now: float, model: str, state: NativeStream
) -> None:
    """One ``data:`` event of ``:streamGenerateContent``; a ``finishReason`` ends the answer."""
    if state.done:
        raise Failure("after_done", f"event after finishReason: {data[:80]!r}")
    if event is not None:
        raise Failure("sse_framing", f"Gemini sent a named event {event!r}")
    obj = _json(data)
    if "error" in obj:
        raise Failure("error_event", orjson.dumps(obj["error"]).decode()[:200])
    if obj.get("modelVersion") != model:
        raise Failure("wrong_model", f"modelVersion={obj.get('modelVersion')!r}, asked {model!r}")
    if not state.events:
        state.roles += 1
    candidates = obj.get("candidates") or [{}]
    if len(candidates) != 1:
        raise Failure("shape", f"{len(candidates)} candidates")
    candidate = candidates[0]
    for part in (candidate.get("content") or {}).get("parts") or ():
        _piece(part.get("text"), now, state)
    metadata = obj.get("usageMetadata")
    if isinstance(metadata, dict):
        state.usage = (metadata.get("promptTokenCount"), metadata.get("candidatesTokenCount"))
    if candidate.get("finishReason"):
        state.done = True
        _finish(candidate["finishReason"], state)


async def read_native(
    resp: aiohttp.ClientResponse,
    protocol: Protocol,
    model: str,
    expected: tuple[str, ...],
    usage: tuple[int, int],
    start: float,
) -> tuple[NativeStream, int]:
    """Read and check one native answer; return its bookkeeping and its size in bytes."""
    if resp.content_type != _CONTENT_TYPES[protocol]:
        raise Failure("content_type", f"Content-Type {resp.content_type!r}")
    state = NativeStream()
    size = 0
    parser = LineSplitter() if protocol == "ollama" else NativeSSE()
    check = _CHECKS[protocol]
    async for data in resp.content.iter_any():
        now = time.perf_counter() - start
        if not size:
            state.first_byte = now
        size += len(data)
        for item in parser.feed(data):
            check(item, now, model, state)
            state.events += 1
    for item in parser.close():
        check(item, time.perf_counter() - start, model, state)
        state.events += 1
    if isinstance(parser, NativeSSE) and parser.problems:
        raise Failure("sse_framing", "; ".join(parser.problems[:3]))
    finish_native(state, expected, usage)
    return state, size


def finish_native(state: NativeStream, expected: tuple[str, ...], usage: tuple[int, int]) -> None:
    """The checks of a whole answer, once its body ended; ``state.chunks`` is then set."""
    if not state.done:
        raise Failure("no_done", f"answer ended unfinished after {len(state.pieces)} pieces")
    if len(state.pieces) != len(expected):
        raise Failure(
            "chunk_count", f"{len(state.pieces)} content pieces, expected {len(expected)}"
        )
    if state.pieces != list(expected):
        first_bad = next(
            i for i, (a, b) in enumerate(zip(state.pieces, expected, strict=True)) if a != b
        )
        raise Failure("content", f"content differs from piece {first_bad}")
    if state.roles != 1 or state.finishes != ["stop"]:
        raise Failure("shape", f"{state.roles} openings, finish reasons {state.finishes}")
    if state.usage != usage:
        raise Failure("usage", f"usage {state.usage}, expected {usage}")
    state.chunks = len(state.pieces) + 2


class NativeLoadClient(LoadClient):
    """A LoadClient that speaks ``protocol`` straight to the fake upstream."""

    def __init__(self, spec: LoadSpec, expected: tuple[str, ...], protocol: Protocol) -> None:
        super().__init__(spec, expected)
        if not spec.stream:
            raise ValueError("the native protocols are benchmarked streamed only")
        shape = parse_model(spec.model)
        if shape is None:
            raise ValueError(f"not a bench model: {spec.model}")
        self.protocol = protocol
        self.usage = (PROMPT_TOKENS, completion_tokens(shape))
        self._body = native_body(protocol, spec.model, PROMPT)

    async def read_stream(self, resp: aiohttp.ClientResponse, start: float) -> tuple[Stream, int]:
        """Read and check one native answer."""
        return await read_native(
            resp, self.protocol, self.spec.model, self.expected, self.usage, start
        )


def load_client(
    protocol: Protocol, spec: LoadSpec, expected: tuple[str, ...], *, direct: bool
) -> LoadClient:
    """The client of one run: OpenAI through the gateway, or the protocol's own when direct.

    ``spec`` is the OpenAI-format run against the target (``/v1/chat/completions``, bench
    model); adapter scenarios change the model (gateway) or the URL and client (direct).
    """
    if protocol == "openai":
        return LoadClient(spec, expected)
    if not direct:
        return LoadClient(replace(spec, model=public_model(protocol, spec.model)), expected)
    base = spec.url.removesuffix("/v1/chat/completions")
    url = native_url(protocol, base, spec.model)
    return NativeLoadClient(replace(spec, url=url), expected, protocol)


# One check per protocol, taking what its parser yields: an NDJSON line, or (event, data).
_CHECKS: dict[str, Callable[[Any, float, str, NativeStream], None]] = {
    "ollama": check_ollama,
    "anthropic": lambda item, now, model, st: check_anthropic(item[0], item[1], now, model, st),
    "gemini": lambda item, now, model, st: check_gemini(item[0], item[1], now, model, st),
}
