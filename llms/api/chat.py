"""Chat Completions: internal chunks are already this API's wire form. What a stream writes.

The relay (server/relay.py) writes whatever a `StreamEncoder` makes of each batch; this is the
one for `POST /v1/chat/completions`: `data: <chunk>` events, an error event, `data: [DONE]`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

import orjson

from llms.errors import GatewayError
from llms.generation import EncodedBatch
from llms.wire import Chunk

DONE = b"data: [DONE]\n\n"


class StreamEncoder(Protocol):
    """A client-facing API's stream: the bytes for each batch, its normal end, its failure."""

    def chunks(self, batch: list[Chunk]) -> bytes:
        """The events for one batch; raises orjson.JSONEncodeError for one it cannot encode."""
        ...

    def done(self) -> bytes:
        """The events that end a stream that finished normally."""
        ...

    def failed(self, error: GatewayError) -> bytes:
        """The events that end a stream that failed (after output, or after a heartbeat)."""
        ...


def encode_chunks(chunks: Iterable[Chunk]) -> bytes:
    """Several ready chunks as one buffer, so they leave in one transport write.

    Raises orjson.JSONEncodeError for a chunk nested too deeply (the relay then writes the
    chunks before it and ends the stream with `upstream_malformed`).
    """
    return events_of(map(orjson.dumps, chunks))


def events_of(json: Iterable[bytes]) -> bytes:
    """Chunks already encoded as JSON, as `data:` events in one buffer."""
    # One join with the event separator between: no two concatenations per chunk.
    body = b"\n\ndata: ".join(json)
    return b"data: " + body + b"\n\n" if body else b""


def error_event(error: GatewayError) -> bytes:
    """The in-stream error (no `event:` line: every openai SDK raises on it), then [DONE]."""
    return b"data: " + orjson.dumps(error.to_body()) + b"\n\n" + DONE


class ChatEncoder:
    """Chat completions' stream: stateless, so one instance serves every request."""

    __slots__ = ()

    def chunks(self, batch: list[Chunk]) -> bytes:
        if type(batch) is EncodedBatch:
            # The committed batch: its chunks were encoded by the commit's check.
            return events_of(batch.json)
        if len(batch) == 1:
            # A paced upstream's read: one chunk, one event (no map and join; callgrind:
            # ~2.5k instructions a chunk of bench-c64-d20-f20-s8).
            return b"data: " + orjson.dumps(batch[0]) + b"\n\n"
        return encode_chunks(batch)

    def done(self) -> bytes:
        return DONE

    def failed(self, error: GatewayError) -> bytes:
        return error_event(error)


CHAT = ChatEncoder()
