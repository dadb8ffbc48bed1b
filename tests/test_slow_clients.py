"""Slow clients cannot hold the gateway: slowloris senders are cut off, slow readers are bounded.

A client sending its request too slowly (headers or body) is disconnected after
`server.request_timeout_s`; a client that stops reading its stream holds at most
`server.client_buffer_kb` of unsent output, and after `server.slow_client_s` its stream ends and
its upstream is closed. The 500-stream test measures the RSS of a real `llms serve` process.
"""

from __future__ import annotations

import asyncio
import contextlib
import select
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import psutil
import pytest
from aiohttp import web

from llms import create_app
from llms.config import Config
from llms.server.app import server_options
from tests.conftest import gateway_config
from tests.test_cli import ThreadedUpstream, start_serve, write_config
from tests.upstreams.openai import FakeOpenAI, Script, chunk, sse

BIG = "x" * 65536
MSG = [{"role": "user", "content": "hi"}]
Start = Callable[..., Awaitable[int]]


def flood(events: int, text: str = BIG) -> Script:
    """An upstream answer of `events` chunks of `text` (64 KiB), as fast as it can be taken."""
    role, content, end = sse(
        chunk({"role": "assistant", "content": ""}), chunk({"content": text}), chunk({}, "stop")
    )
    # One bytes object written many times: the fake's memory stays small.
    return Script(writes=[role, *[content] * events, end, b"data: [DONE]\n\n"])


@pytest.fixture
async def serve_app() -> AsyncIterator[Start]:
    """The gateway app on a loopback port, run with `server_options` as `llms serve` runs it."""
    runners: list[web.AppRunner] = []

    async def start(config: Config) -> int:
        runner = web.AppRunner(create_app(config), shutdown_timeout=5, **server_options(config))
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        runners.append(runner)
        return int(runner.addresses[0][1])

    yield start
    for runner in reversed(runners):
        await runner.cleanup()


async def started(fake: FakeOpenAI) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(fake.app, shutdown_timeout=1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}/v1"


def chat_bytes(body: dict[str, Any], **headers: str) -> bytes:
    data = orjson.dumps(body)
    lines = [
        "POST /v1/chat/completions HTTP/1.1",
        "Host: gateway",
        "Content-Type: application/json",
        f"Content-Length: {len(data)}",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + data


async def open_reader(port: int, rcvbuf: int | None = None) -> tuple[Any, Any]:
    """A raw connection; a small `rcvbuf` keeps the kernel from absorbing a non-reader's bytes."""
    sock = socket.socket()
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    return await asyncio.open_connection(sock=sock)


async def drained(reader: asyncio.StreamReader, within_s: float = 30) -> bytes:
    """Everything until the gateway ends the connection (EOF or reset)."""
    data = bytearray()
    deadline = time.monotonic() + within_s
    try:
        while time.monotonic() < deadline:
            part = await asyncio.wait_for(reader.read(1 << 20), deadline - time.monotonic())
            if not part:
                return bytes(data)
            data += part
    except ConnectionResetError:
        return bytes(data)
    raise AssertionError("the gateway kept the connection open")


async def closed_by_peer(writer: asyncio.StreamWriter, within_s: float = 30) -> None:
    """Wait, without reading, until the other end closes or resets the connection."""
    poller = select.poll()
    poller.register(writer.get_extra_info("socket").fileno(), select.POLLRDHUP)
    deadline = time.monotonic() + within_s
    while not poller.poll(0):
        assert time.monotonic() < deadline, "the gateway kept the connection open"
        await asyncio.sleep(0.05)


async def wait_for(condition: Callable[[], bool], within_s: float = 30) -> None:
    deadline = time.monotonic() + within_s
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.05)


# --- slowloris ----------------------------------------------------------------------------------


async def test_headers_sent_one_byte_a_second_are_cut_off(
    fake_openai: FakeOpenAI, serve_app: Start
) -> None:
    config = gateway_config(
        {"f": {"type": "openai", "base_url": fake_openai.base_url, "models": ["m"]}},  # type: ignore[attr-defined]
        server={"request_timeout_s": 2},
    )
    port = await serve_app(config)
    request = chat_bytes({"model": "m", "messages": MSG})
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    sent = 0
    closed = False
    # 60 bytes of headers at one byte per second would take a minute; the gateway waits 2 s.
    for byte in request[:60]:
        try:
            writer.write(bytes([byte]))
            await writer.drain()
        except ConnectionError:
            closed = True
            break
        sent += 1
        try:
            if await asyncio.wait_for(reader.read(1), 1.0) == b"":
                closed = True
                break
        except TimeoutError:
            continue
        except ConnectionError:
            closed = True
            break
    writer.close()
    assert closed, "a slowloris sender kept its connection"
    assert sent < 20, f"the connection stayed open for {sent} s of headers"
    assert not fake_openai.received


async def test_a_body_sent_too_slowly_gets_408_and_the_connection_closes(
    fake_openai: FakeOpenAI, serve_app: Start
) -> None:
    config = gateway_config(
        {"f": {"type": "openai", "base_url": fake_openai.base_url, "models": ["m"]}},  # type: ignore[attr-defined]
        server={"request_timeout_s": 1},
    )
    port = await serve_app(config)
    request = chat_bytes({"model": "m", "messages": MSG})
    head, body = request.split(b"\r\n\r\n", 1)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(head + b"\r\n\r\n" + body[:5])
    answer = b""
    for byte in body[5:30]:
        with contextlib.suppress(TimeoutError):
            answer += await asyncio.wait_for(reader.read(65536), 0.5)
        if answer:
            break
        writer.write(bytes([byte]))
    assert answer.startswith(b"HTTP/1.1 408"), answer
    rest = await drained(reader, within_s=15)
    error = orjson.loads((answer + rest).split(b"\r\n\r\n", 1)[1])["error"]
    assert error["code"] == "request_timeout"
    assert error["type"] == "invalid_request_error"
    writer.close()
    assert not fake_openai.received


# --- slow readers -------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def flooding(serve_app: Start, events: int) -> AsyncIterator[tuple[FakeOpenAI, int]]:
    """A fake upstream flooding `events` big events, behind a gateway that cuts a reader whose
    unread output stays over 128 KiB for 1 s; yields the fake and the gateway's port."""
    fake = FakeOpenAI()
    fake.default = flood(events)
    upstream, base_url = await started(fake)
    try:
        config = gateway_config(
            {"f": {"type": "openai", "base_url": base_url, "models": ["m"]}},
            server={"slow_client_s": 1, "client_buffer_kb": 128},
        )
        yield fake, await serve_app(config)
    finally:
        await upstream.cleanup()


async def test_a_client_that_stops_reading_loses_its_stream_and_the_upstream_is_closed(
    serve_app: Start,
) -> None:
    async with flooding(serve_app, 400) as (fake, port):
        reader, writer = await open_reader(port, rcvbuf=4096)
        writer.write(chat_bytes({"model": "m", "messages": MSG, "stream": True}))
        await wait_for(lambda: bool(fake.received))
        await wait_for(lambda: fake.active == 0)  # the upstream was closed before its end
        assert not fake.finished
        await closed_by_peer(writer)
        received = await drained(reader)
        assert received.startswith(b"HTTP/1.1 200")
        assert len(received) < 400 * len(BIG)
        # Never a normal end: the error event (if the client reads it in time) or a cut.
        if received.endswith(b"data: [DONE]\n\n\r\n0\r\n\r\n"):
            assert b'"code":"slow_client"' in received[-400:]
        writer.close()
        # The gateway still serves.
        fake.default = flood(2)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(chat_bytes({"model": "m", "messages": MSG, "stream": True}))
        assert b"data: [DONE]" in await drained_until_done(reader)
        writer.close()


async def drained_until_done(reader: asyncio.StreamReader) -> bytes:
    data = b""
    while b"data: [DONE]\n\n" not in data:
        part = await asyncio.wait_for(reader.read(1 << 20), 30)
        assert part, data[-200:]
        data += part
    return data


async def test_a_slow_resumable_reader_is_cut_off_while_others_read_on(
    serve_app: Start,
) -> None:
    async with flooding(serve_app, 200) as (fake, port):
        slow, slow_writer = await open_reader(port, rcvbuf=4096)
        slow_writer.write(
            chat_bytes(
                {"model": "m", "messages": MSG, "stream": True}, **{"X-Stream-Resumable": "true"}
            )
        )
        head = await slow.readuntil(b"\r\n\r\n")  # the headers, then nothing more is read
        stream_id = next(
            line.split(b": ", 1)[1].decode()
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"x-stream-id:")
        )
        follower, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(f"GET /v1/streams/{stream_id} HTTP/1.1\r\nHost: gateway\r\n\r\n".encode())
        followed = await drained_until_done(follower)
        assert followed.count(BIG.encode()) == 200  # the whole answer, to [DONE]
        assert b'"code":"slow_client"' not in followed
        await closed_by_peer(slow_writer)  # the gateway closed it, though it read nothing
        rest = await drained(slow)
        # ...with the slow_client error event if it could still be delivered, never a full answer
        assert rest.count(BIG.encode()) < 200
        if rest.endswith(b"data: [DONE]\n\n\r\n0\r\n\r\n"):
            assert b'"code":"slow_client"' in rest[-400:]
        assert fake.finished  # the generation ran to its end for the follower
        writer.close()
        slow_writer.close()


# --- 500 slow readers against `llms serve` ------------------------------------------------------

STREAMS = 500
CLIENT_BUFFER_KB = 256
# The bound on the gateway's RSS growth while 500 clients read nothing of streams that would be
# 64 MiB each: per stream, its client buffer (256 KiB here), the kernel's capped send buffer
# (outside RSS), the upstream bytes read but not yet written (one upstream read, parsed and
# encoded) and what the allocator keeps of them. Measured: about 1.8 MiB per stream (920 MiB);
# allowed: 2.5 MiB per stream. Without the bounds it grows with everything the upstreams send.
RSS_BOUND_MB = STREAMS * 2.5


@pytest.fixture
def flooding_upstream() -> Iterator[ThreadedUpstream]:
    server = ThreadedUpstream()
    server.fake.default = flood(1000)  # 64 MiB each: far more than a non-reader ever takes
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.process
@pytest.mark.timeout(240)
async def test_500_streams_that_nobody_reads_do_not_grow_memory_past_the_bound(
    flooding_upstream: ThreadedUpstream, tmp_path: Path
) -> None:
    config = {
        "server": {"slow_client_s": 3, "client_buffer_kb": CLIENT_BUFFER_KB},
        "state": {"request_log": None},
        "routing": {"max_attempts": 1},
        "providers": {
            "flood": {"type": "openai", "base_url": flooding_upstream.base_url, "models": ["m"]}
        },
    }
    served = start_serve(write_config(tmp_path / "config.json", config), tmp_path)
    try:
        served.wait_ready()
        process = psutil.Process(served.proc.pid)
        fake = flooding_upstream.fake
        # Warm up (imports, first connections) before the baseline.
        fake.default, flooded = flood(2), fake.default
        reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
        writer.write(chat_bytes({"model": "m", "messages": MSG, "stream": True}))
        await drained_until_done(reader)
        writer.close()
        fake.default = flooded
        baseline = process.memory_info().rss
        peak = baseline

        clients = [await open_reader(served.port, rcvbuf=4096) for _ in range(STREAMS)]
        for _, client in clients:
            client.write(chat_bytes({"model": "m", "messages": MSG, "stream": True}))
        deadline = time.monotonic() + 180
        while len(fake.received) < STREAMS + 1 or fake.active:
            assert time.monotonic() < deadline, (len(fake.received), fake.active)
            peak = max(peak, process.memory_info().rss)
            await asyncio.sleep(0.1)
        growth_mb = (peak - baseline) / 2**20
        print(f"RSS baseline {baseline / 2**20:.0f} MiB, peak growth {growth_mb:.0f} MiB")
        assert growth_mb < RSS_BOUND_MB
        # Every upstream was closed before its end, and every client's connection is closed.
        assert len(fake.finished) == 1
        for reader, client in clients:
            received = await drained(reader)
            assert received.startswith(b"HTTP/1.1 200")
            client.close()
        assert served.alive()
    finally:
        served.kill()
