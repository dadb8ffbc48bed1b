"""How the Responses and Messages scenarios' ratio to chat is made from their runs: the bracket
(chat just before and just after) and the alternating rounds that follow it. No programs run."""

from __future__ import annotations

from typing import Any

from bench.responses_report import responses_figures, responses_rows


def _run(us_per_chunk: float) -> dict[str, Any]:
    return {"cpu": {"gateway": {"us_per_chunk": us_per_chunk, "us_per_request": 50 * us_per_chunk}}}


def _round(api: float, chat: float) -> dict[str, Any]:
    return {"api": {"us_per_chunk": api}, "chat": {"us_per_chunk": chat}}


def test_each_run_is_compared_with_the_chat_runs_either_side() -> None:
    scenarios = {
        "throughput": {"gateway": _run(10.0)},
        "responses": {
            "chat_before": _run(10.0),
            "gateway": {**_run(13.0), "requests_ok": 10, "errors": 0},
            "chat_after": _run(16.0),
            # After chat_after (16): api 18 then chat 14; api 12 then chat 10; api 11.
            "rounds": {
                "runs": [_round(18.0, 14.0), _round(12.0, 10.0), _round(11.0, 12.0)],
                "errors": 2,
            },
        },
    }
    figures = responses_figures(scenarios)["responses"]
    assert figures["ratios_to_chat"] == [13 / 13, 18 / 15, 12 / 12, 11 / 11]
    # The median of the four, not the bracket's alone nor the runs' mean.
    assert figures["ratio_to_chat"] == 1.0
    assert figures["chat_before_after_us_per_chunk"] == [10.0, 16.0]
    assert figures["errors"] == 2
    row = responses_rows({"responses": figures})[0]
    assert "1.000x meets, the median of 4 alternating runs: 1.00, 1.20, 1.00, 1.00" in row


def test_without_rounds_the_bracket_alone_is_the_ratio() -> None:
    scenarios = {
        "responses_nostore": {
            "chat_before": _run(10.0),
            "gateway": {**_run(14.0), "requests_ok": 10},
            "chat_after": _run(10.0),
        }
    }
    figures = responses_figures(scenarios)["responses_nostore"]
    assert figures["ratios_to_chat"] == [1.4]
    assert figures["ratio_to_chat"] == 1.4
    row = responses_rows({"responses_nostore": figures})[0]
    assert "1.400x misses;" in row and "alternating" not in row
