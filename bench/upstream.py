"""A fake OpenAI-compatible upstream that costs next to nothing per chunk.

It also speaks Ollama (``POST /api/chat``, NDJSON), Anthropic (``POST /v1/messages``, SSE with
named events) and Gemini (``POST /v1beta/models/{model}:streamGenerateContent?alt=sse``), with
the same content and each provider's own usage reporting (see ``bench.native``).

A raw ``asyncio.Protocol`` HTTP/1.1 server (keep-alive, chunked transfer encoding). Every answer
is pre-encoded once per (model, include_usage) and then written as stored bytes: with no pacing,
a whole streamed answer is one ``transport.write``. The model id chooses the shape (see
``bench.shape``). Run it in its own process so its CPU is never counted with the gateway's::

    python -m bench.upstream --port 9100
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import time
from dataclasses import dataclass, replace

import orjson

from bench.answers import Encoded, encode_completion, encode_json, encode_stream, error_body
from bench.completions_load import encode_text_stream
from bench.embeddings_load import embeddings_answer
from bench.native import Protocol, encode_native, error_answer, request_problem, route
from bench.shape import Shape, parse_model

_MAX_HEAD = 64 * 1024
_MAX_CACHED = 256


class HttpError(Exception):
    """A request the server cannot parse; answered with this status, then the socket closes."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Request:
    """One parsed HTTP request."""

    method: str
    path: str
    close: bool
    body: bytes
    query: str = ""


def _dechunk(buf: bytearray, start: int) -> tuple[bytes, int] | None:
    """Decode a chunked request body starting at ``start``; None until all of it has arrived."""
    body = bytearray()
    pos = start
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            return None
        try:
            size = int(bytes(buf[pos:eol]).split(b";")[0], 16)
        except ValueError as exc:
            raise HttpError(400, "bad chunk size") from exc
        if size == 0:
            # Trailers are not expected; the body ends at the blank line after the last chunk.
            end = buf.find(b"\r\n\r\n", eol)
            return (bytes(body), end + 4) if end >= 0 else None
        if len(buf) < eol + 2 + size + 2:
            return None
        body += buf[eol + 2 : eol + 2 + size]
        pos = eol + 2 + size + 2


def parse_request(buf: bytearray) -> tuple[Request, int] | None:
    """Parse one request from the front of ``buf``; return it and its length, or None if partial."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        if len(buf) > _MAX_HEAD:
            raise HttpError(400, "request head too large")
        return None
    lines = bytes(buf[:end]).decode("latin-1").split("\r\n")
    try:
        method, target, version = lines[0].split(" ")
    except ValueError as exc:
        raise HttpError(400, "bad request line") from exc
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    connection = headers.get("connection", "").lower()
    close = connection == "close" or (version == "HTTP/1.0" and connection != "keep-alive")
    start = end + 4
    if "chunked" in headers.get("transfer-encoding", "").lower():
        decoded = _dechunk(buf, start)
        if decoded is None:
            return None
        body, consumed = decoded
    else:
        try:
            length = int(headers.get("content-length", "0") or 0)
        except ValueError as exc:
            raise HttpError(400, "bad Content-Length") from exc
        if len(buf) < start + length:
            return None
        body, consumed = bytes(buf[start : start + length]), start + length
    path, _, query = target.partition("?")
    return Request(method=method, path=path, close=close, body=body, query=query), consumed


class Upstream:
    """State shared by every connection: the advertised models and the pre-encoded answers."""

    def __init__(self, models: list[str]) -> None:
        self.models = models
        self.created = int(time.time())
        self.models_body = {
            "object": "list",
            "data": [
                {"id": m, "object": "model", "created": self.created, "owned_by": "bench"}
                for m in models
            ],
        }
        self._streams: dict[tuple[str, bool], Encoded] = {}
        self._text: dict[tuple[str, bool], Encoded] = {}
        self._completions: dict[str, bytes] = {}
        self._native: dict[tuple[Protocol, str], Encoded] = {}
        self._embeddings: dict[tuple[str, int, str, bool], bytes] = {}

    def stream(self, shape: Shape, include_usage: bool) -> Encoded:
        """The encoded streamed answer for a shape, built on first use."""
        key = (shape.model, include_usage)
        encoded = self._streams.get(key)
        if encoded is None:
            if len(self._streams) >= _MAX_CACHED:
                self._streams.clear()
            encoded = self._streams[key] = encode_stream(shape, self.created, include_usage)
        return encoded

    def text_stream(self, shape: Shape, include_usage: bool) -> Encoded:
        """The encoded legacy completions stream for a shape, built on first use."""
        key = (shape.model, include_usage)
        encoded = self._text.get(key)
        if encoded is None:
            if len(self._text) >= _MAX_CACHED:
                self._text.clear()
            encoded = self._text[key] = encode_text_stream(shape, self.created, include_usage)
        return encoded

    def native(self, protocol: Protocol, shape: Shape) -> Encoded:
        """The encoded streamed answer of an Ollama, Anthropic or Gemini upstream."""
        key = (protocol, shape.model)
        encoded = self._native.get(key)
        if encoded is None:
            if len(self._native) >= _MAX_CACHED:
                self._native.clear()
            encoded = self._native[key] = encode_native(protocol, shape)
        return encoded

    def embeddings(self, model: str, count: int, encoding: str, close: bool) -> bytes:
        """The encoded embeddings answer for a model, input count and encoding."""
        key = (model, count, encoding, close)
        encoded = self._embeddings.get(key)
        if encoded is None:
            if len(self._embeddings) >= _MAX_CACHED:
                self._embeddings.clear()
            answer = embeddings_answer(model, count, encoding)
            encoded = self._embeddings[key] = encode_json(200, answer, close)
        return encoded

    def completion(self, shape: Shape) -> bytes:
        """The encoded non-streamed answer for a shape, built on first use."""
        encoded = self._completions.get(shape.model)
        if encoded is None:
            if len(self._completions) >= _MAX_CACHED:
                self._completions.clear()
            encoded = self._completions[shape.model] = encode_completion(shape, self.created)
        return encoded


class UpstreamProtocol(asyncio.Protocol):
    """One client connection: requests are answered in order, one at a time."""

    def __init__(self, upstream: Upstream) -> None:
        self._upstream = upstream
        self._buf = bytearray()
        self._transport: asyncio.Transport | None = None
        self._paced: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Keep the transport."""
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        """Stop any paced answer still being written."""
        self._transport = None
        if self._paced is not None:
            self._paced.cancel()

    def data_received(self, data: bytes) -> None:
        """Buffer bytes and answer every complete request."""
        self._buf += data
        self._serve()

    def _serve(self) -> None:
        """Answer every complete request in the buffer, in order."""
        # A paced answer owns the connection until it ends; later requests wait in the buffer.
        while self._paced is None and self._transport is not None:
            try:
                parsed = parse_request(self._buf)
            except HttpError as exc:
                self._send(encode_json(exc.status, error_body(str(exc), "bad_http"), True))
                self._transport.close()
                return
            if parsed is None:
                return
            request, consumed = parsed
            del self._buf[:consumed]
            self._answer(request)

    def _send(self, data: bytes) -> None:
        """Write bytes unless the connection is gone."""
        if self._transport is not None:
            self._transport.write(data)

    def _answer(self, request: Request) -> None:
        """Route one request."""
        if request.method == "GET" and request.path == "/v1/models":
            self._finish(encode_json(200, self._upstream.models_body, request.close), request)
        elif request.method == "POST" and request.path == "/v1/chat/completions":
            self._chat(request)
        elif request.method == "POST" and request.path == "/v1/embeddings":
            self._embeddings(request)
        elif request.method == "POST" and request.path == "/v1/completions":
            self._chat(request, text=True)
        elif (native := route(request.method, request.path)) is not None:
            self._native(request, *native)
        else:
            body = error_body(f"no route {request.method} {request.path}", "not_found")
            self._finish(encode_json(404, body, request.close), request)

    def _finish(self, data: bytes, request: Request) -> None:
        """Write the last bytes of an answer; close if the client asked to."""
        self._send(data)
        if request.close and self._transport is not None:
            self._transport.close()

    def _chat(self, request: Request, *, text: bool = False) -> None:
        """Answer a chat completion, streamed or not, paced or at once; with ``text``, a
        legacy completion (streamed only: bench.completions_load)."""
        try:
            payload = orjson.loads(request.body)
            model = payload["model"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            body = error_body("body must be JSON with a model", "invalid_body")
            self._finish(encode_json(400, body, request.close), request)
            return
        shape = parse_model(model) if isinstance(model, str) else None
        if shape is None:
            body = error_body(f"The model `{model}` does not exist", "model_not_found")
            self._finish(encode_json(404, body, request.close), request)
            return
        stream = payload.get("stream") is True
        options = payload.get("stream_options") or {}
        include_usage = isinstance(options, dict) and options.get("include_usage") is True
        if text:
            self._stream(self._upstream.text_stream(shape, include_usage), shape, request)
            return
        if not stream:
            answer = self._upstream.completion(shape)
            if shape.first_ms or shape.delay_ms:
                self._pace([], answer, shape, request)
            else:
                self._finish(self._closing(answer, request), request)
            return
        self._stream(self._upstream.stream(shape, include_usage), shape, request)

    def _embeddings(self, request: Request) -> None:
        """Answer an embeddings request (bench.embeddings_load), from the cache."""
        try:
            payload = orjson.loads(request.body)
            model, inputs = payload["model"], payload["input"]
            encoding = payload.get("encoding_format", "float")
        except (orjson.JSONDecodeError, KeyError, TypeError):
            body = error_body("body must be JSON with a model and an input", "invalid_body")
            self._finish(encode_json(400, body, request.close), request)
            return
        count = len(inputs) if isinstance(inputs, list) else 1
        # A bench model with a first delay answers after it (bench.board: 20 ms); others at once.
        shape = parse_model(model) if isinstance(model, str) else None
        if shape is not None and shape.first_ms:
            # _pace adds Connection: close itself when the client asked for it.
            answer = self._upstream.embeddings(model, count, encoding, False)
            self._pace([], answer, replace(shape, delay_ms=0), request)
        else:
            self._finish(self._upstream.embeddings(model, count, encoding, request.close), request)

    def _native(
        self, request: Request, protocol: Protocol, path_model: str | None, streamed: bool
    ) -> None:
        """Answer an Ollama, Anthropic or Gemini chat in that protocol (always streamed)."""
        try:
            payload = orjson.loads(request.body)
        except orjson.JSONDecodeError:
            payload = None
        problem = request_problem(protocol, payload, request.query, streamed)
        if problem is not None:
            body = error_answer(protocol, 400, problem)
            self._finish(encode_json(400, body, request.close), request)
            return
        model = path_model or payload.get("model")
        shape = parse_model(model) if isinstance(model, str) else None
        if shape is None:
            body = error_answer(protocol, 404, f"model '{model}' not found")
            self._finish(encode_json(404, body, request.close), request)
            return
        self._stream(self._upstream.native(protocol, shape), shape, request)

    def _stream(self, encoded: Encoded, shape: Shape, request: Request) -> None:
        """Write a stored streamed answer, paced as the shape asks or all at once."""
        if shape.first_ms or shape.delay_ms:
            first = self._closing(encoded.head, request) + encoded.first
            self._pace([first, *encoded.rest], encoded.tail, shape, request)
        else:
            self._finish(self._closing(encoded.whole, request), request)

    @staticmethod
    def _closing(response: bytes, request: Request) -> bytes:
        """Add ``Connection: close`` to a stored response when the client asked for it."""
        if not request.close:
            return response
        return response.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n", 1)

    def _pace(self, parts: list[bytes], last: bytes, shape: Shape, request: Request) -> None:
        """Write ``parts`` with the shape's delays, then ``last``; hold the connection meanwhile.

        Each write is a timer callback (``loop.call_later``), not a task: a paced stream costs one
        timer at a time, so 10 000 open streams stay cheap (see bench.open_streams).
        """
        loop = asyncio.get_running_loop()
        delay = shape.delay_ms / 1000

        def write(index: int) -> None:
            """Write part ``index`` and schedule the next one; after the last, finish."""
            if index < len(parts):
                self._send(parts[index])
                if index + 1 < len(parts):
                    self._paced = loop.call_later(delay, write, index + 1)
                    return
            self._finish(last if parts else self._closing(last, request), request)
            # Release the connection to the next buffered request.
            self._paced = None
            self._serve()

        first = shape.first_ms / 1000
        if not parts:
            # Non-streamed: the whole generation time passes before the one answer.
            first += delay * (shape.chunks - 1)
        self._paced = loop.call_later(first, write, 0)


async def serve(host: str, port: int, models: list[str]) -> None:
    """Serve until SIGTERM or SIGINT."""
    loop = asyncio.get_running_loop()
    upstream = Upstream(models)
    server = await loop.create_server(
        lambda: UpstreamProtocol(upstream), host, port, backlog=4096, reuse_address=True
    )
    bound = server.sockets[0].getsockname()[1]
    print(f"listening on http://{host}:{bound}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    """Command line entry: ``python -m bench.upstream --port N``."""
    parser = argparse.ArgumentParser(prog="python -m bench.upstream", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument(
        "--models",
        default="bench-c20-d0-f0-s8",
        help="comma-separated ids listed by GET /v1/models (any bench-* id is served)",
    )
    args = parser.parse_args(argv)
    models = [m for m in args.models.split(",") if m]
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.host, args.port, models))
    return 0


if __name__ == "__main__":
    sys.exit(main())
