"""An answer outlives its page: a reload follows it again; a second tab stops or takes it over."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from playwright.async_api import expect

from tests.browser.support import SCREENSHOTS, CuttableProxy, Stack, words
from tests.upstreams.openai import FakeOpenAI, text_script

StartStack = Callable[..., Awaitable[Stack]]


def resumes(s: Stack) -> list[str]:
    return [r.url for r in s.requests if r.method == "GET" and "/v1/streams/" in r.url]


async def test_a_reload_mid_answer_follows_it_again(
    stack: StartStack, fake_openai: FakeOpenAI
) -> None:
    pieces = words(60)
    fake_openai.scripts["up"] = text_script(pieces, delay_s=0.06)  # about 3.6 s
    s = await stack()
    await s.open()
    answer = await s.send("Count to sixty, slowly.")
    await expect(answer.get_by_test_id("message-content")).to_contain_text("w6")
    await s.page.wait_for_timeout(1700)  # the answer is saved while it streams (every 1.5 s)

    await s.page.reload()
    answer = s.answers.last
    # Followed again from where the saved copy stopped: no "The page was closed…".
    await expect(answer.get_by_test_id("message-content")).to_contain_text("w20")
    assert not fake_openai.finished, "the answer must show as it goes on, not only at its end"
    await s.screenshot("20-resumed-after-reload")
    await s.settled(answer)
    assert await s.answer_text(answer) == "".join(pieces).strip()
    await expect(answer).not_to_contain_text("closed")

    # One generation upstream; the new page asked the gateway for the rest of that stream.
    assert len(fake_openai.received) == 1
    assert len(s.posts()) == 1
    stream_id = await s.posts()[0].header_value("x-stream-id")  # the UI names its streams
    assert stream_id
    followed = resumes(s)
    assert followed and all(url == f"{s.url}/v1/streams/{stream_id}" for url in followed)
    # Still there after another reload, done.
    await s.page.reload()
    await expect(s.answers.last).to_have_attribute("data-state", "done")
    assert await s.answer_text(s.answers.last) == "".join(pieces).strip()


async def test_a_second_tab_stops_the_answer(stack: StartStack, fake_openai: FakeOpenAI) -> None:
    fake_openai.scripts["up"] = text_script(words(200), delay_s=0.05)  # 10 s if not stopped
    s = await stack()
    await s.open()
    answer = await s.send("Talk for a long time.")
    await expect(answer.get_by_test_id("message-content")).to_contain_text("w3")
    other = await s.context.new_page()
    await other.goto(s.page.url)
    mirrored = other.locator('[data-testid="message"][data-role="assistant"]').last
    await expect(mirrored.get_by_test_id("message-content")).to_contain_text("w8")
    # The mirror is busy too: it offers Stop, not Send.
    stop = other.get_by_test_id("stop")
    await expect(stop).to_be_visible()
    await stop.click()
    await s.settled(answer, "stopped")
    await expect(mirrored).to_have_attribute("data-state", "stopped")
    await expect(other.get_by_test_id("stop")).to_have_count(0)
    assert not fake_openai.finished
    assert not resumes(s), "the first tab ran the answer all along"
    await other.close()


async def test_a_second_tab_takes_over_when_the_first_closes(
    stack: StartStack, fake_openai: FakeOpenAI
) -> None:
    pieces = words(60)
    fake_openai.scripts["up"] = text_script(pieces, delay_s=0.06)
    s = await stack()
    await s.open()
    answer = await s.send("Count to sixty for two tabs.")
    await expect(answer.get_by_test_id("message-content")).to_contain_text("w3")
    other = await s.context.new_page()
    second: list[str] = []
    other.on("request", lambda r: second.append(f"{r.method} {r.url}"))
    await other.goto(s.page.url)
    mirrored = other.locator('[data-testid="message"][data-role="assistant"]').last
    await expect(mirrored.get_by_test_id("message-content")).to_contain_text("w8")
    assert not [r for r in second if "/v1/streams/" in r], "a live tab's answer is mirrored"

    await s.page.close()  # mid-answer: its fetch goes, its lock on the answer too
    # The second tab follows the stream itself now, to the end: it does not stay "streaming".
    await expect(mirrored).to_have_attribute("data-state", "done", timeout=15_000)
    text = await mirrored.get_by_test_id("message-content").inner_text()
    assert text == "".join(pieces).strip()
    assert [r for r in second if r.startswith("GET ") and "/v1/streams/" in r]
    assert len(fake_openai.received) == 1
    await other.screenshot(path=str(SCREENSHOTS / "21-taken-over.png"), caret="hide")
    await other.close()


async def test_a_silent_connection_is_noticed_after_three_heartbeats(
    stack: StartStack, fake_openai: FakeOpenAI
) -> None:
    pieces = words(100)
    fake_openai.scripts["up"] = text_script(pieces, delay_s=0.08)  # about 8 s
    s = await stack(server={"heartbeat_s": 1})  # the UI's watchdog: 5 s (at least), not 45 s
    proxy = CuttableProxy(urlsplit(s.url).port or 0)
    via_proxy = await proxy.start()
    try:
        await s.open(base=via_proxy)
        answer = await s.send("Count to a hundred.")
        await expect(answer.get_by_test_id("message-content")).to_contain_text("w5")
        proxy.freeze()  # nothing more arrives, and nothing closes
        # Noticed within seconds (with the old fixed 45 s it would still be waiting).
        await expect(answer.get_by_test_id("status-line")).to_contain_text(
            "Reconnecting", timeout=9_000
        )
        await s.settled(answer)
    finally:
        await proxy.close()
    assert await s.answer_text(answer) == "".join(pieces).strip()
    assert len(fake_openai.received) == 1
