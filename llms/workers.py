"""`llms serve --workers N`: N worker processes on one port, and the supervisor that runs them.

The supervisor (the `llms serve` process itself) checks and holds the port, creates a runtime
directory (the workers' sibling sockets and metric files), creates the request log's database,
starts the bundled models once, then starts the workers: `python -m llms serve` again, each
listening on the same host:port with SO_REUSEPORT, so the kernel spreads connections among
them. It restarts a worker that dies (exponential backoff, logged), forwards SIGTERM/SIGINT so
every worker drains its in-flight streams, and exits 0 once they all have. A second signal stops
the workers at once. A worker that cannot start at all (its port, its config) stops the whole
gateway with its exit code instead of being restarted for ever.

Workers share nothing but the database file, the metric files, the bundled models and Redis
when configured; server/worker.py is their side.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import socket
import sqlite3
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from prometheus_client.multiprocess import mark_process_dead

from llms.config import Config
from llms.errors import ServiceUnavailable
from llms.local import LocalServer
from llms.server.worker import METRICS_DIR
from llms.telemetry import usage

log = logging.getLogger("llms.workers")

BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 30.0
# A worker that stayed up this long was healthy: its death starts the backoff over.
BACKOFF_RESET_AFTER_S = 60.0
START_TIMEOUT_S = 60.0
# Beyond a worker's own drain and shutdown timeout, before it is killed.
KILL_AFTER_S = 10.0
LOCAL_POLL_S = 0.2
SOURCE_ROOT = str(Path(__file__).resolve().parent.parent)

# (worker index, port, runtime directory) -> the worker's command line.
WorkerCommand = Callable[[int, int, Path], list[str]]


def raise_fd_limit() -> tuple[int, int]:
    """Raise the soft limit on open files to the hard one (children inherit it).

    (the limit before, the limit now); `resource.RLIM_INFINITY` stands for no limit.
    """
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return soft, resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class Reservation:
    """host:port checked free and held (bound, never listening) for the workers' lifetime.

    Held with SO_REUSEPORT, so the workers can bind it too while nobody else can, even while
    every worker is being restarted; `--port 0` is resolved once, here.
    """

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        infos = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
        # Without SO_REUSEPORT first: this fails if anything listens there, including another
        # gateway's workers (which the workers' own binds would silently join).
        self.port = port
        for family, kind, proto, _, address in infos:
            with _bound(family, kind, proto, (address[0], self.port), reuse_port=False) as probe:
                self.port = int(probe.getsockname()[1])
        self.sockets = [
            _bound(family, kind, proto, (address[0], self.port), reuse_port=True)
            for family, kind, proto, _, address in infos
        ]

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()


def _bound(
    family: int, kind: int, proto: int, address: tuple[Any, ...], *, reuse_port: bool
) -> socket.socket:
    sock = socket.socket(family, kind, proto)
    try:
        # As asyncio's create_server does, so the probe sees what the workers' binds will see.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
    except BaseException:
        sock.close()
        raise
    return sock


class Slot:
    """Worker `index`: its current process and its restart backoff."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.proc: asyncio.subprocess.Process | None = None
        self.started_once = False  # some process of this slot listened
        self.exit_code: int | None = None
        self.delay = BACKOFF_FIRST_S

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None


class Supervisor:
    """Runs `workers` workers until a signal, then drains them; `run()` is the exit code."""

    def __init__(
        self, config: Config, reservation: Reservation, workers: int, command: WorkerCommand
    ) -> None:
        self.config = config
        self.reservation = reservation
        self.command = command
        self.slots = [Slot(index) for index in range(1, workers + 1)]
        self.runtime_dir = Path()
        self.local: dict[str, LocalServer] = {}
        self.local_states: dict[str, str] = {}
        self._local_view: dict[str, dict[str, Any]] = {}
        self._stop = asyncio.Event()
        self._changed = asyncio.Event()
        self._stopping = False
        self._signals = 0
        self._readers: set[asyncio.Task[None]] = set()

    async def run(self) -> int:
        self.runtime_dir = Path(tempfile.mkdtemp(prefix="llms-workers-"))
        (self.runtime_dir / METRICS_DIR).mkdir()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._signalled)
        background: list[asyncio.Task[None]] = []
        try:
            self._prepare_request_log()
            background = self._start_local_models()
            keepers = [asyncio.create_task(self._keep(slot)) for slot in self.slots]
            failed = await self._started()
            if failed is None and not self._stop.is_set():
                host, port = self.reservation.host, self.reservation.port
                models = ", ".join(sorted(self.config.routes())) or "none"
                pids = ", ".join(str(s.proc.pid) for s in self.slots if s.proc is not None)
                log.info(
                    "llms serving on http://%s:%d with %d workers (pids %s; models: %s)",
                    host,
                    port,
                    len(self.slots),
                    pids,
                    models,
                )
                await self._stop.wait()
                log.info("stopping: the workers finish their in-flight streams")
            code = await self._shutdown(keepers)
            return code if failed is None else failed
        finally:
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            await asyncio.gather(*(s.stop() for s in self.local.values()), return_exceptions=True)
            shutil.rmtree(self.runtime_dir, ignore_errors=True)
            self.reservation.close()
            log.info("stopped")

    def _signalled(self) -> None:
        self._signals += 1
        self._stopping = True  # a worker that exits now is not restarted
        self._stop.set()
        self._changed.set()
        if self._signals > 1:
            log.warning("second signal: stopping the workers now, without draining")
            for slot in self.slots:
                if slot.alive and slot.proc is not None:
                    slot.proc.kill()

    # --- workers --------------------------------------------------------------------------------

    async def _started(self) -> int | None:
        """Wait until every worker listens: None; or the exit code of one that could not."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_TIMEOUT_S
        while not self._stop.is_set():
            for slot in self.slots:
                code = slot.exit_code
                if code is not None and not slot.started_once:
                    log.error("worker %d exited with code %d before serving", slot.index, code)
                    return code if code > 0 else 1
            if all(slot.started_once for slot in self.slots):
                return None
            self._changed.clear()
            try:
                async with asyncio.timeout(deadline - loop.time()):
                    await self._changed.wait()
            except TimeoutError:
                log.error("the workers did not all start within %g s", START_TIMEOUT_S)
                return 1
        return None

    async def _keep(self, slot: Slot) -> None:
        """Run the slot's worker; restart it whenever it dies, until the gateway stops."""
        loop = asyncio.get_running_loop()
        while not self._stopping:
            since = loop.time()
            try:
                proc = await self._spawn(slot)
            except OSError as exc:  # no process at all (out of memory, of file descriptors)
                log.error("worker %d could not be started: %s", slot.index, exc)
                what, code = "could not be started", 1
            else:
                code = await proc.wait()
                with contextlib.suppress(OSError):
                    # Its gauges stop counting; its counters and histograms stay in the totals.
                    metrics_dir = str(self.runtime_dir / METRICS_DIR)
                    mark_process_dead(proc.pid, metrics_dir)  # type: ignore[no-untyped-call]
                how = f"signal {-code}" if code < 0 else f"code {code}"
                what = f"(pid {proc.pid}) exited with {how}"
            slot.exit_code = code
            self._changed.set()
            if self._stopping or not slot.started_once:
                return
            if loop.time() - since >= BACKOFF_RESET_AFTER_S:
                slot.delay = BACKOFF_FIRST_S
            log.warning("worker %d %s; restarting it in %g s", slot.index, what, slot.delay)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(slot.delay):
                    await self._stop.wait()
            slot.delay = min(slot.delay * 2, BACKOFF_MAX_S)

    async def _spawn(self, slot: Slot) -> asyncio.subprocess.Process:
        env = dict(os.environ)
        env["PROMETHEUS_MULTIPROC_DIR"] = str(self.runtime_dir / METRICS_DIR)
        # The package may run from a source tree: the workers must import the same `llms`.
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [SOURCE_ROOT, env.get("PYTHONPATH")]))
        # A session of its own: a terminal's Ctrl-C reaches the supervisor only, which signals
        # each worker once. stdin and stdout are the control channel (server/worker.py).
        proc = await asyncio.create_subprocess_exec(
            *self.command(slot.index, self.reservation.port, self.runtime_dir),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env=env,
            start_new_session=True,
        )
        slot.proc = proc
        slot.exit_code = None
        log.info("worker %d started (pid %d)", slot.index, proc.pid)
        if self._local_view:
            self._send(slot, {"local": self._local_view})
        reader = asyncio.create_task(self._read(slot, proc), name=f"worker {slot.index} output")
        self._readers.add(reader)
        reader.add_done_callback(self._readers.discard)
        if self._stopping:
            proc.send_signal(signal.SIGTERM)
        return proc

    async def _read(self, slot: Slot, proc: asyncio.subprocess.Process) -> None:
        """The worker's messages; anything else it prints goes to our stdout."""
        assert proc.stdout is not None
        while line := await proc.stdout.readline():
            try:
                message = orjson.loads(line)
            except orjson.JSONDecodeError:
                message = None
            if isinstance(message, dict) and "ready" in message:
                slot.started_once = True
                self._changed.set()
                log.debug("worker %d (pid %d) is listening", slot.index, proc.pid)
            else:
                sys.stdout.buffer.write(line)
                sys.stdout.flush()

    def _send(self, slot: Slot, message: dict[str, Any]) -> None:
        proc = slot.proc
        if proc is None or proc.returncode is not None or proc.stdin is None:
            return
        if not proc.stdin.is_closing():
            proc.stdin.write(orjson.dumps(message) + b"\n")

    async def _shutdown(self, keepers: list[asyncio.Task[None]]) -> int:
        """SIGTERM every worker once, wait for their drain, kill what is left; the exit code."""
        self._stopping = True
        serving = [slot for slot in self.slots if slot.alive]
        for slot in serving:
            assert slot.proc is not None
            slot.proc.send_signal(signal.SIGTERM)
        patience = self.config.server.drain_s + 5 + KILL_AFTER_S
        _, late = await asyncio.wait(keepers, timeout=patience)
        if late:
            log.warning("killing %d worker(s) that did not stop within %g s", len(late), patience)
            for slot in self.slots:
                if slot.alive and slot.proc is not None:
                    slot.proc.kill()
            await asyncio.wait(keepers, timeout=5)
        # Clean: every worker that was serving drained and exited 0 (one waiting to be
        # restarted has nothing to drain).
        clean = not late and all(slot.exit_code == 0 for slot in serving)
        return 0 if clean and self._signals < 2 else 1

    # --- what the workers share ---------------------------------------------------------------

    def _prepare_request_log(self) -> None:
        """Create the database once, before the workers open it together."""
        url = self.config.state.request_log
        if url is None:
            return
        path = usage.path_of(url)
        try:
            usage.prepare(path)
        except (sqlite3.Error, OSError) as exc:
            log.warning("request log %s cannot be opened (%s)", path, exc)

    def _start_local_models(self) -> list[asyncio.Task[None]]:
        """Each bundled model once, for every worker; its state is sent to them as it changes."""
        for provider in self.config.providers:
            if provider.type == "local":
                self.local[provider.name] = LocalServer.from_options(provider.options)
                self.local_states[provider.name] = "starting"
        if not self.local:
            return []
        tasks = [
            asyncio.create_task(self._start_local(name, server))
            for name, server in self.local.items()
        ]
        self._local_view = self._local_snapshot()
        tasks.append(asyncio.create_task(self._watch_local()))
        return tasks

    async def _start_local(self, name: str, server: LocalServer) -> None:
        try:
            await server.start()
        except ServiceUnavailable as error:
            self.local_states[name] = "unavailable"
            log.warning("provider %r: %s", name, error.message)
        else:
            self.local_states[name] = "ok"
            log.info("provider %r: the bundled model is ready at %s", name, server.base_url)

    def _local_snapshot(self) -> dict[str, dict[str, Any]]:
        return {
            name: {"state": self.local_states[name], "base_url": server.base_url}
            for name, server in self.local.items()
        }

    async def _watch_local(self) -> None:
        """Tell every worker whenever a bundled model's state or address changes."""
        while True:
            await asyncio.sleep(LOCAL_POLL_S)
            view = self._local_snapshot()
            if view != self._local_view:
                self._local_view = view
                for slot in self.slots:
                    self._send(slot, {"local": view})


def run_supervisor(
    config: Config, reservation: Reservation, workers: int, command: WorkerCommand
) -> int:
    """Run the workers until SIGINT/SIGTERM; the exit code."""
    return asyncio.run(Supervisor(config, reservation, workers, command).run())
