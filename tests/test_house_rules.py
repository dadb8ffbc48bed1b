"""Rules of the house that a machine can check."""

from __future__ import annotations

from pathlib import Path

import pytest

PACKAGE = Path(__file__).parent.parent / "llms"


@pytest.mark.parametrize(
    "path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE))
)
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
