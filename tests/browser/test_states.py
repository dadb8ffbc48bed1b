"""The states around an answer: a fallback between providers, a rate limit, an API key."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from playwright.async_api import Locator, expect

from tests.browser.support import Stack, words
from tests.browser.test_accessibility import AXE_PAGE, assert_accessible
from tests.upstreams.openai import FakeOpenAI, error_script, text_script

StartStack = Callable[..., Awaitable[Stack]]


async def test_a_fallback_shows_the_retrying_state(
    stack: StartStack, fake_openai: FakeOpenAI
) -> None:
    fake_openai.scripts["fb-a"] = error_script(
        503, {"error": {"message": "The engine is overloaded", "type": "server_error"}}
    )
    pieces = words(10)
    # b takes a while before its first token: time to see the fallback on screen.
    fake_openai.scripts["fb-b"] = text_script(pieces, first_delay_s=1.5, delay_s=0.03)
    s = await stack({"a": {"fb": "fb-a"}, "b": {"fb": "fb-b"}}, routing={"max_attempts": 2})
    await s.open()
    answer = await s.send("Anyone there?")
    await expect(answer).to_have_attribute("data-state", "retrying")
    await expect(answer).to_contain_text("Falling back")
    await s.screenshot("06-falling-back")
    await s.settled(answer)
    assert await s.answer_text(answer) == "".join(pieces).strip()
    await expect(answer.get_by_test_id("message-stats")).to_contain_text("via b")
    assert [r.body["model"] for r in fake_openai.received] == ["fb-a", "fb-b"]


COUNTDOWN = re.compile(r"retry in (\d+) s", re.IGNORECASE)


async def rate_limited(s: Stack, answer: Locator, message: str, retry_after: int) -> None:
    """The answer says so once, in plain words, with the 429's own message under Details; no
    banner repeats it; Retry counts the wait down and stays disabled until it is over."""
    await s.settled(answer, "failed", within_ms=8000)
    text = answer.get_by_test_id("error-text")
    await expect(text).to_contain_text("Too many requests: the rate limit was reached.")
    await expect(text).to_contain_text(COUNTDOWN)
    first = int(COUNTDOWN.search(await text.inner_text()).group(1))  # type: ignore[union-attr]
    details = answer.get_by_test_id("error-details")
    await expect(details.locator("dl")).to_be_hidden()  # behind the disclosure, closed
    await details.locator("summary").click()
    await expect(details.locator("dl")).to_be_visible()
    await expect(details).to_contain_text(message)
    await expect(details).to_contain_text("429")
    await expect(s.page.get_by_test_id("error-banner")).to_have_count(0)
    assert retry_after - 5 <= first <= retry_after + 1
    retry = answer.get_by_test_id("retry")
    await expect(retry).to_be_disabled()
    await expect(retry).to_contain_text(COUNTDOWN)
    await assert_accessible(s, "a rate-limited answer, details open")
    if first > 1:
        await expect(text).to_contain_text(f"retry in {first - 1} s", timeout=2500)


async def test_a_rate_limit_shows_its_message_and_a_countdown(
    stack: StartStack, fake_openai: FakeOpenAI
) -> None:
    raw = (
        "Rate limit reached for gpt-4o on requests per min (RPM): Limit 3, Used 3, "
        "Requested 1. Please try again in 4s."
    )
    limited = error_script(
        429,
        {"error": {"message": raw, "type": "requests", "code": "rate_limit_exceeded"}},
        headers={"Retry-After": "4"},
    )
    fake_openai.scripts["up"] = [limited, text_script(["Better ", "now."])]
    s = await stack(page_options=AXE_PAGE)
    await s.open()
    answer = await s.send("Hello?")
    await rate_limited(s, answer, raw, 4)
    await s.screenshot("05-error-rate-limit")

    # Retry is offered once the wait is over; the failed answer is replaced.
    retry = answer.get_by_test_id("retry")
    await expect(retry).to_be_enabled(timeout=6000)
    await expect(answer.get_by_test_id("error-text")).to_contain_text("You can retry now.")
    await retry.click()
    await s.settled(s.answers.last)
    await expect(s.answers).to_have_count(1)
    await expect(s.answers.last.get_by_test_id("message-content")).to_have_text("Better now.")


async def test_the_gateways_own_rate_limit_shows_its_message_and_a_countdown(
    stack: StartStack, fake_openai: FakeOpenAI
) -> None:
    fake_openai.scripts["up"] = text_script(["Within ", "the limit."])
    s = await stack(
        server={"api_keys": [{"key": "sk-limited", "name": "tester", "rpm": 1}]},
        page_options=AXE_PAGE,
    )
    await s.page.add_init_script("localStorage.setItem('llms.apiKey', 'sk-limited')")
    await s.open()
    await s.settled(await s.send("One request a minute."))
    answer = await s.send("And another one.")
    await rate_limited(s, answer, "Rate limit reached for the API key 'tester'", 60)
    await s.screenshot("05-error-key-limit")


async def test_an_api_key_is_asked_for_then_used(
    stack: StartStack, fake_openai: FakeOpenAI
) -> None:
    fake_openai.scripts["up"] = text_script(["Authorised ", "answer."])
    s = await stack(server={"api_keys": ["sk-browser-key"]})
    await s.page.goto(s.url + "/")
    dialog = s.page.get_by_test_id("api-key-dialog")
    await expect(dialog).to_be_visible()
    await expect(s.page.get_by_test_id("model-picker")).to_be_disabled()
    await s.screenshot("11-api-key-dialog")
    await dialog.get_by_label("API key").fill("sk-browser-key")
    await dialog.get_by_label("API key").press("Enter")
    await expect(dialog).to_be_hidden()
    await expect(s.page.get_by_test_id("model-picker")).to_be_enabled()

    answer = await s.send("Am I in?")
    await s.settled(answer)
    await expect(answer.get_by_test_id("message-content")).to_have_text("Authorised answer.")
    assert await s.posts()[0].header_value("authorization") == "Bearer sk-browser-key"

    # Asked once: the key is kept for the next visit.
    await s.page.reload()
    await expect(s.page.get_by_test_id("model-picker")).to_be_enabled()
    await expect(dialog).to_be_hidden()
