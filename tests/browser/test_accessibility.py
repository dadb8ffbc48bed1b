"""Accessibility: axe-core finds no serious or critical violation on any screen (chat with an
answer, the open Settings panel, the usage page, the API-key dialog; light and dark), Tab stays
inside the open Settings panel and comes back to its button, and on a phone every control is a
44 px touch target and a New chat button is in the top bar.

axe-core is the npm package pinned in llms/ui's devDependencies, injected into the page by
Playwright; the rules it runs are its defaults (WCAG 2.x A/AA and best practices).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from playwright.async_api import Page, expect

from tests.browser.support import ROOT, Stack
from tests.upstreams.openai import FakeOpenAI, text_script

StartStack = Callable[..., Awaitable[Stack]]

AXE = ROOT / "llms" / "ui" / "node_modules" / "axe-core" / "axe.min.js"

# The gateway's Content-Security-Policy (script-src 'self') would refuse the injected axe script.
AXE_PAGE: dict[str, Any] = {"bypass_csp": True}

ANSWER = (
    "Here is **bold**, `code`, a [link](https://example.com) and a list:\n\n"
    "- one\n- two\n\n> a quote\n\n"
    "| a | b |\n|---|---|\n| 1 | 2 |\n\n"
    "```python\nprint('hi')\n```\n"
)


async def serious_violations(page: Page) -> list[str]:
    """axe-core's serious and critical violations on the page as it is, one line each."""
    if not await page.evaluate("typeof window.axe !== 'undefined'"):
        await page.add_script_tag(path=str(AXE))
    result: list[dict[str, Any]] = await page.evaluate(
        """async () => {
          const r = await axe.run(document, { resultTypes: ['violations'] });
          return r.violations.filter(v => v.impact === 'serious' || v.impact === 'critical')
            .map(v => ({ id: v.id, help: v.help, nodes: v.nodes.slice(0, 4).map(n =>
              n.target.join(' ') + ' :: ' + (n.failureSummary || '').split('\\n')[1]) }));
        }"""
    )
    return [f"{v['id']} ({v['help']}): {v['nodes']}" for v in result]


async def assert_accessible(s: Stack, name: str) -> None:
    await s.page.wait_for_timeout(250)  # transitions (reduced motion) have run
    found = await serious_violations(s.page)
    assert not found, f"{name}:\n" + "\n".join(found)


async def a_chat_with_an_answer(s: Stack) -> None:
    await s.open()
    answer = await s.send("Show me everything.")
    await s.settled(answer)


async def test_no_serious_violations_light_and_dark(
    stack: StartStack, fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    fake_openai.scripts["up"] = text_script([ANSWER])
    s = await stack(
        state={"request_log": f"sqlite:{tmp_path / 'requests.db'}"}, page_options=AXE_PAGE
    )
    await a_chat_with_an_answer(s)
    for theme in ("light", "dark"):
        if await s.page.locator("html").get_attribute("data-theme") != theme:
            await s.page.get_by_test_id("theme-toggle").click()
        await assert_accessible(s, f"the chat ({theme})")
        await s.screenshot(f"a11y-chat-{theme}")
        await s.page.get_by_test_id("settings-toggle").click()
        await expect(s.page.locator("#settings-panel")).to_be_visible()
        await assert_accessible(s, f"the open Settings panel ({theme})")
        await s.screenshot(f"a11y-settings-{theme}")
        await s.page.keyboard.press("Escape")
        await expect(s.page.locator("#settings-panel")).to_have_count(0)
        await s.page.get_by_test_id("usage-page-link").click()
        await expect(s.page.get_by_role("table", name="Usage per model")).to_be_visible()
        await assert_accessible(s, f"the usage page ({theme})")
        await s.screenshot(f"a11y-usage-{theme}")
        await s.page.go_back()
        await expect(s.answers).to_have_count(1)
