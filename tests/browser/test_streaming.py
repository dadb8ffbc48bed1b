"""Streaming in the browser: progressive tokens, Stop, a dropped connection, no-stream, speed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urlsplit

import orjson
from playwright.async_api import Browser, expect

from tests.browser.support import CuttableProxy, Stack, batched_script, wait_until, words
from tests.upstreams.openai import FakeOpenAI, text_script

StartStack = Callable[..., Awaitable[Stack]]


async def test_tokens_appear_progressively(stack: StartStack, fake_openai: FakeOpenAI) -> None:
    pieces = words(30)
    fake_openai.scripts["up"] = text_script(pieces, delay_s=0.1)  # about 3 s of answer
    s = await stack()
    await s.open()
    answer = await s.send("Count slowly, please.")
    content = answer.get_by_test_id("message-content")

    await expect(content).to_contain_text("w3")
    assert not fake_openai.finished, "the first words must show while the upstream still writes"
    await expect(answer).to_have_attribute("data-state", "streaming")
    await expect(answer).to_have_attribute("aria-busy", "true")
    await expect(s.page.get_by_test_id("stop")).to_be_visible()
    await expect(s.page.get_by_test_id("send")).to_have_count(0)
    await s.screenshot("02-streaming")

    # The text grows in many steps while the upstream is still sending, never shrinks. (Its end
    # is stripped: a growing answer may end in the space before the next word, and the last
    # sample can see the answer already finished, its text trimmed.)
    lengths = []
    while not fake_openai.finished and len(lengths) < 100:
        lengths.append(len((await content.inner_text()).rstrip()))
        await asyncio.sleep(0.05)
    assert lengths == sorted(lengths)
    assert len(set(lengths)) >= 8, f"the answer grew in too few steps: {sorted(set(lengths))}"

    await s.settled(answer)
    assert await s.answer_text(answer) == "".join(pieces).strip()
    await expect(answer).not_to_have_attribute("aria-busy", "true")
    stats = answer.get_by_test_id("message-stats")
    await expect(stats).to_contain_text("Done")
    await expect(stats).to_contain_text("TTFT")
    await expect(stats).to_contain_text("via fake")
    # The answer names its model, not only the provider.
    await expect(stats.get_by_test_id("answer-model")).to_have_text("test-model")
    await expect(s.page.get_by_test_id("send")).to_be_visible()


async def test_stop_closes_the_upstream_connection(
    stack: StartStack, fake_openai: FakeOpenAI
) -> None:
    fake_openai.scripts["up"] = text_script(words(200), delay_s=0.05)  # 10 s if not stopped
    s = await stack()
    await s.open()
    answer = await s.send("Talk for a long time.")
    content = answer.get_by_test_id("message-content")
    await expect(content).to_contain_text("w5")

    await s.page.get_by_test_id("stop").click()
    stopped_at = time.monotonic()
    await wait_until(
        lambda: bool(fake_openai.gone), within_s=5, what="the upstream to see the close"
    )
    assert fake_openai.gone[0] - stopped_at < 3
    assert not fake_openai.finished
    await s.settled(answer, "stopped")
    await expect(answer).to_contain_text("Stopped")

    # The UI cancelled the stream by its id, as the gateway named it.
    stream_id = (await s.posts()[0].response()).headers["x-stream-id"]  # type: ignore[union-attr]
    assert [r.url for r in s.posts("/cancel")] == [f"{s.url}/v1/streams/{stream_id}/cancel"]
    # What arrived stays; nothing more comes.
    text = await s.answer_text(answer)
    assert text.startswith("w0 w1 w2 w3 w4 w5")
    await asyncio.sleep(0.3)
    assert await s.answer_text(answer) == text
    await expect(s.page.get_by_test_id("regenerate")).to_be_visible()
    await s.screenshot("08-stopped")


async def test_a_cut_connection_resumes_without_loss_or_duplicates(
    stack: StartStack, fake_openai: FakeOpenAI
) -> None:
    pieces = words(40)
    fake_openai.scripts["up"] = text_script(pieces, delay_s=0.06)  # about 2.4 s
    s = await stack(page_options={"permissions": ["clipboard-read", "clipboard-write"]})
    proxy = CuttableProxy(urlsplit(s.url).port or 0)
    via_proxy = await proxy.start()
    try:
        await s.open(base=via_proxy)
        answer = await s.send("Tell me forty words.")
        content = answer.get_by_test_id("message-content")
        await expect(content).to_contain_text("w8")
        assert not fake_openai.finished
        assert proxy.cut() >= 1  # the browser's stream breaks mid-answer

        await expect(answer).to_have_attribute("data-state", "retrying")
        await expect(answer).to_contain_text("Reconnecting")
        await s.screenshot("09-reconnecting")
        await s.settled(answer)
    finally:
        await proxy.close()

    full = "".join(pieces)
    assert await s.answer_text(answer) == full.strip()
    await answer.get_by_test_id("copy-message").click()
    assert await s.clipboard() == full  # the exact text: nothing doubled, nothing missing
    await expect(answer.get_by_test_id("message-stats")).to_contain_text("1 reconnect")

    # One generation upstream, never interrupted; the browser resumed it after its last event.
    assert len(fake_openai.received) == 1
    assert not fake_openai.gone
    assert len(s.posts()) == 1
    stream_id = (await s.posts()[0].response()).headers["x-stream-id"]  # type: ignore[union-attr]
    resumes = [r for r in s.requests if r.method == "GET" and "/v1/streams/" in r.url]
    assert [r.url for r in resumes] == [f"{via_proxy}/v1/streams/{stream_id}"]
    last_event_id = int(await resumes[0].header_value("last-event-id") or "0")
    assert last_event_id >= 9  # the role chunk is held back: w0…w8 are events 1…9 at least


async def test_streaming_off_sends_one_plain_request(
    stack: StartStack, fake_openai: FakeOpenAI
) -> None:
    pieces = ["One ", "plain ", "answer."]
    fake_openai.scripts["up"] = text_script(pieces, delay_s=0.05)
    s = await stack()
    await s.open()
    await s.page.get_by_test_id("settings-toggle").click()
    toggle = s.page.get_by_test_id("setting-streaming")
    await expect(toggle).to_be_checked()
    await s.page.locator("label[for=setting-streaming]").click()  # the visible switch
    await expect(toggle).not_to_be_checked()
    await s.page.get_by_test_id("setting-temperature").fill("0.2")
    await s.page.get_by_test_id("setting-max-tokens").fill("64")
    await s.page.get_by_test_id("setting-max-tokens").press("Tab")
    await s.screenshot("10-settings")
    await s.page.get_by_test_id("settings-toggle").click()
    await expect(toggle).to_have_count(0)

    answer = await s.send("No streaming this time.")
    await s.settled(answer)
    assert await s.answer_text(answer) == "One plain answer."
    await expect(answer.get_by_test_id("message-stats")).to_contain_text("non-streaming")

    posts = s.posts()
    assert len(posts) == 1
    body = orjson.loads(posts[0].post_data or "{}")
    assert body["stream"] is False
    assert (body["temperature"], body["max_tokens"]) == (0.2, 64)
    assert "stream_options" not in body
    assert await posts[0].header_value("x-stream-resumable") is None
    assert not [r for r in s.requests if "/v1/streams/" in r.url]

    # The choice is kept across a reload.
    await s.page.reload()
    await expect(s.page.get_by_test_id("model-picker")).to_be_enabled()
    await s.page.get_by_test_id("settings-toggle").click()
    await expect(s.page.get_by_test_id("setting-streaming")).not_to_be_checked()
    await expect(s.page.get_by_test_id("setting-temperature")).to_have_value("0.2")
    await expect(s.page.get_by_test_id("setting-max-tokens")).to_have_value("64")


LONG_TASKS = """
window.__longTasks = [];
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) {
    window.__longTasks.push({ start: entry.startTime, duration: entry.duration });
  }
}).observe({ type: "longtask", buffered: true });
"""


def renderer_tasks(trace: Path) -> list[tuple[float, float]]:
    """(wall ms, CPU ms) of every task the page's main thread ran while the trace recorded."""
    data = orjson.loads(trace.read_bytes())
    events = data["traceEvents"] if isinstance(data, dict) else data
    main = {
        (e["pid"], e["tid"])
        for e in events
        if e.get("ph") == "M"
        and e.get("name") == "thread_name"
        and e["args"]["name"] == "CrRendererMain"
    }
    return [
        (e["dur"] / 1000, e.get("tdur", e["dur"]) / 1000)
        for e in events
        if e.get("ph") == "X"
        and e.get("name") == "ThreadControllerImpl::RunTask"
        and (e["pid"], e["tid"]) in main
    ]


async def test_twenty_thousand_tokens_stream_without_long_tasks(
    stack: StartStack, fake_openai: FakeOpenAI, browser: Browser, tmp_path: Path
) -> None:
    """The page never works 50 ms in one go while 20,000 tokens stream in (about 10,000/s).

    The PerformanceObserver's long tasks are wall-clock time. On this two-core machine the
    gateway (Python, relaying 20,000 chunks) competes with Chromium for the CPU, and a task the
    OS pauses shows as long although the page did little: seen up to 290 ms of wall time for
    2-20 ms of work. So a Chromium trace of the same run gives each main-thread task's own CPU
    time, and that is what must stay under 50 ms; the observer's entries are shown with it.
    One task of up to 100 ms is let through: on this shared VM, whose speed varies by tens of
    percent between runs, a single garbage collection or layout has taken 59 ms of CPU. Work
    that grows with the answer (re-rendering it whole per token) shows as many long tasks
    towards the end, and still fails.
    """
    pieces = words(20_000, paragraph=120)
    fake_openai.scripts["up"] = batched_script(pieces, per_write=200, delay_s=0.02)
    s = await stack(page_options={"permissions": ["clipboard-read", "clipboard-write"]})
    await s.page.add_init_script(LONG_TASKS)
    await s.open()
    await s.page.wait_for_timeout(300)  # let the page's own start-up work finish
    started = await s.page.evaluate("performance.now()")
    trace = tmp_path / "trace.json"
    await browser.start_tracing(page=s.page, path=str(trace), categories=["toplevel"])
    try:
        answer = await s.send("Write a very long answer.")
        await expect(answer).to_have_attribute("data-state", "streaming")
        await s.settled(answer, within_ms=30_000)
        await s.page.wait_for_timeout(200)  # the last frames after the end
    finally:
        await browser.stop_tracing()
    observed = [t for t in await s.page.evaluate("window.__longTasks") if t["start"] >= started]

    tasks = renderer_tasks(trace)
    assert len(tasks) > 100, "the trace did not record the page's main thread"
    busy = sorted((t for t in tasks if t[0] > 50 or t[1] > 50), reverse=True)
    long_cpu = sorted((cpu for _, cpu in tasks if cpu > 50), reverse=True)
    assert len(long_cpu) <= 1 and max(cpu for _, cpu in tasks) <= 100, (
        f"main-thread tasks over 50 ms (wall ms, CPU ms): {busy}; long tasks seen: {observed}"
    )

    content = answer.get_by_test_id("message-content")
    await expect(content).to_contain_text("w19999")
    await answer.get_by_test_id("copy-message").click()
    assert await s.clipboard() == "".join(pieces)
