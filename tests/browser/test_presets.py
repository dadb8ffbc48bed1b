"""Prompt presets (the composer's menu, Settings' editor) and the progress cue of an answer."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from playwright.async_api import expect

from tests.browser.support import Stack, words
from tests.browser.test_accessibility import AXE_PAGE, assert_accessible
from tests.upstreams.openai import FakeOpenAI, text_script

StartStack = Callable[..., Awaitable[Stack]]
CONCISE = (
    "Answer briefly and directly. Use short paragraphs or lists; skip preambles, caveats and "
    "summaries unless asked."
)


async def test_a_preset_from_the_composer_sets_the_system_prompt(
    stack: StartStack, fake_openai: FakeOpenAI
) -> None:
    fake_openai.scripts["up"] = text_script(["Short."])
    s = await stack(page_options=AXE_PAGE)
    await s.open()
    button = s.page.get_by_test_id("presets-button")
    await expect(button).to_have_attribute("aria-expanded", "false")
    await button.click()
    menu = s.page.get_by_role("menu", name="Prompt presets")
    await expect(menu).to_be_visible()
    await expect(button).to_have_attribute("aria-expanded", "true")
    # Focus is in the menu; the arrows move it; Esc closes it and gives focus back.
    first = menu.get_by_role("menuitem").first
    await expect(first).to_be_focused()
    await s.page.keyboard.press("ArrowDown")
    await expect(menu.get_by_role("menuitem").nth(1)).to_be_focused()
    await assert_accessible(s, "the presets menu, open")
    await s.screenshot("presets-01-menu")
    await s.page.keyboard.press("Escape")
    await expect(menu).to_have_count(0)
    await expect(button).to_be_focused()

    # A system prompt preset, before the chat starts: it is the new chat's system prompt.
    await button.click()
    await menu.get_by_role("menuitem", name=re.compile("^Concise")).click()
    await expect(menu).to_have_count(0)
    await expect(s.page.get_by_test_id("system-prompt")).to_have_value(CONCISE)
    await s.settled(await s.send("What is SSE?"))
    assert s.chat_bodies()[-1]["messages"][0] == {"role": "system", "content": CONCISE}

    # In a chat: it replaces the chat's system prompt, which is kept.
    await button.click()
    await menu.get_by_role("menuitem", name=re.compile("^Code reviewer")).click()
    prompt = s.page.get_by_test_id("system-prompt")
    await expect(prompt).to_have_value(re.compile("^You are a careful senior software engineer"))
    await s.settled(await s.send("Review this."))
    assert s.chat_bodies()[-1]["messages"][0]["content"].startswith("You are a careful senior")
    await s.page.reload()
    await expect(prompt).to_have_value(re.compile("^You are a careful senior software engineer"))

    # A starter prompt goes into the message box, and sends nothing by itself.
    await button.click()
    await menu.get_by_role("menuitem", name=re.compile("^Summarise a text")).click()
    composer = s.page.get_by_test_id("composer")
    await expect(composer).to_have_value("Summarise the following text in five bullet points:\n\n")
    await expect(composer).to_be_focused()
    assert len(s.posts()) == 2


async def test_the_presets_speak_german(stack: StartStack) -> None:
    s = await stack(page_options={"locale": "de-DE"})
    await s.open()
    button = s.page.get_by_role("button", name="Prompt-Vorlagen")
    await button.click()
    menu = s.page.get_by_role("menu", name="Prompt-Vorlagen")
    await expect(menu.get_by_role("group", name="System-Prompts")).to_be_visible()
    await menu.get_by_role("menuitem", name=re.compile("^Knapp")).click()
    await expect(s.page.get_by_test_id("system-prompt")).to_have_value(CONCISE)
    await expect(
        s.page.get_by_role("status").filter(has_text="System-Prompt auf „Knapp“ gesetzt.")
    ).to_have_count(1)
    # A starter prompt becomes the user's own words: German in a German UI.
    await button.click()
    await menu.get_by_role("menuitem", name=re.compile("^Einen Text zusammenfassen")).click()
    await expect(s.page.get_by_test_id("composer")).to_have_value(
        "Fasse den folgenden Text in fünf Stichpunkten zusammen:\n\n"
    )


async def test_presets_are_created_edited_and_deleted_in_settings(
    stack: StartStack, fake_openai: FakeOpenAI
) -> None:
    fake_openai.scripts["up"] = text_script(["Arr."])
    s = await stack()
    await s.open()
    await s.page.get_by_test_id("settings-toggle").click()
    editor = s.page.get_by_test_id("presets-editor")
    await editor.get_by_test_id("preset-new").click()
    await expect(editor.get_by_test_id("preset-name")).to_be_focused()
    # Nothing to save without a text: said where it is typed.
    await editor.get_by_test_id("preset-name").fill("Pirate")
    await editor.get_by_test_id("preset-save").click()
    await expect(editor.get_by_test_id("preset-problem")).to_have_text("Write the prompt's text.")
    await editor.get_by_test_id("preset-text").fill("Talk like a pirate.")
    await s.screenshot("presets-02-editor")
    await editor.get_by_test_id("preset-save").click()
    row = editor.locator("li", has_text="Pirate")
    await expect(row).to_have_count(1)

    # Edit it, delete a built-in; both last through a reload.
    await row.get_by_test_id("preset-edit").click()
    await editor.get_by_test_id("preset-name").fill("Captain")
    await editor.get_by_test_id("preset-text").fill("Talk like a ship's captain.")
    await editor.get_by_test_id("preset-save").click()
    await expect(editor.locator("li", has_text="Captain")).to_have_count(1)
    await editor.locator("li", has_text="Translator").get_by_test_id("preset-delete").click()
    await expect(editor.locator("li", has_text="Translator")).to_have_count(0)
    await s.page.reload()
    await expect(s.page.get_by_test_id("model-picker")).to_be_enabled()
    await s.page.get_by_test_id("settings-toggle").click()
    await expect(editor.locator("li", has_text="Captain")).to_have_count(1)
    await expect(editor.locator("li", has_text="Translator")).to_have_count(0)

    # Applied from Settings, it is the chat's system prompt.
    await editor.locator("li", has_text="Captain").get_by_test_id("preset-apply").click()
    await s.page.get_by_test_id("settings-toggle").click()
    await expect(s.page.get_by_test_id("system-prompt")).to_have_value(
        "Talk like a ship's captain."
    )
    # And it is in the composer's menu.
    await s.page.get_by_test_id("presets-button").click()
    menu = s.page.get_by_role("menu", name="Prompt presets")
    await expect(menu.get_by_role("menuitem", name=re.compile("^Captain"))).to_have_count(1)
    await expect(menu.get_by_role("menuitem", name=re.compile("^Translator"))).to_have_count(0)
    await s.page.keyboard.press("Escape")
    await s.settled(await s.send("Ahoy?"))
    assert s.chat_bodies()[-1]["messages"][0] == {
        "role": "system",
        "content": "Talk like a ship's captain.",
    }


async def test_an_answer_with_max_tokens_shows_how_far_along_it_is(
    stack: StartStack, fake_openai: FakeOpenAI
) -> None:
    fake_openai.scripts["up"] = [
        text_script(words(40), delay_s=0.1),
        text_script(words(40), delay_s=0.1),
    ]
    s = await stack(page_options=AXE_PAGE)
    await s.open()
    # No max_tokens: no progress bar, the live figures as before.
    answer = await s.send("Count without a limit")
    await expect(answer.get_by_test_id("message-stats")).to_contain_text("tok/s")
    await expect(answer.get_by_role("progressbar")).to_have_count(0)
    await s.settled(answer)

    await s.page.get_by_test_id("settings-toggle").click()
    max_tokens = s.page.get_by_test_id("setting-max-tokens")
    await max_tokens.fill("60")
    await max_tokens.press("Tab")
    await s.page.get_by_test_id("settings-toggle").click()
    answer = await s.send("Count to forty")
    bar = answer.get_by_role("progressbar", name="Answer length, of the max tokens")
    await expect(bar).to_have_attribute("aria-valuemax", "60")
    await expect(bar).to_have_attribute("aria-valuenow", re.compile(r"^(1\d|[2-5]\d)$"))
    valuetext = re.compile(r"^about \d+ of 60 tokens \(estimate\)$")
    await expect(bar).to_have_attribute("aria-valuetext", valuetext)
    await expect(answer.get_by_test_id("answer-progress")).to_contain_text("/ 60 tokens (est.)")
    await s.screenshot("presets-03-progress")
    await assert_accessible(s, "an answer streaming, with its progress bar and Stop")
    assert s.chat_bodies()[-1]["max_tokens"] == 60
    await s.settled(answer)
    await expect(bar).to_have_count(0)
