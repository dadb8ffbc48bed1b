"""Browser tests of the web UI: Debian's Chromium driven by Playwright for Python.

The real gateway app serves the built UI on a loopback port, in front of a FakeOpenAI that
streams slowly; Chromium loads it and is driven like a person would. Nothing is downloaded:
Playwright launches the system's `/usr/bin/chromium` (never `playwright install`).

Every test module here is skipped, with the reason, when Chromium, the UI build or Playwright
is missing (`make test` provides all three).
"""

from __future__ import annotations

import importlib.util
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import gateway_config
from tests.upstreams.openai import FakeOpenAI

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
UI_INDEX = ROOT / "llms" / "ui" / "dist" / "index.html"


def _skip_reason() -> str | None:
    if not CHROMIUM.is_file():
        return f"{CHROMIUM} is missing (make system installs Debian's chromium)"
    if not UI_INDEX.is_file():
        built = UI_INDEX.relative_to(ROOT)
        return f"the UI is not built: {built} is missing (cd llms/ui && npm ci && npm run build)"
    if importlib.util.find_spec("playwright") is None:
        return "Playwright for Python is not installed (pip install -e '.[test]')"
    return None


SKIP_REASON = _skip_reason()


class _SkippedModule(pytest.File):
    """A test module when the browser tests cannot run: one skip, nothing imported."""

    def collect(self) -> list[pytest.Item]:
        assert SKIP_REASON is not None
        pytest.skip(SKIP_REASON)


def pytest_pycollect_makemodule(module_path: Path, parent: pytest.Collector) -> pytest.File | None:
    if SKIP_REASON is None:
        return None
    return _SkippedModule.from_parent(parent, path=module_path)


if SKIP_REASON is None:
    from tests.browser.support import Browser, Stack, launch_browser

    @pytest.fixture
    async def browser() -> AsyncIterator[Browser]:
        async with launch_browser() as launched:
            yield launched

    @pytest.fixture
    async def stack(
        fake_openai: FakeOpenAI,
        make_gateway: Callable[..., Awaitable[str]],
        browser: Browser,
    ) -> AsyncIterator[Callable[..., Awaitable[Stack]]]:
        """Start the gateway (with the given providers, default: one fake model) and a browser page.

        `providers` maps provider name → {public model: upstream model} on the fake upstream.
        """
        stacks: list[Stack] = []

        async def start(
            providers: dict[str, dict[str, str]] | None = None,
            *,
            page_options: dict[str, Any] | None = None,
            provider_options: dict[str, Any] | None = None,
            **sections: Any,
        ) -> Stack:
            url = fake_openai.base_url  # type: ignore[attr-defined]
            config = {
                name: {
                    "type": "openai",
                    "base_url": url,
                    "models": models,
                    "timeouts": {"idle_s": 10, "first_token_s": 20},
                    **(provider_options or {}),  # e.g. price_in, price_out
                }
                for name, models in (providers or {"fake": {"test-model": "up"}}).items()
            }
            sections.setdefault("routing", {"max_attempts": 1})
            base = await make_gateway(gateway_config(config, **sections))
            created = await Stack.create(
                browser, fake_openai, base.removesuffix("/v1"), **(page_options or {})
            )
            stacks.append(created)
            return created

        yield start
        for created in stacks:
            await created.close()
        for created in stacks:
            created.check()
