"""Prometheus metrics, one registry per app (never the process-wide default registry).

Labels are bounded: models outside the routing table are "unknown", a request without a
provider is "none", and every label keeps at most `LABEL_LIMIT` distinct values (later new
values become "other"). Stream ids and request ids are never labels.

In one process (no `--workers`), what every answer adds (the request counter, the six
histograms, the token counters, the active streams) is tallied in plain floats, in the same
order and arithmetic prometheus-client would use, and set into the labelled children when the
registry is collected (`_Fold`, registered first): a scrape shows the very same values, and an
answer costs a few float additions instead of some twenty lock-guarded calls into the client.
Workers write each value to their files at once, as another worker may be the one scraped.
"""

from __future__ import annotations

import functools
from bisect import bisect_left
from collections.abc import Iterable
from typing import NamedTuple, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from llms.providers import Providers
from llms.telemetry import timing
from llms.telemetry.record import COUNT_TOKENS, RequestRecord

LABEL_LIMIT = 200
CIRCUIT_VALUES = {"closed": 0.0, "half_open": 1.0, "open": 2.0}

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
GAP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
OVERHEAD_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    1.0,
)
RATE_BUCKETS = (1.0, 5.0, 10.0, 20.0, 35.0, 50.0, 75.0, 100.0, 150.0, 250.0, 500.0, 1000.0, 5000.0)


class LabelCap:
    """At most `limit` distinct values for one label; any later new value becomes "other"."""

    def __init__(self, limit: int = LABEL_LIMIT) -> None:
        self.limit = limit
        self.seen: set[str] = set()

    def __call__(self, value: str) -> str:
        if value in self.seen:
            return value
        if len(self.seen) >= self.limit:
            return "other"
        self.seen.add(value)
        return value


class _Observes(Protocol):
    def observe(self, amount: float) -> None: ...


class _Increments(Protocol):
    def inc(self, amount: float = 1) -> None: ...


class _Tally:
    """A counter's (or gauge's) value as a plain float; `fold` sets it into the child."""

    __slots__ = ("_child", "value")

    def __init__(self, child: Counter | Gauge) -> None:
        self._child = child
        self.value = 0.0  # the client's own start, so the sums are the same floats

    def inc(self, amount: float = 1) -> None:
        self.value += amount

    def fold(self) -> None:
        self._child._value.set(self.value)


class _HistogramTally:
    """A histogram child's sum and per-bucket counts as plain floats; `fold` sets them.

    `observe` is prometheus-client's: the sum grows by the amount, and the first bucket whose
    upper bound is at least the amount counts one (none for NaN, as there).
    """

    __slots__ = ("_bounds", "_child", "buckets", "sum")

    def __init__(self, child: Histogram) -> None:
        self._child = child
        self._bounds = tuple(child._upper_bounds)
        self.buckets = [0.0] * len(self._bounds)
        self.sum = 0.0

    def observe(self, amount: float) -> None:
        self.sum += amount
        bounds = self._bounds
        i = bisect_left(bounds, amount)  # < len(bounds): the last bound is +Inf
        if amount <= bounds[i]:  # False for NaN only (bisect_left's 0)
            self.buckets[i] += 1.0

    def fold(self) -> None:
        child = self._child
        child._sum.set(self.sum)
        for value, count in zip(child._buckets, self.buckets, strict=True):
            value.set(count)


@functools.cache
def can_tally() -> bool:
    """Whether this prometheus-client keeps a child's values where `_Tally` and
    `_HistogramTally` set them. Those are its internals, not its API: should a release move
    them, metrics are added to the children at once instead (as workers do), slower but the
    same. Tried once, on a registry of its own."""
    registry = CollectorRegistry(auto_describe=False)
    counter = Counter("probe", "", registry=registry)
    histogram = Histogram("probe_seconds", "", registry=registry, buckets=(1.0,))
    try:
        counted, observed = _Tally(counter), _HistogramTally(histogram)
        counted.inc(2.0)
        observed.observe(0.5)
        counted.fold()
        observed.fold()
    except (AttributeError, TypeError, ValueError):
        return False
    sample = registry.get_sample_value
    return (
        sample("probe_total") == 2.0
        and sample("probe_seconds_bucket", {"le": "1.0"}) == 1.0
        and sample("probe_seconds_count") == 1.0
        and sample("probe_seconds_sum") == 0.5
    )


class _Fold(Collector):
    """Registered before the families: sets the tallies into their children, then yields
    nothing, so that the families collected after it report what the tallies hold. (A
    `restricted_registry` collects only collectors with names, so not this one: /metrics,
    `generate_latest` and `get_sample_value` read the whole registry.)"""

    def __init__(self, tallies: list[_Tally | _HistogramTally]) -> None:
        self._tallies = tallies

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterable[Metric]:
        for tally in self._tallies:
            tally.fold()
        return []


class _Children(NamedTuple):
    """What one (model, provider) adds to, looked up once (labels() is not free): the labelled
    children themselves (workers), or their tallies (one process)."""

    duration: _Observes
    ttft: _Observes
    chunk_gap: _Observes
    upstream_latency: _Observes
    overhead: _Observes
    tokens_per_second: _Observes
    prompt_tokens: _Increments
    completion_tokens: _Increments


class _Circuits(Collector):
    """Read at scrape time from the live circuit breakers."""

    def __init__(self, providers: Providers) -> None:
        self._providers = providers

    def collect(self) -> Iterable[Metric]:
        providers = self._providers
        state = GaugeMetricFamily(
            "llms_circuit_state",
            "Circuit breaker per provider: 0 closed, 1 half-open (probing), 2 open (skipped).",
            labels=["provider"],
        )
        failures = GaugeMetricFamily(
            "llms_circuit_consecutive_failures",
            "Consecutive failures counted by each provider's circuit breaker.",
            labels=["provider"],
        )
        now = providers.now()
        for name, breaker in providers.breakers.items():
            state.add_metric([name], CIRCUIT_VALUES[breaker.state(now)])
            failures.add_metric([name], float(breaker.failures))
        return [state, failures]


class Metrics:
    """The gateway's metric families; a telemetry sink (`finish`) plus a few direct counters.

    `registry` is what `/metrics` exposes. With `multiprocess_dir` (a worker of `llms serve
    --workers N`, started with PROMETHEUS_MULTIPROC_DIR set to it) every worker writes its
    values to files there and `registry` reads all of them: a scrape that lands on any worker
    reports the whole gateway. The circuit breakers are each worker's own.
    """

    def __init__(
        self, providers: Providers, multiprocess_dir: str | None = None, *, tally: bool = True
    ) -> None:
        self.providers = providers
        self.registry = registry = CollectorRegistry(auto_describe=True)
        # One process tallies (see the module's doc); `tally=False` adds to the children at
        # once, as workers do (the tests compare the two).
        self._tally = tally and multiprocess_dir is None and can_tally()
        self._tallies: list[_Tally | _HistogramTally] = []
        if self._tally:
            registry.register(_Fold(self._tallies))  # first: before any family is collected
        self._models = LabelCap()
        self._providers = LabelCap()
        self._statuses = LabelCap()
        self._types = LabelCap()
        self._codes = LabelCap()
        model_provider = ["model", "provider"]
        self.requests = Counter(
            "llms_requests",
            "Chat requests finished, by model, provider and HTTP status (200 also for streams "
            "that ended with an error event; see llms_errors_total).",
            ["model", "provider", "status"],
            registry=registry,
        )
        self.errors = Counter(
            "llms_errors",
            "Chat requests that ended with an error, by OpenAI error type and code.",
            ["model", "provider", "type", "code"],
            registry=registry,
        )
        self.active_streams = Gauge(
            "llms_active_streams",
            "Streaming chat requests in progress (resumable ones until their generation ends).",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.ttft = Histogram(
            "llms_time_to_first_token_seconds",
            "Request arrival to the first output written to the client.",
            model_provider,
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.chunk_gap = Histogram(
            "llms_chunk_gap_seconds",
            "Mean gap between chunks, one observation per stream: "
            "(end - first output) / (chunks - 1).",
            model_provider,
            buckets=GAP_BUCKETS,
            registry=registry,
        )
        self.upstream_latency = Histogram(
            "llms_upstream_latency_seconds",
            "The committed attempt's upstream request sent to its first output chunk received.",
            model_provider,
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.overhead = Histogram(
            "llms_gateway_overhead_seconds",
            "Time to first token spent in the gateway: arrival to the first upstream request "
            "sent, plus the committed first chunk received to written to the client.",
            model_provider,
            buckets=OVERHEAD_BUCKETS,
            registry=registry,
        )
        self.duration = Histogram(
            "llms_request_duration_seconds",
            "Request arrival to the end of the answer.",
            model_provider,
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.tokens_per_second = Histogram(
            "llms_tokens_per_second",
            "Decode rate per request: completion tokens after the first / time after the first.",
            model_provider,
            buckets=RATE_BUCKETS,
            registry=registry,
        )
        self.tokens = Counter(
            "llms_tokens",
            "Tokens reported by the upstreams' usage, by kind (prompt or completion).",
            ["model", "provider", "kind"],
            registry=registry,
        )
        self.retries = Counter(
            "llms_retries",
            "Failed attempts retried on the same provider.",
            model_provider,
            registry=registry,
        )
        self.fallbacks = Counter(
            "llms_fallbacks",
            "Failed attempts followed by the next provider (label: the provider that failed).",
            model_provider,
            registry=registry,
        )
        self.disconnects = Counter(
            "llms_client_disconnects",
            "Clients that left before the end of their answer.",
            ["model"],
            registry=registry,
        )
        self.cancels = Counter(
            "llms_stream_cancels",
            "POST /v1/streams/{id}/cancel requests for a known stream.",
            registry=registry,
        )
        self.resumes = Counter(
            "llms_stream_resumes",
            "GET /v1/streams/{id} requests that found the stream.",
            registry=registry,
        )
        self.token_counts = Counter(
            "llms_token_counts",
            "POST /v1/messages/count_tokens requests, by model, provider asked, HTTP status and "
            "result: exact (the provider counted), estimate (none could, or the provider asked "
            "failed: then its error is in llms_errors_total) or none (an error answer).",
            ["model", "provider", "status", "result"],
            registry=registry,
        )
        self.request_log_dropped = Counter(
            "llms_request_log_dropped",
            "Request log rows dropped: the writer's queue was full or the write failed.",
            registry=registry,
        )
        circuits = _Circuits(providers)
        registry.register(circuits)
        if multiprocess_dir is not None:
            self.registry = CollectorRegistry()
            MultiProcessCollector(self.registry, multiprocess_dir)  # type: ignore[no-untyped-call]
            self.registry.register(circuits)
        self._children: dict[tuple[str, str], _Children] = {}
        # (model, provider, status) -> its llms_requests_total child (labels() is not free)
        self._requests: dict[tuple[str, str, int], _Increments] = {}
        # (model, provider, status) as the record has them -> what it adds to (see _added_to)
        self._routed: dict[tuple[str, str | None, int], tuple[_Increments, _Children]] = {}
        self._streams: _Increments = self._tallied(self.active_streams)

    def model_label(self, model: str) -> str:
        return self._models(model) if model in self.providers.routes else "unknown"

    def provider_label(self, provider: str | None) -> str:
        return self._providers(provider) if provider else "none"

    def _count_finished(self, record: RequestRecord, model: str, provider: str) -> None:
        """A token count: no generation, so none of the chat families but its own (and errors)."""
        status = self._statuses(str(record.status))
        result = str(record.extra.get("token_count", "none"))
        self.token_counts.labels(model, provider, status, result).inc()
        if record.error_type is not None:
            self.errors.labels(
                model,
                provider,
                self._types(record.error_type),
                self._codes(record.error_code or "none"),
            ).inc()

    def _tallied(self, child: Counter | Gauge) -> _Increments:
        if not self._tally:
            return child
        tally = _Tally(child)
        self._tallies.append(tally)
        return tally

    def _tallied_histogram(self, child: Histogram) -> _Observes:
        if not self._tally:
            return child
        tally = _HistogramTally(child)
        self._tallies.append(tally)
        return tally

    def stream_started(self) -> None:
        self._streams.inc()

    def finish(self, record: RequestRecord) -> None:
        if record.endpoint == COUNT_TOKENS:
            model = self.model_label(record.model)
            self._count_finished(record, model, self.provider_label(record.provider))
            return
        raw = (record.model, record.provider, record.status)
        found = self._routed.get(raw)
        if found is None or record.model not in self.providers.routes:
            found = self._added_to(raw)
        requests, children = found
        requests.inc()
        if record.stream:
            self._streams.inc(-1.0)
        if record.error_type is not None or record.disconnected:
            self._failed(record)
        duration, ttft, gap, upstream, overhead, rate, prompt, completion = timing.measures(record)
        children.duration.observe(duration)
        if ttft is not None:
            children.ttft.observe(ttft)
        if gap is not None and record.stream:
            children.chunk_gap.observe(gap)
        if upstream is not None:
            children.upstream_latency.observe(upstream)
        if overhead is not None:
            children.overhead.observe(overhead)
        if rate is not None:
            children.tokens_per_second.observe(rate)
        if record.usage is not None:
            # A counter only goes up: a count that is not one is not counted.
            children.prompt_tokens.inc(prompt or 0)
            children.completion_tokens.inc(completion or 0)

    def _added_to(self, raw: tuple[str, str | None, int]) -> tuple[_Increments, _Children]:
        """What a record of this (model, provider, status) adds to, found by its labels; kept
        by the raw values while the model is routed (an unrouted one is "unknown" only while
        it is, and capped labels never change back)."""
        model_name, provider_name, status = raw
        model, provider = self.model_label(model_name), self.provider_label(provider_name)
        key = (model, provider, status)
        requests = self._requests.get(key)
        if requests is None:
            status_label = self._statuses(str(status))  # once capped, always "other"
            child = self.requests.labels(model, provider, status_label)
            requests = self._requests[key] = self._tallied(child)
        children = self._children.get((model, provider)) or self._new_children(model, provider)
        if model_name in self.providers.routes:
            self._routed[raw] = (requests, children)
        return requests, children

    def _failed(self, record: RequestRecord) -> None:
        model = self.model_label(record.model)
        if record.error_type is not None:
            self.errors.labels(
                model,
                self.provider_label(record.provider),
                self._types(record.error_type),
                self._codes(record.error_code or "none"),
            ).inc()
        if record.disconnected:
            self.disconnects.labels(model).inc()

    def _new_children(self, model: str, provider: str) -> _Children:
        histogram, counter = self._tallied_histogram, self._tallied
        children = _Children(
            histogram(self.duration.labels(model, provider)),
            histogram(self.ttft.labels(model, provider)),
            histogram(self.chunk_gap.labels(model, provider)),
            histogram(self.upstream_latency.labels(model, provider)),
            histogram(self.overhead.labels(model, provider)),
            histogram(self.tokens_per_second.labels(model, provider)),
            counter(self.tokens.labels(model, provider, "prompt")),
            counter(self.tokens.labels(model, provider, "completion")),
        )
        self._children[(model, provider)] = children
        return children

    def retried(self, model: str, provider: str, *, fallback: bool) -> None:
        counter = self.fallbacks if fallback else self.retries
        counter.labels(self.model_label(model), self.provider_label(provider)).inc()
