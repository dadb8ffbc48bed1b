"""The measured workloads, and how one is run against one target with its CPU sampled."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

from bench.completions_load import CompletionsLoadClient
from bench.embeddings_load import EmbeddingsLoadClient
from bench.figures import Report
from bench.load import LoadClient, LoadSpec
from bench.messages_load import MessagesLoadClient
from bench.native import NATIVE, Protocol, public_model
from bench.native_load import load_client
from bench.procs import Child, CpuSample, self_cpu, tree_cpu
from bench.redis_server import command_figures, commandstats
from bench.report import summarise_resume, summarise_run
from bench.responses_load import ResponsesLoadClient
from bench.resume import Replica, ResumeSpec, run_resumes
from bench.shape import Shape, content_pieces


@dataclass(frozen=True)
class Scenario:
    """One measured workload; run once direct and once through a gateway.

    ``resumable`` sends ``X-Stream-Resumable: true`` through the gateway (never to the upstream,
    which does not know it); ``mode`` picks the gateway: the memory-mode one, or Redis replica A.
    ``protocol`` other than openai routes through that adapter (bench.native): the gateway run
    asks for ``<protocol>-<model>``, the direct run speaks the protocol to the fake upstream.
    ``api="responses"`` streams ``POST /v1/responses`` through the gateway (``background``: with
    ``background: true``, read live like the resumable stream; ``store=False`` sends ``store:
    false``, else the response is stored, OpenAI's default); its direct run is the plain chat
    stream to the upstream, which knows no Responses API. ``api="messages"`` streams Anthropic's
    ``POST /v1/messages`` through the gateway the same way (its direct run: the chat stream);
    with ``protocol="anthropic"`` to the Anthropic provider, which it is passed through to (its
    direct run: Anthropic's stream from the upstream).
    ``api="completions"`` streams legacy ``POST /v1/completions``, passed through to the
    upstream, which serves it (its direct run: the same stream from the upstream).
    ``api="embeddings"`` asks ``POST /v1/embeddings`` (bench.embeddings_load), non-stream: its
    direct run asks the upstream's own ``/v1/embeddings``; bracketed by non-stream chat.
    ``rounds`` (an API other than chat): after the bracketing chat runs, that many more runs of
    this API, each followed by a chat run, ``round_requests()`` answers each, so that its ratio
    to chat is the median of several neighbours' ratios rather than one (bench.responses_report).
    """

    name: str
    shape: Shape
    stream: bool
    requests: int
    concurrency: int
    max_seconds: float
    warmup: int
    resumable: bool = False
    mode: Literal["memory", "redis"] = "memory"
    protocol: Protocol = "openai"
    api: Literal["chat", "responses", "messages", "completions", "embeddings"] = "chat"
    background: bool = False
    store: bool = True
    rounds: int = 0

    def round_requests(self) -> int:
        """The answers of each alternating round: a quarter of the main run's, at least one
        per client."""
        return max(self.requests // 4, self.concurrency)


@dataclass(frozen=True)
class ResumeSettings:
    """The resume-latency rounds: how many, after how many untimed ones, within what cap."""

    shape: Shape
    rounds: int
    warmup: int
    max_seconds: float


# Latency paces chunks 2 ms apart so that "added gap" shows any buffering the gateway does.
# The resumable scenarios repeat throughput's shape and size, so their CPU per chunk compares.
LATENCY = Shape(20, 2, 0, 8)
THROUGHPUT = Shape(50, 0, 0, 8)
NONSTREAM = Shape(20, 0, 0, 8)
# The Responses and Messages scenarios repeat throughput's shape and size too: their ratio is
# to chat's.
_BACKGROUND: dict[str, Any] = {"api": "responses", "background": True}
_NOSTORE: dict[str, Any] = {"api": "responses", "store": False}
# Alternating rounds for the APIs with a ratio target (issues 12 and 13): on a shared 2-core VM
# chat's CPU per chunk moved 10-20% between runs seconds apart, one ratio as much.
ROUNDS = 6
# Messages to an anthropic provider: passed through (llms/native.py), not translated.
_PASSTHROUGH: dict[str, Any] = {"api": "messages", "protocol": "anthropic"}
FULL = (
    Scenario("latency", LATENCY, True, 200, 1, 120, 10),
    Scenario("throughput", THROUGHPUT, True, 2000, 64, 300, 64),
    Scenario("nonstream", NONSTREAM, False, 1000, 32, 120, 32),
    Scenario("resumable", THROUGHPUT, True, 2000, 64, 300, 64, resumable=True),
    Scenario("resumable_redis", THROUGHPUT, True, 2000, 64, 300, 64, True, "redis"),
    *(Scenario(f"adapter_{p}", THROUGHPUT, True, 2000, 64, 300, 64, protocol=p) for p in NATIVE),
    Scenario("responses", THROUGHPUT, True, 2000, 64, 300, 64, api="responses", rounds=ROUNDS),
    Scenario("responses_nostore", THROUGHPUT, True, 2000, 64, 300, 64, **_NOSTORE, rounds=ROUNDS),
    Scenario("responses_background", THROUGHPUT, True, 2000, 64, 300, 64, **_BACKGROUND),
    Scenario("messages", THROUGHPUT, True, 2000, 64, 300, 64, api="messages", rounds=ROUNDS),
    Scenario("embeddings", NONSTREAM, False, 1000, 32, 120, 32, api="embeddings"),
    Scenario("messages_native", THROUGHPUT, True, 2000, 64, 300, 64, **_PASSTHROUGH),
    Scenario("completions", THROUGHPUT, True, 2000, 64, 300, 64, api="completions"),
)
QUICK = (
    Scenario("latency", LATENCY, True, 5, 1, 20, 1),
    Scenario("throughput", THROUGHPUT, True, 16, 8, 20, 8),
    Scenario("nonstream", NONSTREAM, False, 16, 8, 20, 8),
    Scenario("resumable", THROUGHPUT, True, 16, 8, 20, 8, resumable=True),
    Scenario("resumable_redis", THROUGHPUT, True, 16, 8, 20, 8, True, "redis"),
    *(Scenario(f"adapter_{p}", THROUGHPUT, True, 16, 8, 20, 8, protocol=p) for p in NATIVE),
    Scenario("responses", THROUGHPUT, True, 16, 8, 20, 8, api="responses", rounds=1),
    Scenario("responses_nostore", THROUGHPUT, True, 16, 8, 20, 8, **_NOSTORE),
    Scenario("responses_background", THROUGHPUT, True, 16, 8, 20, 8, **_BACKGROUND),
    Scenario("messages", THROUGHPUT, True, 16, 8, 20, 8, api="messages"),
    Scenario("embeddings", NONSTREAM, False, 16, 8, 20, 8, api="embeddings"),
    Scenario("messages_native", THROUGHPUT, True, 16, 8, 20, 8, **_PASSTHROUGH),
    Scenario("completions", THROUGHPUT, True, 16, 8, 20, 8, api="completions"),
)
RESUME_FULL = ResumeSettings(THROUGHPUT, 200, 5, 120)
RESUME_QUICK = ResumeSettings(THROUGHPUT, 5, 1, 20)


def settings_of(scenario: Scenario) -> Report:
    """The scenario's settings as the report shows them."""
    return {
        "model": scenario.shape.model,
        "stream": scenario.stream,
        "requests": scenario.requests,
        "concurrency": scenario.concurrency,
        "warmup": scenario.warmup,
        "max_seconds": scenario.max_seconds,
        "resumable": scenario.resumable,
        "mode": scenario.mode,
        "protocol": scenario.protocol,
        "api": scenario.api,
        "background": scenario.background,
        "store": scenario.store,
        "rounds": scenario.rounds,
        "round_requests": scenario.round_requests() if scenario.rounds else None,
    }


async def measure(
    scenario: Scenario,
    target: Child,
    watched: dict[str, Child],
    *,
    resumable: bool = False,
    redis: Child | None = None,
) -> Report:
    """Run one scenario against ``target``; CPU is sampled around the measured part only.

    ``watched`` names every process whose CPU is reported. With ``redis``, the commands Redis
    ran meanwhile are counted too (``INFO commandstats`` before and after).
    """
    spec = LoadSpec(
        url=f"{target.base_url}/v1/chat/completions",
        model=scenario.shape.model,
        stream=scenario.stream,
        requests=scenario.requests,
        concurrency=scenario.concurrency,
        max_seconds=scenario.max_seconds,
        warmup=scenario.warmup,
        resumable=resumable,
    )

    def sample() -> dict[str, CpuSample]:
        """CPU seconds so far of every watched process and of this one."""
        cpu = {name: tree_cpu(child.proc.pid) for name, child in watched.items()}
        cpu["client"] = self_cpu()
        return cpu

    # Adapter scenarios: the direct run (target is the upstream) speaks the native protocol.
    direct = target is watched.get("upstream")
    expected = content_pieces(scenario.shape)
    client: LoadClient
    if scenario.api == "responses" and not direct:
        url = f"{target.base_url}/v1/responses"
        client = ResponsesLoadClient(
            replace(spec, url=url),
            expected,
            background=scenario.background,
            store=scenario.store,
        )
    elif scenario.api == "embeddings":
        url = f"{target.base_url}/v1/embeddings"
        client = EmbeddingsLoadClient(replace(spec, url=url), expected)
    elif scenario.api == "messages" and not direct:
        model = public_model(scenario.protocol, spec.model)
        url = f"{target.base_url}/v1/messages"
        client = MessagesLoadClient(replace(spec, url=url, model=model), expected)
    elif scenario.api == "completions":
        # The upstream serves legacy completions too: the direct run reads the same stream.
        url = f"{target.base_url}/v1/completions"
        client = CompletionsLoadClient(replace(spec, url=url), expected)
    else:
        client = load_client(scenario.protocol, spec, expected, direct=direct)
    async with client:
        warm = await client.warm()
        stats_before = await commandstats(redis) if redis is not None else {}
        before = sample()
        result = await client.run()
        after = sample()
        stats_after = await commandstats(redis) if redis is not None else {}
    for child in watched.values():
        if child.proc.poll() is not None:
            result.fail("process_died", f"{child.name} exited with {child.proc.returncode}")
    summary = summarise_run(result, warm, {name: after[name] - before[name] for name in after})
    if redis is not None:
        summary["redis"] = command_figures(stats_before, stats_after, result.events)
    return summary


async def measure_resumes(
    settings: ResumeSettings, upstream: Child, pairs: dict[str, tuple[Child, Child, Replica]]
) -> Report:
    """The floor (direct to the upstream), then resume latency for each (start, resume) pair."""
    expected = content_pieces(settings.shape)
    runs: Report = {
        "settings": {
            "model": settings.shape.model,
            "rounds": settings.rounds,
            "warmup": settings.warmup,
            "max_seconds": settings.max_seconds,
        }
    }
    targets: dict[str, tuple[Child, Child | None, Replica]] = {
        "direct": (upstream, None, "any"),
        **pairs,
    }
    for name, (start, resume, replica) in targets.items():
        spec = ResumeSpec(
            start_url=start.base_url,
            resume_url=resume.base_url if resume is not None else None,
            model=settings.shape.model,
            rounds=settings.rounds,
            warmup=settings.warmup,
            max_seconds=settings.max_seconds,
            replica=replica,
        )
        result = await run_resumes(spec, expected)
        for child in (start, resume):
            if child is not None and child.proc.poll() is not None:
                result.fail("process_died", f"{child.name} exited with {child.proc.returncode}")
        runs[name] = summarise_resume(result, start.name, resume.name if resume else None)
    return runs
