"""The benchmark harness end to end: tiny ``python -m bench --quick`` runs, direct and through
the gateway. They start programs (the fake upstream, the gateway, redis-server when present).

No timing is asserted anywhere: the figures must exist and make sense, not be fast. The load
generator's stream checks are in tests/test_bench_checks.py and tests/test_bench_checks_apis.py.
"""

from __future__ import annotations

import math
import shutil
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent


def _run_bench(tmp_path: Path, *flags: str) -> dict[str, Any]:
    """Run ``python -m bench --quick`` as the user would; return its saved report."""
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--results-dir", str(tmp_path), *flags],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=150,  # the quick run takes ~90 s on 2 shared cores
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert (tmp_path / "latest.md").read_text().startswith("# llms gateway benchmark")
    report: dict[str, Any] = orjson.loads((tmp_path / "latest.json").read_bytes())
    return report


def _positive(value: Any) -> bool:
    """A finite number above zero."""
    return isinstance(value, int | float) and math.isfinite(value) and value > 0


ADAPTERS = {"adapter_ollama", "adapter_anthropic", "adapter_gemini"}
RESPONSES = {"responses", "responses_nostore", "responses_background"}
MESSAGES = {"messages", "messages_native"}
EMBEDDINGS = {"embeddings"}
COMPLETIONS = {"completions"}
BASIC = {
    "latency",
    "throughput",
    "nonstream",
    *ADAPTERS,
    *RESPONSES,
    *MESSAGES,
    *COMPLETIONS,
    *EMBEDDINGS,
}
CLEAN_STOP = "stopped on SIGTERM with exit code 0"
SCENARIO_CHUNKS = 50  # bench.scenarios.THROUGHPUT, the Responses and Messages scenarios' shape
HAS_REDIS = shutil.which("redis-server") is not None


def _check_runs(report: dict[str, Any], runs: tuple[str, ...], scenarios: set[str]) -> None:
    """Every run finished every request, error-free, with positive figures."""
    assert set(report["scenarios"]) == scenarios
    for name, scenario in report["scenarios"].items():
        for run in runs:
            r = scenario[run]
            where = f"{name}/{run}"
            assert r["errors"] == 0, (where, r["error_samples"])
            assert not r["capped"], where
            assert r["requests_ok"] == scenario["settings"]["requests"], where
            assert _positive(r["rps"]), where
            assert _positive(r["total_ms"]["p99"]), where
            assert _positive(r["cpu"]["upstream"]["seconds"]), where
            assert _positive(r["cpu"]["client"]["seconds"]), where
            if scenario["settings"]["stream"]:
                assert _positive(r["ttft_ms"]["p50"]), where
                assert _positive(r["ttft_ms"]["p99"]), where
                # Unpaced chunks can all arrive in one read, so their gaps may all be zero.
                paced = "-d0-" not in scenario["settings"]["model"]
                assert _positive(r["gap_ms"]["p99"]) if paced else r["gap_ms"]["p99"] >= 0, where
                assert _positive(r["cpu"]["upstream"]["us_per_chunk"]), where
    machine = report["machine"]
    for key in ("cpu_model", "cores", "python", "aiohttp"):
        assert machine[key], key
    assert "bench" in report["command"]


def test_bench_direct_only(tmp_path: Path) -> None:
    """The harness alone: fake upstream and load generator, no gateway."""
    report = _run_bench(tmp_path, "--direct-only")
    _check_open_streams(report, ("direct",))
    assert report["scaling"] == {"skipped": "direct-only run"}
    _check_runs(report, ("direct",), BASIC)
    assert report["resume"] == {}
    assert report["redis"] == {"skipped": "direct-only run"}
    fig = report["figures"]
    assert fig["errors"] == 0
    assert _positive(fig["upstream_cpu_us_per_chunk"])
    assert _positive(fig["client_cpu_us_per_chunk"])
    assert all(_positive(rps["direct"]) for rps in fig["rps"].values())
    for protocol, adapter in fig["adapters"].items():
        assert _positive(adapter["upstream_cpu_us_per_chunk_direct"]), protocol
        assert adapter["gateway_cpu_us_per_chunk"] is None, protocol
    assert set(fig["responses"]) == RESPONSES
    assert set(fig["messages"]) == MESSAGES
    assert set(fig["completions"]) == COMPLETIONS
    apis = [*fig["responses"].items(), *fig["messages"].items(), *fig["completions"].items()]
    for name, responses in apis:
        assert _positive(responses["rps_direct"]), name
        assert responses["gateway_cpu_us_per_chunk"] is None, name
        assert responses["ratio_to_chat"] is None, name
        assert responses["chat_before_after_us_per_chunk"] == [None, None], name
    embeddings = fig["embeddings"]["embeddings"]
    assert _positive(embeddings["rps_direct"])
    assert embeddings["gateway_cpu_us_per_request"] is None
    assert embeddings["chat_before_after_us_per_request"] == [None, None]


def _check_gateway_figures(fig: dict[str, Any]) -> None:
    """The figures every gateway run has, Redis or not."""
    assert fig["errors"] == 0
    for name in (
        "gateway_cpu_us_per_chunk",
        "gateway_cpu_us_per_request_stream",
        "gateway_cpu_us_per_request_nonstream",
        "upstream_cpu_us_per_chunk",
        "client_cpu_us_per_chunk",
        # A gateway hop cannot be free, so even five requests show a positive median.
        "added_ttft_p50_ms",
        "resumable_cpu_us_per_chunk",
        "resumable_cpu_ratio",
    ):
        assert _positive(fig[name]), name
    for name in ("added_ttft_p99_ms", "added_gap_p99_ms"):
        # Differences of two tails: present and finite, but at five requests noise can make
        # them zero or negative, so their sign is not asserted.
        assert isinstance(fig[name], float), name
        assert math.isfinite(fig[name]), name
    for name, rps in fig["rps"].items():
        for way in ("direct", "gateway", "ratio"):
            assert _positive(rps[way]), (name, way)
    # Each adapter relayed its native stream error-free, with its CPU measured both ways.
    assert set(fig["adapters"]) == {name.removeprefix("adapter_") for name in ADAPTERS}
    for protocol, adapter in fig["adapters"].items():
        assert adapter["errors"] == 0, protocol
        for name in (
            "gateway_cpu_us_per_chunk",
            "ratio_to_openai",
            "upstream_cpu_us_per_chunk_direct",
            "client_cpu_us_per_chunk_direct",
            "rps_direct",
            "rps_gateway",
        ):
            assert _positive(adapter[name]), (protocol, name)
    _check_responses_figures(fig)
    _check_messages_figures(fig)
    _check_embeddings_figures(fig)
    _check_completions_figures(fig)


def _check_completions_figures(fig: dict[str, Any]) -> None:
    """Legacy completions passed through error-free, its CPU per chunk next to chat's."""
    assert set(fig["completions"]) == COMPLETIONS
    completions = fig["completions"]["completions"]
    assert completions["errors"] == 0
    for figure in ("gateway_cpu_us_per_chunk", "ratio_to_chat", "rps_direct", "rps_gateway"):
        assert _positive(completions[figure]), figure
    # One chunk per piece and one with the finish reason; [DONE] is an event too.
    assert completions["chunks_per_answer"] == SCENARIO_CHUNKS + 1
    assert completions["events_per_answer"] == SCENARIO_CHUNKS + 2


def _check_embeddings_figures(fig: dict[str, Any]) -> None:
    """Embeddings answered error-free, the gateway's CPU per request next to non-stream chat's
    just before and after, and to the nonstream scenario's."""
    assert set(fig["embeddings"]) == EMBEDDINGS
    embeddings = fig["embeddings"]["embeddings"]
    assert embeddings["errors"] == 0
    for figure in (
        "gateway_cpu_us_per_request",
        "chat_gateway_cpu_us_per_request",
        "ratio_to_chat",
        "ratio_to_nonstream",
        "rps_direct",
        "rps_gateway",
    ):
        assert _positive(embeddings[figure]), figure
    assert all(_positive(chat) for chat in embeddings["chat_before_after_us_per_request"])
    nonstream = fig["gateway_cpu_us_per_request_nonstream"]
    assert embeddings["nonstream_gateway_cpu_us_per_request"] == nonstream


def _check_messages_figures(fig: dict[str, Any]) -> None:
    """The Messages scenario relayed complete event sequences error-free, its CPU per chunk
    next to chat's of the same run, as a ratio (issue 13)."""
    assert set(fig["messages"]) == MESSAGES
    messages = fig["messages"]["messages"]
    assert messages["errors"] == 0
    for figure in (
        "gateway_cpu_us_per_chunk",
        "gateway_cpu_us_per_request",
        "chat_gateway_cpu_us_per_chunk",
        "ratio_to_chat",
        "ratio_to_throughput",
        "rps_direct",
        "rps_gateway",
    ):
        assert _positive(messages[figure]), figure
    assert all(_positive(chat) for chat in messages["chat_before_after_us_per_chunk"])
    assert messages["throughput_gateway_cpu_us_per_chunk"] == fig["gateway_cpu_us_per_chunk"]
    # One relayed chunk per text_delta; 5 events around them (start, block start/stop, the
    # message_delta and message_stop; pings are not counted).
    assert messages["chunks_per_answer"] == SCENARIO_CHUNKS
    assert messages["events_per_answer"] == SCENARIO_CHUNKS + 5


def _check_responses_figures(fig: dict[str, Any]) -> None:
    """Each Responses scenario relayed complete event sequences error-free, its CPU per chunk
    next to chat's of the same run, as a ratio."""
    assert set(fig["responses"]) == RESPONSES
    chunks = SCENARIO_CHUNKS
    for name, responses in fig["responses"].items():
        assert responses["errors"] == 0, name
        for figure in (
            "gateway_cpu_us_per_chunk",
            "gateway_cpu_us_per_request",
            "chat_gateway_cpu_us_per_chunk",
            "ratio_to_chat",
            "ratio_to_throughput",
            "rps_direct",
            "rps_gateway",
        ):
            assert _positive(responses[figure]), (name, figure)
        # Chat just before and just after, on the same gateway; and the throughput scenario.
        assert all(_positive(chat) for chat in responses["chat_before_after_us_per_chunk"])
        assert responses["throughput_gateway_cpu_us_per_chunk"] == fig["gateway_cpu_us_per_chunk"]
        # `responses` alternates one more round with chat (bench.scenarios.QUICK): its ratio is
        # the median of the bracket's and the round's; the others have the bracket's alone.
        ratios = responses["ratios_to_chat"]
        assert len(ratios) == (2 if name == "responses" else 1), name
        assert all(_positive(ratio) for ratio in ratios), name
        assert responses["ratio_to_chat"] == statistics.median(ratios), name
        # One relayed chunk per output_text delta; 8 events around them (9 with queued).
        assert responses["chunks_per_answer"] == chunks, name
        extra = 9 if name == "responses_background" else 8
        assert responses["events_per_answer"] == chunks + extra, name


def _check_resume(report: dict[str, Any], runs: tuple[str, ...]) -> None:
    """Every resume round replayed exactly the events after its Last-Event-ID, error-free."""
    resume = report["resume"]
    assert set(resume) == {"settings", *runs}
    rounds = resume["settings"]["rounds"]
    for run in runs:
        r = resume[run]
        assert r["errors"] == 0, (run, r["error_samples"])
        assert not r["capped"], run
        assert r["requests_ok"] == rounds, run
        for q in ("p50", "p99"):
            assert _positive(r["first_byte_ms"][q]), (run, q)
            assert _positive(report["figures"]["resume_first_byte_ms"][run][q]), (run, q)
        assert _positive(r["total_ms"]["p99"]), run
        if run != "direct":
            assert _positive(r["events_replayed"]), run


def _check_open_streams(report: dict[str, Any], runs: tuple[str, ...]) -> None:
    """Many open streams: every stream of every size complete and intact, figures present."""
    section = report["open_streams"]
    assert section["figures"]["errors"] == 0
    assert section["memory_source"].startswith("Rss from /proc/<pid>/smaps_rollup")
    for n, entry in section["sizes"].items():
        for run in runs:
            if run == "gateway" and section["has_workers"] is False and "gateway" not in entry:
                assert "has no --workers" in entry["gateway_skipped"]
                continue
            r = entry[run]
            where = f"open {n}/{run}"
            assert r["errors"] == 0, (where, r["error_samples"])
            assert not r["capped"], where
            assert r["requests_ok"] == int(n), where
            assert r["content_chunks"] == int(n) * entry["settings"]["chunks"], where
            for name in ("upstream", "client"):
                assert _positive(r["cpu_cores"][name]), (where, name)
            assert _positive(r["gap_ms"]["p99"]), where
            assert _positive(r["ttft_ms"]["p99"]), where
            memory = r["memory"]
            assert memory["most_open_at_once"] > 0, where
            assert isinstance(memory["rss_per_stream_kib"], int | float), where
            assert memory["peak_fds_per_process"] > 0, where
    if "gateway" not in runs:
        assert all(entry["gateway_skipped"] for entry in section["sizes"].values())
        return
    if section["has_workers"] is False:
        return
    assert {t["verdict"] for t in section["figures"]["targets"]} <= {"meets", "misses"}
    # The second size runs through --workers 2 (forced in --quick).
    last = list(section["sizes"].values())[-1]
    assert last["fds"]["workers"] == 2
    assert last["gateway"]["memory"]["process"] == "gateway --workers 2"


def _check_scaling(report: dict[str, Any]) -> None:
    """Scaling with workers: both worker counts served every request; the ratio is there."""
    scaling = report["scaling"]
    if report["open_streams"]["has_workers"] is False:
        # A build of `llms serve` without --workers: reported, not failed.
        assert scaling == {"skipped": "skipped: llms serve has no --workers"}
        return
    assert set(scaling["workers"]) == {"1", "2"}
    for workers, runs in scaling["workers"].items():
        for name, r in runs.items():
            assert r["errors"] == 0, (workers, name, r["error_samples"])
            assert _positive(r["rps"]), (workers, name)
            assert _positive(r["cpu_cores"]["gateway"]), (workers, name)
    for name in scaling["settings"]:
        assert _positive(scaling["figures"][name]["ratio"]), name
    for workers, gateway in report["dedicated_gateways"].items():
        assert gateway["stop"] == CLEAN_STOP, workers
        assert gateway["warmup"]["errors"] == 0, workers


def test_bench_through_the_gateway(tmp_path: Path) -> None:
    """The whole benchmark at its tiny size: zero errors and every figure present."""
    report = _run_bench(tmp_path)
    _check_open_streams(report, ("direct", "gateway"))
    _check_scaling(report)
    markdown = (tmp_path / "latest.md").read_text()
    assert "## Many open streams" in markdown
    for name in RESPONSES | MESSAGES | COMPLETIONS:
        assert f"| {name} (" in markdown, name
    scenarios = BASIC | {"resumable", "resumable_redis"} if HAS_REDIS else BASIC | {"resumable"}
    _check_runs(report, ("direct", "gateway"), scenarios)
    fig = report["figures"]
    _check_gateway_figures(fig)
    assert report["gateway"]["stop"] == CLEAN_STOP
    resumable = report["scenarios"]["resumable"]["gateway"]
    assert resumable["events"] > resumable["chunks"] > 0  # [DONE] carries an id too
    if not HAS_REDIS:
        assert "skipped" in report["redis"]
        _check_resume(report, ("direct", "memory"))
        return
    _check_resume(report, ("direct", "memory", "redis_same", "redis_across"))
    for name in (
        "redis_gateway_cpu_us_per_chunk",
        "redis_gateway_cpu_ratio",
        "redis_server_cpu_us_per_chunk",
        "redis_commands_per_event",
    ):
        assert _positive(fig[name]), name
    redis_run = report["scenarios"]["resumable_redis"]["gateway"]
    assert redis_run["redis"]["events"] == redis_run["events"]
    assert _positive(redis_run["cpu"]["redis"]["seconds"])
    assert _positive(fig["redis_commands_by_name_per_event"]["xadd"])
    assert report["redis"]["server"]["stop"] == CLEAN_STOP
    assert {r["stop"] for r in report["redis"]["replicas"].values()} == {CLEAN_STOP}
    # Across replicas means what it says: the resume was answered by the other replica.
    (pair,) = report["resume"]["redis_across"]["replicas_seen"]
    started, resumed = pair.split("->")
    assert started != resumed
    (pair,) = report["resume"]["redis_same"]["replicas_seen"]
    assert pair.split("->")[0] == pair.split("->")[1]


def test_bench_without_redis_skips_the_redis_scenarios(tmp_path: Path) -> None:
    """No redis-server: the Redis scenarios are reported as skipped and the run still passes."""
    # Every scenario but the open-streams and scaling ones, which use no Redis (and take time).
    only = ",".join(sorted(BASIC | {"resumable", "resumable_redis", "resume"}))
    no_redis = str(tmp_path / "no-such-redis-server")
    report = _run_bench(tmp_path, "--redis-server", no_redis, "--only", only)
    assert "open_streams" not in report
    _check_runs(report, ("direct", "gateway"), BASIC | {"resumable"})
    _check_gateway_figures(report["figures"])
    _check_resume(report, ("direct", "memory"))
    assert "not found" in report["redis"]["skipped"]
    assert report["figures"]["redis_commands_per_event"] is None
    assert "skipped" in (tmp_path / "latest.md").read_text()
