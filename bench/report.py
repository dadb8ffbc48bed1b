"""Turn load results and CPU samples into JSON-able figures, and save the report files."""

from __future__ import annotations

import math
import os
import platform
import sys
from pathlib import Path

import aiohttp
import orjson

from bench.figures import Report
from bench.load import LoadResult
from bench.markdown import to_markdown
from bench.procs import CpuSample
from bench.resume import ResumeResult


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
        "events": result.events,
        "status_events": result.status_events,
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


def summarise_resume(result: ResumeResult, start: str, resume: str | None) -> Report:
    """The timed resume rounds of one (start, resume) pair as plain JSON-able figures."""
    return {
        "started_on": start,
        "resumed_on": resume,
        "requests_ok": result.ok,
        "errors": sum(result.errors.values()),
        "error_kinds": dict(result.errors),
        "error_samples": result.samples,
        "capped": result.capped,
        "wall_s": result.wall_s,
        "first_byte_ms": _ms(result.first_byte, (50, 90, 99)),
        "total_ms": _ms(result.totals, (50, 99)),
        "events_replayed": result.replayed,
        "replicas_seen": sorted({f"{a}->{b}" for a, b in result.replicas}),
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


def save(report: Report, directory: Path) -> tuple[Path, Path]:
    """Write latest.json and latest.md into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    json_path = directory / "latest.json"
    md_path = directory / "latest.md"
    json_path.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2) + b"\n")
    md_path.write_text(to_markdown(report))
    return json_path, md_path
