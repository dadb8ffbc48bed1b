"""The chat list: no empty chats, drafts stay with their chat, Undo brings all back."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from playwright.async_api import expect

from tests.browser.support import Stack
from tests.browser.test_accessibility import AXE_PAGE, assert_accessible
from tests.upstreams.openai import FakeOpenAI, text_script

StartStack = Callable[..., Awaitable[Stack]]


async def two_chats(s: Stack) -> None:
    await s.open()
    await s.settled(await s.send("The first chat"))
    await s.page.get_by_test_id("new-thread").click()
    await s.settled(await s.send("The second chat"))
    await expect(s.page.get_by_test_id("thread-item")).to_have_count(2)


async def test_new_chat_adds_no_empty_entry_and_focuses_the_message_box(
    stack: StartStack, fake_openai: FakeOpenAI
) -> None:
    fake_openai.scripts["up"] = text_script(["Fine."])
    s = await stack()
    await two_chats(s)
    new = s.page.get_by_test_id("new-thread")
    for _ in range(3):
        await new.click()
        await expect(s.page.get_by_test_id("message")).to_have_count(0)
    await expect(s.page.get_by_test_id("composer")).to_be_focused()
    await expect(s.page.get_by_test_id("thread-item")).to_have_count(2)  # no "New chat" pile
    await s.page.reload()
    await expect(s.page.get_by_test_id("thread-item")).to_have_count(2)
    await expect(s.page.get_by_test_id("thread-item").first).not_to_contain_text("New chat")


async def test_a_draft_stays_with_its_chat(stack: StartStack, fake_openai: FakeOpenAI) -> None:
    fake_openai.scripts["up"] = text_script(["Fine."])
    s = await stack()
    await two_chats(s)
    composer = s.page.get_by_test_id("composer")
    await composer.fill("Half a thought for the second chat")
    first = s.page.get_by_test_id("thread-item").filter(has_text="The first chat")
    await first.get_by_test_id("thread-title").click()
    await expect(s.page.get_by_test_id("message").first).to_contain_text("The first chat")
    await expect(composer).to_have_value("")  # the draft did not follow
    await s.page.get_by_test_id("new-thread").click()
    await expect(composer).to_have_value("")
    second = s.page.get_by_test_id("thread-item").filter(has_text="The second chat")
    await second.get_by_test_id("thread-title").click()
    await expect(composer).to_have_value("Half a thought for the second chat")


async def test_undo_brings_back_every_chat_just_deleted(
    stack: StartStack, fake_openai: FakeOpenAI
) -> None:
    fake_openai.scripts["up"] = text_script(["Fine."])
    s = await stack(page_options=AXE_PAGE)
    await two_chats(s)
    items = s.page.get_by_test_id("thread-item")
    await items.first.get_by_test_id("delete-thread").click()
    await expect(items).to_have_count(1)
    await items.first.get_by_test_id("delete-thread").click()
    await expect(items).to_have_count(0)
    await expect(s.page.get_by_test_id("undo-text")).to_have_text("2 chats deleted.")
    await assert_accessible(s, "the Undo notice")
    await s.screenshot("28-undo-two")
    await s.page.get_by_test_id("undo-delete").click()
    await expect(items).to_have_count(2)
    await s.page.reload()
    await expect(items).to_have_count(2)
