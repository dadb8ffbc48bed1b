"""Lighthouse's accessibility score of the chat, usage and keys pages is at least 98.

Lighthouse is the npm package pinned in tests/node (installed by `make`), run offline against
Debian's Chromium on the real gateway serving the built UI. Skipped, with the reason, when it is
not installed.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.browser.support import CHROMIUM, ROOT
from tests.conftest import gateway_config
from tests.upstreams.openai import FakeOpenAI

LIGHTHOUSE = ROOT / "tests" / "node" / "node_modules" / "lighthouse" / "cli" / "index.js"

pytestmark = pytest.mark.skipif(
    not LIGHTHOUSE.is_file(), reason="lighthouse is not installed (cd tests/node && npm ci)"
)


async def lighthouse(url: str, report: Path) -> dict[str, Any]:
    process = await asyncio.create_subprocess_exec(
        "node",
        str(LIGHTHOUSE),
        url,
        "--only-categories=accessibility",
        "--chrome-flags=--headless=new --no-sandbox --disable-gpu",
        "--output=json",
        f"--output-path={report}",
        "--quiet",
        env={**os.environ, "CHROME_PATH": CHROMIUM},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=240)
    assert process.returncode == 0, output.decode(errors="replace")[-2000:]
    result: dict[str, Any] = json.loads(await asyncio.to_thread(report.read_text))
    return result


def failures(result: dict[str, Any]) -> list[str]:
    skipped = {"notApplicable", "informative", "manual"}
    return [
        f"{name}: {audit['title']}"
        for name, audit in result["audits"].items()
        if audit.get("score") is not None
        and audit["score"] < 1
        and audit.get("scoreDisplayMode") not in skipped
    ]


async def test_lighthouse_accessibility_of_the_chat_usage_and_keys_pages(
    fake_openai: FakeOpenAI, make_gateway: Callable[..., Awaitable[str]], tmp_path: Path
) -> None:
    providers = {
        "fake": {
            "type": "openai",
            "base_url": fake_openai.base_url,  # type: ignore[attr-defined]
            "models": {"test-model": "up"},
        }
    }
    config = gateway_config(providers, state={"request_log": f"sqlite:{tmp_path / 'log.db'}"})
    root = (await make_gateway(config)).removesuffix("/v1")
    for page in ("/", "/usage", "/keys"):
        result = await lighthouse(root + page, tmp_path / "report.json")
        assert result["finalDisplayedUrl"] == root + page  # the page was not left
        score = round(result["categories"]["accessibility"]["score"] * 100)
        assert score >= 98, f"{page}: accessibility {score}: {failures(result)}"
