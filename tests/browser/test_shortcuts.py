"""Keyboard shortcuts: copy the last answer, new chat, focus the message box, the help dialog
(Ctrl+/ or the sidebar's button; axe-clean), and Escape still stops an answer."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from playwright.async_api import expect

from tests.browser.support import Stack
from tests.browser.test_accessibility import AXE_PAGE, assert_accessible
from tests.upstreams.openai import FakeOpenAI, text_script

StartStack = Callable[..., Awaitable[Stack]]

PAGE = {"permissions": ["clipboard-read", "clipboard-write"], **AXE_PAGE}


async def test_the_keyboard_shortcuts(stack: StartStack, fake_openai: FakeOpenAI) -> None:
    fake_openai.scripts["up"] = text_script(["The **last** ", "answer."])
    s = await stack(page_options=PAGE)
    await s.open()
    await s.settled(await s.send("Answer me."))
    keyboard = s.page.keyboard

    await s.page.get_by_test_id("thread-search").focus()
    await keyboard.press("Shift+Escape")
    await expect(s.page.get_by_test_id("composer")).to_be_focused()

    await keyboard.press("Control+Shift+C")
    await expect(s.page.get_by_test_id("shortcut-notice")).to_have_text("Last answer copied.")
    assert await s.clipboard() == "The **last** answer."  # the Markdown, as written

    await keyboard.press("Control+/")
    dialog = s.page.get_by_test_id("shortcuts-dialog")
    await expect(dialog).to_be_visible()
    await expect(dialog.get_by_role("row", name="New chat")).to_contain_text("Ctrl + Shift + O")
    await assert_accessible(s, "the shortcuts dialog")
    await s.screenshot("33-shortcuts")
    await keyboard.press("Escape")
    await expect(dialog).to_be_hidden()
    await expect(s.answers).to_have_count(1)  # Escape closed the dialog, nothing else

    await keyboard.press("Control+Shift+O")
    await expect(s.answers).to_have_count(0)
    await expect(s.page).to_have_url(s.url + "/")
    await expect(s.page.get_by_test_id("composer")).to_be_focused()
    await keyboard.press("Control+Shift+C")
    await expect(s.page.get_by_test_id("shortcut-notice")).to_have_text("No answer to copy yet.")

    await s.page.get_by_test_id("show-shortcuts").click()
    await expect(dialog).to_be_visible()
    await dialog.get_by_test_id("shortcuts-close").click()
    await expect(dialog).to_be_hidden()


async def test_escape_still_stops_an_answer(stack: StartStack, fake_openai: FakeOpenAI) -> None:
    fake_openai.scripts["up"] = text_script([f"w{i} " for i in range(200)], delay_s=0.05)
    s = await stack()
    await s.open()
    answer = await s.send("A long one.")
    await s.settled(answer, "streaming")
    await s.page.keyboard.press("Escape")
    await s.settled(answer, "stopped")
