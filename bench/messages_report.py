"""The Messages scenario's headline figures and its row in the markdown summary.

``messages`` (Anthropic's ``POST /v1/messages`` streamed): the gateway's CPU per relayed chunk
(one per ``text_delta`` event) and its ratio to chat completions in the same run, to the chat
runs of the same shape that bracket it on the same gateway (``chat_before`` and ``chat_after``,
their mean, and the alternating rounds after them: the median of the runs' ratios) and to
the ``throughput`` scenario; issue 13's target: at most 1.3x. The figures are
those of the Responses scenarios (bench.responses_report), computed the same way. Chat counts
its role and finish chunks as relayed chunks too (52 per answer against 50 text deltas), so the
ratio leans against Messages by that much.
"""

from __future__ import annotations

from typing import Any

from bench.responses_report import TARGET_RATIO, responses_figures, responses_rows

__all__ = ["SCENARIOS", "TARGET_RATIO", "messages_figures", "messages_rows"]

SCENARIOS = {
    "messages": "Anthropic Messages stream, POST /v1/messages",
    "messages_native": "Messages passed through to an anthropic provider (llms/native.py)",
}


def messages_figures(scenarios: dict[str, Any]) -> dict[str, Any]:
    """Per Messages scenario that ran; None where a run is missing (``--direct-only``)."""
    return responses_figures(scenarios, SCENARIOS)


def messages_rows(figures: dict[str, Any]) -> list[str]:
    """One summary-table row per Messages scenario that ran, with the 1.3x verdict."""
    return responses_rows(figures, SCENARIOS, SCENARIOS)
