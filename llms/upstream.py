"""Open a provider request and read its raw bytes. The only user of aiohttp's client.

aiohttp and OS exceptions are translated here into `llms.errors`. Streams have no total timeout
unless configured: a connect timeout, a first-token deadline (until the first content chunk)
and an idle deadline (between reads) instead, enforced by a `Watchdog`.
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import functools
import logging
import math
import os
import socket
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import NoReturn, Protocol
from urllib.parse import urlsplit

import aiohttp
from aiohttp.client_proto import ResponseHandler
from aiohttp.http_exceptions import HttpProcessingError

from llms.adapters.base import UpstreamRequest
from llms.config import Timeouts
from llms.deadlines import Entry, deadlines
from llms.errors import (
    GatewayError,
    UpstreamConnectError,
    UpstreamDisconnected,
    UpstreamError,
    UpstreamMalformed,
    UpstreamTimeout,
)

log = logging.getLogger("llms.upstream")

ERROR_BODY_LIMIT = 64 * 1024
# Headers every request sent upstream carries besides its own: set only while tracing is on
# (llms/telemetry/tracing.py: the current attempt's W3C `traceparent`), else None and no cost.
trace_headers: Callable[[], Mapping[str, str] | None] | None = None


# What a read of a body may raise that `UpstreamCall.read_failed` translates; anything else
# propagates as it is.
READ_ERRORS = (
    asyncio.CancelledError,
    aiohttp.ClientError,
    OSError,
    HttpProcessingError,
    RuntimeError,
)


class Watchdog:
    """Cancels a task once `expires` (loop time) passes.

    Moving the deadline is one attribute store: the entry (llms/deadlines.py: one loop timer
    for every open stream's deadlines) is re-armed lazily when it comes due early, so a stream
    pays for a heap entry only once per timeout period, not once per chunk.
    `expires = None` pauses it (while the task writes to a slow client, say).
    """

    __slots__ = ("_base", "_deadlines", "_task", "deadline", "expires", "fired")

    def __init__(self) -> None:
        self._deadlines = deadlines()
        task = asyncio.current_task()
        assert task is not None
        self._task = task
        self._base = task.cancelling()
        self.deadline: Entry | None = None
        self.expires: float | None = None
        self.fired = False

    def expect_by(self, when: float) -> None:
        if when == math.inf:
            self.expires = None
            return
        self.expires = when
        entry = self.deadline
        if entry is None or when < entry.when:
            # None armed, or an earlier deadline (idle after first-token): the armed one
            # would be too late.
            self._deadlines.at(when, self)

    def due(self) -> None:
        expires = self.expires
        if expires is None:
            return
        if self._deadlines.loop.time() < expires:
            self._deadlines.at(expires, self)
            return
        self.fired = True
        self._task.cancel()

    def absorb(self) -> bool:
        """After a CancelledError: True if it was this watchdog's (and so is now undone)."""
        if self.fired and self._task.uncancel() <= self._base:
            self.fired = False
            return True
        return False

    def stop(self) -> None:
        self.expires = None
        self._deadlines.cancel(self)


class Authoriser(Protocol):
    """Authenticates each request to one provider just before it is sent (the auth hook).

    Adapters stay pure: they build the request without credentials that must be fetched or
    computed per request; `UpstreamCall.open` asks the provider's authoriser (llms/credentials.py
    builds one per provider that needs it, `Providers.authorisers` holds them) for the headers to
    add to the built request, given its final method, URL, headers and body: a cached OAuth2
    bearer token, a signature over the request. `authorise` may do I/O through `session` (a
    token request) and raises `llms.errors` (502 `upstream_auth_failed` when no credential can
    be had). If the upstream answers 401, `rejected(sent)` is told which headers it refused: it
    drops that credential and says whether sending once more, with a fresh one, may help.
    """

    async def authorise(
        self, session: aiohttp.ClientSession, request: UpstreamRequest
    ) -> Mapping[str, str]: ...

    def rejected(self, sent: Mapping[str, str]) -> bool: ...


@functools.cache
def _client_timeout(connect_s: float) -> aiohttp.ClientTimeout:
    """aiohttp's timeout for one connect deadline, built once (the watchdog does the rest)."""
    return aiohttp.ClientTimeout(total=None, connect=connect_s, sock_connect=connect_s)


def new_session() -> aiohttp.ClientSession:
    """The one shared session: no cap on concurrent streams, no total timeout."""
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=0, keepalive_timeout=30)
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=None),
        auto_decompress=True,
        skip_auto_headers=("User-Agent",),
    )


class UpstreamCall:
    """One HTTP exchange with a provider: `await open()`, then `read()` until b"" (EOF)."""

    __slots__ = (
        "_authoriser",
        "_closed",
        "_content",
        "_loop",
        "_protocol",
        "_request",
        "_response",
        "_sent",
        "_session",
        "_timeouts",
        "_url",
        "watchdog",
    )

    def __init__(
        self,
        session: aiohttp.ClientSession,
        request: UpstreamRequest,
        timeouts: Timeouts,
        authoriser: Authoriser | None = None,
    ) -> None:
        self._session = session
        # The request until it is sent: an open stream keeps no copy of the body it sent.
        self._request: UpstreamRequest | None = request
        self._url = request.url
        self._timeouts = timeouts
        self._authoriser = authoriser
        self._sent: Mapping[str, str] = {}  # the authoriser's headers on the request sent
        self._response: aiohttp.ClientResponse | None = None
        self._content: aiohttp.StreamReader | None = None
        self._protocol: ResponseHandler | None = None
        self._closed: asyncio.Future[None] | None = None
        self._loop = asyncio.get_running_loop()
        self.watchdog = Watchdog()

    @property
    def status(self) -> int:
        return self._response.status if self._response is not None else 0

    @property
    def headers(self) -> dict[str, str]:
        if self._response is None:
            return {}
        # Plain str names: multidict's istr is a str subclass that orjson will not encode.
        return {str(name): value for name, value in self._response.headers.items()}

    async def open(self, deadline: float) -> None:
        """Send the request; return once the status and headers arrived (before `deadline`).

        With an authoriser, its headers are added first; a 401 to a credential it had cached
        sends the request once more with a fresh one.
        """
        given = self._request
        if given is None:
            raise RuntimeError("UpstreamCall.open: the request was already sent")
        self._request = None
        authoriser = self._authoriser
        if authoriser is None:
            self._response = await self._send(given, deadline)
        else:
            for _ in range(2):
                sent = self._sent = await self._authorised(authoriser, given, deadline)
                request = dataclasses.replace(given, headers={**given.headers, **sent})
                response = await self._send(request, deadline)
                if response.status != 401 or not authoriser.rejected(sent):
                    break
                response.release()
            self._response = response
        self._content = self._response.content
        self._watch(self._response)

    async def _authorised(
        self, authoriser: Authoriser, request: UpstreamRequest, deadline: float
    ) -> Mapping[str, str]:
        """The authoriser's headers, before `deadline`."""
        self.watchdog.expect_by(deadline)
        try:
            return await authoriser.authorise(self._session, request)
        except asyncio.CancelledError:
            if self.watchdog.absorb():
                raise UpstreamTimeout(
                    "The upstream's credentials could not be had in time."
                ) from None
            raise
        finally:
            self.watchdog.expires = None

    async def _send(self, request: UpstreamRequest, deadline: float) -> aiohttp.ClientResponse:
        timeouts = self._timeouts
        timeout = _client_timeout(timeouts.connect_s)
        self.watchdog.expect_by(deadline)
        headers = request.headers
        if trace_headers is not None:
            headers = {**headers, **(trace_headers() or {})}
        try:
            return await self._session.request(
                request.method,
                request.url,
                headers=headers,
                data=request.body,
                timeout=timeout,
                allow_redirects=False,
            )
        except asyncio.CancelledError:
            if self.watchdog.absorb():
                raise UpstreamTimeout("The upstream did not answer in time.") from None
            raise
        except (aiohttp.ConnectionTimeoutError, TimeoutError):
            raise UpstreamTimeout(
                f"Connecting to the upstream timed out after {timeouts.connect_s:g} s."
            ) from None
        except aiohttp.ClientConnectorError as exc:
            raise UpstreamConnectError(
                f"Cannot connect to the upstream: {_reason(exc, request.url)}."
            ) from None
        except aiohttp.ClientResponseError as exc:
            # Its status line, headers or the body arriving with them do not parse as HTTP.
            log.warning("upstream %s: %s", _origin(request.url), exc)
            raise UpstreamMalformed(
                "The upstream's HTTP response could not be parsed (malformed HTTP)."
            ) from None
        except (aiohttp.ClientError, OSError) as exc:
            raise UpstreamDisconnected(
                f"The upstream closed the connection before answering: {_reason(exc, request.url)}."
            ) from None
        except (ValueError, TypeError, RuntimeError) as exc:
            # aiohttp refusing the request itself (a header or URL it will not send, a closed
            # session): the provider's entry cannot be used; the detail is for the operator.
            log.warning("the HTTP client refused the request to %s: %r", _origin(request.url), exc)
            raise UpstreamError(
                "The gateway could not send the request to the upstream; see the gateway's log."
            ) from None
        finally:
            self.watchdog.expires = None

    def _watch(self, response: aiohttp.ClientResponse) -> None:
        """Wake a read that waits on a connection which closed under it.

        aiohttp closes the connection when the body's framing is invalid (a broken chunk-size
        line) without telling a read already waiting for the body, which would then wait for
        the idle timeout: the connection's end is watched instead.
        """
        connection = response.connection
        if connection is None:
            return  # the body is already complete
        protocol = self._protocol = connection.protocol
        closed = protocol.closed if protocol is not None else None
        if closed is None:
            return  # already lost: a read says so at once
        # Whoever else awaits it, its exception (an unclean close) is retrieved, once.
        closed.remove_done_callback(_retrieve)
        closed.add_done_callback(_retrieve, context=_CALLBACKS)
        closed.add_done_callback(self._connection_closed, context=_CALLBACKS)
        self._closed = closed

    def _connection_closed(self, _: asyncio.Future[None]) -> None:
        self._closed = None
        content = self._content
        if content is not None and not content.is_eof() and content.exception() is None:
            content.set_exception(self._broken())

    def _broken(self) -> UpstreamError:
        """What a read learns when the connection closed without ending the body."""
        protocol = self._protocol
        if protocol is not None and isinstance(protocol.exception(), HttpProcessingError):
            return UpstreamMalformed(
                "The upstream broke the framing of its HTTP response (invalid chunked "
                "encoding), so its answer was cut off."
            )
        return UpstreamDisconnected("The upstream closed the connection mid-answer.")

    @property
    def content(self) -> aiohttp.StreamReader:
        """The body being read (after `open`)."""
        content = self._content
        assert content is not None
        return content

    async def read(self, deadline: float) -> bytes:
        """The next bytes of the body, b"" at its end. Raises UpstreamError subclasses.

        (Generation's stream loop does the same inline: `content.readany()` with the
        watchdog armed for `deadline`, `read_failed` for what it raises, the watchdog paused
        after.)"""
        content = self.content
        watchdog = self.watchdog
        watchdog.expect_by(deadline)
        try:
            return await content.readany()
        except READ_ERRORS as exc:
            self.read_failed(exc)
        finally:
            watchdog.expires = None

    def read_failed(self, exc: BaseException) -> NoReturn:
        """Raise what a read of the body that raised `exc` (one of READ_ERRORS) raises: an
        UpstreamError for the upstream's failures (the watchdog's idle timeout, a broken
        connection, broken framing), else `exc` itself (a cancellation that is not the
        watchdog's, a RuntimeError of a connection still up)."""
        failure = self._read_failure(exc)
        if failure is exc:
            raise exc
        raise failure from None

    def _read_failure(self, exc: BaseException) -> BaseException:
        if isinstance(exc, asyncio.CancelledError):
            if self.watchdog.absorb():
                return UpstreamTimeout(
                    "The upstream stopped sending data (idle timeout).",
                    code="upstream_idle_timeout",
                )
            return exc
        if isinstance(exc, (aiohttp.ClientError, OSError)):
            return UpstreamDisconnected(
                f"The upstream connection broke mid-stream: {_reason(exc, self._url)}."
            )
        if isinstance(exc, HttpProcessingError):
            # aiohttp's pure-Python parser raises its framing errors as they are.
            return UpstreamMalformed(
                "The upstream broke the framing of its HTTP response, so its answer was cut off."
            )
        if isinstance(exc, RuntimeError):
            # aiohttp's "Connection closed.": the connection died (bad framing) between reads.
            protocol = self._protocol
            if protocol is None or protocol.is_connected():
                return exc
            return self._broken()
        return exc

    async def read_error_body(self, deadline: float) -> bytes:
        """A bounded read of a non-2xx body."""
        parts: list[bytes] = []
        size = 0
        try:
            while size < ERROR_BODY_LIMIT:
                data = await self.read(deadline)
                if not data:
                    break
                parts.append(data)
                size += len(data)
        except UpstreamError:
            pass
        body = b"".join(parts)[:ERROR_BODY_LIMIT]
        # An upstream may quote the credential it refused: a token never reaches a client.
        for value in self._sent.values():
            for secret in (value, value.partition(" ")[2]):
                if len(secret) >= 6:
                    body = body.replace(secret.encode(), b"[redacted]")
        return body

    def close(self) -> None:
        """Close the connection now; the provider sees the disconnect and stops generating."""
        self.watchdog.stop()
        closed = self._closed
        if closed is not None:
            self._closed = None
            closed.remove_done_callback(self._connection_closed)
        response = self._response
        if response is not None:
            self._response = None
            content = self._content
            if content is not None and content.is_eof():
                response.release()  # fully read: the connection may go back to the pool
            else:
                response.close()

    async def __aenter__(self) -> UpstreamCall:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


async def fetch(
    session: aiohttp.ClientSession,
    request: UpstreamRequest,
    timeouts: Timeouts,
    authoriser: Authoriser | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """A small whole-body exchange (model discovery, a token): status, headers, body (bounded)."""
    loop = asyncio.get_running_loop()
    async with UpstreamCall(session, request, timeouts, authoriser) as call:
        deadline = loop.time() + timeouts.first_token_s
        await call.open(deadline)
        parts: list[bytes] = []
        size = 0
        while data := await call.read(deadline):
            parts.append(data)
            size += len(data)
            if size > 8 * 1024 * 1024:
                raise UpstreamError("The upstream's answer is too large.")
        return call.status, call.headers, b"".join(parts)


# The context the connection-closed callbacks run in, shared: they read no context variable, and
# a copy of the stream's context per callback was 64 B each per open stream. (A callback is
# always run from the loop, never inside another, so the one context is never entered twice.)
_CALLBACKS = contextvars.Context()


def _retrieve(closed: asyncio.Future[None]) -> None:
    if not closed.cancelled():
        closed.exception()


def _reason(exc: BaseException, url: str) -> str:
    """What went wrong in plain words, for the client (and the web UI that shows it).

    The library's own text quotes addresses and internals (`127.0.0.1:8000`,
    `<TransferEncodingError: 400, message=...>`): it goes to the log, with the upstream's origin.
    """
    log.warning("upstream %s: %s: %s", _origin(url), type(exc).__name__, exc)
    if isinstance(exc, aiohttp.ClientConnectorDNSError | socket.gaierror):
        return "its host name could not be resolved"
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return "its TLS certificate was not accepted"
    if isinstance(exc, aiohttp.ClientSSLError):
        return "the TLS handshake failed"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "the server closed the connection"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "the response body was cut short or malformed"
    if isinstance(exc, aiohttp.InvalidURL):
        return "its URL is not valid"
    if isinstance(exc, aiohttp.ClientResponseError):
        return "its response could not be read (malformed HTTP)"
    if isinstance(exc, OSError) and exc.errno:
        # os.strerror: "Connection refused", without the address asyncio adds to its messages.
        return os.strerror(exc.errno).lower()
    return "a network error"


def _origin(url: str) -> str:
    """scheme://host:port of a URL, without credentials, path or query."""
    try:
        parts = urlsplit(url)
        return f"{parts.scheme}://{parts.hostname}:{parts.port or ''}".rstrip(":")
    except ValueError:
        return "(an invalid URL)"


def deadline_after(loop: asyncio.AbstractEventLoop, seconds: float | None) -> float:
    return math.inf if seconds is None else loop.time() + seconds


__all__ = [
    "Authoriser",
    "GatewayError",
    "UpstreamCall",
    "Watchdog",
    "deadline_after",
    "new_session",
]
