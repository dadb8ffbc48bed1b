"""The fake upstream of the streams-sustained ramp: every stream's deltas written on one tick.

``bench.upstream`` paces each stream with a timer of its own; at hundreds of concurrent streams
that is one timer per stream every 20 ms. Here every paced stream of one delay joins a shared
ticker: one timer per delay fires every ``delay_ms`` and writes the next part of every stream
that is due, so the upstream's cost per chunk is one ``transport.write`` and the ramp measures
the gateway, not the upstream. A stream's first part is still written ``first_ms`` after its
request (one timer per request); from then on it follows the tick, so its first gap is up to
one tick, and every later gap is one tick. Everything else is ``bench.upstream`` unchanged::

    python -m bench.ticker --port 9101
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from dataclasses import dataclass

from bench.shape import Shape
from bench.upstream import Request, Upstream, UpstreamProtocol


@dataclass
class Paced:
    """One stream on a ticker: what is left to write, then how it ends."""

    protocol: TickProtocol
    parts: list[bytes]
    index: int
    last: bytes
    request: Request


class Ticker:
    """One repeating timer for every stream paced ``delay`` seconds apart."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.streams: dict[TickProtocol, Paced] = {}
        self._handle: asyncio.TimerHandle | None = None
        self._next = 0.0

    def add(self, paced: Paced) -> None:
        """Write the stream's next part on the next tick (starting the ticker if it is idle)."""
        self.streams[paced.protocol] = paced
        if self._handle is None:
            loop = asyncio.get_running_loop()
            self._next = loop.time() + self.delay
            self._handle = loop.call_at(self._next, self._tick)

    def remove(self, protocol: TickProtocol) -> None:
        """Forget a stream whose connection is gone."""
        self.streams.pop(protocol, None)

    def _tick(self) -> None:
        """Write one part of every stream; finish those that are done; schedule the next tick."""
        done = []
        for paced in self.streams.values():
            paced.protocol.send(paced.parts[paced.index])
            paced.index += 1
            if paced.index == len(paced.parts):
                done.append(paced)
        for paced in done:
            del self.streams[paced.protocol]
            paced.protocol.finish_paced(paced.last, paced.request)
        if not self.streams:
            self._handle = None
            return
        loop = asyncio.get_running_loop()
        # Keep to the schedule; if the loop fell behind a whole tick, start again from now.
        self._next = max(self._next + self.delay, loop.time())
        self._handle = loop.call_at(self._next, self._tick)


class TickProtocol(UpstreamProtocol):
    """``bench.upstream``'s connection, with paced streams handed to a shared ticker."""

    def __init__(self, upstream: Upstream, tickers: dict[int, Ticker]) -> None:
        super().__init__(upstream)
        self._tickers = tickers

    def connection_lost(self, exc: Exception | None) -> None:
        """Stop writing to a connection that is gone."""
        super().connection_lost(exc)
        for ticker in self._tickers.values():
            ticker.remove(self)

    def send(self, data: bytes) -> None:
        """Write bytes unless the connection is gone."""
        self._send(data)

    def finish_paced(self, last: bytes, request: Request) -> None:
        """End the paced answer and serve the next buffered request."""
        self._finish(last, request)
        self._paced = None
        self._serve()

    def _pace(self, parts: list[bytes], last: bytes, shape: Shape, request: Request) -> None:
        """Streams with a delay join the ticker after their first part; others as upstream."""
        if len(parts) < 2 or not shape.delay_ms:
            super()._pace(parts, last, shape, request)
            return
        ticker = self._tickers.get(shape.delay_ms)
        if ticker is None:
            ticker = self._tickers[shape.delay_ms] = Ticker(shape.delay_ms / 1000)
        paced = Paced(self, parts, 1, last, request)

        def first() -> None:
            """Write the first part, then follow the tick."""
            self._send(parts[0])
            ticker.add(paced)

        self._paced = asyncio.get_running_loop().call_later(shape.first_ms / 1000, first)


async def serve(host: str, port: int, models: list[str]) -> None:
    """Serve until SIGTERM or SIGINT."""
    loop = asyncio.get_running_loop()
    upstream = Upstream(models)
    tickers: dict[int, Ticker] = {}
    server = await loop.create_server(
        lambda: TickProtocol(upstream, tickers), host, port, backlog=4096, reuse_address=True
    )
    print(f"listening on http://{host}:{server.sockets[0].getsockname()[1]}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    """Command line entry: ``python -m bench.ticker --port N --models a,b``."""
    parser = argparse.ArgumentParser(prog="python -m bench.ticker", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--models", default="bench-c64-d20-f20-s8")
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.host, args.port, [m for m in args.models.split(",") if m]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
