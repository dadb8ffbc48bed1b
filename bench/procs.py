"""Child processes of the benchmark (fake upstream, gateways, redis-server) and their CPU time.

CPU time is read from /proc. ``/proc/<pid>/stat`` counts utime and stime in clock ticks (10 ms);
the same quantity is kept by the scheduler in nanoseconds per thread in
``/proc/<pid>/task/<tid>/schedstat``, which the tiny ``--quick`` runs need. Both are recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import aiohttp
import psutil

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class CpuSample:
    """CPU seconds used so far by a process tree, two ways."""

    precise: float
    ticks: float

    def __sub__(self, other: CpuSample) -> CpuSample:
        """The CPU used between two samples."""
        return CpuSample(self.precise - other.precise, self.ticks - other.ticks)


def _thread_ns(pid: int) -> int | None:
    """Scheduler run time of every live thread of ``pid``, or None if /proc does not say."""
    total = 0
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/schedstat") as fh:
                total += int(fh.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return total


def tree_cpu(pid: int) -> CpuSample:
    """CPU time of ``pid`` and all its descendants, including children they already reaped.

    ``precise`` is the sum of live threads' scheduler run time plus reaped children's ticks (CPU
    of a thread that exited meanwhile is lost there); ``ticks`` is utime+stime from /proc/stat.
    """
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return CpuSample(0.0, 0.0)
    precise = 0.0
    ticks = 0.0
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            times = proc.cpu_times()
            reaped = times.children_user + times.children_system
            ticks += times.user + times.system + reaped
            ns = _thread_ns(proc.pid)
            precise += (ns / 1e9 if ns is not None else times.user + times.system) + reaped
    return CpuSample(precise, ticks)


def self_cpu() -> CpuSample:
    """CPU time of this process (the load generator)."""
    ns = _thread_ns(os.getpid())
    ticks = time.process_time()
    return CpuSample(ns / 1e9 if ns is not None else ticks, ticks)


def raise_fd_limit() -> tuple[int, int]:
    """Raise the open-file soft limit to the hard limit (inherited by the gateway)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (free now; the child binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Child:
    """A started child process, its log file and the URL it serves."""

    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    log: IO[bytes]
    base_url: str

    def log_tail(self, lines: int = 30) -> str:
        """The end of the child's output, for error messages."""
        self.log.flush()
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])


def spawn(
    name: str,
    args: list[str],
    log_path: Path,
    port: int,
    env: dict[str, str],
    program: str = sys.executable,
    scheme: str = "http",
) -> Child:
    """Start ``program args...`` (Python by default) from the project root, output to ``log_path``.

    ``base_url`` is ``scheme://127.0.0.1:port``.
    """
    log = log_path.open("wb")
    full_env = {**os.environ, **env}
    # Run the project's packages from the source tree, installed or not.
    full_env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(ROOT), full_env.get("PYTHONPATH", "")) if p
    )
    proc = subprocess.Popen(
        [program, *args],
        cwd=ROOT,
        env=full_env,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    return Child(name, proc, log_path, log, f"{scheme}://127.0.0.1:{port}")


async def wait_ready(child: Child, path: str, within_s: float) -> None:
    """Poll ``GET path`` until it answers 200; raise with the child's log if it never does."""
    deadline = time.monotonic() + within_s
    last = "no answer"
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
        while time.monotonic() < deadline:
            if child.proc.poll() is not None:
                raise RuntimeError(
                    f"{child.name} exited with {child.proc.returncode} before it was ready:\n"
                    f"{child.log_tail()}"
                )
            try:
                async with session.get(child.base_url + path) as resp:
                    if resp.status == 200:
                        return
                    last = f"HTTP {resp.status}"
            except (aiohttp.ClientError, TimeoutError) as exc:
                last = repr(exc)
            await asyncio.sleep(0.05)
    raise RuntimeError(f"{child.name} not ready after {within_s:g} s ({last}):\n{child.log_tail()}")


async def stop(child: Child, grace_s: float = 15.0) -> str:
    """SIGTERM the child and wait; SIGKILL it if it lingers. Return how it ended."""
    proc = child.proc
    outcome = f"had already exited with {proc.returncode}"
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            code = await asyncio.to_thread(proc.wait, grace_s)
            outcome = f"stopped on SIGTERM with exit code {code}"
        except subprocess.TimeoutExpired:
            proc.kill()
            await asyncio.to_thread(proc.wait)
            outcome = f"ignored SIGTERM for {grace_s:g} s and was killed"
    child.log.close()
    return outcome
