"""``python -m bench [--quick] [--direct-only]``: the gateway benchmark.

Starts the fake upstream and the gateway (each in its own process), runs every scenario straight
against the upstream (the floor) and then through the gateway, measures the gateway's CPU, and
prints and saves the report (bench/results/latest.json and latest.md).

Resumable mode (``X-Stream-Resumable: true``) is measured on the same gateway. For Redis mode a
redis-server and two more gateways (replicas A and B, ``state.redis_url``) are started: the
resumable throughput scenario runs against replica A, with redis-server's CPU and commands counted.
Resume latency is timed in memory mode, on the same Redis replica and across replicas. Without
a redis-server the Redis scenarios are reported as skipped.

Last, on gateways of their own (bench.dedicated): many open streams (1 000 then 10 000 streams of
one chunk a second; memory per open stream, added gap, errors; 10 000 need ``--workers 2`` when
the fd limit is below 2 per stream) and scaling with workers (``--workers 1`` vs ``2``).
Then the boards' methods (bench.board): added p99 at one client, the 64 x 20 ms stream test and
the streams-sustained ramp, for every client-facing API, direct, through the Python floor (a bare
aiohttp relay) and through the gateway (in a quick run only with ``--only board``).
``--only NAMES`` runs a subset, e.g. ``--only open_streams,scaling``.
"""

from __future__ import annotations

import argparse
import asyncio
import shlex
import sys
import tempfile
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from bench.board import board_errors, run_board
from bench.dedicated import NAMES as DEDICATED
from bench.dedicated import dedicated_errors, run_dedicated
from bench.figures import Report, figures
from bench.fleet import Fleet, start_gateways, stop_fleet
from bench.markdown import to_markdown
from bench.procs import ROOT, Child, free_port, raise_fd_limit, spawn, wait_ready
from bench.report import machine, save
from bench.resume import Replica
from bench.scenarios import (
    FULL,
    QUICK,
    RESUME_FULL,
    RESUME_QUICK,
    Scenario,
    measure,
    measure_resumes,
    settings_of,
)

CLEAN_STOP = "stopped on SIGTERM with exit code 0"


async def run_scenario(scenario: Scenario, fleet: Fleet) -> Report | None:
    """Both runs of one scenario; None if its gateway was not started (resumable ones only)."""
    upstream = fleet.upstream
    gateway = fleet.gateway if scenario.mode == "memory" else fleet.replicas.get("A")
    if gateway is None and scenario.resumable:
        return None
    runs: Report = {"settings": settings_of(scenario)}
    # During a direct run the gateway should be idle; its CPU then shows background work.
    idle = {"gateway_idle": gateway} if gateway is not None else {}
    runs["direct"] = await measure(scenario, upstream, {"upstream": upstream, **idle})
    if gateway is not None:
        redis = fleet.redis if scenario.mode == "redis" else None
        watched = {"upstream": upstream, "gateway": gateway}
        if redis is not None:
            watched["redis"] = redis
        # A Responses or Messages scenario is bracketed by chat runs of the same shape on the same
        # gateway, just before and just after: on a shared machine its ratio to chat then
        # compares neighbours in time, not scenarios minutes apart.
        chat = replace(scenario, api="chat", background=False, store=True)
        if scenario.api != "chat":
            runs["chat_before"] = await measure(chat, gateway, watched)
        runs["gateway"] = await measure(
            scenario, gateway, watched, resumable=scenario.resumable, redis=redis
        )
        if scenario.api != "chat":
            runs["chat_after"] = await measure(chat, gateway, watched)
        if scenario.rounds:
            # More neighbours: this API then chat again, each round a quarter of the size.
            size = scenario.round_requests()
            rounds: Report = {"runs": [], "errors": 0, "capped": False}
            for _ in range(scenario.rounds):
                api = await measure(replace(scenario, requests=size), gateway, watched)
                after = await measure(replace(chat, requests=size), gateway, watched)
                rounds["runs"].append({"api": _round_figures(api), "chat": _round_figures(after)})
                rounds["errors"] += api.get("errors", 0) + after.get("errors", 0)
                rounds["capped"] |= bool(api.get("capped") or after.get("capped"))
            runs["rounds"] = rounds
    return runs


def _round_figures(run: Report) -> Report:
    """What the report keeps of an alternating round's run: the gateway's CPU and the errors."""
    cpu = run.get("cpu", {}).get("gateway", {})
    return {
        "us_per_chunk": cpu.get("us_per_chunk"),
        "us_per_request": cpu.get("us_per_request"),
        "requests_ok": run.get("requests_ok"),
        "errors": run.get("errors", 0),
        "error_kinds": run.get("error_kinds", {}),
    }


async def run(args: argparse.Namespace, results_dir: Path) -> Report:
    """Start the processes, run every scenario both ways, stop the processes; return the report."""
    scenarios = QUICK if args.quick else FULL
    if args.only is not None:
        # `--only a,b`: those scenarios; the resume rounds only if "resume" is named.
        scenarios = tuple(s for s in scenarios if s.name in args.only)
    fd_limit = raise_fd_limit()
    resume_shape = (RESUME_QUICK if args.quick else RESUME_FULL).shape
    models = sorted({s.shape.model for s in scenarios} | {resume_shape.model})
    report: Report = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": shlex.join(sys.orig_argv),
        "cwd": str(Path.cwd()),
        "quick": args.quick,
        "mode": "direct-only" if args.direct_only else "direct and gateway",
        "machine": machine(),
        "fd_limit": list(fd_limit),
        "gateway": {},
        "redis": {"skipped": "direct-only run"} if args.direct_only else {},
        "scenarios": {},
        "resume": {},
    }
    up_port = free_port()
    upstream = spawn(
        "fake upstream",
        ["-m", "bench.upstream", "--port", str(up_port), "--models", ",".join(models)],
        results_dir / "upstream.log",
        up_port,
        {},
    )
    fleet = Fleet(upstream)
    with tempfile.TemporaryDirectory(prefix="llms-bench-") as tmp:
        try:
            await wait_ready(upstream, "/v1/models", 15)
            # `--only open_streams,scaling` needs no fleet gateway (they start their own).
            if not args.direct_only and (scenarios or args.only is None or "resume" in args.only):
                await start_gateways(
                    fleet,
                    report,
                    models=models,
                    tmp=Path(tmp),
                    results_dir=results_dir,
                    module=args.gateway_module,
                    redis_program=args.redis_server,
                    start_timeout=args.start_timeout,
                )
            for scenario in scenarios:
                runs = await run_scenario(scenario, fleet)
                if runs is not None:
                    report["scenarios"][scenario.name] = runs
                    print(f"{scenario.name}: done", file=sys.stderr, flush=True)
            if fleet.gateway is not None and (args.only is None or "resume" in args.only):
                pairs: dict[str, tuple[Child, Child, Replica]] = {
                    "memory": (fleet.gateway, fleet.gateway, "any")
                }
                if fleet.replicas:
                    a, b = fleet.replicas["A"], fleet.replicas["B"]
                    pairs["redis_same"] = (a, a, "same")
                    pairs["redis_across"] = (a, b, "other")
                settings = RESUME_QUICK if args.quick else RESUME_FULL
                report["resume"] = await measure_resumes(settings, upstream, pairs)
                print("resume: done", file=sys.stderr, flush=True)
            # Many open streams and scaling with workers, on gateways of their own.
            await run_dedicated(
                report,
                upstream=upstream,
                quick=args.quick,
                only=args.only,
                direct_only=args.direct_only,
                tmp=Path(tmp),
                results_dir=results_dir,
                module=args.gateway_module,
                start_timeout=args.start_timeout,
            )
            # The boards' methods and the streams-sustained ramp, against the Python floor. A
            # quick run does it only if named (`--only board`): tests/test_bench_board.py.
            board = not args.quick if args.only is None else "board" in args.only
            if board and not args.direct_only:
                await run_board(
                    report,
                    upstream=upstream,
                    quick=args.quick,
                    tmp=Path(tmp),
                    results_dir=results_dir,
                    module=args.gateway_module,
                    start_timeout=args.start_timeout,
                )
                print("board: done", file=sys.stderr, flush=True)
        finally:
            await stop_fleet(fleet, report)
    report["figures"] = figures(report["scenarios"], report["resume"])
    report["figures"]["errors"] += dedicated_errors(report) + board_errors(report)
    return report


def _stops(report: Report) -> dict[str, str]:
    """How every gateway process ended."""
    stops = {"gateway": report["gateway"].get("stop", CLEAN_STOP)}
    for name, replica in report["redis"].get("replicas", {}).items():
        stops[f"replica {name}"] = replica.get("stop", "was not stopped")
    return stops


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; exit 0 only if every request of every run passed its checks."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a few requests per scenario")
    parser.add_argument(
        "--direct-only", action="store_true", help="only the fake upstream, no gateway"
    )
    parser.add_argument("--results-dir", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument(
        "--gateway-module",
        default="llms",
        help="module run as `python -m MODULE serve ...` (another build of the gateway)",
    )
    parser.add_argument(
        "--redis-server",
        default="redis-server",
        help="redis-server executable for the Redis scenarios (skipped if not found)",
    )
    parser.add_argument("--start-timeout", type=float, default=30.0, help="gateway /ready wait")
    parser.add_argument(
        "--only",
        metavar="NAMES",
        help="comma-separated scenarios to run (and `resume` for the resume rounds, "
        "`open_streams`, `scaling`, `board`); default all",
    )
    args = parser.parse_args(argv)
    if args.only is not None:
        args.only = set(filter(None, args.only.split(",")))
        known = {s.name for s in (*QUICK, *FULL)} | {"resume", "board", *DEDICATED}
        if not args.only or args.only - known:
            parser.error(f"--only: unknown {sorted(args.only - known)}; known {sorted(known)}")
    args.results_dir.mkdir(parents=True, exist_ok=True)
    try:
        report = asyncio.run(run(args, args.results_dir))
    except RuntimeError as exc:
        print(f"benchmark could not run: {exc}", file=sys.stderr)
        return 2
    json_path, md_path = save(report, args.results_dir)
    print(to_markdown(report))
    print(f"saved {json_path} and {md_path}", file=sys.stderr)
    runs = [run for runs in report["scenarios"].values() for run in runs.values()]
    runs += list(report["resume"].values())
    complete = all(not run.get("capped") for run in runs)
    # The gateway's contract includes a clean stop on SIGTERM, in Redis mode too.
    unclean = {name: stop for name, stop in _stops(report).items() if stop != CLEAN_STOP}
    for name, stop in unclean.items():
        print(f"{name} did not stop cleanly: it {stop}", file=sys.stderr)
    return 0 if report["figures"]["errors"] == 0 and complete and not unclean else 1


if __name__ == "__main__":
    sys.exit(main())
