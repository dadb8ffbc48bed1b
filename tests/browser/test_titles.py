"""Auto titles: after a new chat's first answer, its model names it (lib/titles.ts)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import orjson
from playwright.async_api import expect

from tests.browser.support import Stack, wait_until
from tests.upstreams.openai import FakeOpenAI, error_script, text_script

StartStack = Callable[..., Awaitable[Stack]]
QUESTION = "How do tides work? I never understood why there are two a day."
# What names a chat until (or unless) its model does: the question's first 57 characters.
FIRST_WORDS = "How do tides work? I never understood why there are two a…"
ANSWER = ["The Moon's ", "gravity pulls ", "the oceans ", "into two bulges."]


async def test_a_new_chat_is_named_by_its_model(stack: StartStack, fake_openai: FakeOpenAI) -> None:
    fake_openai.scripts["up"] = [
        text_script(ANSWER),
        text_script(['Title: "Why tides ', 'come twice a day."\nThis title sums it up.']),
        text_script(["Twice, yes."]),
    ]
    s = await stack(page_options={"auto_titles": True})
    await s.open()
    await s.settled(await s.send(QUESTION))
    title = s.page.get_by_test_id("thread-item").first.get_by_test_id("thread-title")
    await expect(title).to_have_text("Why tides come twice a day")
    await s.screenshot("titles-01-named")

    # The browser asked the gateway, once, with a small non-streaming request marked as the
    # UI's own; the answer's request was a normal one.
    [asked] = s.title_posts()
    body = orjson.loads(asked.post_data or "{}")
    assert body["model"] == "test-model"
    assert body["stream"] is False
    assert body["max_tokens"] == 24
    assert "temperature" not in body
    [message] = body["messages"]
    assert message["role"] == "user"
    assert f"Question:\n{QUESTION}" in message["content"]
    assert f"Start of the answer:\n{''.join(ANSWER).strip()}" in message["content"]
    assert len(s.posts()) == 1
    # The upstream got it as the gateway sends any chat request, the model's own name.
    upstream = fake_openai.received[1].body
    assert upstream["model"] == "up"
    assert upstream["messages"] == body["messages"]
    assert fake_openai.received[0].body["messages"][-1]["content"] == QUESTION

    # The title stays through a reload and a second answer, which asks for no title.
    await s.page.reload()
    await expect(s.page.get_by_test_id("model-picker")).to_be_enabled()
    await expect(title).to_have_text("Why tides come twice a day")
    # The restored answer first: `send` counts the answers before it types (a count taken
    # while the thread was still loading was 0, and the new answer made 2).
    await expect(s.answers).to_have_count(1)
    await s.settled(await s.send("Twice?"))
    await expect(title).to_have_text("Why tides come twice a day")
    assert len(s.title_posts()) == 1
    assert len(fake_openai.received) == 3
    # The title's request is no part of the chat: the second question's history has no trace.
    assert [m["content"] for m in fake_openai.received[2].body["messages"]] == [
        QUESTION,
        "".join(ANSWER),
        "Twice?",
    ]


async def test_a_failed_title_keeps_the_first_words_quietly(
    stack: StartStack, fake_openai: FakeOpenAI
) -> None:
    fake_openai.scripts["up"] = [
        text_script(ANSWER),
        error_script(500, {"error": {"message": "boom", "type": "server_error"}}),
    ]
    s = await stack(page_options={"auto_titles": True})
    await s.open()
    answer = await s.send(QUESTION)
    await s.settled(answer)
    await wait_until(lambda: len(fake_openai.received) == 2, what="the title request")
    title = s.page.get_by_test_id("thread-item").first.get_by_test_id("thread-title")
    await expect(title).to_have_text(FIRST_WORDS)
    # Nothing is said about it: no banner, the answer is as it was.
    await expect(s.page.get_by_test_id("error-banner")).to_have_count(0)
    await expect(answer).to_have_attribute("data-state", "done")
    assert await s.answer_text(answer) == "".join(ANSWER).strip()


async def test_a_rename_wins_over_a_late_title(stack: StartStack, fake_openai: FakeOpenAI) -> None:
    fake_openai.scripts["up"] = [
        text_script(ANSWER),
        text_script(["Tides explained"], first_delay_s=1.5),
        text_script(["It helps a little."]),
    ]
    s = await stack(page_options={"auto_titles": True})
    await s.open()
    await s.settled(await s.send(QUESTION))
    await wait_until(lambda: len(fake_openai.received) == 2, what="the title request")
    item = s.page.get_by_test_id("thread-item").first
    await item.hover()
    await item.get_by_test_id("rename-thread").click()
    box = s.page.get_by_test_id("thread-rename-input")
    await box.fill("My tides")
    await box.press("Enter")
    await expect(item.get_by_test_id("thread-title")).to_have_text("My tides")
    # The title comes after the rename: it is dropped. (A later answer's round trip lets
    # whatever the page does with the title's response happen first.)
    [asked] = s.title_posts()
    response = await asked.response()
    assert response is not None and response.ok
    await response.finished()
    await s.settled(await s.send("And the Sun?"))
    await expect(item.get_by_test_id("thread-title")).to_have_text("My tides")
    await s.page.reload()
    await expect(s.page.get_by_test_id("thread-item").first).to_contain_text("My tides")


async def test_titles_can_be_turned_off(stack: StartStack, fake_openai: FakeOpenAI) -> None:
    fake_openai.scripts["up"] = text_script(ANSWER)
    s = await stack(page_options={"auto_titles": True})
    await s.open()
    await s.page.get_by_test_id("settings-toggle").click()
    switch = s.page.get_by_test_id("setting-auto-titles")
    await expect(switch).to_be_checked()
    await switch.uncheck()
    await s.page.get_by_test_id("settings-toggle").click()
    await s.settled(await s.send(QUESTION))
    title = s.page.get_by_test_id("thread-item").first.get_by_test_id("thread-title")
    await expect(title).to_have_text(FIRST_WORDS)
    # The setting is kept: after a reload, a new chat is not titled either.
    await s.page.reload()
    await expect(s.page.get_by_test_id("model-picker")).to_be_enabled()
    await s.page.get_by_test_id("new-thread").click()
    await s.settled(await s.send("Another question"))
    await expect(s.page.get_by_test_id("thread-item").first).to_contain_text("Another question")
    assert not s.title_posts()
    assert len(fake_openai.received) == 2
