"""The UI's language: German for a German browser (navigator.languages), English otherwise;
switched live in Settings, kept across a reload, <html lang> in step; axe-clean in German."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from pathlib import Path

from playwright.async_api import expect

from tests.browser.support import Stack
from tests.browser.test_accessibility import AXE_PAGE, assert_accessible
from tests.browser.test_admin_page import ADMIN
from tests.browser.test_admin_spend_page import admin, earlier_days
from tests.upstreams.openai import FakeOpenAI, text_script

StartStack = Callable[..., Awaitable[Stack]]


async def test_a_german_browser_gets_german(
    stack: StartStack, fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    fake_openai.scripts["up"] = text_script(["Hallo ", "**Welt**.\n\n```python\nprint(1)\n```\n"])
    s = await stack(
        state={"request_log": f"sqlite:{tmp_path / 'requests.db'}"},
        page_options={"locale": "de-DE", **AXE_PAGE},
    )
    await s.open()
    page = s.page
    assert await page.evaluate("navigator.languages[0]") == "de-DE"
    await expect(page.locator("html")).to_have_attribute("lang", "de")
    await expect(page.get_by_test_id("new-thread")).to_have_text("Neuer Chat")
    await expect(page.get_by_role("button", name="Einstellungen")).to_be_visible()
    await expect(page.get_by_role("button", name="Zum dunklen Design wechseln")).to_be_visible()
    await expect(page.get_by_test_id("thread-search")).to_have_attribute(
        "placeholder", "Chats durchsuchen"
    )

    await s.settled(await s.send("Sag hallo."))
    await expect(page.get_by_role("heading", name="Heute")).to_be_visible()  # the day group
    await expect(page.get_by_test_id("copy-code")).to_have_text("Kopieren")
    await assert_accessible(s, "the chat in German")
    await s.screenshot("i18n-de-chat")

    await page.get_by_test_id("settings-toggle").click()
    panel = page.locator("#settings-panel")
    await expect(panel.get_by_role("heading", name="Einstellungen")).to_be_visible()
    await expect(panel.get_by_label("Temperatur", exact=True)).to_be_visible()
    await expect(panel.get_by_test_id("language-auto")).to_be_checked()
    await assert_accessible(s, "Settings in German")
    await s.screenshot("i18n-de-settings")
    await page.keyboard.press("Escape")

    await page.get_by_test_id("usage-page-link").click()
    await expect(page.get_by_role("heading", name="Verbrauch", level=1)).to_be_visible()
    await expect(page.get_by_role("table", name="Verbrauch pro Modell")).to_be_visible()
    await expect(page.get_by_role("radiogroup", name="Zeitraum")).to_contain_text("24 Stunden")
    await assert_accessible(s, "the usage page in German")
    # A chart's legend writes its numbers the German way too (6.082,23 tok/s, not 6082.23).
    speed = page.locator("figure.chart-card").filter(has_text="Tokens pro Sekunde")
    over = speed.locator(".u-over")
    box = await over.bounding_box()
    assert box is not None
    await page.mouse.move(box["x"] + box["width"] - 2, box["y"] + box["height"] / 2)
    value = speed.locator(".u-legend .u-series").nth(1).locator(".u-value")
    await expect(value).to_have_text(GERMAN_SPEED)
    await s.screenshot("i18n-de-usage")


async def test_switching_the_language_in_settings_is_live_and_kept(stack: StartStack) -> None:
    s = await stack(page_options={"locale": "en-US"})
    await s.open()
    page = s.page
    await expect(page.locator("html")).to_have_attribute("lang", "en")
    await expect(page.get_by_test_id("new-thread")).to_have_text("New chat")

    await page.get_by_test_id("settings-toggle").click()
    panel = page.locator("#settings-panel")
    await expect(panel.get_by_test_id("language-auto")).to_be_checked()
    await panel.get_by_text("Deutsch").click()
    # At once, without a reload: the panel, the sidebar and <html lang>.
    await expect(panel.get_by_role("heading", name="Einstellungen")).to_be_visible()
    await expect(page.get_by_test_id("new-thread")).to_have_text("Neuer Chat")
    await expect(page.locator("html")).to_have_attribute("lang", "de")
    await s.screenshot("i18n-switched-to-de")

    await page.reload()
    await expect(page.get_by_test_id("model-picker")).to_be_enabled()
    await expect(page.locator("html")).to_have_attribute("lang", "de")
    await expect(page.get_by_test_id("new-thread")).to_have_text("Neuer Chat")

    await page.get_by_test_id("settings-toggle").click()
    await expect(panel.get_by_test_id("language-de")).to_be_checked()
    await panel.get_by_text("Browser").click()  # back to the browser's language: English
    await expect(panel.get_by_role("heading", name="Settings")).to_be_visible()
    await expect(page.locator("html")).to_have_attribute("lang", "en")
    await page.reload()
    await expect(page.get_by_test_id("model-picker")).to_be_enabled()
    await expect(page.get_by_test_id("new-thread")).to_have_text("New chat")


async def test_german_untitled_chat_and_chart_dates(
    stack: StartStack, fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    """An untitled chat is "Neuer Chat", and a spend chart's dates use German day and month
    names (uPlot's date names from Intl), in the legend as the pointer moves over the chart."""
    fake_openai.scripts["up"] = text_script(["Hallo."])
    db = tmp_path / "keys.db"
    s = await stack(
        server={"admin_key": ADMIN, "api_keys": ["sk-ui"]},
        state={"keys_store": f"sqlite:{db}"},
        page_options={"locale": "de-DE"},
    )
    made = await admin(s.url, "POST", "", {"name": "team", "budget_usd": 0.1})
    await earlier_days(db, str(made["id"]), {3: 0.03, 1: 0.01})
    page = s.page
    await page.goto(s.url + "/")
    dialog = page.get_by_test_id("api-key-dialog")
    await dialog.locator("input").fill("sk-ui")
    await dialog.locator("input").press("Enter")
    await expect(dialog).to_be_hidden()
    # The models load once the key is in: a message sent before has no model to go to.
    await expect(page.get_by_test_id("model-picker")).to_be_enabled()
    await s.settled(await s.send("Sag hallo."))
    await page.get_by_test_id("rename-thread").click()
    await page.get_by_test_id("thread-rename-input").fill("")
    await page.get_by_test_id("thread-rename-input").press("Enter")
    title = page.locator(".thread-title")
    await expect(title).to_have_text("Neuer Chat")
    await expect(page.get_by_role("button", name="„Neuer Chat“ umbenennen")).to_be_attached()
    await expect(page).to_have_title("Neuer Chat · llms")
    await s.screenshot("i18n-de-untitled")

    await page.goto(s.url + "/keys")
    await page.get_by_label("Admin-Schlüssel").fill(ADMIN)
    await page.get_by_role("button", name="Schlüssel laden").click()
    await page.get_by_role("button", name="Ausgaben von team im Zeitverlauf zeigen").click()
    figure = page.locator("figure.chart-card")
    await expect(figure.locator(".u-legend")).to_contain_text("Zeit")
    over = figure.locator(".u-over")
    box = await over.bounding_box()
    assert box is not None
    await page.mouse.move(box["x"] + box["width"] - 2, box["y"] + box["height"] / 2)
    when = figure.locator(".u-legend .u-series").first.locator(".u-value")
    await expect(when).to_have_text(GERMAN_DAY)
    await s.screenshot("i18n-de-chart")


GERMAN_SPEED = re.compile(r"^\d{1,3}(\.\d{3})*(,\d{1,2})? tok/s$")
GERMAN_DAY = re.compile(
    r"^(Mo|Di|Mi|Do|Fr|Sa|So)\.?, \d{1,2}\. "
    r"(Jan|Feb|März|Apr|Mai|Juni|Juli|Aug|Sept|Okt|Nov|Dez)\.? \d{4}$"
)
