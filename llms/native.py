"""Native passthrough: one attempt that sends the client's own API to an upstream that speaks it.

When the client's API and the upstream's protocol are the same (Responses to an `openai`
provider with `"responses": true`, Messages to an `anthropic` provider), the request goes as the
client wrote it (model rewritten) and the upstream's events are relayed, instead of being
translated through chat completions: nothing translation cannot carry is lost (built-in tools,
encrypted reasoning, thinking signatures, `cache_control`, citations, server tools).

It rides the ordinary seam. The client-facing API gives `Router.open` a `NativeRoute` (per
request); for a provider the route serves, the attempt's request and converter are the route's.
A native converter turns each upstream event into one *native chunk*: an internal chunk that
summarises the event for the bookkeeping every attempt has (its commit point, finish reason,
usage, the request log's text) and carries the event itself, already rewritten, under `native`.
So `Generation`, routing (retries, fallback before the first output, circuits, deadlines) and
the record work unchanged, and the translated paths pay nothing. After the commit, the relay
(or the pump) sees `generation.native` and swaps the API's encoder for `NativeStream` (or
`NativeLog`), which writes the carried events and asks the converter for the ending: the
upstream's terminal event, held back so that what the API keeps (a stored response) is kept
before the client sees the end, or the API's own failure event after the events so far.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from llms.adapters.base import Converter, UpstreamRequest
from llms.chunks import StreamMeta
from llms.config import ProviderConfig
from llms.errors import GatewayError, UpstreamHTTPError
from llms.wire import Chunk, Delta, FinishReason, Usage

# An event of the client's API: its type (`response.output_text.delta`, `content_block_delta`…)
# and its JSON.
NativeEvent = tuple[str, bytes]


class NativeConverter(Converter, Protocol):
    """A converter whose chunks carry the upstream's events (see `native_chunk`)."""

    # A stream-log kind is this prefix + the event type (streams/log.py).
    log_prefix: str

    def committed(self) -> None:
        """The attempt committed: what the API keeps now follows this converter."""

    def end_events(self) -> list[NativeEvent]:
        """The events that end a stream that finished normally (the held terminal event)."""
        ...

    def fail_events(self, error: GatewayError) -> list[NativeEvent]:
        """The API's failure event, after the events so far."""
        ...

    def cancel_events(self, reason: GatewayError) -> list[NativeEvent]:
        """A background stream was cancelled."""
        ...

    def answer(self) -> dict[str, Any]:
        """The non-stream answer (the upstream's whole object, rewritten)."""
        ...


class NativeRoute(Protocol):
    """One request of a client-facing API, as it goes to upstreams that speak that API."""

    # Why a provider that does not speak the API cannot answer (a built-in tool, a server
    # tool…): such providers are then not tried. None: they may be, translated.
    refusal: GatewayError | None

    def serves(self, provider: ProviderConfig) -> bool:
        """Whether `provider` is asked natively."""
        ...

    def build_request(
        self, provider: ProviderConfig, upstream_model: str, *, whole: bool
    ) -> UpstreamRequest:
        """The upstream request (`whole`: a non-stream answer, sent as one JSON document)."""
        ...

    def from_error_response(
        self, status: int, headers: Mapping[str, str], body: bytes
    ) -> UpstreamHTTPError: ...

    def new_converter(self, meta: StreamMeta, *, whole: bool) -> NativeConverter: ...


def native_chunk(
    meta: StreamMeta,
    event: NativeEvent | None,
    delta: Delta | None = None,
    finish: FinishReason | None = None,
    usage: Usage | None = None,
    *,
    output: bool = False,
) -> Chunk:
    """An internal chunk carrying `event`: `delta`, `finish` and `usage` summarise it (so the
    commit point, finish reason and request log see it); `output`: the event is output that
    has no chat equivalent (a built-in tool's item), so the answer commits with it."""
    chunk: dict[str, Any] = {
        "id": meta.id,
        "object": "chat.completion.chunk",
        "created": meta.created,
        "model": meta.model,
        "choices": []
        if delta is None and finish is None
        else [{"index": 0, "delta": delta or {}, "logprobs": None, "finish_reason": finish}],
    }
    if usage is not None:
        chunk["usage"] = usage
    if event is not None:
        # A str, not bytes: the commit checks that every held chunk can be encoded as JSON.
        chunk["native"] = (event[0], event[1].decode())
    if output:
        chunk["native_output"] = True
    return chunk  # type: ignore[return-value]


def frames(events: list[NativeEvent], *, unnamed: bool = False) -> bytes:
    """Events as SSE frames: `event: <type>` + `data: <json>`, as both APIs send them; with
    `unnamed`, `data: <json>` alone (see `NativeStream`)."""
    if unnamed:
        return b"".join([b"data: %s\n\n" % data for _, data in events])
    return b"".join([b"event: %s\ndata: %s\n\n" % (kind.encode(), data) for kind, data in events])


class NativeStream:
    """The `StreamEncoder` of a native attempt (server/relay.py): the carried events, then
    the converter's ending.

    A converter whose class sets `unnamed = True` speaks an API whose events have no names
    (OpenAI's legacy completions: `data: <json>` and `data: [DONE]`, as chat completions'):
    its events are written as `data:` alone, and its kinds are the chat log's (`chunk`,
    `error`, `done`), so `NativeLog` logs them as chat's are."""

    __slots__ = ("_converter", "_unnamed")

    def __init__(self, converter: NativeConverter) -> None:
        self._converter = converter
        self._unnamed: bool = getattr(converter, "unnamed", False)

    def chunks(self, batch: list[Chunk]) -> bytes:
        out: list[bytes] = []
        unnamed = self._unnamed
        for item in batch:
            event = item.get("native")
            if event is not None:
                kind, data = event
                if unnamed:
                    out.append(b"data: %s\n\n" % data.encode())
                else:
                    out.append(b"event: %s\ndata: %s\n\n" % (kind.encode(), data.encode()))
        return b"".join(out)

    def done(self) -> bytes:
        return frames(self._converter.end_events(), unnamed=self._unnamed)

    def failed(self, error: GatewayError) -> bytes:
        return frames(self._converter.fail_events(error), unnamed=self._unnamed)


class NativeLog:
    """The `LogEncoder` of a native attempt (streams/pump.py): each carried event is logged
    as `<log_prefix><type>`; the ending is the converter's."""

    __slots__ = ("_converter", "_prefix")

    def __init__(self, converter: NativeConverter) -> None:
        self._converter = converter
        self._prefix = converter.log_prefix

    def _items(self, events: list[NativeEvent]) -> list[tuple[str, bytes]]:
        return [(self._prefix + kind, data) for kind, data in events]

    def opening(self) -> list[tuple[str, bytes]]:
        return []

    def chunks(self, batch: list[Chunk]) -> tuple[list[tuple[str, bytes]], GatewayError | None]:
        prefix = self._prefix
        out: list[tuple[str, bytes]] = []
        for item in batch:
            event = item.get("native")
            if event is not None:
                out.append((prefix + event[0], event[1].encode()))
        return out, None

    def status(self, status: dict[str, Any]) -> list[tuple[str, bytes]]:
        return []

    def done(self) -> list[tuple[str, bytes]]:
        return self._items(self._converter.end_events())

    def failed(self, error: GatewayError) -> list[tuple[str, bytes]]:
        return self._items(self._converter.fail_events(error))

    def refused(self, error: GatewayError) -> list[tuple[str, bytes]]:
        return self.failed(error)

    def cancelled(self, reason: GatewayError) -> list[tuple[str, bytes]]:
        return self._items(self._converter.cancel_events(reason))


def passed_through(
    route: NativeRoute | None, providers: tuple[ProviderConfig, ...], name: str | None
) -> bool:
    """Whether the provider named `name` (the last one tried) was asked natively: its errors
    already name the client's own fields."""
    return route is not None and any(p.name == name and route.serves(p) for p in providers)
