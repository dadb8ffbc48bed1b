"""What the chat does around an answer: parameters sent, failures, cuts, versions, the API key."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from playwright.async_api import expect

from tests.browser.support import CuttableProxy, Stack, words
from tests.browser.test_accessibility import AXE_PAGE, assert_accessible
from tests.upstreams.openai import FakeOpenAI, error_script, text_script

StartStack = Callable[..., Awaitable[Stack]]
CONTINUE_PROMPT = "Continue exactly where your previous answer stopped, without repeating anything."


async def test_only_the_parameters_set_are_sent(stack: StartStack, fake_openai: FakeOpenAI) -> None:
    fake_openai.scripts["up"] = text_script(["Fine."])
    s = await stack()
    await s.open()
    # What an older version saved as its default (0.7, without a version) reads as unset.
    await s.page.evaluate(
        """localStorage.setItem("llms.settings", JSON.stringify(
             { temperature: 0.7, maxTokens: null, streaming: true, theme: "system" }))"""
    )
    await s.page.reload()
    await expect(s.page.get_by_test_id("model-picker")).to_be_enabled()
    await s.settled(await s.send("Defaults, please."))
    assert "temperature" not in s.chat_bodies()[-1]
    assert "max_tokens" not in s.chat_bodies()[-1]

    await s.page.get_by_test_id("settings-toggle").click()
    temperature = s.page.get_by_test_id("setting-temperature")
    await expect(temperature).to_have_value("")
    await temperature.fill("0.3")
    await temperature.press("Tab")
    reset = s.page.get_by_test_id("reset-temperature")
    await expect(reset).to_be_visible()
    await s.screenshot("22-temperature-set")
    await s.page.get_by_test_id("settings-toggle").click()
    await s.settled(await s.send("A little warmer."))
    assert s.chat_bodies()[-1]["temperature"] == 0.3

    await s.page.get_by_test_id("settings-toggle").click()
    await s.page.get_by_test_id("reset-temperature").click()
    await expect(temperature).to_have_value("")
    await s.page.get_by_test_id("settings-toggle").click()
    await s.settled(await s.send("The model's own again."))
    assert "temperature" not in s.chat_bodies()[-1]


async def test_a_failure_is_said_once_in_plain_words(
    stack: StartStack, fake_openai: FakeOpenAI
) -> None:
    raw = "InternalServerError: CUDA error: an illegal memory access was encountered"
    fake_openai.scripts["up"] = error_script(
        500, {"error": {"message": raw, "type": "server_error"}}
    )
    s = await stack(page_options=AXE_PAGE)
    await s.open()
    answer = await s.send("Will this work?")
    await s.settled(answer, "failed")
    await expect(answer.get_by_test_id("error-text")).to_have_text(
        "The provider could not answer right now."
    )
    details = answer.get_by_test_id("error-details")
    await expect(details.locator("dl")).to_be_hidden()
    await expect(s.page.get_by_test_id("error-banner")).to_have_count(0)  # not twice
    await details.locator("summary").click()
    await expect(details).to_contain_text(raw)
    await expect(details).to_contain_text("Request id")
    request_id = (await s.posts()[0].response()).headers["x-request-id"]  # type: ignore[union-attr]
    await expect(details).to_contain_text(request_id)
    await s.screenshot("23-error-details")
    # The failed answer's red text and its open details keep 4.5:1 contrast, in both themes.
    await assert_accessible(s, "a failed answer, details open (light)")
    await s.page.get_by_test_id("theme-toggle").click()
    await expect(s.page.locator("html")).to_have_attribute("data-theme", "dark")
    await assert_accessible(s, "a failed answer, details open (dark)")
    await s.screenshot("23-error-details-dark")


async def test_reconnecting_shows_where_the_text_grows(
    stack: StartStack, fake_openai: FakeOpenAI
) -> None:
    pieces = words(300, paragraph=8)  # far taller than the window
    fake_openai.scripts["up"] = text_script(pieces, delay_s=0.02)
    s = await stack()
    proxy = CuttableProxy(urlsplit(s.url).port or 0)
    via_proxy = await proxy.start()
    try:
        await s.open(base=via_proxy)
        answer = await s.send("A long answer, please.")
        content = answer.get_by_test_id("message-content")
        await expect(content).to_contain_text("w200")
        assert proxy.cut() >= 1
        await expect(answer).to_have_attribute("data-state", "retrying")
        notice = answer.get_by_test_id("status-line")
        await expect(notice).to_contain_text("Reconnecting")
        await expect(notice).to_be_in_viewport()
        text_box = await content.bounding_box()
        notice_box = await notice.bounding_box()
        assert text_box and notice_box
        assert text_box["y"] < 0  # the start of the answer is above the window
        assert notice_box["y"] >= text_box["y"] + text_box["height"] - 4  # under the last line
        await s.screenshot("24-reconnecting-at-the-end")
        await s.settled(answer)
    finally:
        await proxy.close()
    assert await s.answer_text(answer) == "".join(pieces).strip()


async def test_a_max_tokens_cut_is_marked_and_continued(
    stack: StartStack, fake_openai: FakeOpenAI
) -> None:
    fake_openai.scripts["up"] = [
        text_script(["The start ", "of it "], finish="length"),
        text_script(["and the end."]),
    ]
    s = await stack(page_options=AXE_PAGE)
    await s.open()
    answer = await s.send("Say it all.")
    await s.settled(answer)
    await expect(answer.get_by_test_id("cut-note")).to_contain_text(
        "Cut off at the max-tokens limit"
    )
    await expect(answer.get_by_test_id("message-stats")).to_contain_text("Cut off")
    await expect(answer.get_by_test_id("message-stats")).not_to_contain_text("Done")
    await assert_accessible(s, "an answer cut at max tokens")
    await s.screenshot("25-cut-off")
    await answer.get_by_test_id("continue").click()
    await expect(answer.get_by_test_id("message-content")).to_have_text(
        "The start of it and the end."
    )
    await s.settled(answer)
    await expect(answer.get_by_test_id("cut-note")).to_have_count(0)
    await expect(s.answers).to_have_count(1)
    assert s.chat_bodies()[1]["messages"][-2:] == [
        {"role": "assistant", "content": "The start of it "},
        {"role": "user", "content": CONTINUE_PROMPT},
    ]


async def test_a_content_filter_stop_is_marked_without_continue(
    stack: StartStack, fake_openai: FakeOpenAI
) -> None:
    fake_openai.scripts["up"] = text_script(["Part of ", "it"], finish="content_filter")
    s = await stack(page_options=AXE_PAGE)
    await s.open()
    answer = await s.send("Something the filter stops.")
    await s.settled(answer)
    await expect(answer.get_by_test_id("cut-note")).to_have_text(
        "Stopped by the provider's content filter."
    )
    stats = answer.get_by_test_id("message-stats")
    await expect(stats).to_contain_text("Filtered")
    await expect(stats).not_to_contain_text("Done")
    # Going on would only meet the same filter: no Continue, the answer stays as it came.
    await expect(answer.get_by_test_id("continue")).to_have_count(0)
    await expect(answer.get_by_test_id("message-content")).to_have_text("Part of it")
    await assert_accessible(s, "an answer stopped by the content filter")
    await s.screenshot("25-content-filter")
    assert len(s.posts()) == 1


async def test_edit_and_regenerate_keep_versions(
    stack: StartStack, fake_openai: FakeOpenAI
) -> None:
    fake_openai.scripts["up"] = [
        text_script(["First answer."]),
        text_script(["Second answer."]),
        text_script(["Answer to the edit."]),
    ]
    s = await stack(page_options=AXE_PAGE)
    await s.open()
    answer = await s.send("Question")
    await s.settled(answer)
    await answer.get_by_test_id("regenerate").click()
    await expect(answer.get_by_test_id("message-content")).to_have_text("Second answer.")
    await s.settled(answer)
    await expect(answer.get_by_test_id("version-label")).to_have_text("2/2")
    await answer.get_by_test_id("version-prev").click()
    await expect(answer.get_by_test_id("message-content")).to_have_text("First answer.")
    await expect(answer.get_by_test_id("version-label")).to_have_text("1/2")
    await answer.get_by_test_id("version-next").click()
    await expect(answer.get_by_test_id("message-content")).to_have_text("Second answer.")

    question = s.page.locator("[data-testid=message][data-role=user]").first
    await question.get_by_test_id("edit-message").click()
    await question.get_by_test_id("edit-input").fill("Question, edited")
    await question.get_by_test_id("edit-save").click()
    await s.settled(s.answers.last)
    await expect(s.answers.last.get_by_test_id("message-content")).to_have_text(
        "Answer to the edit."
    )
    await expect(question.get_by_test_id("version-label")).to_have_text("2/2")
    await expect(question.get_by_role("button", name="Previous version")).to_be_enabled()
    await assert_accessible(s, "versions on a question and an answer")
    await s.screenshot("26-versions")

    # Nothing was lost, and it is all still there after a reload.
    await s.page.reload()
    question = s.page.locator("[data-testid=message][data-role=user]").first
    await question.get_by_test_id("version-prev").click()
    await expect(question.get_by_test_id("message-content")).to_have_text("Question")
    await expect(s.answers.last.get_by_test_id("message-content")).to_have_text("Second answer.")
    await expect(s.answers.last.get_by_test_id("version-label")).to_have_text("2/2")
    assert len(fake_openai.received) == 3


async def test_a_wrong_key_is_asked_for_again(stack: StartStack, fake_openai: FakeOpenAI) -> None:
    fake_openai.scripts["up"] = text_script(["In."])
    s = await stack(server={"api_keys": ["sk-right"]}, page_options=AXE_PAGE)
    await s.page.goto(s.url + "/")
    dialog = s.page.get_by_test_id("api-key-dialog")
    await expect(dialog).to_be_visible()
    await dialog.get_by_label("API key").fill("sk-wrong")
    await dialog.get_by_label("API key").press("Enter")
    await expect(dialog).to_contain_text("That key was not accepted either")
    await expect(dialog).to_be_visible()
    await assert_accessible(s, "the API-key dialog after a wrong key")
    await s.screenshot("27-api-key-again")
    await dialog.get_by_label("API key").fill("sk-right")
    await dialog.get_by_label("API key").press("Enter")
    await expect(dialog).to_be_hidden()
    await expect(s.page.get_by_test_id("model-picker")).to_be_enabled()
    await s.settled(await s.send("Am I in?"))


async def test_a_key_set_in_settings_reloads_the_models(
    stack: StartStack, fake_openai: FakeOpenAI
) -> None:
    fake_openai.scripts["up"] = text_script(["In."])
    s = await stack(server={"api_keys": ["sk-right"]}, page_options=AXE_PAGE)
    await s.page.goto(s.url + "/")
    dialog = s.page.get_by_test_id("api-key-dialog")
    await dialog.get_by_test_id("api-key-cancel").click()
    banner = s.page.get_by_test_id("error-banner")
    await expect(banner).to_contain_text("Could not load the models")
    await expect(s.page.get_by_test_id("model-picker")).to_be_disabled()
    await assert_accessible(s, "the banner of a model list that did not load")
    await s.screenshot("27-models-banner")

    await s.page.get_by_test_id("settings-toggle").click()
    await s.page.get_by_test_id("set-api-key").click()
    await dialog.get_by_label("API key").fill("sk-right")
    await dialog.get_by_label("API key").press("Enter")
    await expect(s.page.get_by_test_id("model-picker")).to_be_enabled()
    await expect(banner).to_have_count(0)
    await s.page.get_by_test_id("settings-toggle").click()
    await s.settled(await s.send("Am I in now?"))
