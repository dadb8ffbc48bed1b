"""The adapter scenarios' headline figures and their rows in the markdown summary.

For each native protocol: the gateway's CPU per relayed chunk (the client-side OpenAI chunks,
as in the throughput scenario), its ratio to the OpenAI ``throughput`` scenario (same shape,
size and concurrency), the floor (fake upstream and load generator CPU per chunk in the direct
run, which speaks the native protocol), req/s direct and through the gateway, and errors.
"""

from __future__ import annotations

from typing import Any

from bench.native import NATIVE

_LABELS = {"ollama": "Ollama NDJSON", "anthropic": "Anthropic SSE", "gemini": "Gemini SSE"}


def _get(node: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(node, dict) or node.get(key) is None:
            return None
        node = node[key]
    return node


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


def adapter_figures(scenarios: dict[str, Any]) -> dict[str, Any]:
    """Per protocol whose ``adapter_<protocol>`` scenario ran; None where a run is missing."""
    openai = _get(scenarios, "throughput", "gateway", "cpu", "gateway", "us_per_chunk")
    out: dict[str, Any] = {}
    for protocol in NATIVE:
        name = f"adapter_{protocol}"
        runs = scenarios.get(name)
        if runs is None:
            continue
        chunk = _get(runs, "gateway", "cpu", "gateway", "us_per_chunk")
        direct_rps = _get(runs, "direct", "rps")
        gateway_rps = _get(runs, "gateway", "rps")
        out[protocol] = {
            "scenario": name,
            "gateway_cpu_us_per_chunk": chunk,
            "gateway_cpu_us_per_request": _get(runs, "gateway", "cpu", "gateway", "us_per_request"),
            "openai_gateway_cpu_us_per_chunk": openai,
            "ratio_to_openai": _ratio(chunk, openai),
            "upstream_cpu_us_per_chunk_direct": _get(
                runs, "direct", "cpu", "upstream", "us_per_chunk"
            ),
            "client_cpu_us_per_chunk_direct": _get(runs, "direct", "cpu", "client", "us_per_chunk"),
            "rps_direct": direct_rps,
            "rps_gateway": gateway_rps,
            "rps_ratio": _ratio(gateway_rps, direct_rps),
            "errors": sum(run.get("errors", 0) for run in runs.values() if isinstance(run, dict)),
        }
    return out


def _fmt(value: Any, digits: int) -> str:
    if value is None:
        return "—"
    return f"{value:,.{digits}f}" if isinstance(value, float) else str(value)


def adapter_rows(adapters: dict[str, Any]) -> list[str]:
    """One summary-table row per adapter that ran."""
    rows = []
    for protocol, a in adapters.items():
        rows.append(
            f"| adapter {protocol} ({_LABELS.get(protocol, protocol)}): gateway CPU per chunk "
            "(x throughput's) · req/s direct / gateway · errors | "
            f"{_fmt(a['gateway_cpu_us_per_chunk'], 2)} µs ({_fmt(a['ratio_to_openai'], 3)}x) · "
            f"{_fmt(a['rps_direct'], 1)} / {_fmt(a['rps_gateway'], 1)} · {a['errors']} |"
        )
    return rows
