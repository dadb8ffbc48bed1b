"""The web UI's managed keys page (/keys): the admin key loads the keys, a key is created (its
secret shown once, and it works), its spend against budget shows, and it is revoked in two
clicks (refused by the API at once)."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from playwright.async_api import expect

from tests.browser.support import Stack
from tests.browser.test_accessibility import assert_accessible
from tests.test_http_errors import request

ADMIN = "adm-0123456789abcdef"
StartStack = Callable[..., Awaitable[Stack]]


async def chat(url: str, secret: str) -> int:
    body = orjson.dumps({"model": "test-model", "messages": [{"role": "user", "content": "hi"}]})
    status: int
    status, _, _ = await request(
        "POST", f"{url}/v1/chat/completions", body, Authorization=f"Bearer {secret}"
    )
    return status


async def test_create_see_and_revoke_a_key(stack: StartStack, tmp_path: Any) -> None:
    s = await stack(
        server={"admin_key": ADMIN, "api_keys": ["sk-ui"]},
        state={"keys_store": f"sqlite:{tmp_path / 'keys.db'}"},
        page_options={"bypass_csp": True},  # axe-core, injected
    )
    page = s.page
    await page.goto(s.url + "/keys")
    # The app asks for its API key (the chat's); the admin key is asked on the page itself.
    dialog = page.get_by_test_id("api-key-dialog")
    await dialog.get_by_label("API key").fill("sk-ui")
    await dialog.get_by_label("API key").press("Enter")
    await expect(dialog).to_be_hidden()
    await expect(page.get_by_role("heading", name="Keys")).to_be_visible()
    await page.get_by_label("Admin key").fill("wrong-admin-key-000")
    await page.get_by_role("button", name="Load the keys").click()
    await expect(page.get_by_role("alert")).to_contain_text("admin key is missing or wrong")
    await page.get_by_label("Admin key").fill(ADMIN)
    await page.get_by_role("button", name="Load the keys").click()
    await expect(page.get_by_text("No managed keys yet.")).to_be_visible()
    form = page.get_by_role("form", name="Create a key")
    await form.get_by_label("Name").fill("ci")
    await form.get_by_label("rpm").fill("1.5")
    await form.get_by_role("button", name="Create").click()
    await expect(page.get_by_role("alert")).to_contain_text("rpm must be a positive whole number")
    await assert_accessible(s, "the keys page with a form error")
    await form.get_by_label("rpm").fill("60")
    await form.get_by_label("Budget $").fill("5")
    await form.get_by_label("Per").select_option("month")
    await form.get_by_role("button", name="Create").click()
    shown = page.locator(".admin-secret")
    await expect(shown).to_have_text(re.compile(r"^sk-llms-[A-Za-z0-9_-]{43}$"))
    secret = await shown.inner_text()
    row = page.get_by_role("row", name="ci")
    await expect(row).to_contain_text("60 rpm")
    await expect(row).to_contain_text("$0.00 / $5.00 a month")
    assert await chat(s.url, secret) == 200
    await row.get_by_role("button", name="Revoke ci").click()
    await row.get_by_role("button", name="Revoke ci now: every request with it is refused").click()
    await expect(page.get_by_text("No managed keys yet.")).to_be_visible()
    assert await chat(s.url, secret) == 401
    await s.screenshot("admin-keys")
