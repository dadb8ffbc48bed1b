"""``python -m bench.keys [--quick]``: what a managed key's bookkeeping costs per request.

One gateway (``server.admin_key``, its key store in a temp dir, request log off) and the fake
upstream, each in its own process. The same requests are sent with a config.json key and with a
managed key (rpm, tpm, max_streams and a budget set, so every check runs), non-stream and stream,
in alternating runs (config, managed, config, managed…) so that a busy machine weighs on both
alike. Reported: gateway CPU per request (µs) for each, the difference and the ratio, requests/s.
Every answer is checked (status 200; a stream ends with ``[DONE]``); the run fails on any error.
Saves bench/results/keys.json.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from bench.fleet import gateway_config
from bench.procs import ROOT, Child, free_port, spawn, stop, tree_cpu, wait_ready
from bench.shape import Shape

SHAPE = Shape(20, 0, 0, 8)
ADMIN = "bench-admin-key-0123456789"
CONFIG_KEY = "bench-config-key"
ROUNDS = 3  # alternating pairs of runs per mode
PRICES = {"price_in": 1.0, "price_out": 2.0}  # USD per million tokens
FULL = {"requests": 600, "concurrency": 16}
QUICK = {"requests": 40, "concurrency": 4}
Report = dict[str, Any]


async def _load(base: str, key: str, stream: bool, requests: int, concurrency: int) -> Report:
    """`requests` chat requests, `concurrency` at a time; counts answers that failed a check."""
    body = orjson.dumps(
        {"model": SHAPE.model, "messages": [{"role": "user", "content": "hi"}], "stream": stream}
    )
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    left = requests
    errors: list[str] = []

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal left
        while left > 0:
            left -= 1
            async with session.post(
                f"{base}/v1/chat/completions", data=body, headers=headers
            ) as resp:
                raw = await resp.read()
                if resp.status != 200:
                    errors.append(f"{resp.status} {raw[:200]!r}")
                elif stream and not raw.endswith(b"data: [DONE]\n\n"):
                    errors.append("stream without [DONE]")
                elif not stream and not orjson.loads(raw).get("choices"):
                    errors.append("answer without choices")

    begin = time.perf_counter()
    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    return {"wall_s": time.perf_counter() - begin, "errors": errors}


async def _measure(gateway: Child, key: str, stream: bool, size: dict[str, int]) -> Report:
    before = tree_cpu(gateway.proc.pid)
    run = await _load(gateway.base_url, key, stream, size["requests"], size["concurrency"])
    used = tree_cpu(gateway.proc.pid) - before
    return {
        "cpu_us_per_request": used.precise / size["requests"] * 1e6,
        "rps": size["requests"] / run["wall_s"],
        "errors": run["errors"],
    }


async def _managed_key(base: str) -> str:
    fields = {
        "name": "bench",
        "rpm": 10**9,
        "tpm": 10**12,
        "max_streams": 10**6,
        "budget_usd": 10**9,
        "budget_period": "month",
    }
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{base}/admin/keys",
            data=orjson.dumps(fields),
            headers={"Authorization": f"Bearer {ADMIN}"},
        ) as resp,
    ):
        data = await resp.json()
        if resp.status != 201:
            raise RuntimeError(f"could not create the managed key: {resp.status} {data}")
        return str(data["secret"])


async def run(quick: bool, results_dir: Path) -> Report:
    size = QUICK if quick else FULL
    report: Report = {"settings": {**size, "model": SHAPE.model, "rounds": ROUNDS}, "modes": {}}
    with tempfile.TemporaryDirectory(prefix="llms-bench-keys-") as tmp:
        up_port = free_port()
        upstream = spawn(
            "fake upstream",
            ["-m", "bench.upstream", "--port", str(up_port), "--models", SHAPE.model],
            results_dir / "keys-upstream.log",
            up_port,
            {},
        )
        gateway: Child | None = None
        try:
            await wait_ready(upstream, "/v1/models", 15)
            config = gateway_config(upstream.base_url, [SHAPE.model])
            # Priced, so that each answer's release writes its spend (budget, history).
            config["providers"]["bench"].update(PRICES)
            config["server"] = {"admin_key": ADMIN, "api_keys": [CONFIG_KEY]}
            config["state"] = {"request_log": None, "keys_store": f"sqlite:{tmp}/keys.db"}
            path = Path(tmp) / "config.json"
            path.write_bytes(orjson.dumps(config))
            port = free_port()
            argv = ["-m", "llms", "serve", "--config", str(path), "--port", str(port)]
            gateway = spawn("gateway", argv, results_dir / "keys-gateway.log", port, {"HOME": tmp})
            await wait_ready(gateway, "/ready", 30)
            managed = await _managed_key(gateway.base_url)
            keys = {"config": CONFIG_KEY, "managed": managed}
            for mode, stream in (("nonstream", False), ("stream", True)):
                for key in keys.values():  # warm-up: imports, pools, first statements
                    await _load(gateway.base_url, key, stream, 20, 4)
                runs: dict[str, list[Report]] = {name: [] for name in keys}
                for _ in range(ROUNDS):
                    for name, key in keys.items():
                        runs[name].append(await _measure(gateway, key, stream, size))
                report["modes"][mode] = _summary(runs)
                print(f"keys {mode}: done", file=sys.stderr, flush=True)
        finally:
            if gateway is not None:
                report["gateway_stop"] = await stop(gateway)
            await stop(upstream)
    report["errors"] = sum(m["errors"] for m in report["modes"].values())
    return report


def _summary(runs: dict[str, list[Report]]) -> Report:
    def median(values: list[float]) -> float:
        ordered = sorted(values)
        return ordered[len(ordered) // 2]

    out: Report = {"runs": runs, "errors": 0}
    for name, items in runs.items():
        out[name] = {
            "cpu_us_per_request": median([r["cpu_us_per_request"] for r in items]),
            "rps": median([r["rps"] for r in items]),
        }
        out["errors"] += sum(len(r["errors"]) for r in items)
    config, managed = out["config"]["cpu_us_per_request"], out["managed"]["cpu_us_per_request"]
    out["added_us_per_request"] = managed - config
    out["ratio"] = managed / config if config else None
    return out


def to_markdown(report: Report) -> str:
    lines = [
        "| mode | config key: gateway CPU µs/request | managed key | added | ratio "
        "| req/s config / managed |",
        "|---|---|---|---|---|---|",
    ]
    for mode, m in report["modes"].items():
        lines.append(
            f"| {mode} | {m['config']['cpu_us_per_request']:.0f} "
            f"| {m['managed']['cpu_us_per_request']:.0f} | {m['added_us_per_request']:+.0f} "
            f"| {m['ratio']:.2f}x | {m['config']['rps']:.0f} / {m['managed']['rps']:.0f} |"
        )
    lines.append(f"\nerrors: {report['errors']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.keys", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a few requests per run")
    parser.add_argument("--results-dir", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args(argv)
    args.results_dir.mkdir(parents=True, exist_ok=True)
    report = asyncio.run(run(args.quick, args.results_dir))
    (args.results_dir / "keys.json").write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    print(to_markdown(report))
    return 0 if report["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
