"""The Messages API's side of the relay: a `StreamEncoder` over a `MessageBuilder`, and a
`LogEncoder` for the resumable pump (streams/pump.py).

Heartbeats: Anthropic's is `event: ping` (anthropic-python and Claude Code skip it, wherever it
comes, before `message_start` included), so `MessagesEncoder.heartbeat` is `PING`; the relay
writes it instead of its `: keep-alive` comment for this API.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson

from llms.api.messages import PING, MessageBuilder, MessageEvent, error_body, error_status
from llms.errors import GatewayError
from llms.wire import Chunk

LOG_PREFIX = "messages."
"""A Messages event's kind in a stream log is `messages.<type>` (`messages.message_start`…,
`messages.error`): the event name is the rest, and `messages.message_stop` and
`messages.error` end the log."""


def _wire(events: Iterable[MessageEvent]) -> bytes:
    return b"".join([event.sse for event in events])


class MessagesEncoder:
    """`event: <type>` frames for a stream: `message_start` with the first output, the
    builder's events, then `message_delta` + `message_stop`, or an `error` event."""

    __slots__ = ("builder",)

    heartbeat = PING

    def __init__(self, builder: MessageBuilder) -> None:
        self.builder = builder

    def chunks(self, batch: list[Chunk]) -> bytes:
        return _wire(self.builder.feed(batch))

    def done(self) -> bytes:
        return _wire(self.builder.finish())

    def failed(self, error: GatewayError) -> bytes:
        return _wire(self.builder.fail(error))


class MessagesLog:
    """A resumable Messages stream's events for its log: kinds `messages.<type>`
    (`LOG_PREFIX`). A failure before any output is a `fail` record with Anthropic's status
    and body; a cancel ends the stream with an `error` event."""

    __slots__ = ("builder",)

    def __init__(self, builder: MessageBuilder) -> None:
        self.builder = builder

    def opening(self) -> list[tuple[str, bytes]]:
        return []

    def chunks(self, batch: list[Chunk]) -> tuple[list[tuple[str, bytes]], GatewayError | None]:
        return _items(self.builder.feed(batch)), self.builder.failure

    def status(self, status: dict[str, Any]) -> list[tuple[str, bytes]]:
        return []  # Anthropic's format has no status event; a ping says as much

    def done(self) -> list[tuple[str, bytes]]:
        return _items(self.builder.finish())

    def failed(self, error: GatewayError) -> list[tuple[str, bytes]]:
        return _items(self.builder.fail(error))

    def refused(self, error: GatewayError) -> list[tuple[str, bytes]]:
        failure = {
            "status": error_status(error),
            "headers": {str(name): value for name, value in error.headers.items()},
            "body": error_body(error),
        }
        return [("fail", orjson.dumps(failure))]

    def cancelled(self, reason: GatewayError) -> list[tuple[str, bytes]]:
        return self.failed(reason)


def _items(events: Iterable[MessageEvent]) -> list[tuple[str, bytes]]:
    return [(LOG_PREFIX + event.type, event.data) for event in events]
