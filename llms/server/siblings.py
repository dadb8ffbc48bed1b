"""Memory mode with several workers: a stream held by another worker is found by asking it.

Each worker of `llms serve --workers N` also serves the gateway on a private unix socket in the
supervisor's runtime directory (mode 0700). A resume or cancel for a stream this worker does not
hold is sent to every sibling at once; the one holding it answers (the others say 404), and its
answer is relayed to the client as it arrives: status, headers and body byte for byte. The
sibling runs the ordinary handler, so the key's ownership check, the replay position, heartbeats
and the slow-client bound all apply there. A request that arrived over a unix socket is never
forwarded again, so a miss ends at the first hop. With Redis none of this is used: every worker
finds every stream in Redis.

The request goes out as HTTP/1.0, so the sibling ends its answer by closing the connection (no
chunked framing to undo); a raw asyncio connection, as upstream.py is the only aiohttp client.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from llms.errors import NotFound
from llms.server.middleware import REQUEST_ID
from llms.server.slow import reset

log = logging.getLogger("llms.server")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# Not relayed in either direction: they describe one connection, not the message.
HOP_BY_HOP = frozenset(
    (
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"host",
        b"content-length",
        b"expect",
        b"x-request-id",
    )
)
HEAD_LIMIT = 64 * 1024
READ_SIZE = 64 * 1024


@dataclass
class Answer:
    """A sibling's answer once its head arrived; the body is still to be read from `reader`."""

    status: int
    reason: str
    headers: list[tuple[str, str]]
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    def close(self) -> None:
        self.writer.close()


def from_sibling(request: web.Request) -> bool:
    """The request came over a unix socket, i.e. from a sibling worker (never from a client)."""
    transport = request.transport
    sockname = transport.get_extra_info("sockname") if transport is not None else None
    return isinstance(sockname, str | bytes)


def asking_siblings(handler: Handler, siblings: Callable[[], Sequence[Path]]) -> Handler:
    """`handler` (resume or cancel), which on `stream_not_found` asks the sibling workers."""

    async def handle(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except NotFound as error:
            if error.code != "stream_not_found" or from_sibling(request):
                raise
            response = await forward(request, siblings())
            if response is None:
                raise
            return response

    return handle


async def forward(request: web.Request, paths: Sequence[Path]) -> web.StreamResponse | None:
    """Send the request to every sibling; relay the first answer that is not a 404.

    None when no sibling has the stream (or none could be reached).
    """
    if not paths:
        return None
    head = _request_head(request, await request.read())
    asks = [asyncio.ensure_future(_ask(path, head)) for path in paths]
    answer: Answer | None = None
    try:
        for next_answer in asyncio.as_completed(asks):
            answer = await next_answer
            if answer is not None:
                break
    finally:
        for ask in asks:
            ask.cancel()
        for other in await asyncio.gather(*asks, return_exceptions=True):
            if isinstance(other, Answer) and other is not answer:
                other.close()
    if answer is None:
        return None
    log.debug("%s %s: answered by a sibling worker", request.method, request.path)
    try:
        return await _relay(request, answer)
    finally:
        answer.close()


def _request_head(request: web.Request, body: bytes) -> bytes:
    """The request as HTTP/1.0 bytes: its method, raw path and end-to-end headers, and body."""
    lines = [f"{request.method} {request.raw_path} HTTP/1.0".encode("latin-1")]
    for name, value in request.raw_headers:
        if name.lower() not in HOP_BY_HOP:
            lines.append(name + b": " + value)
    # The same request id on both hops, so the two workers' log lines match.
    lines.append(b"X-Request-Id: " + request[REQUEST_ID].encode("latin-1"))
    lines.append(b"Host: sibling")
    if body:
        lines.append(b"Content-Length: %d" % len(body))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


async def _ask(path: Path, head: bytes) -> Answer | None:
    """One sibling's answer head; None if it is not there, or answers 404."""
    try:
        reader, writer = await asyncio.open_unix_connection(str(path), limit=HEAD_LIMIT)
    except OSError:
        return None  # not running (a socket left by a worker that is being restarted)
    try:
        writer.write(head)
        raw = await reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = raw.decode("latin-1").split("\r\n")
        _, status, reason = [*status_line.split(" ", 2), ""][:3]
        headers = [
            (name.strip(), value.strip())
            for name, _, value in (line.partition(":") for line in header_lines if line)
        ]
        answer = Answer(int(status), reason, headers, reader, writer)
    except (OSError, ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        writer.close()
        return None
    except BaseException:
        writer.close()
        raise
    if answer.status == 404:
        answer.close()
        return None
    return answer


async def _relay(request: web.Request, answer: Answer) -> web.StreamResponse:
    response = web.StreamResponse(status=answer.status, reason=answer.reason or None)
    for name, value in answer.headers:
        lower = name.lower().encode("latin-1")
        if lower == b"content-length":
            response.content_length = int(value)
        elif lower not in HOP_BY_HOP:
            response.headers.add(name, value)
    await response.prepare(request)
    try:
        while data := await answer.reader.read(READ_SIZE):
            await response.write(data)
    except ConnectionResetError:
        # The sibling reset its connection (it cut off a client that read too slowly): so is
        # this one, rather than ending a stream cleanly that did not end.
        if request.transport is not None:
            reset(request.transport)
        return response
    with contextlib.suppress(ConnectionResetError):
        await response.write_eof()
    return response
