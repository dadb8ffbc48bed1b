"""The Completions scenario's headline figures and its row in the markdown summary.

``completions`` (OpenAI's legacy ``POST /v1/completions`` streamed, passed through to the
upstream, which serves it): the gateway's CPU per relayed chunk and its ratio to chat
completions, computed as the Responses scenarios' are (bench.responses_report): to the chat
runs of the same shape that bracket it on the same gateway and to the ``throughput`` scenario.
No target: the figure says what passthrough costs next to chat's relay. Chat counts a role chunk
more per answer (52 against 51), so the ratio leans against completions by that much.
"""

from __future__ import annotations

from typing import Any

from bench.responses_report import responses_figures

__all__ = ["SCENARIOS", "completions_figures", "completions_rows"]

SCENARIOS = {"completions": "legacy completions stream, POST /v1/completions, passed through"}


def completions_figures(scenarios: dict[str, Any]) -> dict[str, Any]:
    """Per Completions scenario that ran; None where a run is missing (``--direct-only``)."""
    return responses_figures(scenarios, SCENARIOS)


def fmt(value: Any, digits: int) -> str:
    """A table cell: thousands separators, fixed digits, a dash for None."""
    if value is None:
        return "—"
    return f"{value:,.{digits}f}" if isinstance(value, float) else str(value)


def completions_rows(figures: dict[str, Any]) -> list[str]:
    """One summary-table row per Completions scenario that ran (no target: no verdict)."""
    return [
        f"| {name} ({SCENARIOS[name]}): gateway CPU per relayed chunk vs chat's just before "
        "and after (ratio; x throughput's) · per request · events per answer · errors | "
        f"{fmt(f['gateway_cpu_us_per_chunk'], 2)} µs vs chat "
        f"{fmt(f['chat_gateway_cpu_us_per_chunk'], 2)} µs ({fmt(f['ratio_to_chat'], 3)}x; "
        f"{fmt(f['ratio_to_throughput'], 3)}x) · {fmt(f['gateway_cpu_us_per_request'], 1)} µs · "
        f"{fmt(f['events_per_answer'], 0)} · {f['errors']} |"
        for name, f in figures.items()
    ]
