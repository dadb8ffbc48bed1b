"""``python -m bench [--quick] [--direct-only]``: the gateway benchmark.

Starts the fake upstream and the gateway (each in its own process), runs every scenario straight
against the upstream (the floor) and then through the gateway, measures the gateway's CPU, and
prints and saves the report (bench/results/latest.json and latest.md).
"""

from __future__ import annotations

import argparse
import asyncio
import shlex
import sys
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import orjson

from bench.load import LoadClient, LoadSpec
from bench.procs import (
    ROOT,
    Child,
    CpuSample,
    free_port,
    raise_fd_limit,
    self_cpu,
    spawn,
    tree_cpu,
    wait_ready,
)
from bench.procs import stop as stop_child
from bench.report import Report, figures, machine, save, summarise_run, to_markdown
from bench.shape import Shape, content_pieces


@dataclass(frozen=True)
class Scenario:
    """One measured workload; run once direct and once through the gateway."""

    name: str
    shape: Shape
    stream: bool
    requests: int
    concurrency: int
    max_seconds: float
    warmup: int


CLEAN_STOP = "stopped on SIGTERM with exit code 0"

# Latency paces chunks 2 ms apart so that "added gap" shows any buffering the gateway does.
FULL = (
    Scenario("latency", Shape(20, 2, 0, 8), True, 200, 1, 120, 10),
    Scenario("throughput", Shape(50, 0, 0, 8), True, 2000, 64, 300, 64),
    Scenario("nonstream", Shape(20, 0, 0, 8), False, 1000, 32, 120, 32),
)
QUICK = (
    Scenario("latency", Shape(20, 2, 0, 8), True, 5, 1, 20, 1),
    Scenario("throughput", Shape(50, 0, 0, 8), True, 16, 8, 20, 8),
    Scenario("nonstream", Shape(20, 0, 0, 8), False, 16, 8, 20, 8),
)


def gateway_config(upstream_url: str, models: list[str]) -> Report:
    """The gateway's config.json: one OpenAI-type provider, the fake upstream."""
    return {
        "providers": {
            "bench": {
                "type": "openai",
                "base_url": f"{upstream_url}/v1",
                "api_key": "bench",
                "models": models,
            }
        }
    }


async def measure(
    scenario: Scenario, target: Child, upstream: Child, gateway: Child | None
) -> Report:
    """Run one scenario against ``target``; CPU is sampled around the measured part only."""
    spec = LoadSpec(
        url=f"{target.base_url}/v1/chat/completions",
        model=scenario.shape.model,
        stream=scenario.stream,
        requests=scenario.requests,
        concurrency=scenario.concurrency,
        max_seconds=scenario.max_seconds,
        warmup=scenario.warmup,
    )
    watched = {"upstream": upstream}
    if gateway is not None:
        # During a direct run the gateway should be idle; its CPU then shows background work.
        watched["gateway" if target is gateway else "gateway_idle"] = gateway

    def sample() -> dict[str, CpuSample]:
        """CPU seconds so far of every watched process and of this one."""
        cpu = {name: tree_cpu(child.proc.pid) for name, child in watched.items()}
        cpu["client"] = self_cpu()
        return cpu

    async with LoadClient(spec, content_pieces(scenario.shape)) as client:
        warm = await client.warm()
        before = sample()
        result = await client.run()
        after = sample()
    for child in (upstream, gateway):
        if child is not None and child.proc.poll() is not None:
            result.fail("process_died", f"{child.name} exited with {child.proc.returncode}")
    return summarise_run(result, warm, {name: after[name] - before[name] for name in after})


async def run(args: argparse.Namespace, results_dir: Path) -> Report:
    """Start the processes, run every scenario both ways, stop the processes; return the report."""
    scenarios = QUICK if args.quick else FULL
    fd_limit = raise_fd_limit()
    models = sorted({s.shape.model for s in scenarios})
    report: Report = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": shlex.join(sys.orig_argv),
        "cwd": str(Path.cwd()),
        "quick": args.quick,
        "mode": "direct-only" if args.direct_only else "direct and gateway",
        "machine": machine(),
        "fd_limit": list(fd_limit),
        "gateway": {},
        "scenarios": {},
    }
    up_port = free_port()
    upstream = spawn(
        "fake upstream",
        ["-m", "bench.upstream", "--port", str(up_port), "--models", ",".join(models)],
        results_dir / "upstream.log",
        up_port,
        {},
    )
    gateway: Child | None = None
    with tempfile.TemporaryDirectory(prefix="llms-bench-") as tmp:
        try:
            await wait_ready(upstream, "/v1/models", 15)
            if not args.direct_only:
                config_path = Path(tmp) / "config.json"
                config = gateway_config(upstream.base_url, models)
                config_path.write_bytes(orjson.dumps(config, option=orjson.OPT_INDENT_2))
                gw_port = free_port()
                argv = ["-m", args.gateway_module, "serve", "--config", str(config_path)]
                argv += ["--host", "127.0.0.1", "--port", str(gw_port)]
                # HOME points at the temp dir so the gateway's default files stay out of ~.
                gateway = spawn(
                    "gateway", argv, results_dir / "gateway.log", gw_port, {"HOME": tmp}
                )
                report["gateway"] = {"command": shlex.join(["python", *argv]), "config": config}
                await wait_ready(gateway, "/ready", args.start_timeout)
            for scenario in scenarios:
                runs: Report = {
                    "settings": {
                        "model": scenario.shape.model,
                        "stream": scenario.stream,
                        "requests": scenario.requests,
                        "concurrency": scenario.concurrency,
                        "warmup": scenario.warmup,
                        "max_seconds": scenario.max_seconds,
                    }
                }
                runs["direct"] = await measure(scenario, upstream, upstream, gateway)
                if gateway is not None:
                    runs["gateway"] = await measure(scenario, gateway, upstream, gateway)
                report["scenarios"][scenario.name] = runs
                print(f"{scenario.name}: done", file=sys.stderr, flush=True)
        finally:
            if gateway is not None:
                report["gateway"]["stop"] = await stop_child(gateway)
            report["upstream_stop"] = await stop_child(upstream)
    report["figures"] = figures(report["scenarios"])
    return report


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
    parser.add_argument("--start-timeout", type=float, default=30.0, help="gateway /ready wait")
    args = parser.parse_args(argv)
    args.results_dir.mkdir(parents=True, exist_ok=True)
    try:
        report = asyncio.run(run(args, args.results_dir))
    except RuntimeError as exc:
        print(f"benchmark could not run: {exc}", file=sys.stderr)
        return 2
    json_path, md_path = save(report, args.results_dir)
    print(to_markdown(report))
    print(f"saved {json_path} and {md_path}", file=sys.stderr)
    complete = all(
        not run.get("capped") for runs in report["scenarios"].values() for run in runs.values()
    )
    # The gateway's contract includes a clean stop on SIGTERM.
    stop = report["gateway"].get("stop", CLEAN_STOP)
    if stop != CLEAN_STOP:
        print(f"gateway did not stop cleanly: it {stop}", file=sys.stderr)
    return 0 if report["figures"]["errors"] == 0 and complete and stop == CLEAN_STOP else 1


if __name__ == "__main__":
    sys.exit(main())
