"""One process tallies its metrics in plain floats and sets them at scrape time: the exposition
must be the one that adding to prometheus-client's children at once gives (workers do that).
And `timing.measures`, which both metrics and the request log read, must give what the six
formulas it replaced gave."""

from __future__ import annotations

import math
import random

from prometheus_client import generate_latest

from llms.adapters.usage import from_count
from llms.config import Config
from llms.errors import UpstreamError
from llms.providers import Providers
from llms.telemetry import timing
from llms.telemetry.metrics import LATENCY_BUCKETS, Metrics, can_tally
from llms.telemetry.record import COUNT_TOKENS, RequestRecord
from tests.conftest import gateway_config

COUNTS: list[object] = [None, 0, 1, 2, 50, 7.0, 2.5, -3, True, 2**63, 2**63 - 1, "12"]


def config() -> Config:
    provider = {"type": "openai", "base_url": "http://127.0.0.1:9/v1", "api_key": "x"}
    return gateway_config(
        {"a": {**provider, "models": ["m", "n"]}, "b": {**provider, "models": ["m"]}}
    )


def maybe(rng: random.Random, value: float) -> float | None:
    return None if rng.random() < 0.2 else value


def a_record(rng: random.Random, i: int) -> RequestRecord:
    """Any record the handlers can finish, odd values included."""
    started = rng.uniform(0, 1e5)
    record = RequestRecord(
        request_id=f"r{i}",
        model=rng.choice(["m", "n", "not-routed", ""]),
        stream=rng.random() < 0.7,
        started=started,
        wall=1.7e9 + i,
        provider=rng.choice(["a", "b", None]),
        status=rng.choice([200, 200, 200, 400, 429, 502]),
        endpoint=rng.choice(["/v1/chat/completions"] * 8 + [COUNT_TOKENS]),
    )
    record.first_output = maybe(rng, started + rng.expovariate(5))
    record.ended = maybe(rng, started + rng.expovariate(1) - rng.choice([0, 0, 0, 2]))
    record.committed = maybe(rng, started + rng.expovariate(10))
    record.attempt_sent = maybe(rng, started + rng.expovariate(100))
    record.upstream_sent = maybe(rng, started + rng.expovariate(100))
    record.chunks = rng.choice([0, 1, 2, 3, 50, 1000])
    if rng.random() < 0.3:  # on a bucket's bound: counted in that bucket, not the next
        record.started = record.attempt_sent = record.upstream_sent = 0.0
        record.first_output = record.committed = rng.choice(LATENCY_BUCKETS)
        record.ended = rng.choice(LATENCY_BUCKETS)
    if rng.random() < 0.8:
        record.usage = {  # type: ignore[typeddict-item]
            "prompt_tokens": rng.choice(COUNTS),
            "completion_tokens": rng.choice(COUNTS),
        }
    if rng.random() < 0.2:
        record.failed(UpstreamError(f"e{i % 3}", code=rng.choice(["x", "y", None])))
    record.disconnected = rng.random() < 0.1
    if record.endpoint == COUNT_TOKENS:  # never a stream
        record.stream = False
        record.extra["token_count"] = rng.choice(["exact", "estimate"])
    return record


def exposition(metrics: Metrics) -> list[str]:
    """The scrape, without the `_created` samples (each registry's own creation times)."""
    text = generate_latest(metrics.registry).decode()
    return [line for line in text.splitlines() if "_created" not in line]


def test_a_tallied_scrape_is_the_scrape_of_children_added_to_at_once() -> None:
    rng = random.Random(18)
    providers = Providers(config())
    tallied, direct = Metrics(providers), Metrics(providers, tally=False)
    assert tallied._tally and not direct._tally
    for step in range(3):
        for i in range(400):
            record = a_record(rng, i)
            for metrics in (tallied, direct):
                if record.stream:
                    metrics.stream_started()
                metrics.finish(record)
        # Some streams still open: the gauge is folded like the rest.
        for metrics in (tallied, direct):
            metrics.stream_started()
        got, want = exposition(tallied), exposition(direct)
        assert got == want, f"scrape {step}"
        assert exposition(tallied) == want, "a second scrape changes nothing"
    # The registry's other readers see the tallies too.
    labels = {"model": "m", "provider": "a", "status": "200"}
    seen = tallied.registry.get_sample_value("llms_requests_total", labels)
    assert seen is not None and seen == direct.registry.get_sample_value(
        "llms_requests_total", labels
    )
    assert tallied.registry.get_sample_value("llms_active_streams") == 3


def reference(record: RequestRecord) -> tuple[object, ...]:
    """The six formulas as they were written one function each, and the counts' check."""
    usage = record.usage
    prompt = from_count(usage.get("prompt_tokens")) if usage is not None else None
    completion = from_count(usage.get("completion_tokens")) if usage is not None else None
    first, ended = record.first_output, record.ended
    ttft = None if first is None else max(0.0, first - record.started)
    duration = max(0.0, (ended or record.started) - record.started)
    upstream = None
    if record.attempt_sent is not None and record.committed is not None:
        upstream = max(0.0, record.committed - record.attempt_sent)
    overhead = None
    if record.upstream_sent is not None and record.committed is not None and first is not None:
        before = record.upstream_sent - record.started
        overhead = max(0.0, before) + max(0.0, first - record.committed)
    gap = None
    if first is not None and ended is not None and record.chunks >= 2:
        gap = max(0.0, ended - first) / (record.chunks - 1)
    rate = None
    if usage is not None and first is not None and ended is not None:
        tokens = from_count(usage.get("completion_tokens")) or 0
        if tokens >= 2 and ended - first > 0:
            rate = (tokens - 1) / (ended - first)
    return duration, ttft, gap, upstream, overhead, rate, prompt, completion


def test_measures_are_the_formulas_they_replaced() -> None:
    rng = random.Random(5)
    records = [a_record(rng, i) for i in range(3000)]
    nan = a_record(rng, 0)
    nan.first_output = nan.ended = nan.committed = math.nan
    records.append(nan)
    for record in records:
        got, want = timing.measures(record), reference(record)
        assert [repr(v) for v in got] == [repr(v) for v in want], record
    record = records[0]
    assert timing.measures(record).duration == reference(record)[0]
    assert timing.measures(record).ttft == reference(record)[1]


def test_a_model_is_unknown_only_while_it_is_not_routed() -> None:
    """What a record adds to is kept by its raw model, provider and status, but only for a
    routed model: one that discovery adds later gets its own label from then on."""
    providers = Providers(config())
    metrics = Metrics(providers)

    def requests(model: str) -> float | None:
        labels = {"model": model, "provider": "a", "status": "200"}
        return metrics.registry.get_sample_value("llms_requests_total", labels)

    def finish() -> None:
        metrics.finish(RequestRecord("r", "late", False, 0.0, 0.0, provider="a", ended=1.0))

    finish()
    finish()
    assert (requests("unknown"), requests("late")) == (2, None)
    providers.routes["late"] = providers.routes["m"]  # as a rebuild after discovery does
    finish()
    assert (requests("unknown"), requests("late")) == (2, 1)
    del providers.routes["late"]
    finish()
    assert (requests("unknown"), requests("late")) == (3, 1)


def test_the_installed_prometheus_client_can_be_tallied() -> None:
    """The tallies set prometheus-client's internals; a release that moved them would turn the
    fast path off (metrics added at once, still right), which this says out loud."""
    assert can_tally()
    metrics = Metrics(Providers(config()))
    assert metrics._tally
