"""The headline figures of a report, computed from its scenario and resume runs."""

from __future__ import annotations

from typing import Any

from bench.completions_report import completions_figures
from bench.embeddings_report import embeddings_figures
from bench.messages_report import messages_figures
from bench.native_report import adapter_figures
from bench.responses_report import responses_figures

Report = dict[str, Any]

RESUME_RUNS = ("direct", "memory", "redis_same", "redis_across")


def get(report: Report, *path: str) -> Any:
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


def _ratio(a: float | None, b: float | None) -> float | None:
    """a / b, or None if either is missing or b is zero."""
    return None if a is None or not b else a / b


def _errors(runs: Report) -> int:
    """Failed requests over every run of one scenario (or of the resume rounds)."""
    return sum(
        run.get("errors", 0) for run in runs.values() if isinstance(run, dict) and "errors" in run
    )


def figures(scenarios: Report, resume: Report) -> Report:
    """The headline figures; None where a run was not made (``--direct-only``, no Redis)."""
    lat = scenarios.get("latency", {})
    rps = {}
    for name, runs in scenarios.items():
        direct, gateway = get(runs, "direct", "rps"), get(runs, "gateway", "rps")
        rps[name] = {"direct": direct, "gateway": gateway, "ratio": _ratio(gateway, direct)}
    default_chunk = get(scenarios, "throughput", "gateway", "cpu", "gateway", "us_per_chunk")
    resumable_chunk = get(scenarios, "resumable", "gateway", "cpu", "gateway", "us_per_chunk")
    redis_run = get(scenarios, "resumable_redis", "gateway") or {}
    redis_chunk = get(redis_run, "cpu", "gateway", "us_per_chunk")
    return {
        "gateway_cpu_us_per_chunk": default_chunk,
        "gateway_cpu_us_per_request_stream": get(
            scenarios, "throughput", "gateway", "cpu", "gateway", "us_per_request"
        ),
        "gateway_cpu_us_per_request_nonstream": get(
            scenarios, "nonstream", "gateway", "cpu", "gateway", "us_per_request"
        ),
        "added_ttft_p50_ms": _diff(
            get(lat, "gateway", "ttft_ms", "p50"), get(lat, "direct", "ttft_ms", "p50")
        ),
        "added_ttft_p99_ms": _diff(
            get(lat, "gateway", "ttft_ms", "p99"), get(lat, "direct", "ttft_ms", "p99")
        ),
        "added_gap_p99_ms": _diff(
            get(lat, "gateway", "gap_ms", "p99"), get(lat, "direct", "gap_ms", "p99")
        ),
        "upstream_cpu_us_per_chunk": get(
            scenarios, "throughput", "direct", "cpu", "upstream", "us_per_chunk"
        ),
        "client_cpu_us_per_chunk": get(
            scenarios, "throughput", "direct", "cpu", "client", "us_per_chunk"
        ),
        "resumable_cpu_us_per_chunk": resumable_chunk,
        "resumable_cpu_ratio": _ratio(resumable_chunk, default_chunk),
        "redis_gateway_cpu_us_per_chunk": redis_chunk,
        "redis_gateway_cpu_ratio": _ratio(redis_chunk, default_chunk),
        "redis_server_cpu_us_per_chunk": get(redis_run, "cpu", "redis", "us_per_chunk"),
        "redis_commands_per_event": get(redis_run, "redis", "commands_per_event"),
        "redis_commands_by_name_per_event": get(redis_run, "redis", "per_event"),
        "resume_first_byte_ms": {
            name: {q: get(resume, name, "first_byte_ms", q) for q in ("p50", "p99")}
            for name in RESUME_RUNS
            if name in resume
        },
        "rps": rps,
        "adapters": adapter_figures(scenarios),
        "responses": responses_figures(scenarios),
        "messages": messages_figures(scenarios),
        "embeddings": embeddings_figures(scenarios),
        "completions": completions_figures(scenarios),
        "errors": sum(_errors(runs) for runs in scenarios.values()) + _errors(resume),
    }


def fmt(value: Any, digits: int = 1) -> str:
    """A table cell: thousands separators, fixed digits, a dash for None."""
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)
