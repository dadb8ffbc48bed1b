"""What the relay does about clients that read too slowly: bounded buffers, then a reset.

A stream's unsent output is bounded twice: in the process by the transport's high-water mark
(`server.client_buffer_kb`, past which writes wait) and in the kernel by a fixed socket send
buffer. A write that waits `server.slow_client_s` raises SlowClient; the relay then ends that
client's stream and resets its connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import Iterator

from llms.errors import GatewayError
from llms.streams.log import Event

# The socket send buffer of a stream (the kernel doubles it): plenty for a token stream.
SOCKET_BUFFER = 128 * 1024
# A reader's backlog is written in pieces of about this size, each waiting its turn.
WRITE_SLICE = 64 * 1024
# How long a slow client is given for its last event before its connection is dropped.
GOODBYE_S = 1.0


class SlowClient(GatewayError):
    """The client did not read its stream: its unsent output stayed over the bound too long."""

    status = 408
    type = "timeout"
    default_code = "slow_client"


def bound_buffers(transport: asyncio.Transport, high: int) -> None:
    """Writes wait once `high` bytes are unsent; the kernel keeps at most SOCKET_BUFFER more."""
    transport.set_write_buffer_limits(high=high)
    sock = transport.get_extra_info("socket")
    if sock is not None:
        # Left to autotuning, a socket whose client reads nothing parks up to 4 MiB.
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_BUFFER)


def reset(transport: asyncio.Transport) -> None:
    """Drop a connection and everything still queued for it, in the kernel too (a TCP reset).

    A plain close would leave the unsent bytes, and the FIN behind them, in the kernel for as
    long as the client does not read.
    """
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


def slices(events: list[Event], size: int) -> Iterator[list[Event]]:
    """The events in runs of about `size` bytes: a long backlog is not copied in one piece."""
    start = total = 0
    for i, event in enumerate(events):
        total += len(event.wire)
        if total >= size:
            yield events[start : i + 1]
            start, total = i + 1, 0
    if start < len(events):
        yield events[start:]
