"""The redis-server of the Redis-mode scenarios, and what it did (``INFO commandstats``).

The server runs on a free loopback port with its files in a temp dir and no persistence
(``--save "" --appendonly no``). It is asked questions over raw RESP, by a client written here, so
that counting commands needs no Redis library and adds no command but the ``INFO`` it sends.
"""

from __future__ import annotations

import asyncio
import shlex
import shutil
import time
from pathlib import Path
from typing import Any

from bench.procs import Child, free_port, spawn

Report = dict[str, Any]

# Commands the benchmark sends itself; they are not the gateway's work.
_OWN = frozenset({"info", "ping"})


def find_redis_server(program: str) -> str | None:
    """The redis-server executable (a name on PATH or a path), or None if there is none."""
    return shutil.which(program)


def spawn_redis(program: str, directory: Path, log_path: Path) -> tuple[Child, str]:
    """Start redis-server on a free loopback port; return it and its command line.

    Its ``base_url`` is ``redis://127.0.0.1:<port>``.
    """
    port = free_port()
    args = ["--port", str(port), "--bind", "127.0.0.1", "--dir", str(directory)]
    args += ["--save", "", "--appendonly", "no", "--daemonize", "no", "--logfile", ""]
    child = spawn("redis-server", args, log_path, port, {}, program=program, scheme="redis")
    return child, shlex.join([program, *args])


def _encode(args: tuple[str, ...]) -> bytes:
    """A command as a RESP array of bulk strings."""
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        raw = arg.encode()
        out.append(b"$%d\r\n%b\r\n" % (len(raw), raw))
    return b"".join(out)


async def _reply(reader: asyncio.StreamReader) -> bytes | int | None:
    """One RESP reply: simple string, error (raised), integer or bulk string."""
    line = (await reader.readuntil(b"\r\n"))[:-2]
    kind, rest = line[:1], line[1:]
    if kind == b"+":
        return rest
    if kind == b"-":
        raise RuntimeError(f"redis error: {rest.decode(errors='replace')}")
    if kind == b":":
        return int(rest)
    if kind == b"$":
        size = int(rest)
        if size < 0:
            return None
        return (await reader.readexactly(size + 2))[:-2]
    raise RuntimeError(f"unexpected RESP reply {line[:40]!r}")


async def command(url: str, *args: str) -> bytes | int | None:
    """Send one command on a fresh connection and return its reply (within 5 s)."""
    host, _, port = url.removeprefix("redis://").partition(":")
    async with asyncio.timeout(5):
        reader, writer = await asyncio.open_connection(host, int(port.split("/")[0]))
        try:
            writer.write(_encode(args))
            await writer.drain()
            return await _reply(reader)
        finally:
            writer.close()
            await writer.wait_closed()


async def wait_redis(child: Child, within_s: float) -> None:
    """Poll PING until redis-server answers PONG; raise with its log if it never does."""
    deadline = time.monotonic() + within_s
    last = "no answer"
    while time.monotonic() < deadline:
        if child.proc.poll() is not None:
            raise RuntimeError(
                f"redis-server exited with {child.proc.returncode}:\n{child.log_tail()}"
            )
        try:
            if await command(child.base_url, "PING") == b"PONG":
                return
        except (OSError, TimeoutError, RuntimeError) as exc:
            last = repr(exc)
        await asyncio.sleep(0.02)
    raise RuntimeError(f"redis-server not ready after {within_s:g} s ({last}):\n{child.log_tail()}")


def parse_commandstats(text: str) -> dict[str, tuple[int, int]]:
    """``cmdstat_<name>:calls=N,usec=M,...`` lines as {name: (calls, usec)}."""
    stats: dict[str, tuple[int, int]] = {}
    for line in text.splitlines():
        if not line.startswith("cmdstat_"):
            continue
        name, _, fields = line[len("cmdstat_") :].partition(":")
        values = dict(item.split("=", 1) for item in fields.split(",") if "=" in item)
        stats[name] = (int(values.get("calls", 0)), int(values.get("usec", 0)))
    return stats


async def commandstats(child: Child) -> dict[str, tuple[int, int]]:
    """Calls and microseconds per command so far."""
    reply = await command(child.base_url, "INFO", "commandstats")
    if not isinstance(reply, bytes):
        raise RuntimeError(f"INFO commandstats gave {reply!r}")
    return parse_commandstats(reply.decode())


def command_figures(
    before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]], events: int
) -> Report:
    """Commands the gateway sent between two samples, in all and per streamed event (as Redis
    counts them: the commands a Lua script runs count too, besides its EVALSHA)."""
    calls: dict[str, int] = {}
    usec = 0
    for name, (count, spent) in after.items():
        old_count, old_spent = before.get(name, (0, 0))
        if name in _OWN or count == old_count:
            continue
        calls[name] = count - old_count
        usec += spent - old_spent
    total = sum(calls.values())
    ordered = dict(sorted(calls.items(), key=lambda item: -item[1]))
    return {
        "events": events,
        "commands": total,
        "commands_per_event": total / events if events else None,
        "per_event": {name: n / events for name, n in ordered.items()} if events else {},
        "calls": ordered,
        "command_usec": usec,
        "command_us_per_event": usec / events if events else None,
    }
