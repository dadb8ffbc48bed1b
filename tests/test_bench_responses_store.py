"""``python -m bench.responses_store``: the store microbenchmark runs, reads every record back,
and reports each kind's figures (no timing is asserted)."""

from __future__ import annotations

import math
import re

import pytest

from bench import responses_store


def test_store_microbenchmark_reports_every_kind(capsys: pytest.CaptureFixture[str]) -> None:
    assert responses_store.main(["--puts", "40", "--concurrency", "8", "--rounds", "1"]) == 0
    out = capsys.readouterr().out
    for kind in responses_store.KINDS:
        found = re.search(rf"median {kind} *: *([0-9.]+) us CPU per put", out)
        assert found is not None, out
        assert math.isfinite(float(found.group(1)))
    batches = re.search(r"round 0 store .*, ([0-9.]+) puts a batch", out)
    assert batches is not None and float(batches.group(1)) >= 1, out


def test_store_microbenchmark_fails_when_a_record_is_not_stored(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def lost(self: responses_store.Counted, record: object) -> None:
        return None

    monkeypatch.setattr(responses_store.Counted, "put", lost)
    with pytest.raises(AssertionError, match="was not stored whole"):
        responses_store.main(["--puts", "10", "--concurrency", "2", "--rounds", "1"])
