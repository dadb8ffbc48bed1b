"""The report as markdown: headline figures, every run, Redis mode and resume latency."""

from __future__ import annotations

from bench.board_markdown import board_markdown
from bench.completions_report import completions_rows
from bench.dedicated_markdown import dedicated_markdown
from bench.embeddings_report import embeddings_rows
from bench.figures import RESUME_RUNS, Report, get
from bench.figures import fmt as _fmt
from bench.messages_report import messages_rows
from bench.native_report import adapter_rows
from bench.responses_report import responses_rows

_TARGET_RATIO = 1.3
_RESUME_LABELS = {
    "direct": "floor: streamed POST straight to the upstream",
    "memory": "memory mode, same replica",
    "redis_same": "Redis mode, same replica",
    "redis_across": "Redis mode, across replicas",
}


def _skipped(report: Report) -> str | None:
    """Why the Redis scenarios were not run, or None if they were."""
    reason = get(report, "redis", "skipped")
    return None if reason is None else f"skipped ({reason})"


def _resumable_rows(report: Report) -> list[str]:
    """Headline rows of the resumable-mode, Redis-mode and resume-latency measurements."""
    fig = report["figures"]
    ratio = fig["resumable_cpu_ratio"]
    verdict = "" if ratio is None else " (meets)" if ratio <= _TARGET_RATIO else " (misses)"
    rows = [
        "| gateway CPU per relayed chunk, resumable (memory) | "
        f"{_fmt(fig['resumable_cpu_us_per_chunk'], 2)} µs |",
        "| resumable / default gateway CPU per chunk (target ≤ 1.3x) | "
        f"{_fmt(ratio, 3)}x{verdict} |",
    ]
    skipped = _skipped(report)
    if skipped is not None:
        rows.append(f"| Redis mode (resumable_redis, resume across replicas) | {skipped} |")
    else:
        by_name = fig["redis_commands_by_name_per_event"] or {}
        top = ", ".join(f"{name} {_fmt(n, 3)}" for name, n in list(by_name.items())[:6])
        rows += [
            "| gateway CPU per relayed chunk, resumable (Redis) | "
            f"{_fmt(fig['redis_gateway_cpu_us_per_chunk'], 2)} µs "
            f"({_fmt(fig['redis_gateway_cpu_ratio'], 3)}x default) |",
            "| redis-server CPU per relayed chunk (resumable, Redis) | "
            f"{_fmt(fig['redis_server_cpu_us_per_chunk'], 2)} µs |",
            "| Redis commands per streamed event (resumable, Redis) | "
            f"{_fmt(fig['redis_commands_per_event'], 3)} ({top}) |",
        ]
    floor = fig["resume_first_byte_ms"].get("direct") or {}
    for name, label in _RESUME_LABELS.items():
        if name == "direct":
            continue
        q = fig["resume_first_byte_ms"].get(name)
        if q is None:
            value = skipped or "not run"
        else:
            value = (
                f"{_fmt(q['p50'], 3)} / {_fmt(q['p99'], 3)} ms (floor "
                f"{_fmt(floor.get('p50'), 3)} / {_fmt(floor.get('p99'), 3)})"
            )
        rows.append(f"| resume to first replayed byte p50 / p99, {label} | {value} |")
    return rows


def to_markdown(report: Report) -> str:
    """The report as markdown: headline figures, then every run."""
    fig = report["figures"]
    m = report["machine"]
    redis = report.get("redis", {})
    lines = [
        f"# llms gateway benchmark ({report['mode']}{', quick' if report['quick'] else ''})",
        "",
        f"- when: {report['started_at']}",
        f"- command: `{report['command']}`",
        f"- machine: {m['cpu_model']}, {m['cores']} cores ({m['cores_usable']} usable), "
        f"Python {m['python']}, aiohttp {m['aiohttp']}, orjson {m['orjson']}, "
        f"Linux {m['kernel']}",
        f"- gateway: {report['gateway'].get('stop', 'not started')}",
    ]
    if "server" in redis:
        replicas = "; ".join(
            f"{name} {replica.get('stop', 'not started')}"
            for name, replica in redis.get("replicas", {}).items()
        )
        lines += [
            f"- redis-server {redis['server'].get('version', '')}: "
            f"{redis['server'].get('stop', 'not started')}",
            f"- Redis-mode replicas: {replicas}",
        ]
    elif "skipped" in redis:
        lines.append(f"- Redis mode: skipped ({redis['skipped']})")
    lines += [
        "",
        "| figure | value |",
        "|---|---|",
        f"| gateway CPU per relayed chunk (throughput) | {_fmt(fig['gateway_cpu_us_per_chunk'], 2)}"
        " µs |",
        "| gateway CPU per streamed request (throughput) | "
        f"{_fmt(fig['gateway_cpu_us_per_request_stream'])} µs |",
        "| gateway CPU per request (non-stream) | "
        f"{_fmt(fig['gateway_cpu_us_per_request_nonstream'])} µs |",
        f"| added TTFT p50 / p99 (latency) | {_fmt(fig['added_ttft_p50_ms'], 3)} / "
        f"{_fmt(fig['added_ttft_p99_ms'], 3)} ms |",
        f"| added gap p99 (latency) | {_fmt(fig['added_gap_p99_ms'], 3)} ms |",
        f"| fake upstream CPU per chunk (throughput, direct) | "
        f"{_fmt(fig['upstream_cpu_us_per_chunk'], 2)} µs |",
        f"| load generator CPU per chunk (throughput, direct) | "
        f"{_fmt(fig['client_cpu_us_per_chunk'], 2)} µs |",
    ]
    if report["scenarios"].get("resumable") is not None:
        lines += _resumable_rows(report)
    for name, rps in fig["rps"].items():
        lines.append(
            f"| {name} req/s direct / gateway (ratio) | {_fmt(rps['direct'])} / "
            f"{_fmt(rps['gateway'])} ({_fmt(rps['ratio'], 3)}) |"
        )
    lines += adapter_rows(fig.get("adapters") or {})
    lines += responses_rows(fig.get("responses") or {})
    lines += messages_rows(fig.get("messages") or {})
    lines += embeddings_rows(fig.get("embeddings") or {})
    lines += completions_rows(fig.get("completions") or {})
    lines += [f"| errors | {fig['errors']} |", "", _runs_table(report), ""]
    redis_run = get(report, "scenarios", "resumable_redis", "gateway")
    if redis_run is not None:
        lines += [_redis_table(redis_run), ""]
    if report.get("resume"):
        lines += [_resume_table(report["resume"]), ""]
    lines += dedicated_markdown(report)
    lines += board_markdown(report)
    samples = [
        f"- {name}/{run}: {sample}"
        for name, runs in report["scenarios"].items()
        for run in ("direct", "chat_before", "gateway", "chat_after")
        for sample in get(runs, run, "error_samples") or []
    ]
    samples += [
        f"- resume/{run}: {sample}"
        for run in RESUME_RUNS
        for sample in get(report, "resume", run, "error_samples") or []
    ]
    if samples:
        lines += ["## Errors (first few per run)", "", *samples, ""]
    return "\n".join(lines)


def _settings(s: Report) -> str:
    """A scenario's settings in one cell."""
    mode = ""
    if s.get("resumable"):
        mode = " resumable" + (" Redis" if s.get("mode") == "redis" else "")
    kind = "stream" if s["stream"] else "non-stream"
    if s.get("protocol", "openai") != "openai":
        mode += f" via {s['protocol']}"
    if s.get("api", "chat") == "responses":
        mode += " /v1/responses" + (" background" if s.get("background") else "")
        mode += "" if s.get("store", True) else " store:false"
    elif s.get("api") == "messages":
        mode += " /v1/messages"
    elif s.get("api") == "embeddings":
        mode += " /v1/embeddings"
    elif s.get("api") == "completions":
        mode += " /v1/completions"
    elif "api" in s and s.get("protocol", "openai") == "openai":
        mode += " /v1/chat/completions"
    return f"{s['model']} {kind}{mode} n={s['requests']} c={s['concurrency']}"


def _runs_table(report: Report) -> str:
    """One row per run with its raw figures."""
    head = (
        "| scenario | run | settings | ok | err | req/s | TTFT p50/p99 ms | gap p50/p99 ms "
        "| total p99 ms | gw CPU µs/chunk | gw CPU µs/req | upstream µs/chunk | client µs/chunk |"
    )
    rows = [head, "|" + "---|" * 13]
    for name, runs in report["scenarios"].items():
        s = runs["settings"]
        for run in ("direct", "chat_before", "gateway", "chat_after"):
            r = runs.get(run)
            if r is None:
                continue
            settings = _settings({**s, "api": "chat"}) if run.startswith("chat_") else _settings(s)
            per_chunk = "us_per_chunk" if s["stream"] else "us_per_request"
            rows.append(
                " | ".join(
                    [
                        f"| {name}",
                        run,
                        settings,
                        str(r["requests_ok"]),
                        str(r["errors"]),
                        _fmt(r["rps"]),
                        f"{_fmt(r['ttft_ms']['p50'], 3)} / {_fmt(r['ttft_ms']['p99'], 3)}",
                        f"{_fmt(r['gap_ms']['p50'], 3)} / {_fmt(r['gap_ms']['p99'], 3)}",
                        _fmt(r["total_ms"]["p99"], 2),
                        _fmt(get(r, "cpu", "gateway", "us_per_chunk"), 2),
                        _fmt(get(r, "cpu", "gateway", "us_per_request")),
                        _fmt(get(r, "cpu", "upstream", per_chunk), 2),
                        _fmt(get(r, "cpu", "client", per_chunk), 2) + " |",
                    ]
                )
            )
    note = (
        "(non-stream rows: upstream and client columns are µs per request; direct rows of the "
        "resumable scenarios are the plain stream, the upstream knows no resumable mode; direct "
        "rows of the adapter scenarios speak the provider's protocol, counted per OpenAI chunk; "
        "gateway rows of the responses scenarios count output_text deltas as chunks (messages: "
        "text_delta events), their "
        "direct rows are the plain chat stream, their chat_before/chat_after rows the same "
        "chat stream through the gateway just before and after)"
    )
    return "\n".join([*rows, "", note])


def _redis_table(run: Report) -> str:
    """What Redis did during the measured Redis-mode run."""
    redis = run.get("redis") or {}
    calls = ", ".join(f"{name} {n}" for name, n in (redis.get("calls") or {}).items())
    head = (
        "| Redis mode (resumable_redis, gateway run) | events received | Redis commands "
        "| commands/event | Redis µs in commands/event | redis-server CPU µs/chunk "
        "| gw CPU µs/chunk | calls by command |"
    )
    row = " | ".join(
        [
            "| measured part",
            str(redis.get("events")),
            str(redis.get("commands")),
            _fmt(redis.get("commands_per_event"), 3),
            _fmt(redis.get("command_us_per_event"), 2),
            _fmt(get(run, "cpu", "redis", "us_per_chunk"), 2),
            _fmt(get(run, "cpu", "gateway", "us_per_chunk"), 2),
            calls + " |",
        ]
    )
    return "\n".join([head, "|" + "---|" * 8, row])


def _resume_table(resume: Report) -> str:
    """One row per resume run: time from sending the GET to its first replayed byte."""
    s = resume["settings"]
    head = (
        f"| resume ({s['model']}, finished stream, {s['rounds']} sequential rounds) | ok | err "
        "| first byte p50 / p90 / p99 / max ms | whole replay p50 / p99 ms | events replayed "
        "| replicas (start->resume) |"
    )
    rows = [head, "|" + "---|" * 7]
    for name in RESUME_RUNS:
        r = resume.get(name)
        if r is None:
            continue
        fb = r["first_byte_ms"]
        rows.append(
            " | ".join(
                [
                    f"| {_RESUME_LABELS[name]}",
                    str(r["requests_ok"]),
                    str(r["errors"]),
                    " / ".join(_fmt(fb[q], 3) for q in ("p50", "p90", "p99", "max")),
                    f"{_fmt(r['total_ms']['p50'], 3)} / {_fmt(r['total_ms']['p99'], 3)}",
                    str(r["events_replayed"]),
                    (", ".join(r["replicas_seen"][:2]) or "—") + " |",
                ]
            )
        )
    note = "(floor row: the first byte of a plain streamed POST to the fake upstream)"
    return "\n".join([*rows, "", note])
