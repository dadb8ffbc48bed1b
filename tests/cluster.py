"""Fixtures for the several-replicas tests: real redis-server, real nginx, `llms serve` replicas.

The pieces are started by the same functions `make cluster` uses (cluster/run.py), with the same
nginx template. A FakeOpenAI upstream runs in a thread of the test process (the replicas are
other processes); each test starts two replicas (so one can be killed) with its own config and a
fresh nginx in front of them (so nginx's memory of a dead replica does not leak into the next
test), on one Redis flushed before each test. Every wait is bounded; every child is killed at
teardown. Tests are skipped, with the reason, when redis-server or nginx is not installed
(`make test` installs both).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import redis
from aiohttp import web

from cluster.run import (
    find_binary,
    free_port,
    kill_group,
    start_nginx,
    start_redis,
    start_replica,
    stop,
    wait_for_redis,
    wait_http,
)
from llms.framing import SSEDecoder
from tests.upstreams.openai import FakeOpenAI

REDIS_SERVER = find_binary("redis-server")
NGINX = find_binary("nginx")
MISSING = [
    name for name, path in (("redis-server", REDIS_SERVER), ("nginx", NGINX)) if path is None
]
SKIP_REASON = (
    f"{' and '.join(MISSING)} not installed: apt-get install redis-server nginx-light "
    "(`make test` does it)"
)
STARTUP_S = 20.0
RESUMABLE = {"X-Stream-Resumable": "true"}
# Public model -> upstream model; each test gives its upstream model a script.
MODELS = {name: f"{name}-up" for name in ("m", "slow", "kill", "fast", "cancel", "many", "sdk")}


def chat(model: str = "m") -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": True}


def child_env() -> dict[str, str]:
    """The test's environment without any LLMS_* setting that would change the CLI's defaults."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMS_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


# --- the upstream ---------------------------------------------------------------------------------


class ThreadedUpstream:
    """A FakeOpenAI on its own event loop in a daemon thread (as in test_cli.py)."""

    def __init__(self) -> None:
        self.fake = FakeOpenAI()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.runner: web.AppRunner | None = None
        self.port = 0

    def start(self) -> None:
        self.thread.start()
        self.port = asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)

    async def _start(self) -> int:
        self.runner = web.AppRunner(self.fake.app, shutdown_timeout=1)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", 0).start()
        return int(self.runner.addresses[0][1])

    def stop(self) -> None:
        if self.runner is not None:
            asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        asyncio.run_coroutine_threadsafe(self._cancel_leftovers(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()

    @staticmethod
    async def _cancel_leftovers() -> None:
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def wait_gone(self, before: int, within_s: float) -> float | None:
        """When (monotonic) the upstream saw a client leave after `before` departures, or None."""
        deadline = time.monotonic() + within_s
        while time.monotonic() < deadline:
            gone = list(self.fake.gone)
            if len(gone) > before:
                return gone[before]
            await asyncio.sleep(0.01)
        return None


# --- the cluster ----------------------------------------------------------------------------------


@dataclass
class Replica:
    """One `llms serve` child; `name` is the X-Replica it answers with."""

    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path
    name: str = ""

    def url(self, path: str = "") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    @property
    def base_url(self) -> str:
        return self.url("/v1")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        kill_group(self.proc)


@dataclass
class Cluster:
    replicas: list[Replica]
    nginx_port: int
    redis: redis.Redis
    nginx_proc: subprocess.Popen[bytes] | None = None
    workdir: Path = field(default_factory=Path)

    @property
    def a(self) -> Replica:
        return self.replicas[0]

    @property
    def b(self) -> Replica:
        return self.replicas[1]

    @property
    def nginx_url(self) -> str:
        return f"http://127.0.0.1:{self.nginx_port}/v1"

    def replica(self, name: str) -> Replica:
        return next(r for r in self.replicas if r.name == name)

    def other(self, name: str) -> Replica:
        return next(r for r in self.replicas if r.name != name)

    def logs(self) -> str:
        """Every replica's log and nginx's error log, for failure messages."""
        parts = [f"--- replica {r.name} ---\n{r.log()}" for r in self.replicas]
        error_log = self.workdir / "error.log"
        if error_log.exists():
            parts.append(f"--- nginx ---\n{error_log.read_text(errors='replace')}")
        return "\n".join(parts)


ClusterFactory = Callable[..., Cluster]


# Named apart from the functions, so a test module can import them (fixtures must be in its
# namespace) and still take `upstream` etc. as arguments.
@pytest.fixture(scope="module", name="upstream")
def upstream_fixture() -> Iterator[ThreadedUpstream]:
    server = ThreadedUpstream()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module", name="redis_port")
def redis_port_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    if MISSING:
        pytest.skip(SKIP_REASON)
    workdir = tmp_path_factory.mktemp("redis")
    port = free_port()
    with (workdir / "redis.out").open("wb") as out:
        proc = start_redis(workdir, port, binary=REDIS_SERVER, log=out)
    try:
        wait_for_redis(port, proc)
        yield port
    finally:
        kill_group(proc)


@pytest.fixture(name="start_cluster")
def start_cluster_fixture(
    upstream: ThreadedUpstream, redis_port: int, tmp_path: Path
) -> Iterator[ClusterFactory]:
    """`start_cluster(**sections)`: Redis flushed, two replicas with the config's sections, and
    nginx in front of them; all killed at teardown."""
    procs: list[subprocess.Popen[bytes]] = []
    nginxes: list[subprocess.Popen[bytes]] = []
    clients: list[redis.Redis] = []

    def start(**sections: Any) -> Cluster:
        client = redis.Redis(port=redis_port, socket_timeout=5)
        clients.append(client)
        client.flushall()
        redis_url = f"redis://127.0.0.1:{redis_port}/0"
        state = {"request_log": None, **sections.pop("state", {}), "redis_url": redis_url}
        config = {
            "state": state,
            "routing": {"max_attempts": 1},
            "providers": {
                "fake": {
                    "type": "openai",
                    "base_url": upstream.base_url,
                    "models": MODELS,
                    "timeouts": {"idle_s": 10},
                }
            },
            **sections,
        }
        path = tmp_path / "config.json"
        path.write_text(json.dumps(config))
        replicas = []
        for name in ("a", "b"):
            port = free_port()
            log_path = tmp_path / f"replica-{name}.log"
            with log_path.open("wb") as log:
                proc = start_replica(
                    path, port, env=child_env(), cwd=tmp_path, stdout=log, stderr=log
                )
            procs.append(proc)
            replicas.append(Replica(proc, port, log_path))
        for replica in replicas:
            wait_http(replica.url("/ready"), replica.proc, STARTUP_S, what="llms serve")
            with urllib.request.urlopen(replica.url("/health"), timeout=5) as response:
                replica.name = response.headers["X-Replica"]
        assert replicas[0].name != replicas[1].name
        nginx_dir = tmp_path / "nginx"
        nginx_dir.mkdir(exist_ok=True)
        nginx_port = free_port()
        with (nginx_dir / "nginx.out").open("wb") as out:
            nginx = start_nginx(
                nginx_dir,
                f"127.0.0.1:{nginx_port}",
                [f"127.0.0.1:{r.port}" for r in replicas],
                binary=NGINX,
                log=out,
            )
        procs.append(nginx)
        nginxes.append(nginx)
        wait_http(f"http://127.0.0.1:{nginx_port}/health", nginx, 10, what="nginx")
        return Cluster(replicas, nginx_port, client, nginx, nginx_dir)

    try:
        yield start
    finally:
        # nginx's master stops its workers on SIGTERM (killed alone, they would live on).
        stop(nginxes, signal.SIGTERM, 5)
        for proc in procs:
            kill_group(proc)
        for client in clients:
            client.close()


# --- reading SSE ----------------------------------------------------------------------------------


class Reader:
    """Reads SSE by the WHATWG rules, keeping each event's (id, event type, data) in order."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, str]] = []

    async def read(
        self,
        resp: aiohttp.ClientResponse,
        stop_after: int | None = None,
        on_chunk: Callable[[int], None] | None = None,
    ) -> None:
        """To the end of the body, or until `stop_after` chunks in all; a fresh decoder for
        every response, so bytes of an event cut by a disconnect never leak into the next."""
        decoder = SSEDecoder()
        async for data in resp.content.iter_any():
            for event in decoder.feed(data):
                self.events.append((event.id, event.event, event.data))
                if on_chunk is not None and event.data.startswith("{"):
                    on_chunk(len(self.chunks()))
                if stop_after is not None and len(self.chunks()) >= stop_after:
                    return

    def chunks(self) -> list[dict[str, Any]]:
        return [
            orjson.loads(d)
            for _, kind, d in self.events
            if kind == "message" and d.startswith("{") and not d.startswith('{"error"')
        ]

    def errors(self) -> list[dict[str, Any]]:
        return [orjson.loads(d)["error"] for _, _, d in self.events if d.startswith('{"error"')]

    def content(self) -> str:
        return "".join(
            c["delta"].get("content") or "" for p in self.chunks() for c in p.get("choices", [])
        )

    def ids(self) -> list[int]:
        return [int(i) for i, _, _ in self.events]

    @property
    def last_id(self) -> str:
        return self.events[-1][0] if self.events else "0"

    @property
    def done(self) -> bool:
        return bool(self.events) and self.events[-1][2] == "[DONE]"
