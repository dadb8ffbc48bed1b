"""This process as one worker of `llms serve --workers N` (llms/workers.py is the supervisor).

Every worker runs the ordinary app on the shared port (SO_REUSEPORT). What differs:

- the bundled models run once, in the supervisor; a worker routes to them at the address the
  supervisor reports (`SupervisedModel`), as to any OpenAI-compatible upstream;
- every response says which process answered it: `X-Worker: <pid>`;
- metrics go to files in the runtime directory that every worker's `/metrics` reads;
- in memory mode the worker also listens on `worker-<index>.sock` in the runtime directory, so
  its siblings can reach the streams it holds (server/siblings.py).

The supervisor talks to each worker over the worker's stdin and stdout, one JSON object a line:
it sends the bundled models' state (`{"local": {name: {"state": ..., "base_url": ...}}}`), the
worker says `{"ready": pid}` once it listens. EOF on stdin means the supervisor is gone: the
worker then stops as on SIGTERM (draining), so none outlives it holding the port.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from llms.server import keys

log = logging.getLogger("llms.server")

METRICS_DIR = "metrics"
MESSAGE_LIMIT = 1 << 20


def socket_path(runtime_dir: Path, index: int) -> Path:
    """Where worker `index` listens for its siblings."""
    return runtime_dir / f"worker-{index}.sock"


class SupervisedModel:
    """A bundled model the supervisor runs: its address now (a providers.BaseURLSource)."""

    __slots__ = ("base_url",)

    def __init__(self) -> None:
        self.base_url: str | None = None


class Worker:
    """Worker `index` (1..N) of a supervisor whose runtime directory is `runtime_dir`."""

    def __init__(self, index: int, runtime_dir: Path) -> None:
        self.index = index
        self.runtime_dir = runtime_dir
        self.models: dict[str, SupervisedModel] = {}
        self._states: dict[str, str] = {}
        self._listener: asyncio.Task[None] | None = None

    @property
    def socket_path(self) -> Path:
        return socket_path(self.runtime_dir, self.index)

    @property
    def metrics_dir(self) -> Path:
        return self.runtime_dir / METRICS_DIR

    def siblings(self) -> list[Path]:
        """The other workers' sockets (a worker being restarted may have left a dead one)."""
        mine = self.socket_path
        return sorted(p for p in self.runtime_dir.glob("worker-*.sock") if p != mine)

    def install(self, app: web.Application) -> None:
        """create_app's part: the X-Worker header and the supervisor's bundled models."""
        pid = str(os.getpid())

        async def add_worker(request: web.Request, response: web.StreamResponse) -> None:
            # setdefault: an answer relayed from a sibling keeps the pid of the one that made it.
            response.headers.setdefault("X-Worker", pid)

        app.on_response_prepare.append(add_worker)
        registry = app[keys.PROVIDERS]
        self._states = registry.states
        for provider in app[keys.CONFIG].providers:
            if provider.type == "local":
                model = self.models[provider.name] = SupervisedModel()
                registry.add_source(provider.name, model)
                registry.states[provider.name] = "starting"

    async def attach(self, runner: web.AppRunner, stop: asyncio.Event) -> None:
        """Once the shared port listens: the sibling socket, the supervisor's messages, ready."""
        config = runner.app[keys.CONFIG]
        if not config.state.redis_url:
            path = self.socket_path
            with contextlib.suppress(FileNotFoundError):
                path.unlink()  # left by this slot's previous process
            await web.UnixSite(runner, str(path)).start()
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=MESSAGE_LIMIT)
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        self._listener = loop.create_task(self._listen(reader, stop), name="supervisor messages")
        os.write(sys.stdout.fileno(), orjson.dumps({"ready": os.getpid()}) + b"\n")

    async def detach(self) -> None:
        task, self._listener = self._listener, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _listen(self, reader: asyncio.StreamReader, stop: asyncio.Event) -> None:
        while line := await reader.readline():
            try:
                self.apply(orjson.loads(line))
            except (orjson.JSONDecodeError, TypeError, AttributeError) as exc:
                log.warning("ignoring a message from the supervisor (%s): %r", exc, line[:200])
        if not stop.is_set():
            log.warning("the supervisor is gone; stopping")
            stop.set()

    def apply(self, message: dict[str, Any]) -> None:
        """A message from the supervisor."""
        for name, local in (message.get("local") or {}).items():
            model = self.models.get(name)
            if model is not None:
                model.base_url = local.get("base_url")
                self._states[name] = str(local.get("state", "starting"))
