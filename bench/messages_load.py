"""The load generator's side of the Messages scenario: ``POST /v1/messages`` streamed.

Every answer is read with the benchmark's own SSE parser (bench.sse, ``named=True``: each event
carries ``event: <type>``) and checked whole: every event's ``data`` is a JSON object whose
``type`` is its ``event:`` name, and the events come in Anthropic's order::

    message_start, (content_block_start, content_block_delta x N, content_block_stop) x blocks,
    message_delta, message_stop

with blocks strictly sequential (indexes 0, 1, 2..., each delta for the open block only, each
stop closing it) and nothing after ``message_stop``. ``ping`` may come anywhere and is skipped
(Anthropic's heartbeat); an ``error`` event fails the request. The ``text_delta`` pieces are
exactly what the upstream sent (one per chunk, in order, intact), in one text block; the
message names the model asked for; ``message_start`` carries a usage object, ``message_delta``
the stop reason ``end_turn`` and the usage the upstream reported.

For per-chunk figures a Messages answer counts its ``text_delta`` events as the relayed chunks;
``events`` counts every event but pings.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

from bench.load import Failure, LoadClient, LoadSpec, Stream
from bench.native import PROMPT_TOKENS, completion_tokens
from bench.shape import parse_model
from bench.sse import SSEEvent, SSEParser

PROMPT = "Say something for the benchmark."
MAX_TOKENS = 4096
START = "message_start"
BLOCK_START = "content_block_start"
DELTA = "content_block_delta"
BLOCK_STOP = "content_block_stop"
MESSAGE_DELTA = "message_delta"
STOP = "message_stop"
# What may follow each event (None: the stream's start).
_NEXT: dict[str | None, frozenset[str]] = {
    None: frozenset({START}),
    START: frozenset({BLOCK_START, MESSAGE_DELTA}),
    BLOCK_START: frozenset({DELTA, BLOCK_STOP}),
    DELTA: frozenset({DELTA, BLOCK_STOP}),
    BLOCK_STOP: frozenset({BLOCK_START, MESSAGE_DELTA}),
    MESSAGE_DELTA: frozenset({STOP}),
    STOP: frozenset(),
}


def messages_body(model: str) -> bytes:
    """The Messages request every benchmark client sends: streamed, one user turn."""
    body = {
        "model": model,
        "max_tokens": MAX_TOKENS,
        "messages": [{"role": "user", "content": PROMPT}],
        "stream": True,
    }
    return orjson.dumps(body)


@dataclass
class MessagesStream(Stream):
    """``bench.load.Stream`` plus what a Messages stream must keep consistent."""

    last: str | None = None
    blocks: list[str] = field(default_factory=list)
    open_block: int | None = None
    message_id: str | None = None
    stop_reason: Any = None
    usage: dict[str, Any] | None = None


def _json(data: bytes) -> dict[str, Any]:
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise Failure("bad_json", f"{exc}: {data[:80]!r}") from exc
    if not isinstance(obj, dict):
        raise Failure("bad_json", f"not an object: {data[:80]!r}")
    return obj


def check_event(event: SSEEvent, now: float, model: str, state: MessagesStream) -> bool:
    """Apply one event to ``state``; raise Failure if it breaks the contract. False for a
    ping (not counted)."""
    if state.done:
        raise Failure("after_done", f"event after message_stop: {event.data[:80]!r}")
    obj = _json(event.data)
    kind = obj.get("type")
    if event.event is None or event.event.decode() != kind:
        raise Failure("sse_framing", f"event {event.event!r} carries type {kind!r}")
    if kind == "ping":
        return False
    if kind == "error":
        raise Failure("error_event", event.data[:200].decode("utf-8", "replace"))
    if kind not in _NEXT[state.last]:
        raise Failure("sequence", f"{kind} after {state.last or '(start)'}")
    state.last = kind
    if kind == DELTA:
        if obj.get("index") != state.open_block:
            raise Failure("block", f"delta for block {obj.get('index')!r}, open {state.open_block}")
        delta = obj.get("delta") or {}
        if delta.get("type") == "text_delta":
            text = delta.get("text")
            if not isinstance(text, str) or not text:
                raise Failure("shape", f"text_delta {text!r}")
            state.pieces.append(text)
            state.times.append(now)
        return True
    if kind == START:
        message = obj.get("message") or {}
        if message.get("model") != model:
            raise Failure("wrong_model", f"message_start: model {message.get('model')!r}")
        if message.get("type") != "message" or message.get("role") != "assistant":
            raise Failure("shape", f"message_start: {str(message)[:120]}")
        if message.get("content") != [] or not isinstance(message.get("usage"), dict):
            raise Failure("shape", f"message_start content/usage: {str(message)[:120]}")
        state.message_id = message.get("id")
        state.usage = dict(message["usage"])
        state.roles += 1
    elif kind == BLOCK_START:
        index = obj.get("index")
        if index != len(state.blocks):
            raise Failure("block", f"block {index!r} started, expected {len(state.blocks)}")
        block = obj.get("content_block") or {}
        state.blocks.append(str(block.get("type")))
        state.open_block = index
    elif kind == BLOCK_STOP:
        if obj.get("index") != state.open_block:
            raise Failure("block", f"stop of block {obj.get('index')!r}, open {state.open_block}")
        state.open_block = None
    elif kind == MESSAGE_DELTA:
        state.stop_reason = (obj.get("delta") or {}).get("stop_reason")
        usage = obj.get("usage")
        # Cumulative, and a field it leaves out stands as message_start had it (Anthropic's
        # own message_delta, passed through, carries output_tokens alone).
        state.usage = {**(state.usage or {}), **usage} if isinstance(usage, dict) else None
        state.finishes.append(str(state.stop_reason))
    elif kind == STOP:
        state.done = True
    return True


def finish_messages(
    state: MessagesStream, expected: tuple[str, ...], usage: tuple[int, int]
) -> None:
    """The checks of a whole answer once its body ended; ``state.chunks`` is then set."""
    if not state.done:
        raise Failure("no_done", f"stream ended without {STOP} after {state.events} events")
    if state.blocks != ["text"]:
        raise Failure("block", f"blocks {state.blocks}, expected one text block")
    if len(state.pieces) != len(expected):
        raise Failure("chunk_count", f"{len(state.pieces)} text deltas, expected {len(expected)}")
    if state.pieces != list(expected):
        first_bad = next(
            i for i, (a, b) in enumerate(zip(state.pieces, expected, strict=True)) if a != b
        )
        raise Failure("content", f"content differs from delta {first_bad}")
    if state.stop_reason != "end_turn":
        raise Failure("shape", f"stop_reason {state.stop_reason!r}")
    got = state.usage or {}
    if (got.get("input_tokens"), got.get("output_tokens")) != usage:
        raise Failure("usage", f"usage {got}, expected {usage}")
    state.chunks = len(state.pieces)


async def read_messages(
    resp: aiohttp.ClientResponse,
    model: str,
    expected: tuple[str, ...],
    usage: tuple[int, int],
    start: float,
) -> tuple[MessagesStream, int]:
    """Read and check one streamed Message; return its bookkeeping and its size in bytes."""
    if resp.content_type != "text/event-stream":
        raise Failure("content_type", f"Content-Type {resp.content_type!r}")
    if resp.headers.get("Content-Encoding", "identity") != "identity":
        raise Failure("compressed", f"Content-Encoding {resp.headers['Content-Encoding']!r}")
    parser = SSEParser(resumable=False, named=True)
    state = MessagesStream()
    size = 0
    async for data in resp.content.iter_any():
        now = time.perf_counter() - start
        if not size:
            state.first_byte = now
        size += len(data)
        events = parser.feed(data)
        if parser.problems:
            raise Failure("sse_framing", "; ".join(parser.problems[:3]))
        for event in events:
            if check_event(event, now, model, state):
                state.events += 1
    parser.close()
    if parser.problems:
        raise Failure("sse_framing", "; ".join(parser.problems[:3]))
    finish_messages(state, expected, usage)
    return state, size


class MessagesLoadClient(LoadClient):
    """A LoadClient that streams ``POST /v1/messages``."""

    def __init__(self, spec: LoadSpec, expected: tuple[str, ...]) -> None:
        super().__init__(spec, expected)
        if not spec.stream or spec.resumable:
            raise ValueError("Messages are benchmarked streamed, without X-Stream-Resumable")
        shape = parse_model(spec.model.removeprefix("anthropic-"))  # passed through: native
        if shape is None:
            raise ValueError(f"not a bench model: {spec.model}")
        self.usage = (PROMPT_TOKENS, completion_tokens(shape))
        self._body = messages_body(spec.model)

    async def read_stream(self, resp: aiohttp.ClientResponse, start: float) -> tuple[Stream, int]:
        """Read and check one Messages stream."""
        return await read_messages(resp, self.spec.model, self.expected, self.usage, start)
