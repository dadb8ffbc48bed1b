"""The embeddings scenario's headline figures and its row in the markdown summary.

``embeddings`` (``POST /v1/embeddings``, 8 texts a request, base64 vectors of 1536 float32
values; bench.embeddings_load) is measured like non-stream chat: the gateway's CPU per request,
against the non-stream chat runs of the same shape that bracket it on the same gateway
(``chat_before`` and ``chat_after``, their mean) and against the ``nonstream`` scenario; its
req/s direct and through the gateway, and its errors.
"""

from __future__ import annotations

from typing import Any

from bench.responses_report import BRACKET

__all__ = ["SCENARIOS", "embeddings_figures", "embeddings_rows"]

SCENARIOS = {"embeddings": "POST /v1/embeddings, 8 inputs, base64 1536-d"}


def _get(node: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(node, dict) or node.get(key) is None:
            return None
        node = node[key]
    return node


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


def embeddings_figures(scenarios: dict[str, Any]) -> dict[str, Any]:
    """Per embeddings scenario that ran; None where a run is missing (``--direct-only``)."""
    nonstream = _get(scenarios, "nonstream", "gateway", "cpu", "gateway", "us_per_request")
    out: dict[str, Any] = {}
    for name in SCENARIOS:
        runs = scenarios.get(name)
        if runs is None:
            continue
        request = _get(runs, "gateway", "cpu", "gateway", "us_per_request")
        bracket = [_get(runs, run, "cpu", "gateway", "us_per_request") for run in BRACKET]
        paired = None if None in bracket else sum(bracket) / len(bracket)
        out[name] = {
            "gateway_cpu_us_per_request": request,
            "chat_gateway_cpu_us_per_request": paired,
            "chat_before_after_us_per_request": bracket,
            "ratio_to_chat": _ratio(request, paired),
            "nonstream_gateway_cpu_us_per_request": nonstream,
            "ratio_to_nonstream": _ratio(request, nonstream),
            "rps_direct": _get(runs, "direct", "rps"),
            "rps_gateway": _get(runs, "gateway", "rps"),
            "errors": sum(run.get("errors", 0) for run in runs.values() if isinstance(run, dict)),
        }
    return out


def _fmt(value: Any, digits: int) -> str:
    if value is None:
        return "—"
    return f"{value:,.{digits}f}" if isinstance(value, float) else str(value)


def embeddings_rows(figures: dict[str, Any]) -> list[str]:
    """One summary-table row per embeddings scenario that ran."""
    return [
        f"| {name} ({SCENARIOS[name]}): gateway CPU per request vs non-stream chat's just "
        "before and after (ratio; x nonstream's) · req/s direct / gateway · errors | "
        f"{_fmt(f['gateway_cpu_us_per_request'], 1)} µs vs chat "
        f"{_fmt(f['chat_gateway_cpu_us_per_request'], 1)} µs ({_fmt(f['ratio_to_chat'], 3)}x; "
        f"{_fmt(f['ratio_to_nonstream'], 3)}x) · {_fmt(f['rps_direct'], 0)} / "
        f"{_fmt(f['rps_gateway'], 0)} · {f['errors']} |"
        for name, f in figures.items()
    ]
