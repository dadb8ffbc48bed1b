"""``python -m bench.tracing [--quick] [--baseline DIR]``: what OpenTelemetry tracing costs.

Gateways in front of one fake upstream, each its own process: ``unset`` (no OTEL_* variable:
tracing must cost nothing), ``traced`` (OTEL_EXPORTER_OTLP_ENDPOINT pointing at a small OTLP/HTTP
receiver in this process, which decodes every export and counts its spans) and, with
``--baseline DIR`` (a source tree without tracing, e.g. ``git archive <commit> llms | tar -x -C
DIR``), ``baseline``. The same requests go to each, non-stream and stream, in alternating runs so
that a busy machine weighs on all alike. Reported: gateway CPU per request (µs), its difference to
``unset`` and requests/s; every answer is checked, and every traced request must arrive as its
two spans (request and attempt). Saves bench/results/tracing.json.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from bench.fleet import gateway_config
from bench.keys import QUICK, SHAPE, _measure
from bench.procs import ROOT, Child, free_port, spawn, stop, wait_ready

ROUNDS = 3
FULL = {"requests": 600, "concurrency": 16}
Report = dict[str, Any]


class Receiver:
    """Counts the spans of every OTLP/HTTP export it decodes."""

    def __init__(self) -> None:
        self.spans = 0
        self.app = web.Application()
        self.app.router.add_post("/v1/traces", self.traces)

    async def traces(self, request: web.Request) -> web.Response:
        export = ExportTraceServiceRequest.FromString(await request.read())
        self.spans += sum(len(s.spans) for r in export.resource_spans for s in r.scope_spans)
        return web.Response(content_type="application/x-protobuf")


def _gateway(
    name: str, config: Path, env: dict[str, str], results_dir: Path, baseline: Path | None
) -> Child:
    port = free_port()
    serve = ["serve", "--config", str(config), "--port", str(port)]
    if baseline is None:
        args = ["-m", "llms", *serve]
    else:  # the baseline tree's package first on the path
        code = f"import sys; sys.path.insert(0, {str(baseline)!r}); from llms.cli import main; "
        args = ["-c", code + f"sys.exit(main({serve!r}))"]
    return spawn(name, args, results_dir / f"tracing-{name}.log", port, env)


async def run(quick: bool, results_dir: Path, baseline: Path | None) -> Report:
    size = QUICK if quick else FULL
    report: Report = {"settings": {**size, "model": SHAPE.model, "rounds": ROUNDS}, "modes": {}}
    receiver = Receiver()
    runner = web.AppRunner(receiver.app)
    await runner.setup()
    receiver_port = free_port()
    await web.TCPSite(runner, "127.0.0.1", receiver_port).start()
    gateways: dict[str, Child] = {}
    with tempfile.TemporaryDirectory(prefix="llms-bench-tracing-") as tmp:
        up_port = free_port()
        upstream = spawn(
            "fake upstream",
            ["-m", "bench.upstream", "--port", str(up_port), "--models", SHAPE.model],
            results_dir / "tracing-upstream.log",
            up_port,
            {},
        )
        try:
            await wait_ready(upstream, "/v1/models", 15)
            config = gateway_config(upstream.base_url, [SHAPE.model])
            config["state"] = {"request_log": None}
            path = Path(tmp) / "config.json"
            path.write_bytes(orjson.dumps(config))
            otel = {
                "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{receiver_port}",
                "OTEL_SERVICE_NAME": "llms-bench",
            }
            envs = {"unset": {}, "traced": otel}
            if baseline is not None:
                envs = {"baseline": {}, **envs}
            for name, env in envs.items():
                where = baseline if name == "baseline" else None
                gateways[name] = _gateway(name, path, {"HOME": tmp, **env}, results_dir, where)
            for child in gateways.values():
                await wait_ready(child, "/ready", 30)
            traced_requests = 0
            for mode, stream in (("nonstream", False), ("stream", True)):
                for name, child in gateways.items():  # warm-up
                    await _measure(child, "unused", stream, {"requests": 20, "concurrency": 4})
                    traced_requests += 20 if name == "traced" else 0
                runs: dict[str, list[Report]] = {name: [] for name in gateways}
                for _ in range(ROUNDS):
                    for name, child in gateways.items():
                        runs[name].append(await _measure(child, "unused", stream, size))
                        traced_requests += size["requests"] if name == "traced" else 0
                report["modes"][mode] = summary(runs)
                print(f"tracing {mode}: done", file=sys.stderr, flush=True)
        finally:
            for name, child in gateways.items():
                report.setdefault("stops", {})[name] = await stop(child)  # flushes its spans
            await stop(upstream)
            await runner.cleanup()
    report["spans_expected"] = 2 * traced_requests
    report["spans_received"] = receiver.spans
    report["errors"] = sum(m["errors"] for m in report["modes"].values())
    if receiver.spans != report["spans_expected"]:
        report["errors"] += 1
    return report


def summary(runs: dict[str, list[Report]]) -> Report:
    def median(values: list[float]) -> float:
        ordered = sorted(values)
        return ordered[len(ordered) // 2]

    out: Report = {"runs": runs, "errors": 0}
    for name, items in runs.items():
        out[name] = {
            "cpu_us_per_request": median([r["cpu_us_per_request"] for r in items]),
            "rps": median([r["rps"] for r in items]),
        }
        out["errors"] += sum(len(r["errors"]) for r in items)
    unset = out["unset"]["cpu_us_per_request"]
    for name in runs:
        out[name]["added_us_per_request"] = out[name]["cpu_us_per_request"] - unset
    return out


def to_markdown(report: Report) -> str:
    lines = [
        "| mode | gateway | CPU µs/request | vs unset | req/s |",
        "|---|---|---|---|---|",
    ]
    for mode, m in report["modes"].items():
        for name in m["runs"]:
            g = m[name]
            lines.append(
                f"| {mode} | {name} | {g['cpu_us_per_request']:.0f} "
                f"| {g['added_us_per_request']:+.0f} | {g['rps']:.0f} |"
            )
    lines.append(
        f"\nspans received: {report['spans_received']} of {report['spans_expected']}; "
        f"errors: {report['errors']}"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.tracing", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a few requests per run")
    parser.add_argument("--baseline", type=Path, help="a source tree to compare with (no tracing)")
    parser.add_argument("--results-dir", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args(argv)
    args.results_dir.mkdir(parents=True, exist_ok=True)
    report = asyncio.run(run(args.quick, args.results_dir, args.baseline))
    out = args.results_dir / "tracing.json"
    out.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    print(to_markdown(report))
    return 0 if report["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
