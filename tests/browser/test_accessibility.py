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
from tests.upstreams.openai import FakeOpenAI, error_script, text_script

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


async def test_the_api_key_dialog_is_accessible(stack: StartStack) -> None:
    s = await stack(server={"api_keys": ["sk-right"]}, page_options=AXE_PAGE)
    await s.page.goto(s.url + "/")
    dialog = s.page.get_by_test_id("api-key-dialog")
    await expect(dialog.get_by_label("API key")).to_be_focused()
    await assert_accessible(s, "the API-key dialog")
    await s.screenshot("a11y-api-key-dialog")


async def test_tab_stays_in_the_open_settings_panel(stack: StartStack) -> None:
    s = await stack()
    await s.open()
    toggle = s.page.get_by_test_id("settings-toggle")
    await toggle.focus()
    await s.page.keyboard.press("Enter")
    panel = s.page.locator("#settings-panel")
    await expect(panel).to_be_visible()
    await expect(panel.get_by_role("button", name="Close settings")).to_be_focused()
    inside = "() => document.getElementById('settings-panel').contains(document.activeElement)"
    seen: set[str] = set()
    for _ in range(20):  # more presses than the panel has controls: it wraps around
        await s.page.keyboard.press("Tab")
        assert await s.page.evaluate(inside), "Tab left the open Settings panel"
        seen.add(await s.page.evaluate("document.activeElement.outerHTML.slice(0, 60)"))
    assert len(seen) >= 5, seen  # it went through the panel's fields, not stuck on one
    for _ in range(20):
        await s.page.keyboard.press("Shift+Tab")
        assert await s.page.evaluate(inside), "Shift+Tab left the open Settings panel"
    await s.screenshot("a11y-settings-focus")
    await s.page.keyboard.press("Escape")
    await expect(panel).to_have_count(0)
    await expect(toggle).to_be_focused()  # back where it came from


PHONE: dict[str, Any] = {
    "viewport": {"width": 390, "height": 844},
    "has_touch": True,
    "is_mobile": True,
    **AXE_PAGE,
}

SMALL_TARGETS = """() => Array.from(document.querySelectorAll(
    'button, select, input, textarea, a[href], [role=button], summary'))
  .filter(el => !el.closest('.markdown'))  // links inside the answer's text are inline
  .filter(el => !el.closest('[aria-hidden=true]'))  // the file input behind Import… (a button)
  .filter(el => { const r = el.getBoundingClientRect();
    const style = getComputedStyle(el);
    return r.width > 0 && r.height > 0 && style.visibility !== 'hidden'
      && r.bottom > 0 && r.top < innerHeight && r.right > 0 && r.left < innerWidth; })
  .map(el => { const r = el.getBoundingClientRect();
    return [el.outerHTML.slice(0, 80), Math.round(r.width), Math.round(r.height)]; })
  .filter(([, w, h]) => w < 44 || h < 44)"""


async def test_a_phone_has_44px_targets_and_a_new_chat_button(
    stack: StartStack, fake_openai: FakeOpenAI
) -> None:
    fake_openai.scripts["up"] = text_script([ANSWER])
    s = await stack(page_options=PHONE)
    await a_chat_with_an_answer(s)
    small = await s.page.evaluate(SMALL_TARGETS)
    assert small == [], "\n".join(map(str, small))
    await assert_accessible(s, "the chat on a phone")
    await s.screenshot("a11y-phone-chat")

    new_chat = s.page.get_by_test_id("new-chat-top")
    await expect(new_chat).to_be_in_viewport()
    await new_chat.tap()
    await expect(s.answers).to_have_count(0)
    await expect(s.page).to_have_url(s.url + "/")
    await expect(s.page.get_by_test_id("composer")).to_be_focused()

    await s.page.get_by_role("button", name="Show the chat list").tap()
    await expect(s.page.get_by_test_id("thread-item")).to_be_in_viewport()
    await s.page.wait_for_timeout(300)  # the drawer has slid in
    small = await s.page.evaluate(SMALL_TARGETS)
    assert small == [], "\n".join(map(str, small))
    await assert_accessible(s, "the chat list on a phone")
    await s.screenshot("a11y-phone-sidebar")


async def test_the_skip_link_leads_somewhere_on_every_page(
    stack: StartStack, tmp_path: Path
) -> None:
    """Each page starts with a skip link whose target is there and takes focus (Lighthouse's
    skip-link audit; /keys once pointed at the chat's message box, not on that page)."""
    s = await stack(state={"request_log": f"sqlite:{tmp_path / 'requests.db'}"})
    first = "() => document.querySelector('a[href], button, input, select, textarea').className"
    for path, target in (("/", "composer"), ("/usage", "usage-title"), ("/keys", "admin-title")):
        await s.page.goto(s.url + path)
        await expect(s.page.locator(f"#{target}")).to_be_attached()
        assert await s.page.evaluate(first) == "skip", path  # first in the Tab order
        skip = s.page.locator("a.skip")
        await skip.focus()
        await expect(skip).to_have_attribute("href", f"#{target}")
        await expect(skip).to_be_in_viewport()  # shown when focused
        await s.page.keyboard.press("Enter")
        await expect(s.page.locator(f"#{target}")).to_be_focused()


async def test_a_phone_keeps_44px_targets_in_every_state(
    stack: StartStack, fake_openai: FakeOpenAI
) -> None:
    """Beyond a plain answer: a cut answer's Continue, the versions pager, a failure's Retry and
    Details, the open Settings panel and the presets menu are 44 px targets on a phone, and
    axe-clean."""
    fake_openai.scripts["up"] = [
        text_script(["Cut ", "short"], finish="length"),
        text_script(["Again."]),
        error_script(500, {"error": {"message": "boom", "type": "server_error"}}),
    ]
    s = await stack(page_options=PHONE)
    await s.open()
    answer = await s.send("First")
    await s.settled(answer)
    await expect(answer.get_by_test_id("continue")).to_be_visible()
    await answer.get_by_test_id("regenerate").tap()
    await s.settled(answer)
    await expect(answer.get_by_test_id("version-label")).to_have_text("2/2")
    failed = await s.send("Second")
    await s.settled(failed, "failed")
    await failed.get_by_test_id("error-details").locator("summary").tap()
    for what in ("versions", "a failure, details open"):
        target = answer if what == "versions" else failed
        await target.scroll_into_view_if_needed()
        small = await s.page.evaluate(SMALL_TARGETS)
        assert small == [], f"{what}:\n" + "\n".join(map(str, small))
        await assert_accessible(s, f"{what} on a phone")
    await s.screenshot("a11y-phone-states")

    await s.page.get_by_test_id("settings-toggle").tap()
    panel = s.page.locator("#settings-panel")
    await expect(panel).to_be_visible()
    await s.page.wait_for_timeout(300)
    # Nothing runs past the panel's right edge (the presets' rows once did, buttons cut off).
    widths = await panel.evaluate("(el) => [el.scrollWidth, el.clientWidth]")
    assert widths[0] <= widths[1], f"the Settings panel overflows: {widths}"
    for _ in range(6):  # the panel scrolls: every part of it, top to bottom
        small = await s.page.evaluate(SMALL_TARGETS)
        assert small == [], "Settings:\n" + "\n".join(map(str, small))
        await panel.evaluate("(el) => el.scrollBy(0, 400)")  # the panel scrolls itself
    await assert_accessible(s, "Settings on a phone")
    await s.screenshot("a11y-phone-settings")
    await s.page.keyboard.press("Escape")

    await s.page.get_by_test_id("presets-button").tap()
    await expect(s.page.get_by_role("menu", name="Prompt presets")).to_be_visible()
    small = await s.page.evaluate(SMALL_TARGETS)
    assert small == [], "presets menu:\n" + "\n".join(map(str, small))
    await assert_accessible(s, "the presets menu on a phone")
    await s.screenshot("a11y-phone-presets")


async def test_the_usage_and_keys_pages_on_a_phone(
    stack: StartStack, fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    """The usage and keys pages fit a 390 px touch screen: no sideways scroll of the page, 44 px
    targets, axe-clean; so does the API-key dialog."""
    fake_openai.scripts["up"] = text_script(["Counted."])
    s = await stack(
        server={"admin_key": "adm-0123456789abcdef", "api_keys": ["sk-ui"]},
        state={
            "request_log": f"sqlite:{tmp_path / 'requests.db'}",
            "keys_store": f"sqlite:{tmp_path / 'keys.db'}",
        },
        page_options=PHONE,
    )
    await s.page.goto(s.url + "/")
    dialog = s.page.get_by_test_id("api-key-dialog")
    await expect(dialog.get_by_label("API key")).to_be_focused()
    small = await s.page.evaluate(SMALL_TARGETS)
    assert small == [], "the API-key dialog:\n" + "\n".join(map(str, small))
    await assert_accessible(s, "the API-key dialog on a phone")
    await dialog.get_by_label("API key").fill("sk-ui")
    await dialog.get_by_label("API key").press("Enter")
    await expect(s.page.get_by_test_id("model-picker")).to_be_enabled()  # the models loaded
    await s.settled(await s.send("Count me."))
    await s.page.wait_for_timeout(300)  # the request log writes in the background
    for path, ready in (
        ("/usage", s.page.get_by_role("table", name="Usage per model")),
        ("/keys", s.page.get_by_label("Admin key")),
    ):
        await s.page.goto(s.url + path)
        await expect(ready).to_be_visible()
        await s.page.wait_for_timeout(300)
        width = await s.page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"{path} is {width} px wide in a 390 px window"
        small = await s.page.evaluate(SMALL_TARGETS)
        assert small == [], f"{path}:\n" + "\n".join(map(str, small))
        await assert_accessible(s, f"{path} on a phone")
        await s.screenshot(f"a11y-phone-{path.strip('/')}")
    # The keys, loaded: the create form and the table of keys.
    await s.page.get_by_label("Admin key").fill("adm-0123456789abcdef")
    await s.page.get_by_label("Admin key").press("Enter")
    await expect(s.page.get_by_role("form", name="Create a key")).to_be_visible()
    width = await s.page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"/keys is {width} px wide in a 390 px window"
    small = await s.page.evaluate(SMALL_TARGETS)
    assert small == [], "/keys, loaded:\n" + "\n".join(map(str, small))
    await assert_accessible(s, "/keys, loaded, on a phone")
    await s.screenshot("a11y-phone-keys-loaded")
