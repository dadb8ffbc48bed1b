"""The open-streams and scaling sections of the markdown report (see bench.dedicated)."""

from __future__ import annotations

from bench.figures import Report, get
from bench.figures import fmt as _fmt


def _spaced(n: int) -> str:
    """10 000 rather than 10000 or 10,000."""
    return f"{n:,}".replace(",", " ")


def _pair(run: Report | None, *path: str, digits: int = 1) -> str:
    """``p50 / p99`` of one figure of a run."""
    if run is None:
        return "—"
    node = get(run, *path) or {}
    return f"{_fmt(node.get('p50'), digits)} / {_fmt(node.get('p99'), digits)}"


def _cores(run: Report, name: str) -> str:
    return _fmt(get(run, "cpu_cores", name), 2)


def _open_rows(entry: Report) -> list[str]:
    """One row per run of one size."""
    rows = []
    for run_name in ("direct", "gateway"):
        run = entry.get(run_name)
        if run is None:
            continue
        memory = run["memory"]
        client = run["client"]
        target = "gateway" if run_name == "gateway" else "upstream"
        rows.append(
            " | ".join(
                [
                    f"| {_spaced(entry['settings']['streams'])}",
                    run_name,
                    f"{run['requests_ok']:,}",
                    str(run["errors"]),
                    _pair(run, "ttft_ms"),
                    _pair(run, "gap_ms"),
                    _pair(run, "gap_ms_all_open"),
                    f"{_fmt(memory['rss_per_stream_kib'], 2)} ({memory['process']})",
                    f"{memory['most_open_at_once']:,}",
                    _fmt(memory["peak_fds_per_process"]),
                    _cores(run, target) if run_name == "gateway" else "—",
                    _fmt(get(run, "cpu", "gateway", "us_per_chunk")),
                    _cores(run, "upstream"),
                    f"{_cores(run, 'client')} ({client['processes']})",
                    " / ".join(
                        _fmt(get(run, "cpu_wait_cores", name), 2)
                        for name in ("gateway", "upstream", "client")
                    ),
                    f"{_fmt(client['loop_lag_p99_ms'])} / {_fmt(client['loop_lag_max_ms'])}",
                    f"{_fmt(run.get('machine_busy_cores'), 2)} / {_fmt(run.get('other_cores'), 2)}"
                    + " |",
                ]
            )
        )
    return rows


def open_streams_markdown(section: Report) -> list[str]:
    """The many-open-streams section."""
    fig = section["figures"]
    soft, hard = section["fd_limit"]
    lines = [
        "## Many open streams (one chunk a second)",
        "",
        f"- memory: {section['memory_source']}; per stream = (Rss while the most streams were "
        "open, median of the samples then, minus Rss just before the run) / streams open",
        f"- file descriptors: soft limit {_spaced(soft)}, hard {_spaced(hard)}; one gateway "
        "process needs "
        "2 per open stream (client side + upstream side)",
    ]
    for n, entry in section["sizes"].items():
        s = entry["settings"]
        how = entry["fds"]["how"] if "gateway_skipped" not in entry else entry["gateway_skipped"]
        lines.append(
            f"- {_spaced(int(n))} open: {s['model']} ({s['chunks']} chunks "
            f"{s['delay_ms']} ms apart), opening spread over {s['open_s']:g} s, "
            f"{s['clients']} load-generator process(es); gateway: {how}"
        )
    lines += [
        "",
        "| target | value | verdict |",
        "|---|---|---|",
        *(
            f"| {t['target']} | {_fmt(t['value'], 2)} {t['unit']} | {t['verdict']} |"
            for t in fig["targets"]
        ),
        "",
        "| open | run | ok | err | TTFT p50/p99 ms | gap p50/p99 ms, whole run "
        "| gap p50/p99 ms, all open | KiB per open stream | most open at once "
        "| peak fds/process | gateway cores | gateway CPU µs/chunk | upstream cores "
        "| client cores (processes) | waiting for a CPU, cores: gateway / upstream / client "
        "| client loop lag p99/max ms | machine busy / of it others, cores |",
        "|" + "---|" * 17,
    ]
    for entry in section["sizes"].values():
        lines += _open_rows(entry)
    lines += [
        "",
        "(direct rows: the KiB column is the fake upstream's own memory per stream; cores = CPU "
        "seconds / wall seconds of the run; waiting for a CPU = runnable but not running "
        "(/proc schedstat), the sign of a saturated machine; machine busy is every core's busy "
        "time (/proc/stat), others the part not counted for the benchmark's processes "
        "(other jobs, kernel work); gateway CPU per relayed chunk includes opening the streams)",
        "",
    ]
    cores = section.get("cores")
    for n, entry in section["sizes"].items():
        for run_name in ("direct", "gateway"):
            run = entry.get(run_name)
            if run is not None and run.get("machine_saturated"):
                busy = run["machine_busy_cores"]
                waited = sum(v for v in run["cpu_wait_cores"].values() if v)
                lines += [
                    f"- {_spaced(int(n))} open, {run_name} run: the machine was saturated "
                    f"({busy:.2f} of {cores} cores busy, processes waited for a CPU "
                    f"{waited:.2f} cores' worth): its latencies measure this machine's CPU, "
                    "not the relay alone.",
                ]
    lines.append("")
    samples = [
        f"- open {n}/{run}: {sample}"
        for n, entry in section["sizes"].items()
        for run in ("direct", "gateway")
        for sample in get(entry, run, "error_samples") or []
    ]
    if samples:
        lines += ["Errors (first few per run):", "", *samples, ""]
    return lines


def scaling_markdown(section: Report) -> list[str]:
    """The scaling-with-workers section."""
    lines = ["## Scaling with workers", ""]
    if "skipped" in section:
        return [*lines, section["skipped"], ""]
    fig = section["figures"]
    lines += [
        "| scenario | --workers | req/s | err | total p99 ms | gateway cores | upstream cores "
        "| client cores | machine busy cores | ratio to --workers 1 |",
        "|" + "---|" * 10,
    ]
    for name in section["settings"]:
        for workers, runs in section["workers"].items():
            run = runs[name]
            base = fig[name]["rps"].get("1")
            ratio = run["rps"] / base if run["rps"] and base else None
            lines.append(
                " | ".join(
                    [
                        f"| {name}",
                        workers,
                        _fmt(run["rps"]),
                        str(run["errors"]),
                        _fmt(run["total_ms"]["p99"], 2),
                        _cores(run, "gateway"),
                        _cores(run, "upstream"),
                        _cores(run, "client"),
                        _fmt(run.get("machine_busy_cores"), 2),
                        _fmt(ratio, 3) + " |",
                    ]
                )
            )
    lines += [
        "",
        "(one load-generator process and the fake upstream share the machine with the workers; "
        "cores = CPU seconds / wall seconds of the measured part; machine busy = every "
        "process on the machine, warm-up included)",
        "",
    ]
    return lines


def dedicated_markdown(report: Report) -> list[str]:
    """Both sections, for whichever ran; dedicated gateways' stops when any failed."""
    lines: list[str] = []
    if report.get("open_streams"):
        lines += open_streams_markdown(report["open_streams"])
    if report.get("scaling"):
        lines += scaling_markdown(report["scaling"])
    for workers, entry in (report.get("dedicated_gateways") or {}).items():
        lines.append(
            f"- dedicated gateway (workers {workers}): `{entry['command']}`, "
            f"{entry.get('stop', 'not stopped')}"
        )
    return [*lines, ""] if lines else lines
