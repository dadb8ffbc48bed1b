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

from bench.responses_report import responses_figures, responses_rows

__all__ = ["SCENARIOS", "completions_figures", "completions_rows"]

SCENARIOS = {"completions": "legacy completions stream, POST /v1/completions, passed through"}


def completions_figures(scenarios: dict[str, Any]) -> dict[str, Any]:
    """Per Completions scenario that ran; None where a run is missing (``--direct-only``)."""
    return responses_figures(scenarios, SCENARIOS)


def completions_rows(figures: dict[str, Any]) -> list[str]:
    """One summary-table row per Completions scenario that ran."""
    return responses_rows(figures, SCENARIOS, ())
