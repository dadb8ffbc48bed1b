"""Many open streams: N concurrent slow streams (one chunk a second), direct and through a gateway.

For each size (1 000, then 10 000 open streams in the full run) the same load runs straight
against the fake upstream (the floor) and then through a dedicated gateway (``bench.gateways``).
Every stream is checked as the load generator checks any stream (``bench.load.read_stream``: all
chunks, in order, content intact, ``[DONE]``). Stream ``i`` opens at ``i * open_s / N`` so the
chunks of different streams are spread evenly over each second; once all are open each stream is
idle between its chunks, one second apart.

Reported per size and run: errors, TTFT and the gap between chunks (p50/p99), the CPU of every
process (upstream, gateway, load generator), the load generator's event-loop lag, and the target's
memory: Rss of its process tree (``/proc/<pid>/smaps_rollup``, summed) sampled while all N
streams are open, minus its Rss just before the run, divided by N. File descriptors decide how
many gateway processes a size needs: one process holds 2 per stream (client and upstream side);
when that exceeds the fd limit the gateway runs with ``--workers`` (SO_REUSEPORT).

The load generator runs in ``clients`` child processes (``python -m bench.open_streams``), each
holding every ``clients``-th stream; their results are merged. A child prints ``ready`` once
imported, then waits for the common start time on stdin, and prints its result as one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import gc
import math
import os
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import orjson
import psutil

from bench.figures import Report
from bench.gateways import Gateways, machine_busy_s, tree_fds, tree_memory, tree_wait_s
from bench.load import Failure, LoadResult, chat_body, read_stream
from bench.procs import ROOT, Child, CpuSample, raise_fd_limit, self_cpu, tree_cpu
from bench.report import percentile, summarise_run
from bench.shape import Shape, content_pieces, parse_model

MEMORY_SOURCE = "Rss from /proc/<pid>/smaps_rollup, summed over the process tree"
# Besides its fds at rest, one gateway process holds 2 per open stream: client and upstream side.
FDS_PER_STREAM = 2
# SO_REUSEPORT spreads connections by hash, not evenly: leave room for a worker that gets more.
_SPREAD = 1.1
_HEADERS = {"Content-Type": "application/json"}
_LAG_TICK_S = 0.05
# A run measured the machine rather than the relay when this share of its cores was busy, or when
# its processes waited for a CPU this many cores' worth (runnable, not running).
_SATURATED_BUSY = 0.9
_SATURATED_WAIT = 0.25
# The fds a gateway holds at rest when none has been measured yet (listening socket, epoll, logs).
_FDS_GUESS = 64


@dataclass(frozen=True)
class OpenSize:
    """One size of the scenario, with the targets that apply to it.

    ``workers`` None: one gateway process if the fd limit allows it, else the fewest workers that
    fit; a number forces that many (``--quick`` uses it to exercise the multi-worker path).
    """

    streams: int
    shape: Shape
    open_s: float
    clients: int = 1
    workers: int | None = None
    rss_target_kib: float | None = None
    gap_target_ms: float | None = None
    complete_target: bool = False

    @property
    def lifetime_s(self) -> float:
        """How long one stream lasts at the upstream."""
        return (self.shape.first_ms + self.shape.delay_ms * (self.shape.chunks - 1)) / 1000


# One chunk a second. The opening is spread at 1 000 streams a second; 10 000 streams need 10 s to
# open, so they last 20 chunks (about 19 s) to be all open together for ~9 s.
OPEN_FULL = (
    OpenSize(1000, Shape(10, 1000, 0, 8), 2.0, rss_target_kib=20, gap_target_ms=10),
    OpenSize(10000, Shape(20, 1000, 0, 8), 10.0, clients=2, complete_target=True),
)
OPEN_QUICK = (
    OpenSize(10, Shape(2, 200, 0, 8), 0.1, rss_target_kib=20, gap_target_ms=10),
    OpenSize(20, Shape(2, 200, 0, 8), 0.1, clients=2, workers=2, complete_target=True),
)


def spaced(n: int) -> str:
    """10 000 rather than 10000 or 10,000."""
    return f"{n:,}".replace(",", " ")


# --- the load generator's child process ---------------------------------------------------------


def result_to_json(result: LoadResult) -> Report:
    """A LoadResult as plain JSON."""
    return {
        "ok": result.ok,
        "errors": dict(result.errors),
        "samples": result.samples,
        "ttft": result.ttft,
        "gaps": result.gaps,
        "totals": result.totals,
        "chunks": result.chunks,
        "content_chunks": result.content_chunks,
        "events": result.events,
        "status_events": result.status_events,
        "bytes_received": result.bytes_received,
        "wall_s": result.wall_s,
        "capped": result.capped,
    }


def merge_results(parts: list[Report]) -> LoadResult:
    """One LoadResult from the JSON results of several load-generator processes."""
    out = LoadResult()
    for part in parts:
        out.ok += part["ok"]
        out.errors.update(Counter(part["errors"]))
        out.samples += part["samples"][: max(0, 10 - len(out.samples))]
        out.ttft += part["ttft"]
        out.gaps += part["gaps"]
        out.totals += part["totals"]
        for name in ("chunks", "content_chunks", "events", "status_events", "bytes_received"):
            setattr(out, name, getattr(out, name) + part[name])
        out.wall_s = max(out.wall_s, part["wall_s"])
        out.capped = out.capped or part["capped"]
    return out


async def _lag_monitor(lags: list[float]) -> None:
    """How late the event loop wakes from a short sleep: the load generator's own backlog."""
    loop = asyncio.get_running_loop()
    while True:
        due = loop.time() + _LAG_TICK_S
        await asyncio.sleep(_LAG_TICK_S)
        lags.append(loop.time() - due)


async def drive(
    url: str, model: str, offsets: list[float], t0: float, max_seconds: float, timeout_s: float
) -> Report:
    """Open one stream at each ``t0 + offset`` (epoch seconds), read and check them all.

    Returns the merged-able result, each stream's (opened, ended) epoch times and this process's
    CPU and loop lag over the run.
    """
    shape = parse_model(model)
    if shape is None:
        raise ValueError(f"not a bench model: {model}")
    expected = content_pieces(shape)
    body = chat_body(model, True)
    result = LoadResult()
    spans: list[tuple[float, float]] = []
    gap_at: list[float] = []
    lags: list[float] = []
    shift = time.time() - time.perf_counter()
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=0)
    timeout = aiohttp.ClientTimeout(total=timeout_s, sock_connect=30, sock_read=60)

    async def one(session: aiohttp.ClientSession) -> None:
        """One stream, checked and recorded as bench.load records it, plus its open span."""
        start = time.perf_counter()
        try:
            async with session.post(url, data=body, headers=_HEADERS) as resp:
                if resp.status != 200:
                    text = (await resp.read())[:200]
                    raise Failure(f"http_{resp.status}", text.decode("utf-8", "replace"))
                state, size = await read_stream(resp, model, expected, start, False)
        except Failure as exc:
            result.fail(exc.kind, str(exc))
            return
        except TimeoutError:
            result.fail("request_timeout", f"no complete answer within {timeout_s:g} s")
            return
        except Exception as exc:
            result.fail(type(exc).__name__, repr(exc))
            return
        end = time.perf_counter()
        result.totals.append(end - start)
        result.bytes_received += size
        result.ok += 1
        result.ttft.append(state.times[0])
        result.gaps.extend(b - a for a, b in zip(state.times, state.times[1:], strict=False))
        gap_at.extend(shift + start + at for at in state.times[1:])
        result.chunks += state.chunks
        result.content_chunks += len(state.pieces)
        result.events += state.events
        spans.append((shift + start + state.first_byte, shift + end))

    tasks: list[asyncio.Task[None]] = []
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        monitor = asyncio.create_task(_lag_monitor(lags))
        before = self_cpu()
        waited = tree_wait_s(os.getpid())
        begin = time.perf_counter()
        try:
            async with asyncio.timeout(max_seconds):
                for offset in offsets:
                    delay = t0 + offset - time.time()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    tasks.append(asyncio.create_task(one(session)))
                await asyncio.gather(*tasks)
        except TimeoutError:
            result.capped = True
            cap = f"wall-clock cap of {max_seconds:g} s reached"
            for _ in range(sum(not task.done() for task in tasks)):
                result.fail("cap_in_flight", cap)
            for _ in range(len(offsets) - len(tasks)):
                result.fail("cap_not_started", cap)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        result.wall_s = time.perf_counter() - begin
        cpu = self_cpu() - before
        waited = tree_wait_s(os.getpid()) - waited
        monitor.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await monitor
    return {
        "result": result_to_json(result),
        "spans": spans,
        "gap_at": gap_at,
        "cpu": [cpu.precise, cpu.ticks],
        "cpu_wait_s": waited,
        "lag_p99_ms": (percentile(lags, 99) or 0.0) * 1000,
        "lag_max_ms": max(lags, default=0.0) * 1000,
    }


def client_main(argv: list[str] | None = None) -> int:
    """``python -m bench.open_streams ...``: one load-generator process of the scenario."""
    parser = argparse.ArgumentParser(prog="python -m bench.open_streams")
    parser.add_argument("--url", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--streams", type=int, required=True, help="N, over every process")
    parser.add_argument("--clients", type=int, default=1, help="processes sharing the N")
    parser.add_argument("--index", type=int, default=0, help="this process: streams i = index mod")
    parser.add_argument("--open-s", type=float, required=True, help="the opening spreads over")
    parser.add_argument("--max-seconds", type=float, required=True)
    parser.add_argument("--timeout-s", type=float, required=True, help="one stream at most")
    args = parser.parse_args(argv)
    raise_fd_limit()
    # A bounded run: cyclic garbage may wait for the exit. Collections of a heap holding
    # thousands of connections stalled this loop for tens of ms (loop lag p99 31 ms -> 4 ms at
    # 2 000 streams), which would have shown up as the gateway's gap.
    gc.disable()
    step = args.open_s / args.streams
    offsets = [i * step for i in range(args.index, args.streams, args.clients)]
    print("ready", flush=True)
    t0 = float(sys.stdin.readline())
    out = asyncio.run(drive(args.url, args.model, offsets, t0, args.max_seconds, args.timeout_s))
    sys.stdout.buffer.write(orjson.dumps(out) + b"\n")
    sys.stdout.flush()
    return 0


# --- one run: N streams against one target, sampled ---------------------------------------------


@dataclass
class _Sample:
    """The target's memory and fds at one moment (epoch seconds)."""

    at: float
    rss_kib: int
    pss_kib: int | None
    max_fds: int


def _open_counter(spans: list[list[float]]) -> Callable[[float], int]:
    """A function: how many streams were open (first byte received, not ended) at time t."""
    opens = sorted(span[0] for span in spans)
    ends = sorted(span[1] for span in spans)

    def count(at: float) -> int:
        return bisect.bisect_right(opens, at) - bisect.bisect_right(ends, at)

    return count


def all_open_window(spans: list[list[float]], streams: int) -> tuple[float, float] | None:
    """From the last stream's opening to the first one's end: when all ``streams`` were open."""
    if len(spans) < streams or not spans:
        return None
    start, end = max(span[0] for span in spans), min(span[1] for span in spans)
    return (start, end) if start < end else None


def _ms_or_none(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000


def memory_figures(
    samples: list[_Sample], spans: list[list[float]], baseline: _Sample, streams: int, source: str
) -> Report:
    """Memory per open stream, from the samples taken while the most streams were open."""
    count = _open_counter(spans)
    counted = [(sample, count(sample.at)) for sample in samples]
    most = max((n for _, n in counted), default=0)
    chosen = [sample for sample, n in counted if n == most and most > 0]
    out: Report = {
        "source": source,
        "baseline_rss_kib": baseline.rss_kib,
        "baseline_pss_kib": baseline.pss_kib,
        "baseline_fds": baseline.max_fds,
        "samples": len(samples),
        "samples_all_open": len(chosen),
        "most_open_at_once": most,
        "all_open": most == streams,
        "peak_fds_per_process": max((s.max_fds for s in samples), default=None),
        "open_rss_kib": None,
        "rss_per_stream_kib": None,
        "pss_per_stream_kib": None,
    }
    if not chosen:
        return out
    rss = statistics.median(s.rss_kib for s in chosen)
    out["open_rss_kib"] = rss
    out["open_rss_kib_min_max"] = [min(s.rss_kib for s in chosen), max(s.rss_kib for s in chosen)]
    out["rss_per_stream_kib"] = (rss - baseline.rss_kib) / most
    if baseline.pss_kib is not None and all(s.pss_kib is not None for s in chosen):
        pss = statistics.median(s.pss_kib for s in chosen if s.pss_kib is not None)
        out["pss_per_stream_kib"] = (pss - baseline.pss_kib) / most
    return out


def _sample(pid: int) -> _Sample:
    """Memory and fds of the tree now."""
    memory = tree_memory(pid)
    return _Sample(
        time.time(), memory.rss_kib, memory.pss_kib, max(tree_fds(pid).values(), default=0)
    )


async def _start_client(
    size: OpenSize, target: Child, index: int, log_path: Path
) -> asyncio.subprocess.Process:
    """Start one load-generator process and wait for its ``ready``."""
    env = {**os.environ}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, (str(ROOT), env.get("PYTHONPATH"))))
    argv = ["-m", "bench.open_streams", "--url", f"{target.base_url}/v1/chat/completions"]
    argv += ["--model", size.shape.model, "--streams", str(size.streams)]
    argv += ["--clients", str(size.clients), "--index", str(index), "--open-s", str(size.open_s)]
    argv += ["--max-seconds", str(_max_seconds(size)), "--timeout-s", str(size.lifetime_s + 30)]
    with log_path.open("ab") as log:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            *argv,
            cwd=ROOT,
            env=env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=log,
            limit=2**20,
        )
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 60)
    if line.strip() != b"ready":
        proc.kill()
        await proc.wait()
        raise RuntimeError(f"open-streams client {index} did not start: {line[:200]!r}")
    return proc


def _max_seconds(size: OpenSize) -> float:
    """The wall-clock cap of one run."""
    return size.open_s + size.lifetime_s + 30


async def run_once(
    size: OpenSize, target: Child, watched: dict[str, Child], results_dir: Path
) -> Report:
    """N streams against ``target``: its memory sampled, the CPU of ``watched`` and clients."""
    log_path = results_dir / "open-streams-clients.log"
    clients = await asyncio.gather(
        *(_start_client(size, target, k, log_path) for k in range(size.clients))
    )
    pid = target.proc.pid
    baseline = _sample(pid)
    source = tree_memory(pid).source
    interval = max(0.01, min(0.25, size.lifetime_s / 10))
    samples: list[_Sample] = []

    async def sampler() -> None:
        while True:
            await asyncio.sleep(interval)
            samples.append(_sample(pid))

    before = {name: tree_cpu(child.proc.pid) for name, child in watched.items()}
    wait_before = {name: tree_wait_s(child.proc.pid) for name, child in watched.items()}
    busy_before = machine_busy_s()
    t0 = time.time() + 0.05
    begin = time.perf_counter()
    for proc in clients:
        assert proc.stdin is not None
        proc.stdin.write(f"{t0!r}\n".encode())
        await proc.stdin.drain()
        proc.stdin.close()
    sampling = asyncio.create_task(sampler())
    outputs: list[Report] = []
    problems: list[str] = []
    try:
        for index, proc in enumerate(clients):
            assert proc.stdout is not None
            try:
                raw = await asyncio.wait_for(proc.stdout.read(), _max_seconds(size) + 30)
                await proc.wait()
                outputs.append(orjson.loads(raw))
            except (TimeoutError, orjson.JSONDecodeError) as exc:
                problems.append(f"client {index}: {exc!r} (see {log_path.name})")
    finally:
        sampling.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sampling
        for proc in clients:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    wall = time.perf_counter() - begin
    after = {name: tree_cpu(child.proc.pid) for name, child in watched.items()}
    busy = machine_busy_s() - busy_before
    waits = {
        name: tree_wait_s(child.proc.pid) - wait_before[name] for name, child in watched.items()
    }
    waits["client"] = sum(out["cpu_wait_s"] for out in outputs)
    result = merge_results([out["result"] for out in outputs])
    for problem in problems:
        result.fail("client_process", problem)
    missing = size.streams - result.ok - sum(result.errors.values())
    for _ in range(max(0, missing)):
        result.fail("client_lost", "a load-generator process gave no result for this stream")
    for child in watched.values():
        if child.proc.poll() is not None:
            result.fail("process_died", f"{child.name} exited with {child.proc.returncode}")
    cpu = {name: after[name] - before[name] for name in after}
    cpu["client"] = CpuSample(sum(o["cpu"][0] for o in outputs), sum(o["cpu"][1] for o in outputs))
    summary = summarise_run(result, LoadResult(), cpu)
    summary["measured_wall_s"] = wall
    summary["cpu_cores"] = {name: sample.precise / wall for name, sample in cpu.items()}
    # Runnable but not running: time a process waited for a CPU taken by another.
    summary["cpu_wait_cores"] = {name: waited / wall for name, waited in waits.items()}
    # Anything else on the machine meanwhile (other jobs, kernel work not charged to ours).
    summary["machine_busy_cores"] = busy / wall
    summary["other_cores"] = busy / wall - sum(summary["cpu_cores"].values())
    cores = len(os.sched_getaffinity(0))
    summary["machine_saturated"] = (
        busy / wall >= _SATURATED_BUSY * cores
        or sum(summary["cpu_wait_cores"].values()) >= _SATURATED_WAIT * cores
    )
    summary["client"] = {
        "processes": size.clients,
        "cores_each": [o["cpu"][0] / wall for o in outputs],
        "loop_lag_p99_ms": max((o["lag_p99_ms"] for o in outputs), default=None),
        "loop_lag_max_ms": max((o["lag_max_ms"] for o in outputs), default=None),
    }
    spans = [span for out in outputs for span in out["spans"]]
    gap_at = [at for out in outputs for at in out["gap_at"]]
    window = all_open_window(spans, size.streams)
    summary["all_open_s"] = None if window is None else [window[0] - t0, window[1] - t0]
    steady = (
        []
        if window is None
        else [
            gap for gap, at in zip(result.gaps, gap_at, strict=True) if window[0] <= at < window[1]
        ]
    )
    summary["gap_ms_all_open"] = {
        "gaps": len(steady),
        **{f"p{q}": _ms_or_none(percentile(steady, q)) for q in (50, 99)},
        "max": _ms_or_none(max(steady, default=None)),
    }
    summary["memory"] = memory_figures(samples, spans, baseline, size.streams, source)
    summary["memory"]["process"] = target.name
    return summary


# --- the scenario -------------------------------------------------------------------------------


def plan_workers(size: OpenSize, fds_at_rest: int, soft: int, hard: int) -> Report:
    """How many gateway processes this size needs, and why (file descriptors)."""
    need = fds_at_rest + FDS_PER_STREAM * size.streams
    if size.workers is not None:
        workers = size.workers
        why = f"--workers {workers} forced for this size (exercises the multi-worker path)"
    elif need <= soft:
        workers = 1
        why = f"one process ({spaced(need)} fds needed, limit {spaced(soft)})"
    else:
        workers = 2
        while fds_at_rest + math.ceil(FDS_PER_STREAM * size.streams * _SPREAD / workers) > soft:
            workers += 1
        limit = f"fd hard limit {spaced(hard)}"
        if soft < hard:
            limit = f"fd soft limit {spaced(soft)} (hard {spaced(hard)})"
        why = f"through --workers {workers} ({limit} < {spaced(need)} needed by one process)"
    return {
        "fds_needed_one_process": need,
        "fds_at_rest": fds_at_rest,
        "fd_limit": [soft, hard],
        "workers": workers,
        "how": why,
    }


async def run_open_streams(
    sizes: tuple[OpenSize, ...],
    upstream: Child,
    gateways: Gateways | None,
    results_dir: Path,
    skipped: str = "direct-only run",
) -> Report:
    """Every size, direct then through its gateway; the figures and targets at the end."""
    limits = psutil.Process().rlimit(psutil.RLIMIT_NOFILE)
    soft, hard = int(limits[0]), int(limits[1])
    report: Report = {
        "memory_source": MEMORY_SOURCE,
        "fd_limit": [soft, hard],
        "cores": len(os.sched_getaffinity(0)),
        "has_workers": None,
        "sizes": {},
    }
    plans = []
    if gateways is not None:
        # The single-process gateway first, fresh: its fds at rest size the others' need.
        await gateways.get(1)
        report["has_workers"] = gateways.has_workers
    for size in sizes:
        at_rest = _FDS_GUESS
        if gateways is not None and 1 in gateways.started:
            at_rest = gateways.info["1"].get("fds_after_warmup", at_rest)
        plans.append(plan_workers(size, at_rest, soft, hard))
    if gateways is not None:
        # Every other gateway started (and warmed) together, before any measurement.
        needed = {plan["workers"] for plan in plans if gateways.can_start(plan["workers"])}
        await asyncio.gather(*(gateways.get(workers) for workers in sorted(needed)))
    for size, plan in zip(sizes, plans, strict=True):
        entry: Report = {"settings": settings_of(size), "fds": plan}
        gateway = None
        if gateways is None:
            entry["gateway_skipped"] = skipped
        elif not gateways.can_start(plan["workers"]):
            entry["gateway_skipped"] = (
                f"{spaced(size.streams)} open needs {plan['how'].removeprefix('through ')}, "
                "but llms serve has no --workers"
            )
        else:
            gateway = await gateways.get(plan["workers"])
        idle = {"gateway_idle": gateway} if gateway is not None else {}
        entry["direct"] = await run_once(
            size, upstream, {"upstream": upstream, **idle}, results_dir
        )
        if gateway is not None:
            entry["gateway"] = await run_once(
                size, gateway, {"upstream": upstream, "gateway": gateway}, results_dir
            )
        report["sizes"][str(size.streams)] = entry
        print(f"open_streams {size.streams}: done", file=sys.stderr, flush=True)
    report["figures"] = open_figures(report, sizes)
    return report


def settings_of(size: OpenSize) -> Report:
    """A size's settings as the report shows them."""
    return {
        "streams": size.streams,
        "model": size.shape.model,
        "chunks": size.shape.chunks,
        "delay_ms": size.shape.delay_ms,
        "open_s": size.open_s,
        "lifetime_s": size.lifetime_s,
        "clients": size.clients,
        "workers": size.workers,
    }


def _diff(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def _verdict(ok: bool | None) -> str:
    return "not measured" if ok is None else "meets" if ok else "misses"


def open_figures(report: Report, sizes: tuple[OpenSize, ...]) -> Report:
    """Per-size headline figures, the targets with their verdicts, and the error count."""
    per_size: Report = {}
    targets: list[Report] = []
    errors = 0
    for size in sizes:
        entry = report["sizes"][str(size.streams)]
        direct, gateway = entry["direct"], entry.get("gateway")
        errors += direct["errors"] + (gateway["errors"] if gateway else 0)
        gap_direct = direct["gap_ms"]["p99"]
        gap_gateway = gateway["gap_ms"]["p99"] if gateway else None
        steady_direct = direct["gap_ms_all_open"]["p99"]
        steady_gateway = gateway["gap_ms_all_open"]["p99"] if gateway else None
        added = _diff(steady_gateway, steady_direct)
        rss = gateway["memory"]["rss_per_stream_kib"] if gateway else None
        per_size[str(size.streams)] = {
            "workers": entry["fds"]["workers"] if gateway else None,
            "how": entry["fds"]["how"] if gateway else entry.get("gateway_skipped"),
            "errors_direct": direct["errors"],
            "errors_gateway": gateway["errors"] if gateway else None,
            "ok_gateway": gateway["requests_ok"] if gateway else None,
            "rss_per_stream_kib": rss,
            "pss_per_stream_kib": gateway["memory"]["pss_per_stream_kib"] if gateway else None,
            "all_open_at_once": gateway["memory"]["all_open"] if gateway else None,
            "gap_p99_direct_ms": gap_direct,
            "gap_p99_gateway_ms": gap_gateway,
            "added_gap_p99_whole_run_ms": _diff(gap_gateway, gap_direct),
            "gap_p99_all_open_direct_ms": steady_direct,
            "gap_p99_all_open_gateway_ms": steady_gateway,
            "added_gap_p99_ms": added,
            "upstream_cores": direct["cpu_cores"]["upstream"],
            "upstream_cores_gateway_run": gateway["cpu_cores"]["upstream"] if gateway else None,
            "client_cores": direct["cpu_cores"]["client"],
            "client_cores_gateway_run": gateway["cpu_cores"]["client"] if gateway else None,
            "gateway_cores": gateway["cpu_cores"]["gateway"] if gateway else None,
            "gateway_cpu_us_per_chunk": gateway["cpu"]["gateway"]["us_per_chunk"]
            if gateway
            else None,
            "machine_busy_cores_gateway_run": gateway["machine_busy_cores"] if gateway else None,
        }
        n = spaced(size.streams)
        if size.rss_target_kib is not None:
            ok = None if rss is None else rss <= size.rss_target_kib
            targets.append(
                {
                    "target": f"RSS per open idle stream at {n} open ≤ {size.rss_target_kib:g} KiB",
                    "value": rss,
                    "unit": "KiB",
                    "verdict": _verdict(ok),
                }
            )
        if size.gap_target_ms is not None:
            ok = None if added is None else added <= size.gap_target_ms
            targets.append(
                {
                    "target": f"added gap p99 at {n} open (all open) ≤ {size.gap_target_ms:g} ms",
                    "value": added,
                    "unit": "ms",
                    "verdict": _verdict(ok),
                }
            )
        if size.complete_target:
            ok = None
            if gateway is not None:
                ok = gateway["errors"] == 0 and gateway["requests_ok"] == size.streams
            targets.append(
                {
                    "target": f"{n} concurrent streams complete with zero errors",
                    "value": None if gateway is None else gateway["errors"],
                    "unit": "errors",
                    "verdict": _verdict(ok),
                }
            )
    return {"sizes": per_size, "targets": targets, "errors": errors}


if __name__ == "__main__":
    sys.exit(client_main())
