"""The keys page (/keys) charts a key's spend against its budget over the last 30 days: real
spend (the fake upstream reports usage, the provider has prices) from today's answers, and the
days before written by the key store's own release path with its clock set to those days. The
chart has an accessible summary and a table of the days."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import orjson
from playwright.async_api import expect

from llms.managed.model import Admitted
from llms.managed.sqlite import SqliteKeys
from tests.browser.support import Stack
from tests.browser.test_accessibility import AXE_PAGE, assert_accessible
from tests.browser.test_admin_page import ADMIN, chat
from tests.test_http_errors import request

StartStack = Callable[..., Awaitable[Stack]]
# $ per million tokens: an answer of the fake (5 prompt + 4 completion tokens) costs $0.013.
PRICES = {"price_in": 1000.0, "price_out": 2000.0}
ANSWER_USD = 0.013


async def admin(url: str, method: str, path: str, body: object = None) -> dict[str, object]:
    raw = None if body is None else orjson.dumps(body)
    status, _, data = await request(
        method, f"{url}/admin/keys{path}", raw, Authorization=f"Bearer {ADMIN}"
    )
    assert status < 300, data
    return dict(orjson.loads(data))


async def earlier_days(db: Path, key_id: str, spend: dict[int, float]) -> None:
    """Spend on days before today ({days ago: usd}), through the store's own release path."""
    for ago, usd in spend.items():
        at = time.time() - ago * 86400
        store = SqliteKeys(db, clock=lambda at=at: at)  # type: ignore[misc]
        await store.start()
        try:
            key = Admitted(id=key_id, name="team", models=None, budget_period="month")
            await store.release(key, 9, usd)
        finally:
            await store.close()


async def test_a_keys_spend_over_time_against_its_budget(stack: StartStack, tmp_path: Path) -> None:
    db = tmp_path / "keys.db"
    s = await stack(
        server={"admin_key": ADMIN, "api_keys": ["sk-ui"]},
        state={"keys_store": f"sqlite:{db}"},
        provider_options=PRICES,
        page_options=AXE_PAGE,
    )
    made = await admin(
        s.url, "POST", "", {"name": "team", "budget_usd": 0.1, "budget_period": "month"}
    )
    key_id = str(made["id"])
    await earlier_days(db, key_id, {9: 0.03, 6: 0.05, 4: 0.02, 2: 0.04, 1: 0.01})
    for _ in range(3):
        assert await chat(s.url, str(made["secret"])) == 200
    for _ in range(100):  # each answer's spend is written just after it
        series = await admin(s.url, "GET", f"/{key_id}/spend?days=30")
        if series["window_spend_usd"] >= 0.15 + 3 * ANSWER_USD - 1e-9:  # type: ignore[operator]
            break
        await asyncio.sleep(0.05)
    days = series["data"]
    assert isinstance(days, list) and len(days) == 30
    assert days[-1]["spend_usd"] == round(3 * ANSWER_USD, 9)

    page = s.page
    await page.goto(s.url + "/keys")
    dialog = page.get_by_test_id("api-key-dialog")
    await dialog.get_by_label("API key").fill("sk-ui")
    await dialog.get_by_label("API key").press("Enter")
    await expect(dialog).to_be_hidden()
    await page.get_by_label("Admin key").fill(ADMIN)
    await page.get_by_role("button", name="Load the keys").click()
    show = page.get_by_role("button", name="Show the spend of team over time")
    await expect(show).to_have_attribute("aria-expanded", "false")
    await show.click()
    hide = page.get_by_role("button", name="Hide the spend of team over time")
    await expect(hide).to_have_attribute("aria-expanded", "true")
    chart = page.get_by_role("img", name="team spent $0.19 in the last 30 days")
    await expect(chart).to_be_visible()
    summary = f"team spent $0.19 in the last 30 days; {money_of(days)} of its budget of $0.10"
    await expect(chart).to_have_attribute("aria-label", summary + " this month.")
    await expect(chart.locator("canvas")).to_have_count(1)
    figure = page.locator("figure.chart-card")
    await expect(figure).to_contain_text("team: spend over the last 30 days")
    await expect(figure.locator("figcaption")).to_have_css("text-align", "left")
    for label in ("spent in the month", "budget", "per day"):  # uPlot's legend
        await expect(figure.locator(".u-legend")).to_contain_text(label)
    await s.screenshot("admin-spend-chart")
    # The table of the days: today's answers, and the budget line.
    await page.get_by_text("The days as a table").click()
    today = f"{datetime.now(UTC):%Y-%m-%d}"
    row = page.get_by_role("row", name=today)
    await expect(row).to_contain_text("$0.04")  # 3 x $0.013
    await expect(row).to_contain_text("$0.10")
    await expect(page.locator(".admin-spend details tbody tr")).to_have_count(30)
    await s.screenshot("admin-spend-table")
    for theme in ("light", "dark"):  # axe-core: no serious violations, the chart open
        if await page.locator("html").get_attribute("data-theme") != theme:
            await page.get_by_test_id("theme-toggle").click()
        await assert_accessible(s, f"the keys page with a chart ({theme})")
    await s.screenshot("admin-spend-dark")
    await hide.click()
    await expect(chart).to_be_hidden()


def money_of(days: list[dict[str, float]]) -> str:
    """The month's spend so far as the page shows it."""
    return f"${days[-1]['period_spend_usd']:.2f}"
