"""Export and import of chats: every chat as JSON (imported back after it was deleted), the open
chat as Markdown, and a file that is not an export refused in words. Pinned chats stay on top."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import orjson
from playwright.async_api import expect

from tests.browser.support import Stack
from tests.browser.test_accessibility import AXE_PAGE, assert_accessible
from tests.upstreams.openai import FakeOpenAI, text_script

StartStack = Callable[..., Awaitable[Stack]]


async def test_export_then_import_the_chats(
    stack: StartStack, fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    fake_openai.scripts["up"] = text_script(["Use ", "`sorted()`."])
    s = await stack(page_options=AXE_PAGE)
    await s.open()
    await s.settled(await s.send("How do I sort a list?"))

    async with s.page.expect_download() as markdown_download:
        await s.page.get_by_test_id("export-markdown").click()
    markdown = await (await markdown_download.value).path()
    assert (await markdown_download.value).suggested_filename == "how-do-i-sort-a-list.md"
    text = await asyncio.to_thread(Path(markdown).read_text)
    assert text.startswith("# How do I sort a list?\n")
    turns = "## You\n\nHow do I sort a list?\n\n## Assistant (test-model)\n\nUse `sorted()`.\n"
    assert turns in text

    async with s.page.expect_download() as json_download:
        await s.page.get_by_test_id("export-json").click()
    exported = tmp_path / "chats.json"
    await (await json_download.value).save_as(exported)
    data = orjson.loads(await asyncio.to_thread(exported.read_bytes))
    assert data["format"] == "llms-chats"
    assert [m["content"] for m in data["threads"][0]["messages"]] == [
        "How do I sort a list?",
        "Use `sorted()`.",
    ]
    await expect(s.page.get_by_test_id("transfer-status")).to_have_text("1 chat exported.")

    await s.page.get_by_test_id("delete-thread").click()
    await expect(s.page.get_by_test_id("thread-item")).to_have_count(0)
    await s.page.get_by_test_id("import-file").set_input_files(exported)
    await expect(s.page.get_by_test_id("transfer-status")).to_have_text("1 chat imported.")
    await expect(s.page.get_by_test_id("thread-item")).to_have_count(1)
    await expect(s.answers).to_have_count(1)  # the imported chat is open
    await expect(s.answers.get_by_test_id("message-content")).to_have_text("Use sorted().")
    await s.page.reload()  # it is stored, not only shown
    await expect(s.answers.get_by_test_id("message-content")).to_have_text("Use sorted().")
    await s.screenshot("30-chat-imported")

    bad = tmp_path / "notes.json"
    await asyncio.to_thread(bad.write_text, '{"notes": []}')
    await s.page.get_by_test_id("import-file").set_input_files(bad)
    status = s.page.get_by_test_id("transfer-status")
    await expect(status).to_have_text(
        "Not imported: This file holds no chats. Import takes a file made by Export (JSON)."
    )
    await expect(s.page.get_by_test_id("thread-item")).to_have_count(1)
    await assert_accessible(s, "the chat list with an import error")
    await s.screenshot("31-import-refused")


async def test_a_pinned_chat_stays_on_top(stack: StartStack, fake_openai: FakeOpenAI) -> None:
    fake_openai.scripts["up"] = text_script(["Noted."])
    s = await stack(page_options=AXE_PAGE)
    await s.open()
    for question in ("First chat", "Second chat", "Third chat"):
        await s.page.get_by_test_id("new-thread").click()
        await s.settled(await s.send(question))
    titles = s.page.get_by_test_id("thread-title")
    await expect(titles).to_have_text(["Third chat", "Second chat", "First chat"])

    first = s.page.get_by_test_id("thread-item").filter(has_text="First chat")
    await first.get_by_test_id("pin-thread").click()
    await expect(titles).to_have_text(["First chat", "Third chat", "Second chat"])
    await expect(s.page.get_by_role("heading", name="Pinned")).to_be_visible()
    pin = s.page.get_by_role("button", name="Unpin “First chat”")
    await expect(pin).to_have_attribute("aria-pressed", "true")
    await assert_accessible(s, "the chat list with a pinned chat")
    await s.screenshot("34-pinned")

    await s.page.reload()  # the pin is stored
    await expect(titles).to_have_text(["First chat", "Third chat", "Second chat"])
    await pin.click()
    await expect(s.page.get_by_role("heading", name="Pinned")).to_have_count(0)
    await expect(titles).to_have_text(["Third chat", "Second chat", "First chat"])
