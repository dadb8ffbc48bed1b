"""Turn load results and CPU samples into figures, a markdown table and saved files."""

from __future__ import annotations

import math
import os
import platform
import sys
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from bench.load import LoadResult
from bench.procs import CpuSample

Report = dict[str, Any]


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile (0-100) with linear interpolation, or None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def _ms(values: list[float], qs: tuple[float, ...]) -> dict[str, float | None]:
    """Percentiles of seconds, in milliseconds."""
    out: dict[str, float | None] = {}
    for q in qs:
        value = percentile(values, q)
        out[f"p{q:g}"] = None if value is None else value * 1000
    out["max"] = max(values) * 1000 if values else None
    return out


def _per(cpu: CpuSample, count: int) -> float | None:
    """CPU microseconds per item, or None when nothing was counted."""
    return cpu.precise / count * 1e6 if count else None


def summarise_run(result: LoadResult, warm: LoadResult, cpu: dict[str, CpuSample]) -> Report:
    """One run (direct or through the gateway) as plain JSON-able figures."""
    errors = dict(result.errors)
    for kind, count in warm.errors.items():
        errors[f"warmup:{kind}"] = count
    return {
        "requests_ok": result.ok,
        "errors": sum(errors.values()),
        "error_kinds": errors,
        "error_samples": warm.samples + result.samples,
        "capped": result.capped or warm.capped,
        "wall_s": result.wall_s,
        "rps": result.ok / result.wall_s if result.wall_s else None,
        "chunks": result.chunks,
        "content_chunks": result.content_chunks,
        "bytes_received": result.bytes_received,
        "ttft_ms": _ms(result.ttft, (50, 90, 99)),
        "gap_ms": _ms(result.gaps, (50, 99)),
        "total_ms": _ms(result.totals, (50, 99)),
        "cpu": {
            name: {
                "seconds": sample.precise,
                "seconds_from_ticks": sample.ticks,
                "us_per_chunk": _per(sample, result.chunks),
                "us_per_request": _per(sample, result.ok),
            }
            for name, sample in cpu.items()
        },
    }


def _get(report: Report, *path: str) -> Any:
    """Walk nested dicts; None if any step is missing."""
    node: Any = report
    for key in path:
        if not isinstance(node, dict) or node.get(key) is None:
            return None
        node = node[key]
    return node


def _diff(a: float | None, b: float | None) -> float | None:
    """a - b, or None if either is missing."""
    return None if a is None or b is None else a - b


def figures(scenarios: Report) -> Report:
    """The headline figures; None where a run was not made (e.g. ``--direct-only``)."""
    lat = scenarios.get("latency", {})
    rps = {}
    for name, runs in scenarios.items():
        direct, gateway = _get(runs, "direct", "rps"), _get(runs, "gateway", "rps")
        ratio = gateway / direct if direct and gateway is not None else None
        rps[name] = {"direct": direct, "gateway": gateway, "ratio": ratio}
    return {
        "gateway_cpu_us_per_chunk": _get(
            scenarios, "throughput", "gateway", "cpu", "gateway", "us_per_chunk"
        ),
        "gateway_cpu_us_per_request_stream": _get(
            scenarios, "throughput", "gateway", "cpu", "gateway", "us_per_request"
        ),
        "gateway_cpu_us_per_request_nonstream": _get(
            scenarios, "nonstream", "gateway", "cpu", "gateway", "us_per_request"
        ),
        "added_ttft_p50_ms": _diff(
            _get(lat, "gateway", "ttft_ms", "p50"), _get(lat, "direct", "ttft_ms", "p50")
        ),
        "added_ttft_p99_ms": _diff(
            _get(lat, "gateway", "ttft_ms", "p99"), _get(lat, "direct", "ttft_ms", "p99")
        ),
        "added_gap_p99_ms": _diff(
            _get(lat, "gateway", "gap_ms", "p99"), _get(lat, "direct", "gap_ms", "p99")
        ),
        "upstream_cpu_us_per_chunk": _get(
            scenarios, "throughput", "direct", "cpu", "upstream", "us_per_chunk"
        ),
        "client_cpu_us_per_chunk": _get(
            scenarios, "throughput", "direct", "cpu", "client", "us_per_chunk"
        ),
        "rps": rps,
        "errors": sum(
            run.get("errors", 0)
            for runs in scenarios.values()
            for run in runs.values()
            if isinstance(run, dict) and "errors" in run
        ),
    }


def machine() -> Report:
    """What the numbers were measured on."""
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu_model": model,
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)),
        "python": sys.version.split()[0],
        "aiohttp": aiohttp.__version__,
        "orjson": orjson.__version__,
        "kernel": platform.release(),
    }


def _fmt(value: Any, digits: int = 1) -> str:
    """A table cell: thousands separators, fixed digits, a dash for None."""
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def to_markdown(report: Report) -> str:
    """The report as markdown: headline figures, then every run."""
    fig = report["figures"]
    m = report["machine"]
    lines = [
        f"# llms gateway benchmark ({report['mode']}{', quick' if report['quick'] else ''})",
        "",
        f"- when: {report['started_at']}",
        f"- command: `{report['command']}`",
        f"- machine: {m['cpu_model']}, {m['cores']} cores ({m['cores_usable']} usable), "
        f"Python {m['python']}, aiohttp {m['aiohttp']}, orjson {m['orjson']}, "
        f"Linux {m['kernel']}",
        f"- gateway: {report['gateway'].get('stop', 'not started')}",
        "",
        "| figure | value |",
        "|---|---|",
        f"| gateway CPU per relayed chunk (throughput) | {_fmt(fig['gateway_cpu_us_per_chunk'], 2)}"
        " µs |",
        "| gateway CPU per streamed request (throughput) | "
        f"{_fmt(fig['gateway_cpu_us_per_request_stream'])} µs |",
        "| gateway CPU per request (non-stream) | "
        f"{_fmt(fig['gateway_cpu_us_per_request_nonstream'])} µs |",
        f"| added TTFT p50 / p99 (latency) | {_fmt(fig['added_ttft_p50_ms'], 3)} / "
        f"{_fmt(fig['added_ttft_p99_ms'], 3)} ms |",
        f"| added gap p99 (latency) | {_fmt(fig['added_gap_p99_ms'], 3)} ms |",
        f"| fake upstream CPU per chunk (throughput, direct) | "
        f"{_fmt(fig['upstream_cpu_us_per_chunk'], 2)} µs |",
        f"| load generator CPU per chunk (throughput, direct) | "
        f"{_fmt(fig['client_cpu_us_per_chunk'], 2)} µs |",
    ]
    for name, rps in fig["rps"].items():
        lines.append(
            f"| {name} req/s direct / gateway (ratio) | {_fmt(rps['direct'])} / "
            f"{_fmt(rps['gateway'])} ({_fmt(rps['ratio'], 3)}) |"
        )
    lines += [f"| errors | {fig['errors']} |", "", _runs_table(report), ""]
    samples = [
        f"- {name}/{run}: {sample}"
        for name, runs in report["scenarios"].items()
        for run in ("direct", "gateway")
        for sample in _get(runs, run, "error_samples") or []
    ]
    if samples:
        lines += ["## Errors (first few per run)", "", *samples, ""]
    return "\n".join(lines)


def _runs_table(report: Report) -> str:
    """One row per run with its raw figures."""
    head = (
        "| scenario | run | settings | ok | err | req/s | TTFT p50/p99 ms | gap p50/p99 ms "
        "| total p99 ms | gw CPU µs/chunk | gw CPU µs/req | upstream µs/chunk | client µs/chunk |"
    )
    rows = [head, "|" + "---|" * 13]
    for name, runs in report["scenarios"].items():
        s = runs["settings"]
        settings = (
            f"{s['model']} {'stream' if s['stream'] else 'non-stream'} "
            f"n={s['requests']} c={s['concurrency']}"
        )
        for run in ("direct", "gateway"):
            r = runs.get(run)
            if r is None:
                continue
            per_chunk = "us_per_chunk" if s["stream"] else "us_per_request"
            rows.append(
                " | ".join(
                    [
                        f"| {name}",
                        run,
                        settings,
                        str(r["requests_ok"]),
                        str(r["errors"]),
                        _fmt(r["rps"]),
                        f"{_fmt(r['ttft_ms']['p50'], 3)} / {_fmt(r['ttft_ms']['p99'], 3)}",
                        f"{_fmt(r['gap_ms']['p50'], 3)} / {_fmt(r['gap_ms']['p99'], 3)}",
                        _fmt(r["total_ms"]["p99"], 2),
                        _fmt(_get(r, "cpu", "gateway", "us_per_chunk"), 2),
                        _fmt(_get(r, "cpu", "gateway", "us_per_request")),
                        _fmt(_get(r, "cpu", "upstream", per_chunk), 2),
                        _fmt(_get(r, "cpu", "client", per_chunk), 2) + " |",
                    ]
                )
            )
    note = "(non-stream rows: upstream and client columns are µs per request)"
    return "\n".join([*rows, "", note])


def save(report: Report, directory: Path) -> tuple[Path, Path]:
    """Write latest.json and latest.md into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    json_path = directory / "latest.json"
    md_path = directory / "latest.md"
    json_path.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2) + b"\n")
    md_path.write_text(to_markdown(report))
    return json_path, md_path
