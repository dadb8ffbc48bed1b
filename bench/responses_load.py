"""The load generator's side of the Responses scenarios: ``POST /v1/responses`` streamed.

Every answer is read with the benchmark's own SSE parser (bench.sse, ``named=True``: each event
carries ``event: response.*``) and checked whole: every event's ``data`` is a JSON object whose
``type`` is its ``event:`` name, ``sequence_number`` counts 0, 1, 2... without gap or repeat,
the events come in OpenAI's order for one text answer::

    response.created, [response.queued (background)], response.in_progress,
    response.output_item.added, response.content_part.added, response.output_text.delta x N,
    response.output_text.done, response.content_part.done, response.output_item.done,
    response.completed

and nothing follows ``response.completed``. The deltas are exactly the pieces the upstream sent
(one per chunk, in order, intact), the ``.done`` events and the completed Response carry their
concatenation, every event names the one message item, and the usage is what the upstream
reported. An ``error`` or ``response.failed`` event fails the request.

For per-chunk figures a Responses answer counts its ``response.output_text.delta`` events as the
relayed chunks; ``events`` counts every event. Background mode (``background: true`` with
``stream: true``) is read the same way, live, as the resumable scenario reads its stream.
Every Response must echo the request's ``background`` and ``store``.
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
DELTA = "response.output_text.delta"
COMPLETED = "response.completed"
# The events around the deltas, in order; background answers add response.queued.
_HEAD: tuple[str, ...] = ("response.created", "response.in_progress")
_HEAD += ("response.output_item.added", "response.content_part.added")
_BACKGROUND_HEAD = ("response.created", "response.queued", *_HEAD[1:])
_TAIL: tuple[str, ...] = ("response.output_text.done", "response.content_part.done")
_TAIL += ("response.output_item.done", COMPLETED)
_FAILED = frozenset({"error", "response.failed", "response.incomplete"})


def responses_body(model: str, *, background: bool, store: bool = True) -> bytes:
    """The Responses request every benchmark client sends: streamed; ``store`` left to its
    default (true, as OpenAI's) or sent as false (as Codex sends it)."""
    body: dict[str, Any] = {"model": model, "input": PROMPT, "stream": True}
    if background:
        body["background"] = True
    if not store:
        body["store"] = False
    return orjson.dumps(body)


@dataclass
class ResponsesStream(Stream):
    """``bench.load.Stream`` plus what a Responses stream must keep consistent."""

    types: list[str] = field(default_factory=list)
    item_id: str | None = None
    response_id: str | None = None
    final: dict[str, Any] | None = None


def _json(data: bytes) -> dict[str, Any]:
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise Failure("bad_json", f"{exc}: {data[:80]!r}") from exc
    if not isinstance(obj, dict):
        raise Failure("bad_json", f"not an object: {data[:80]!r}")
    return obj


def check_event(
    event: SSEEvent,
    now: float,
    model: str,
    flags: tuple[bool, bool],
    state: ResponsesStream,
) -> None:
    """Apply one event to ``state``; raise Failure if it breaks the contract.

    ``flags`` is what every Response must echo: (background, store).
    """
    if state.done:
        raise Failure("after_done", f"event after response.completed: {event.data[:80]!r}")
    obj = _json(event.data)
    kind = obj.get("type")
    if event.event is None or event.event.decode() != kind:
        raise Failure("sse_framing", f"event {event.event!r} carries type {kind!r}")
    if kind in _FAILED:
        raise Failure("error_event", event.data[:200].decode("utf-8", "replace"))
    seq = obj.get("sequence_number")
    if seq != state.events:
        raise Failure("sequence", f"event {state.events} ({kind}) has sequence_number {seq!r}")
    if event.id is not None and event.id != str(seq).encode():
        raise Failure("event_id", f"event {seq} has id {event.id!r}")
    state.types.append(kind)
    if kind == DELTA:
        if obj.get("item_id") != state.item_id:
            raise Failure("item_id", f"delta of {obj.get('item_id')!r}, item {state.item_id!r}")
        delta = obj.get("delta")
        if not isinstance(delta, str) or not delta:
            raise Failure("shape", f"delta {delta!r}")
        state.pieces.append(delta)
        state.times.append(now)
        return
    if kind == "response.output_item.added":
        item = obj.get("item") or {}
        if item.get("type") != "message" or item.get("role") != "assistant":
            raise Failure("shape", f"output item {str(item)[:120]}")
        state.item_id = item.get("id")
        state.roles += 1
    elif kind == "response.output_item.done":
        if (obj.get("item") or {}).get("id") != state.item_id:
            raise Failure("item_id", f"{kind} of another item than {state.item_id!r}")
    elif "response" in obj:
        response = obj["response"]
        if not isinstance(response, dict) or response.get("model") != model:
            raise Failure("wrong_model", f"{kind}: model {str(response)[:120]}")
        if (response.get("background"), response.get("store")) != flags:
            echo = (response.get("background"), response.get("store"))
            raise Failure("shape", f"{kind}: (background, store) {echo!r}, sent {flags!r}")
        if state.response_id is None:
            state.response_id = response.get("id")
        elif response.get("id") != state.response_id:
            raise Failure("shape", f"{kind}: response id {response.get('id')!r} changed")
        if kind == COMPLETED:
            state.final = response
            state.finishes.append(str(response.get("status")))
            state.done = True
    elif obj.get("item_id") != state.item_id:
        raise Failure("item_id", f"{kind} of {obj.get('item_id')!r}, item {state.item_id!r}")
    elif kind == "response.output_text.done" and obj.get("text") != "".join(state.pieces):
        raise Failure("content", "response.output_text.done differs from the deltas")


def finish_responses(
    state: ResponsesStream, expected: tuple[str, ...], background: bool, usage: tuple[int, int]
) -> None:
    """The checks of a whole answer once its body ended; ``state.chunks`` is then set."""
    if not state.done:
        raise Failure("no_done", f"stream ended without {COMPLETED} after {state.events} events")
    if len(state.pieces) != len(expected):
        raise Failure("chunk_count", f"{len(state.pieces)} deltas, expected {len(expected)}")
    if state.pieces != list(expected):
        first_bad = next(
            i for i, (a, b) in enumerate(zip(state.pieces, expected, strict=True)) if a != b
        )
        raise Failure("content", f"content differs from delta {first_bad}")
    head = _BACKGROUND_HEAD if background else _HEAD
    wanted = [*head, *(DELTA for _ in expected), *_TAIL]
    if state.types != wanted:
        first_bad = next(
            (i for i, (a, b) in enumerate(zip(state.types, wanted, strict=False)) if a != b),
            min(len(state.types), len(wanted)),
        )
        got = state.types[first_bad] if first_bad < len(state.types) else "(end)"
        raise Failure("sequence", f"event {first_bad} is {got}, expected the OpenAI order")
    final = state.final or {}
    text = "".join(expected)
    try:
        (message,) = final["output"]
        (part,) = message["content"]
        got_usage = (final["usage"]["input_tokens"], final["usage"]["output_tokens"])
    except (KeyError, TypeError, ValueError) as exc:
        raise Failure("shape", f"completed response: {exc!r}") from exc
    if final.get("status") != "completed" or message.get("status") != "completed":
        raise Failure("shape", f"status {final.get('status')!r}/{message.get('status')!r}")
    if message.get("id") != state.item_id or part.get("text") != text:
        raise Failure("content", "the completed response's text differs from the deltas")
    if got_usage != usage:
        raise Failure("usage", f"usage {got_usage}, expected {usage}")
    state.chunks = len(state.pieces)


async def read_responses(
    resp: aiohttp.ClientResponse,
    model: str,
    expected: tuple[str, ...],
    flags: tuple[bool, bool],
    usage: tuple[int, int],
    start: float,
) -> tuple[ResponsesStream, int]:
    """Read and check one streamed Response; return its bookkeeping and its size in bytes."""
    if resp.content_type != "text/event-stream":
        raise Failure("content_type", f"Content-Type {resp.content_type!r}")
    if resp.headers.get("Content-Encoding", "identity") != "identity":
        raise Failure("compressed", f"Content-Encoding {resp.headers['Content-Encoding']!r}")
    parser = SSEParser(resumable=True, named=True)
    state = ResponsesStream()
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
            check_event(event, now, model, flags, state)
            state.events += 1
    parser.close()
    if parser.problems:
        raise Failure("sse_framing", "; ".join(parser.problems[:3]))
    finish_responses(state, expected, flags[0], usage)
    return state, size


class ResponsesLoadClient(LoadClient):
    """A LoadClient that streams ``POST /v1/responses`` (``background`` or not, ``store`` or
    not)."""

    def __init__(
        self, spec: LoadSpec, expected: tuple[str, ...], *, background: bool, store: bool = True
    ) -> None:
        super().__init__(spec, expected)
        if not spec.stream or spec.resumable:
            raise ValueError("Responses are benchmarked streamed, without X-Stream-Resumable")
        shape = parse_model(spec.model)
        if shape is None:
            raise ValueError(f"not a bench model: {spec.model}")
        self.flags = (background, store)
        self.usage = (PROMPT_TOKENS, completion_tokens(shape))
        self._body = responses_body(spec.model, background=background, store=store)

    async def read_stream(self, resp: aiohttp.ClientResponse, start: float) -> tuple[Stream, int]:
        """Read and check one Responses stream."""
        return await read_responses(
            resp, self.spec.model, self.expected, self.flags, self.usage, start
        )
