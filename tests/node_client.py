"""Run openai-node (tests/node/client.mjs) against a gateway and return what it saw."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

import orjson
import pytest

NODE_DIR = Path(__file__).parent / "node"

needs_node = pytest.mark.skipif(
    shutil.which("node") is None or not (NODE_DIR / "node_modules" / "openai").exists(),
    reason="openai-node is not installed (make test runs npm ci in tests/node)",
)


async def run_node(
    base_url: str, model: str, mode: str, tools: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    args = [str(NODE_DIR / "client.mjs"), base_url, model, mode]
    if tools is not None:
        args.append(orjson.dumps(tools).decode())
    proc = await asyncio.create_subprocess_exec(
        "node", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 0, err.decode()
    result: dict[str, Any] = orjson.loads(out.splitlines()[-1])
    return result
