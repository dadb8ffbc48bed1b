"""Tabs: a thread open in two tabs stays in sync, and a hidden tab keeps receiving."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from playwright.async_api import expect

from tests.browser.support import Stack, words
from tests.upstreams.openai import FakeOpenAI, text_script

StartStack = Callable[..., Awaitable[Stack]]

HIDE = """() => {
  // Hidden, as a background tab: no animation frames at all, only timers.
  Object.defineProperty(document, "visibilityState", { configurable: true, get: () => "hidden" });
  Object.defineProperty(document, "hidden", { configurable: true, get: () => true });
  window.requestAnimationFrame = () => 0;
  document.dispatchEvent(new Event("visibilitychange"));
}"""


async def test_two_tabs_follow_one_thread(stack: StartStack, fake_openai: FakeOpenAI) -> None:
    pieces = words(20)
    fake_openai.scripts["up"] = text_script(pieces, delay_s=0.08)
    s = await stack()
    await s.open()
    answer = await s.send("Count for both tabs.")
    await expect(answer.get_by_test_id("message-content")).to_contain_text("w1")
    other = await s.context.new_page()
    await other.goto(s.page.url)  # /t/<thread id>
    mirrored = other.locator('[data-testid="message"][data-role="assistant"]').last
    # The second tab shows the answer growing while the first tab receives it.
    await expect(mirrored.get_by_test_id("message-content")).to_contain_text("w5")
    assert not fake_openai.finished
    await expect(mirrored.get_by_test_id("message-content")).to_have_text("".join(pieces).strip())
    await expect(mirrored).to_have_attribute("data-state", "done")
    await other.close()


async def test_a_hidden_tab_keeps_receiving(stack: StartStack, fake_openai: FakeOpenAI) -> None:
    pieces = words(30)
    fake_openai.scripts["up"] = text_script(pieces, delay_s=0.05)
    s = await stack()
    await s.open()
    answer = await s.send("Keep going while I look elsewhere.")
    content = answer.get_by_test_id("message-content")
    await expect(content).to_contain_text("w1")
    await s.page.evaluate(HIDE)
    # No animation frame will ever run again: the text must still arrive, on timers.
    await expect(content).to_have_text("".join(pieces).strip())
    await expect(answer).to_have_attribute("data-state", "done")
