"""Request bodies: read within a deadline, held within one budget, their JSON bounded.

- A body is read into one buffer that nothing keeps once it is parsed (aiohttp's
  `request.read()` would keep a copy on the request for the whole answer).
- The bodies of the requests in flight share `server.max_bodies_in_flight_mb`: a body that
  would take the total past it gets a 429 `server_busy` (with Retry-After) as its bytes arrive.
  A body's share comes back when its parsed request is collected: the pump of a resumable
  stream may keep it after the client left, and so it is counted until then.
- A body holds at most `server.max_json_nodes` JSON values (object keys included), counted on
  the raw bytes before any is built; past it a 400 names the top-level field that holds them.
- A body over `OFF_LOOP_BYTES` is parsed and validated in a worker thread, one at a time, so
  the event loop keeps serving every other stream meanwhile.
"""

from __future__ import annotations

import asyncio
import gc
import re
import threading
import time
from collections.abc import Callable
from typing import Any, cast

from aiohttp import web

from llms.errors import GatewayError, InvalidRequest, RateLimited
from llms.wire import ChatRequest

MIB = 1024 * 1024
OFF_LOOP_BYTES = 256 * 1024
BUSY_RETRY_S = 1
# A failed request's body may outlive it in a reference cycle (an exception's traceback holds
# the frames that hold the body) until the garbage collector runs: before refusing a body, the
# budget collects, at most this often.
COLLECT_EVERY_S = 1.0
# One JSON token: a string (an object key if a colon follows), an opening or closing bracket,
# or a scalar. Strings are matched whole (escapes included), so brackets in text never count.
_TOKEN = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"(\s*:)?|[{\[]|[}\]]|[^\s"{}\[\],:]+')


class RequestTimeout(GatewayError):
    status = 408
    type = "invalid_request_error"
    default_code = "request_timeout"


class ServerBusy(RateLimited):
    default_code = "server_busy"


class ParsedBody(dict[str, Any]):
    """A parsed request body that gives its share of the budget back when it is collected.

    `__del__` (run in whichever thread collects it, a cycle's too) rather than a
    `weakref.finalize`, whose record (the finalizer, its info, arguments and registry entry)
    kept ~0.6 KiB more per request in flight: an open stream keeps its parsed request.
    """

    __slots__ = ("_budget", "_held")

    def hold(self, budget: BodyBudget, size: int) -> None:
        """Give `size` bytes back to `budget` when this body is collected."""
        self._budget = budget
        self._held = size

    def __del__(self) -> None:
        try:
            budget = self._budget
        except AttributeError:
            return  # never held: its bytes were given back where it was read
        budget.give_back(self._held)

    def __reduce__(self) -> tuple[type[dict[str, Any]], tuple[dict[str, Any]]]:
        # A copy (copy, deepcopy, pickle) is a plain dict: it holds no share of its own.
        return dict, (dict(self),)


class BodyBudget:
    """The bytes of the request bodies in flight, together (`server.max_bodies_in_flight_mb`)."""

    __slots__ = ("_collected_at", "_lock", "held", "max_bytes", "parsing")

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.held = 0
        self._collected_at = float("-inf")
        # A body's share comes back in whichever thread collects it (a worker's allocation
        # can set off the garbage collector).
        self._lock = threading.Lock()
        # Big bodies are parsed one at a time: each worker holds the GIL in spans, and the
        # event loop must get it back between them.
        self.parsing = asyncio.Semaphore(1)

    def take(self, size: int, own: int) -> None:
        """`size` more bytes for a body already holding `own`; a 429 if that is too many
        (a body alone in flight is always let through: `server.max_body_mb` bounds it)."""
        self.check(size, own)
        with self._lock:
            self.held += size

    def check(self, size: int, own: int = 0) -> None:
        """A 429 if `size` more bytes would be too many (nothing is taken)."""
        if self._over(size, own) and (not self._collected() or self._over(size, own)):
            raise ServerBusy(
                "The gateway is holding as many request bodies as it allows "
                f"({self.max_bytes / MIB:g} MiB, server.max_bodies_in_flight_mb); "
                "try again shortly.",
                headers={"Retry-After": str(BUSY_RETRY_S)},
            )

    def give_back(self, size: int) -> None:
        with self._lock:
            self.held -= size

    def _over(self, size: int, own: int) -> bool:
        return self.held + size > self.max_bytes and self.held > own

    def _collected(self) -> bool:
        """Collect garbage (bodies kept only by cycles give their share back), unless that
        was done less than COLLECT_EVERY_S ago."""
        now = time.monotonic()
        if now - self._collected_at < COLLECT_EVERY_S:
            return False
        self._collected_at = now
        gc.collect()
        return True


BODIES = web.AppKey("bodies", BodyBudget)


async def read_chat_body(
    request: web.Request,
    parse: Callable[[bytes | bytearray, int], ChatRequest],
    *,
    timeout_s: float,
    max_nodes: int,
) -> ChatRequest:
    """The body read, parsed by `parse(raw, max_nodes)` and held in the app's BodyBudget until
    the parsed request is collected. The body must arrive within `timeout_s` (else 408)."""
    budget = request.app[BODIES]
    held = 0

    def take(size: int) -> None:
        nonlocal held
        budget.take(size, held)
        held += size

    if request.content_length:
        # Refused before a byte is read; but only bytes that arrived are taken, so a client
        # announcing a body it never sends holds nothing.
        budget.check(request.content_length)
    try:
        if request.content.is_eof():  # the usual case: it came with the headers
            raw = await _read(request, take)
        else:
            try:
                async with asyncio.timeout(timeout_s):
                    raw = await _read(request, take)
            except TimeoutError:
                raise RequestTimeout(
                    f"The request body did not arrive within {timeout_s:g} s "
                    "(server.request_timeout_s)."
                ) from None
        if len(raw) > OFF_LOOP_BYTES:
            async with budget.parsing:
                body = await asyncio.to_thread(_parsed, parse, raw, max_nodes)
        else:
            body = _parsed(parse, raw, max_nodes)
    except BaseException:
        budget.give_back(held)
        raise
    body.hold(budget, held)
    return cast(ChatRequest, body)


def _parsed(
    parse: Callable[[bytes | bytearray, int], ChatRequest], raw: bytes | bytearray, max_nodes: int
) -> ParsedBody:
    return ParsedBody(parse(raw, max_nodes))


async def _read(request: web.Request, take: Callable[[int], None]) -> bytearray:
    limit = request.client_max_size
    body = bytearray()
    while chunk := await request.content.readany():
        take(len(chunk))
        body += chunk
        if limit and len(body) > limit:
            raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=len(body))
    return body


def check_json_nodes(raw: bytes | bytearray, limit: int) -> int:
    """A 400 if the JSON in `raw` holds more than `limit` values and keys (counted before
    anything is parsed; a malformed body is left to the parser). Returns how many `[` and `{`
    bytes `raw` holds: a bound of its nesting depth."""
    # Every key or value but the root follows a comma, a colon or an opening bracket: a bound
    # computed at the speed of memory, exact enough for almost every body.
    opens = raw.count(b"[") + raw.count(b"{")
    bound = 1 + raw.count(b",") + raw.count(b":") + opens
    if bound <= limit:
        return opens
    nodes = depth = 0
    field: tuple[int, int] | None = None  # where the current top-level key is in `raw`
    for token in _TOKEN.finditer(raw):
        first = raw[token.start()]
        if first in b"}]":
            depth -= 1
            continue
        nodes += 1
        if nodes > limit:
            name = "" if field is None else raw[field[0] : field[1]].decode("utf-8", "replace")
            where = f"; the limit was reached in '{name}'." if name else "."
            raise InvalidRequest(
                f"The request body holds more than {limit} JSON values and keys "
                f"(server.max_json_nodes){where}",
                param=name or None,
                code="too_many_json_values",
            )
        if first in b"{[":
            depth += 1
        elif depth == 1 and token.group(1) is not None:
            field = (token.start() + 1, token.start(1) - 1)
    return opens
