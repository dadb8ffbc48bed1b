"""Instructions per relayed chunk, per client-facing API, under callgrind: repeatable whatever
the machine's load, where CPU time on a shared VM varies by tens of percent between runs.

``python -m bench.instructions [--floor] [--answers 40] [--apis chat,responses,...] [--model M]``
starts the fake upstream natively and the gateway (or, with ``--floor``, ``bench.floor``) under
``valgrind --tool=callgrind --instr-atstart=no``; warms every API, switches instrumentation on,
then per API zeroes the counters, streams ``--answers`` answers of the model (4 clients) and
dumps.
Each dump's total is that API's instructions in every thread of the process; the report divides
by answers and by relayed chunks (for the default model chat 50, Responses and Messages 48 text
deltas: the same ratio as ``python -m bench``'s 52 and 50) and gives each API's ratio to chat's.
``--model bench-c64-d20-f20-s8`` measures paced answers (one chunk a read, as the board's stream
test and ramp send them) instead of a fast upstream's answer in one read. Not part of ``make
bench`` (a run takes minutes under valgrind).
"""

from __future__ import annotations

import argparse
import asyncio
import glob
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import aiohttp
import orjson

from bench.fleet import gateway_config
from bench.procs import free_port
from bench.shape import parse_model

MODEL = "bench-c50-d0-f0-s8"
PROMPT = "Say something for the benchmark."


def bodies(model: str) -> dict[str, tuple[str, dict[str, object]]]:
    """Each API's request for one streamed answer of `model`."""
    text = {"model": model, "stream": True}
    question = [{"role": "user", "content": PROMPT}]
    return {
        "chat": ("/v1/chat/completions", {**text, "messages": question}),
        "responses": ("/v1/responses", {**text, "input": PROMPT}),
        "responses_nostore": ("/v1/responses", {**text, "input": PROMPT, "store": False}),
        "messages": (
            "/v1/messages",
            {**text, "max_tokens": 1000, "messages": question},
        ),
    }


BODIES = bodies(MODEL)
HEADERS = {"Authorization": "Bearer k", "x-api-key": "k", "anthropic-version": "2023-06-01"}


async def answers(base: str, api: str, count: int, clients: int = 4, model: str = MODEL) -> None:
    """`count` streamed answers of `api`, read whole; any status but 200 fails the run."""
    path, body = bodies(model)[api]
    data = orjson.dumps(body)
    headers = {**HEADERS, "Content-Type": "application/json"}
    async with aiohttp.ClientSession() as session:
        gate = asyncio.Semaphore(clients)

        async def one() -> None:
            async with gate, session.post(base + path, data=data, headers=headers) as resp:
                text = await resp.read()
                if resp.status != 200:
                    raise SystemExit(f"{api}: {resp.status} {text[:300]!r}")

        await asyncio.gather(*[one() for _ in range(count)])


def _wait(url: str) -> None:
    for _ in range(1200):
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"not ready: {url}")


def _control(*args: str) -> None:
    subprocess.run(["callgrind_control", *args], check=True, capture_output=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.instructions", description=__doc__)
    parser.add_argument("--floor", action="store_true", help="measure bench.floor (chat only)")
    parser.add_argument("--answers", type=int, default=40)
    parser.add_argument("--apis", default=",".join(BODIES))
    parser.add_argument("--model", default=MODEL, help="a bench model, e.g. bench-c64-d20-f20-s8")
    args = parser.parse_args(argv)
    shape = parse_model(args.model)
    if shape is None or shape.chunks < 3:
        parser.error(f"--model: not a bench model of 3 chunks or more: {args.model!r}")
    model = args.model
    apis = ["chat"] if args.floor else [a for a in args.apis.split(",") if a]
    work = Path(tempfile.mkdtemp(prefix="bench-instructions-"))
    up_port, port = free_port(), free_port()
    upstream_url = f"http://127.0.0.1:{up_port}"
    python = sys.executable
    upstream = subprocess.Popen([python, "-m", "bench.upstream", "--port", str(up_port)])
    if args.floor:
        target = ["-m", "bench.floor", "--upstream", upstream_url]
        ready = f"http://127.0.0.1:{port}/v1/models"
    else:
        config = gateway_config(upstream_url, [model], responses_store=work / "responses.db")
        (work / "config.json").write_bytes(orjson.dumps(config))
        target = ["-m", "llms", "serve", "--config", str(work / "config.json")]
        ready = f"http://127.0.0.1:{port}/ready"
    out = work / "callgrind.out"
    valgrind = ["valgrind", "--tool=callgrind", "--instr-atstart=no"]
    valgrind.append(f"--callgrind-out-file={out}.%p")
    with open(work / "target.log", "wb") as log:
        argv_ = [*valgrind, python, *target, "--host", "127.0.0.1", "--port", str(port)]
        measured = subprocess.Popen(argv_, env={**os.environ, "HOME": str(work)}, stderr=log)
    totals: dict[str, int] = {}
    try:
        _wait(f"{upstream_url}/v1/models")
        _wait(ready)
        base = f"http://127.0.0.1:{port}"
        for api in apis:
            asyncio.run(answers(base, api, 8, model=model))
        _control("-i", "on", str(measured.pid))
        for api in apis:
            asyncio.run(answers(base, api, 4, model=model))
            _control("-z", str(measured.pid))
            asyncio.run(answers(base, api, args.answers, model=model))
            time.sleep(1.0)  # the stored responses' writes after the answers
            _control("-d", api, str(measured.pid))
            dumps = sorted(glob.glob(f"{out}.{measured.pid}.*"), key=os.path.getmtime)
            found = re.search(r"^totals: (\d+)", Path(dumps[-1]).read_text(), re.MULTILINE)
            if found is None:
                raise SystemExit(f"no totals in {dumps[-1]}")
            totals[api] = int(found.group(1))
    finally:
        measured.kill()
        upstream.terminate()
        measured.wait(60)
        upstream.wait(10)
    name = "floor" if args.floor else "gateway"
    per_chunk = {
        api: total / args.answers / (shape.chunks if api == "chat" else shape.chunks - 2)
        for api, total in totals.items()
    }
    for api, total in totals.items():
        ratio = f", {per_chunk[api] / per_chunk['chat']:.3f}x chat" if "chat" in per_chunk else ""
        print(
            f"{name} {api}: {total / args.answers / 1000:,.0f}k instructions per answer, "
            f"{per_chunk[api] / 1000:.1f}k per chunk{ratio}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
