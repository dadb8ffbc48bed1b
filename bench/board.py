"""The two methods third-party boards use, for every client-facing API, against the floor.

For chat completions, Responses, Messages and embeddings, each measured three ways in the same
run with the same self-checking load clients: ``direct`` (the fake upstream itself), ``floor``
(bench.floor, a bare aiohttp byte relay in front of it) and ``gateway`` (``llms serve --workers
1``). A Responses or Messages request cannot be relayed to the upstream, which serves chat: its
direct and floor runs are the chat request of the same shape, as the other scenarios' are.

- **added p99 at one client**: non-stream, the upstream answering in 20 ms
  (``bench-c8-d0-f20-s8``); added = p99 of the total time minus the direct p99.
- **the stream test**: 64 deltas 20 ms apart (``bench-c64-d20-f20-s8``); added TTFT p99 and added
  per-token (gap) p99 of 192 streams from 16 clients at once, each starting a stream's length / 16
  after the previous, their samples pooled (one client's 12 streams made p99 their maximum).
  Embeddings have no stream.
- **streams sustained** (bench.ramp): the ramp of concurrent 64 x 20 ms chat streams, on a floor
  and a ``--workers 1`` gateway of their own in front of bench.ticker (deltas on a shared tick).
- **memory per open idle stream** (bench.board_idle): RSS per stream with N chat streams held
  open and idle, through a floor and a ``--workers 1`` gateway of their own; their ratio.

Called by ``python -m bench``; fills ``report["board"]`` and stops every process it started.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from bench.board_clients import MessagesWholeClient, ResponsesWholeClient
from bench.board_idle import FULL as IDLE_FULL
from bench.board_idle import QUICK as IDLE_QUICK
from bench.board_idle import IdleSettings, run_idle
from bench.embeddings_load import EmbeddingsLoadClient
from bench.figures import Report
from bench.gateways import WARM_SHAPE, Gateways
from bench.load import LoadClient, LoadResult, LoadSpec
from bench.messages_load import MessagesLoadClient
from bench.procs import Child, CpuSample, free_port, self_cpu, spawn, stop, tree_cpu, wait_ready
from bench.ramp import FULL as RAMP_FULL
from bench.ramp import QUICK as RAMP_QUICK
from bench.ramp import RampSettings, ramp
from bench.report import summarise_run
from bench.responses_load import ResponsesLoadClient
from bench.shape import Shape, content_pieces

APIS = ("chat", "responses", "messages", "embeddings")
TARGETS = ("direct", "floor", "gateway")
NONSTREAM = Shape(8, 0, 20, 8)
STREAM = Shape(64, 20, 20, 8)


@dataclass(frozen=True)
class BoardSettings:
    """Requests per run of each method, untimed warm-up ones, the ramp, and how many clients
    the stream test runs at once (the non-stream method runs one)."""

    nonstream_requests: int
    stream_requests: int
    warmup: int
    max_seconds: float
    ramp: RampSettings
    stream_shape: Shape = STREAM
    idle: IdleSettings = IDLE_FULL
    stream_clients: int = 1


FULL = BoardSettings(200, 192, 2, 120.0, RAMP_FULL, stream_clients=16)
# The quick run (tests): 8 deltas 20 ms apart instead of 64, so that it stays short.
QUICK = BoardSettings(6, 4, 1, 30.0, RAMP_QUICK, Shape(8, 20, 20, 8), IDLE_QUICK, stream_clients=2)


def _client(api: str, stream: bool, target: str, spec: LoadSpec, shape: Shape) -> LoadClient:
    """The load client of one API on one target (direct and floor speak the upstream's API)."""
    expected = content_pieces(shape)
    base = spec.url
    if api == "embeddings":
        return EmbeddingsLoadClient(replace(spec, url=f"{base}/v1/embeddings"), expected)
    if target == "gateway" and api == "responses":
        url = f"{base}/v1/responses"
        if stream:
            return ResponsesLoadClient(replace(spec, url=url), expected, background=False)
        return ResponsesWholeClient(replace(spec, url=url), expected)
    if target == "gateway" and api == "messages":
        url = f"{base}/v1/messages"
        if stream:
            return MessagesLoadClient(replace(spec, url=url), expected)
        return MessagesWholeClient(replace(spec, url=url), expected)
    return LoadClient(replace(spec, url=f"{base}/v1/chat/completions"), expected)


async def measure_one(
    api: str, stream: bool, target: str, child: Child, watched: dict[str, Child], s: BoardSettings
) -> Report:
    """One run (non-stream: one client; stream: ``stream_clients`` at once, staggered over one
    stream's length): warm-up (opening every client's connection, and the target's to the
    upstream), then the measured requests with CPU sampled around them."""
    shape = s.stream_shape if stream else NONSTREAM
    clients = s.stream_clients if stream else 1
    stream_s = (shape.first_ms + shape.delay_ms * shape.chunks) / 1000
    spec = LoadSpec(
        url=child.base_url,
        model=shape.model,
        stream=stream,
        requests=s.stream_requests if stream else s.nonstream_requests,
        concurrency=clients,
        max_seconds=s.max_seconds,
        warmup=max(s.warmup, clients),
        stagger_s=stream_s / clients,
    )
    async with _client(api, stream, target, spec, shape) as client:
        warm: LoadResult = await client.warm()
        before = {name: tree_cpu(c.proc.pid) for name, c in watched.items()}
        before["client"] = self_cpu()
        result = await client.run()
        cpu: dict[str, CpuSample] = {
            n: tree_cpu(c.proc.pid) - before[n] for n, c in watched.items()
        }
        cpu["client"] = self_cpu() - before["client"]
    for one in watched.values():
        if one.proc.poll() is not None:
            result.fail("process_died", f"{one.name} exited with {one.proc.returncode}")
    return summarise_run(result, warm, cpu)


def _added(runs: Report, *path: str) -> dict[str, float | None]:
    """gateway - direct and floor - direct of one p99 figure, and their ratio."""

    def value(target: str) -> float | None:
        figure = runs[target]
        for key in path:
            figure = figure.get(key) if isinstance(figure, dict) else None
        return figure if isinstance(figure, int | float) else None

    direct, floor, gateway = value("direct"), value("floor"), value("gateway")
    out: dict[str, float | None] = {"direct_ms": direct, "floor_ms": floor, "gateway_ms": gateway}
    gw = None if gateway is None or direct is None else gateway - direct
    fl = None if floor is None or direct is None else floor - direct
    out |= {"gateway_added_ms": gw, "floor_added_ms": fl}
    out["ratio"] = gw / fl if gw is not None and fl is not None and fl > 0 else None
    return out


async def run_methods(upstream: Child, floor: Child, gateway: Child, s: BoardSettings) -> Report:
    """Both one-client methods for every API, each run direct, through the floor, the gateway."""
    out: Report = {}
    targets = {"direct": upstream, "floor": floor, "gateway": gateway}
    for api in APIS:
        out[api] = {}
        for stream in (False, True) if api != "embeddings" else (False,):
            runs: Report = {}
            for target, child in targets.items():
                watched = {"upstream": upstream, **({target: child} if target != "direct" else {})}
                runs[target] = await measure_one(api, stream, target, child, watched, s)
            if stream:
                runs["added_ttft_p99"] = _added(runs, "ttft_ms", "p99")
                runs["added_gap_p99"] = _added(runs, "gap_ms", "p99")
            else:
                runs["added_p99"] = _added(runs, "total_ms", "p99")
            out[api]["stream" if stream else "nonstream"] = runs
    return out


async def _start(name: str, argv: list[str], results_dir: Path, ready: str) -> Child:
    """Spawn a bench process on a free port and wait until ``ready`` answers 200."""
    port = free_port()
    child = spawn(name, [*argv, "--port", str(port)], results_dir / f"{name}.log", port, {})
    try:
        await wait_ready(child, ready, 15)
    except BaseException:
        await stop(child)  # never left running when it did not start right
        raise
    return child


async def run_board(
    report: Report,
    *,
    upstream: Child,
    quick: bool,
    tmp: Path,
    results_dir: Path,
    module: str,
    start_timeout: float,
) -> None:
    """Fill ``report["board"]``: the methods, then the ramp on processes of its own."""
    s = QUICK if quick else FULL
    ramp_settings = asdict(s.ramp) | {"shape": s.ramp.shape.model}
    settings = {"nonstream": NONSTREAM.model, "stream": s.stream_shape.model, "ramp": ramp_settings}
    settings |= {"requests": {"nonstream": s.nonstream_requests, "stream": s.stream_requests}}
    settings["stream_clients"] = s.stream_clients
    board: Report = {"settings": settings}
    report["board"] = board
    logs = results_dir / "board"
    logs.mkdir(exist_ok=True)
    started: list[Child] = []
    gateways: list[Gateways] = []
    try:
        floor = await _start(
            "floor", ["-m", "bench.floor", "--upstream", upstream.base_url], logs, "/v1/models"
        )
        started.append(floor)
        (tmp / "board").mkdir(exist_ok=True)
        models = sorted({NONSTREAM.model, s.stream_shape.model, WARM_SHAPE.model})
        methods = Gateways(upstream, models, tmp / "board", logs, module, start_timeout)
        gateways.append(methods)
        gateway = await methods.get(1)
        assert gateway is not None
        board["methods"] = await run_methods(upstream, floor, gateway, s)
        await methods.stop_all()
        gateways.remove(methods)
        board["gateway"] = methods.info
        # Memory per open idle stream, on a floor and a gateway of their own (bench.board_idle).
        board["idle"] = await run_idle(upstream, s.idle, _start, tmp, logs, module, start_timeout)
        # The ramp: one upstream writing every stream on a shared tick, a floor and a gateway.
        ramp_models = sorted({s.ramp.shape.model, WARM_SHAPE.model})
        ticker = await _start(
            "ticker", ["-m", "bench.ticker", "--models", ",".join(ramp_models)], logs, "/v1/models"
        )
        started.append(ticker)
        ramp_floor = await _start(
            "ramp-floor", ["-m", "bench.floor", "--upstream", ticker.base_url], logs, "/v1/models"
        )
        started.append(ramp_floor)
        (tmp / "ramp").mkdir(exist_ok=True)
        ramp_logs = logs / "ramp"
        ramp_logs.mkdir(exist_ok=True)
        ramps = Gateways(ticker, ramp_models, tmp / "ramp", ramp_logs, module, start_timeout)
        gateways.append(ramps)
        ramp_gateway = await ramps.get(1)
        assert ramp_gateway is not None
        board["ramp"] = {
            "floor": await ramp(
                f"{ramp_floor.base_url}/v1/chat/completions",
                s.ramp,
                {"upstream": ticker, "floor": ramp_floor},
            ),
            "gateway": await ramp(
                f"{ramp_gateway.base_url}/v1/chat/completions",
                s.ramp,
                {"upstream": ticker, "gateway": ramp_gateway},
            ),
        }
        board["ramp_gateway"] = ramps.info
    finally:
        for one in gateways:
            await one.stop_all()
        stops = await asyncio.gather(*(stop(child) for child in reversed(started)))
        board["stops"] = {c.name: o for c, o in zip(reversed(started), stops, strict=True)}


def board_errors(report: Report) -> int:
    """Failed requests of the methods' runs, warm-ups, and processes that did not stop cleanly.

    A ramp level not held is a measurement (how many streams the target sustains), not an error.
    """
    board = report.get("board") or {}
    errors: int = 0
    for methods in (board.get("methods") or {}).values():
        for runs in methods.values():
            errors += sum(runs[target]["errors"] for target in TARGETS)
    for info in (board.get("gateway") or {}, board.get("ramp_gateway") or {}):
        for entry in info.values():
            errors += (entry.get("warmup") or {}).get("errors", 0)
            errors += entry.get("stop", "") != "stopped on SIGTERM with exit code 0"
    clean = "stopped on SIGTERM with exit code 0"
    idle = board.get("idle") or {}
    errors += sum((idle.get(target) or {}).get("errors", 0) for target in ("floor", "gateway"))
    errors += sum(
        (entry.get("warmup") or {}).get("errors", 0) + (entry.get("stop", clean) != clean)
        for entry in (idle.get("gateway_info") or {}).values()
    )
    errors += (idle.get("floor_warmup") or {}).get("errors", 0)
    errors += idle.get("floor_stop", clean) != clean
    errors += sum(outcome != clean for outcome in (board.get("stops") or {}).values())
    return errors
