"""The model picker over hundreds of models: searched by typing, driven by the keyboard alone,
its choice sent with the next question; axe-clean with the list open."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from playwright.async_api import expect

from tests.browser.support import Stack
from tests.browser.test_accessibility import AXE_PAGE, assert_accessible
from tests.upstreams.openai import FakeOpenAI, text_script

StartStack = Callable[..., Awaitable[Stack]]

# Three providers, 300 models; every one is served by the same fake upstream model.
PROVIDERS = {
    name: {f"{name}-model-{i:03d}": "up" for i in range(100)} for name in ("alpha", "beta", "gamma")
}


async def test_searching_hundreds_of_models_with_the_keyboard(
    stack: StartStack, fake_openai: FakeOpenAI
) -> None:
    fake_openai.scripts["up"] = text_script(["Picked."])
    s = await stack(PROVIDERS, page_options=AXE_PAGE)
    await s.open()
    picker = s.page.get_by_test_id("model-picker")
    first = await picker.input_value()
    assert first.endswith("-model-000"), first
    options = s.page.get_by_test_id("model-option")

    await picker.focus()
    await s.page.keyboard.press("ArrowDown")
    await expect(picker).to_have_attribute("aria-expanded", "true")
    await expect(options).to_have_count(300)
    await assert_accessible(s, "the model list, open")

    await s.page.keyboard.type("GAMMA-model-04")
    await expect(options).to_have_count(10)  # gamma-model-040 … 049
    await expect(options.first).to_have_text("gamma-model-040gamma")
    await s.page.keyboard.press("ArrowDown")
    await s.page.keyboard.press("ArrowDown")
    active = await picker.get_attribute("aria-activedescendant")
    await expect(s.page.locator(f"#{active}")).to_contain_text("gamma-model-042")
    await s.screenshot("32-model-picker-search")
    await s.page.keyboard.press("Enter")
    await expect(picker).to_have_attribute("aria-expanded", "false")
    await expect(picker).to_have_value("gamma-model-042")

    # Escape closes without a change; a search with no match says so.
    await s.page.keyboard.press("ArrowDown")
    await s.page.keyboard.type("no such model")
    await expect(s.page.get_by_test_id("model-list")).to_contain_text(
        "No model matches “no such model”"
    )
    await s.page.keyboard.press("Escape")
    await expect(s.page.get_by_test_id("model-list")).to_have_count(0)
    await expect(picker).to_have_value("gamma-model-042")

    answer = await s.send("Which model?")
    await s.settled(answer)
    assert s.chat_bodies()[-1]["model"] == "gamma-model-042"
    await expect(answer.get_by_test_id("answer-model")).to_have_text("gamma-model-042")
    await s.page.reload()  # the choice is kept
    await expect(picker).to_have_value("gamma-model-042")

    await picker.click()  # and the mouse works too
    await options.filter(has_text="beta-model-007").click()
    await expect(picker).to_have_value("beta-model-007")
