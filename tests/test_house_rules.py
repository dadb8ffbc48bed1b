"""Rules of the house that a machine can check."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
PACKAGE = ROOT / "llms"
# The rule holds for the tests and the benchmark too (node_modules and the venv are not ours).
SOURCES = sorted(
    path
    for folder in ("llms", "tests", "bench", "cluster")
    for path in (ROOT / folder).rglob("*.py")
    if "node_modules" not in path.parts
)


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_over_800_lines(path: Path) -> None:
    lines = path.read_text().count("\n")
    assert lines <= 800, f"{path} has {lines} lines: split it by role"


def test_only_upstream_uses_the_aiohttp_client() -> None:
    users = [
        p.relative_to(PACKAGE).as_posix()
        for p in PACKAGE.rglob("*.py")
        if "ClientSession(" in p.read_text() or ".ClientResponse" in p.read_text()
    ]
    # cli.py is a client of the gateway itself (llms chat / models), not of a provider.
    assert sorted(users) == ["cli.py", "upstream.py"]


def test_adapters_do_no_io() -> None:
    for path in (PACKAGE / "adapters").glob("*.py"):
        text = path.read_text()
        for banned in ("import aiohttp", "import asyncio", "import time", "from aiohttp", "open("):
            assert banned not in text, f"{path.name} uses {banned!r}: adapters translate only"
