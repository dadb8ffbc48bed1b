"""The board's part of the markdown report: gateway vs floor vs direct, and the peers' figures."""

from __future__ import annotations

from bench.figures import Report, fmt

# Published by third-party boards in 2026 on their own hardware (issue 18): added p99 at one
# client (non-stream, upstream answering in 20 ms) and the most concurrent 64 x 20 ms streams
# sustained with no stall (gateways pinned to 4 cores; 512 is the board's maximum).
PEERS: tuple[tuple[str, str, str], ...] = (
    ("LiteLLM-Rust", "0.107", "512 (board max)"),
    ("agentgateway", "0.186", "512 (board max)"),
    ("GoModel", "0.282", "512 (board max)"),
    ("Bifrost", "0.939", "128"),
    ("Portkey", "3.3", "32"),
    ("LiteLLM-Python", "8.0", "1"),
)
PEERS_HARDWARE = "the board's own hardware; stream test with gateways pinned to 4 cores"
_METHODS = (
    ("nonstream", "added_p99", "added p99 at one client (non-stream, 20 ms upstream)"),
    ("stream", "added_ttft_p99", "stream test: added TTFT p99"),
    ("stream", "added_gap_p99", "stream test: added per-token (gap) p99"),
)


def _method_rows(methods: Report) -> list[str]:
    """One row per API and method: direct p99, added by the floor and by the gateway, ratio."""
    rows = []
    for api, kinds in methods.items():
        for kind, key, label in _METHODS:
            added = (kinds.get(kind) or {}).get(key)
            if added is None:
                continue
            cpu = _cpu_per_chunk(kinds[kind]) if kind == "stream" and key == "added_gap_p99" else ""
            rows.append(
                f"| {api} | {label} | {fmt(added['direct_ms'], 2)} | "
                f"{fmt(added['floor_added_ms'], 2)} | {fmt(added['gateway_added_ms'], 2)} | "
                f"{fmt(added['ratio'], 2)} | {cpu} |"
            )
    return rows


def _cpu_per_chunk(runs: Report) -> str:
    """The stream test's CPU per chunk, floor / gateway (µs), from the same runs."""
    floor = runs["floor"]["cpu"].get("floor", {}).get("us_per_chunk")
    gateway = runs["gateway"]["cpu"].get("gateway", {}).get("us_per_chunk")
    return f"CPU µs/chunk floor {fmt(floor)} / gateway {fmt(gateway)}"


def _ramp_rows(ramps: Report) -> list[str]:
    """One row per ramped target and level tried, in the order tried."""
    rows = []
    for target, ramp in ramps.items():
        for lv in ramp["levels"]:
            cpu = lv["cpu_us_per_chunk"]
            rows.append(
                f"| {target} | {lv['level']} | {'held' if lv['held'] else '**not held**'} | "
                f"{lv['streams_ok']} | {lv['stalls']} | {lv['errors']} | "
                f"{fmt(lv['ttft_ms_p99'])} | {fmt(lv['gap_ms_p99'])} | {fmt(lv['gap_ms_max'])} | "
                f"{fmt(cpu.get(target))} / {fmt(cpu.get('upstream'))} / {fmt(cpu.get('client'))} |"
            )
    return rows


def board_markdown(report: Report) -> list[str]:
    """The board's sections of the report (nothing if the board did not run)."""
    board = report.get("board")
    if not board or "methods" not in board:
        return []
    settings = board["settings"]
    ramp = settings["ramp"]
    lines = [
        "## The boards' methods: gateway vs Python floor vs direct",
        "",
        f"One client; non-stream `{settings['nonstream']}`, stream `{settings['stream']}`. "
        "Added = p99 through the target minus p99 straight to the fake upstream; the floor is "
        "bench.floor, a bare aiohttp byte relay; ratio = gateway added / floor added. "
        "Responses and Messages: their direct and floor runs are the chat request of the same "
        "shape (the upstream serves chat).",
        "",
        "| API | method | direct p99 ms | floor added ms | gateway added ms | gateway / floor | |",
        "|---|---|---|---|---|---|---|",
        *_method_rows(board["methods"]),
        "",
    ]
    if "ramp" in board:
        lines += [
            f"### Streams sustained (`{ramp['shape']}`, one process each, "
            f"levels {ramp['levels']} from {ramp['start']}, held {ramp['hold_s']:g} s, "
            f"stall = a gap over {ramp['stall_ms']:g} ms between two reads, or a first byte "
            f"over {ramp['stall_ms']:g} ms late)",
            "",
            *(
                f"- {target}: **{r['sustained']}** streams sustained ({r['stopped']})"
                for target, r in board["ramp"].items()
            ),
            "",
            "| target | level | | streams | stalls | errors | TTFT p99 ms | gap p99 ms "
            "| max gap ms | CPU µs/chunk target / upstream / load generator |",
            "|---|---|---|---|---|---|---|---|---|---|",
            *_ramp_rows(board["ramp"]),
            "",
        ]
    lines += _idle_lines(board.get("idle"))
    lines += _peer_table(board)
    return lines


def _idle_lines(idle: Report | None) -> list[str]:
    """Memory per open idle stream: floor, gateway, their ratio (bench.board_idle)."""
    if not idle or "gateway" not in idle:
        return []
    s = idle["settings"]
    rows = [
        f"| {target} | {r['streams']} | {r['errors']} | {r['rss_kib_before']} | "
        f"{r['rss_kib_open']} | {fmt(r['kib_per_stream'], 1)} |"
        for target in ("floor", "gateway")
        if (r := idle.get(target))
    ]
    return [
        f"### Memory per open idle stream (`{s['shape']}`: {s['streams']} chat streams held "
        f"open, each after its first event, idle {s['settle_s']:g} s; Rss of a fresh process)",
        "",
        "| target | streams | errors | Rss before KiB | Rss open KiB | KiB per stream |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
        f"Gateway / floor: **{fmt(idle.get('ratio'), 2)}x** (target: at most 1.15x).",
        "",
    ]


def _peer_table(board: Report) -> list[str]:
    """The peers' published figures beside this run's gateway and floor."""
    chat = (board["methods"].get("chat") or {}).get("nonstream", {}).get("added_p99", {})
    ramps = board.get("ramp") or {}

    def sustained(target: str) -> str:
        return str(ramps[target]["sustained"]) if target in ramps else "—"

    machine = "this run's machine (see above), one process"
    return [
        "### Beside the peers' published figures",
        "",
        "| gateway | added p99 at one client, chat (ms) | streams sustained | hardware |",
        "|---|---|---|---|",
        f"| llms (this run) | {fmt(chat.get('gateway_added_ms'), 3)} | {sustained('gateway')} | "
        f"{machine} |",
        f"| Python floor (this run) | {fmt(chat.get('floor_added_ms'), 3)} | "
        f"{sustained('floor')} | {machine} |",
        *(f"| {name} | {p99} | {streams} | {PEERS_HARDWARE} |" for name, p99, streams in PEERS),
        "",
    ]
