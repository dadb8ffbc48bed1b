"""Gateways started for the open-streams and scaling scenarios, and what /proc says about them.

These gateways are started apart from the main fleet: each is fresh when its first scenario
measures its memory, and each may run ``llms serve --workers N`` (SO_REUSEPORT worker processes).
One is kept per worker count and reused by later scenarios; all stop at the end of the run.

Memory is read from ``/proc/<pid>/smaps_rollup`` (``Rss`` and ``Pss`` lines, KiB), summed over
the process tree (a multi-worker gateway is a parent and its workers); ``/proc/<pid>/statm`` is
the fallback where smaps_rollup cannot be read. Open file descriptors are counted in
``/proc/<pid>/fd``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import psutil

from bench.figures import Report
from bench.fleet import gateway_config
from bench.load import LoadClient, LoadResult, LoadSpec
from bench.procs import Child, free_port, spawn, stop, wait_ready
from bench.report import summarise_run
from bench.shape import Shape, content_pieces

# Every dedicated gateway is warmed with these before any measurement: imports, first-request
# caches and the upstream connection pool are then not counted as the scenario's memory.
WARM_SHAPE = Shape(10, 0, 0, 8)
WARM_REQUESTS = 64
_PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024


@dataclass(frozen=True)
class Memory:
    """Resident memory of a process tree in KiB, and where it was read."""

    rss_kib: int
    pss_kib: int | None
    processes: int
    source: str


def _rollup(pid: int) -> tuple[int, int | None, str] | None:
    """(Rss, Pss, source) of one process in KiB; None if it is gone."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            fields = dict(line.split(":", 1) for line in fh if ":" in line)
        return int(fields["Rss"].split()[0]), int(fields["Pss"].split()[0]), "smaps_rollup"
    except (OSError, KeyError, ValueError, IndexError):
        pass
    try:
        with open(f"/proc/{pid}/statm") as fh:
            resident = int(fh.read().split()[1])
        return resident * _PAGE_KIB, None, "statm"
    except (OSError, ValueError, IndexError):
        return None


def tree_pids(pid: int) -> list[int]:
    """``pid`` and all its descendants (empty if it is gone)."""
    try:
        root = psutil.Process(pid)
        return [pid, *(child.pid for child in root.children(recursive=True))]
    except psutil.NoSuchProcess:
        return []


def tree_memory(pid: int) -> Memory:
    """Rss (and Pss) of ``pid`` and its descendants, summed."""
    rss = 0
    pss: int | None = 0
    sources = set()
    count = 0
    for one in tree_pids(pid):
        read = _rollup(one)
        if read is None:
            continue
        count += 1
        rss += read[0]
        pss = None if pss is None or read[1] is None else pss + read[1]
        sources.add(read[2])
    return Memory(rss, pss, count, "+".join(sorted(sources)) or "none")


def tree_fds(pid: int) -> dict[int, int]:
    """Open file descriptors of every process of the tree, by pid."""
    counts = {}
    for one in tree_pids(pid):
        with contextlib.suppress(OSError):
            counts[one] = len(os.listdir(f"/proc/{one}/fd"))
    return counts


def tree_wait_s(pid: int) -> float:
    """Seconds the live threads of the tree spent runnable but waiting for a CPU (schedstat).

    A process that waits a lot is starved by the others on the machine: its lag is the
    machine's, not its own.
    """
    total = 0
    for one in tree_pids(pid):
        with contextlib.suppress(OSError, ValueError, IndexError):
            for tid in os.listdir(f"/proc/{one}/task"):
                with open(f"/proc/{one}/task/{tid}/schedstat") as fh:
                    total += int(fh.read().split()[1])
    return total / 1e9


def machine_busy_s() -> float:
    """CPU seconds every core of the machine has spent busy since boot (/proc/stat)."""
    with open("/proc/stat") as fh:
        fields = [int(v) for v in fh.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal (guest time is already in user).
    busy = sum(fields[:3]) + sum(fields[5:8])
    return busy / os.sysconf("SC_CLK_TCK")


@dataclass
class Gateways:
    """Dedicated gateways by worker count, started on first use and stopped by ``stop_all``.

    ``has_workers`` says whether ``llms serve`` accepts ``--workers`` (None until the first
    start tells: a build without it exits with an argparse error, and is then started without
    the option); without it only the single-process gateway can be started.
    """

    upstream: Child
    models: list[str]
    tmp: Path
    results_dir: Path
    module: str
    start_timeout: float
    has_workers: bool | None = None
    started: dict[int, Child] = field(default_factory=dict)
    info: Report = field(default_factory=dict)

    def can_start(self, workers: int) -> bool:
        """Whether a gateway with this many workers can be started by this build."""
        return workers == 1 or self.has_workers is not False

    async def get(self, workers: int) -> Child | None:
        """The gateway with ``workers`` worker processes, started and warmed on first use.

        None if this build has no ``--workers`` and more than one is asked for.
        """
        if workers in self.started:
            return self.started[workers]
        if not self.can_start(workers):
            return None
        try:
            child = await self._start(workers, self.has_workers is not False)
        except RuntimeError:
            child = self.started.pop(workers)
            unknown = self.has_workers is None and child.proc.returncode == 2
            if not (unknown and "--workers" in child.log_tail()):
                raise
            # This build has no --workers: one process, started without the option.
            self.has_workers = False
            if workers != 1:
                return None
            child = await self._start(workers, False)
        else:
            self.has_workers = self.has_workers is not False
        return child

    async def _start(self, workers: int, flag: bool) -> Child:
        """Spawn, wait for /ready, warm up; the child is in ``started`` as soon as spawned."""
        config_path = self.tmp / "config-dedicated.json"
        if not config_path.exists():
            config = gateway_config(self.upstream.base_url, self.models)
            config_path.write_bytes(orjson.dumps(config, option=orjson.OPT_INDENT_2))
        port = free_port()
        argv = ["-m", self.module, "serve", "--config", str(config_path)]
        argv += ["--host", "127.0.0.1", "--port", str(port)]
        if flag:
            argv += ["--workers", str(workers)]
        name = f"gateway --workers {workers}" if flag else "gateway"
        log_path = self.results_dir / f"gateway-workers-{workers}.log"
        child = spawn(name, argv, log_path, port, {"HOME": str(self.tmp)})
        self.started[workers] = child
        entry: Report = {"command": shlex.join(["python", *argv])}
        self.info[str(workers)] = entry
        await wait_ready(child, "/ready", self.start_timeout)
        entry["warmup"] = await warm(child)
        fds = tree_fds(child.proc.pid)
        entry["processes"] = len(fds)
        entry["fds_after_warmup"] = max(fds.values(), default=0)
        return child

    async def stop_all(self) -> None:
        """SIGTERM every dedicated gateway together; record how each ended."""
        items = list(self.started.items())
        outcomes = await asyncio.gather(*(stop(child) for _, child in items))
        for (workers, _), outcome in zip(items, outcomes, strict=True):
            self.info[str(workers)]["stop"] = outcome


async def warm(target: Child) -> Report:
    """WARM_REQUESTS quick streams through ``target``, checked; their figures (errors counted)."""
    spec = LoadSpec(
        url=f"{target.base_url}/v1/chat/completions",
        model=WARM_SHAPE.model,
        stream=True,
        requests=WARM_REQUESTS,
        concurrency=WARM_REQUESTS,
        max_seconds=60,
    )
    async with LoadClient(spec, content_pieces(WARM_SHAPE)) as client:
        result = await client.run()
    summary = summarise_run(result, LoadResult(), {})
    return {
        "requests_ok": summary["requests_ok"],
        "errors": summary["errors"],
        "error_samples": summary["error_samples"],
    }
