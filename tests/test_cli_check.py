"""`llms check --gateway URL` shows a running gateway's circuit states next to the probe."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import orjson

from tests.conftest import gateway_config
from tests.upstreams.openai import FakeOpenAI, error_script, text_script


async def test_check_shows_live_circuit_state(
    fake_openai: FakeOpenAI, make_gateway: Callable[..., Awaitable[str]], tmp_path: Path
) -> None:
    providers = {
        "flaky": {"type": "openai", "base_url": fake_openai.base_url, "models": {"m": "one"}},  # type: ignore[attr-defined]
        "steady": {"type": "openai", "base_url": fake_openai.base_url, "models": {"m": "two"}},  # type: ignore[attr-defined]
    }
    routing = {"max_attempts": 2, "circuit": {"failures": 1, "cooldown_s": 60}}
    fake_openai.scripts["one"] = error_script(500, b"down")
    fake_openai.scripts["two"] = text_script(["ok"])
    base = await make_gateway(gateway_config(providers, routing=routing))
    async with aiohttp.ClientSession() as session:
        body = {"model": "m", "messages": [{"role": "user", "content": "x"}]}
        async with session.post(f"{base}/chat/completions", json=body) as resp:
            assert resp.headers["X-Provider"] == "steady"
    config = tmp_path / "config.json"
    config.write_bytes(orjson.dumps({"providers": providers, "routing": routing}))
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "llms",
        "check",
        "--config",
        str(config),
        "--gateway",
        base,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    table = out.decode()
    assert proc.returncode == 1, err.decode()  # the probe of "flaky" fails too
    header, *rows = table.strip().splitlines()
    assert "circuit" in header
    flaky = next(row for row in rows if row.startswith("flaky"))
    steady = next(row for row in rows if row.startswith("steady"))
    assert "open (1 failures)" in flaky
    assert "FAILED" in flaky
    assert "closed" in steady
    assert " ok " in steady
