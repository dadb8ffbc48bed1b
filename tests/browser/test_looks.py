"""The screens a person sees first: the empty chat, the dark theme, a phone-sized window.

Each test saves screenshots under test-artifacts/screenshots/ for a person to look at.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from playwright.async_api import expect

from tests.browser.support import Stack
from tests.upstreams.openai import FakeOpenAI, text_script

StartStack = Callable[..., Awaitable[Stack]]

ANSWER = (
    "Sure. A **short** answer with a list and some code:\n\n"
    "1. Read the request\n2. Stream the tokens\n\n"
    "```python\nasync def relay(stream):\n"
    "    async for chunk in stream:  # a rather long line that will not fit on a phone screen\n"
    "        yield chunk\n```\n\n"
    "That's all.\n"
)


def pieces_of(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


async def test_the_empty_chat(stack: StartStack) -> None:
    s = await stack()
    await s.open()
    await expect(s.page.get_by_test_id("model-picker")).to_have_value("test-model")
    await expect(s.page.get_by_test_id("message")).to_have_count(0)
    await expect(s.page.get_by_test_id("thread-item")).to_have_count(0)
    await expect(s.page.get_by_test_id("composer")).to_be_focused()
    await expect(s.page.get_by_test_id("send")).to_be_disabled()
    await expect(s.page.get_by_test_id("error-banner")).to_have_count(0)
    await s.screenshot("01-empty")


async def test_dark_mode(stack: StartStack, fake_openai: FakeOpenAI) -> None:
    fake_openai.scripts["up"] = text_script(pieces_of(ANSWER, 12), delay_s=0.01)
    s = await stack()
    await s.open()
    html = s.page.locator("html")
    await expect(html).to_have_attribute("data-theme", "light")
    answer = await s.send("Show me the dark theme.")
    await s.settled(answer)
    await s.page.get_by_test_id("theme-toggle").click()
    await expect(html).to_have_attribute("data-theme", "dark")
    # The background is dark once its (reduced-motion) transition has run.
    await s.page.wait_for_function(DARK_BACKGROUND, timeout=3000)
    await s.screenshot("06-dark")
    await s.page.reload()
    await expect(html).to_have_attribute("data-theme", "dark")  # the choice is kept


async def test_the_system_dark_preference_is_followed(stack: StartStack) -> None:
    s = await stack(page_options={"color_scheme": "dark"})
    await s.open()
    await expect(s.page.locator("html")).to_have_attribute("data-theme", "dark")
    await s.screenshot("06-dark-empty")


async def test_a_phone_sized_window(stack: StartStack, fake_openai: FakeOpenAI) -> None:
    fake_openai.scripts["up"] = text_script(pieces_of(ANSWER, 12), delay_s=0.01)
    s = await stack(
        page_options={"viewport": {"width": 390, "height": 844}, "has_touch": True},
    )
    await s.open()
    await s.screenshot("07-mobile-390-empty")
    answer = await s.send("Does it fit on a phone?")
    await s.settled(answer)
    overflow = await s.page.evaluate("document.documentElement.scrollWidth")
    assert overflow <= 390, f"the page is {overflow} px wide in a 390 px window"
    await expect(s.page.get_by_test_id("composer")).to_be_in_viewport()
    await expect(s.page.get_by_test_id("send")).to_be_in_viewport()
    await expect(s.page.get_by_test_id("thread-list")).not_to_be_in_viewport()
    await s.screenshot("07-mobile-390")

    await s.page.get_by_role("button", name="Show the chat list").click()
    await expect(s.page.get_by_test_id("thread-item")).to_be_in_viewport()
    await s.page.wait_for_timeout(300)  # the drawer has slid in and painted
    await s.screenshot("07-mobile-390-sidebar")


async def test_the_usage_page(stack: StartStack, fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    fake_openai.scripts["up"] = text_script(["Counted ", "once."])
    s = await stack(state={"request_log": f"sqlite:{tmp_path / 'requests.db'}"})
    await s.open()
    answer = await s.send("Count this request.")
    await s.settled(answer)
    await s.page.wait_for_timeout(300)  # the request log writes in the background
    link = s.page.get_by_test_id("usage-page-link")
    await link.click()
    await expect(s.page).to_have_url(f"{s.url}/usage")
    table = s.page.get_by_role("table", name="Usage per model")
    row = table.locator("tbody tr").filter(has_text="test-model")
    await expect(row).to_have_count(1)
    await expect(row.locator("td").first).to_have_text("1")
    await expect(s.page.locator(".charts canvas").first).to_be_visible()
    await s.screenshot("13-usage")


DARK_BACKGROUND = """() => {
  const [r, g, b] = getComputedStyle(document.body).backgroundColor.match(/[\\d.]+/g).map(Number);
  return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255 < 0.2;
}"""
