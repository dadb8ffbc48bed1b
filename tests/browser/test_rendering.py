"""What an answer looks like: markdown and code, inert HTML, thinking, tool calls, persistence."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from playwright.async_api import expect

from tests.browser.support import Stack, rich_script
from tests.browser.test_accessibility import AXE_PAGE, assert_accessible
from tests.upstreams.openai import FakeOpenAI, text_script

StartStack = Callable[..., Awaitable[Stack]]
CLIPBOARD = {"permissions": ["clipboard-read", "clipboard-write"]}

CODE = "def add(a, b):\n    return a + b  # the sum"
MARKDOWN = (
    "Here is **bold** text and `inline code`.\n\n"
    f"```python\n{CODE}\n```\n\n"
    "- first item\n- second item\n"
)


def pieces_of(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


async def test_markdown_code_highlight_and_copy(stack: StartStack, fake_openai: FakeOpenAI) -> None:
    fake_openai.scripts["up"] = text_script(pieces_of(MARKDOWN, 7), delay_s=0.01)
    s = await stack(page_options=CLIPBOARD)
    await s.open()

    # Shift+Enter is a new line, not a send.
    composer = s.page.get_by_test_id("composer")
    await composer.press_sequentially("Show me")
    await composer.press("Shift+Enter")
    await composer.press_sequentially("some code")
    await expect(composer).to_have_value("Show me\nsome code")
    assert not s.posts()
    await composer.press("Enter")
    answer = s.answers.last
    await s.settled(answer)
    assert s.chat_bodies()[0]["messages"][-1] == {"role": "user", "content": "Show me\nsome code"}

    content = answer.get_by_test_id("message-content")
    await expect(content.locator("strong")).to_have_text("bold")
    await expect(content.locator("p code")).to_have_text("inline code")
    await expect(content.locator("li")).to_have_text(["first item", "second item"])
    code = content.locator("pre code")
    await expect(code).to_have_count(1)
    await expect(code).to_have_class(re.compile(r"\bhljs\b"))
    await expect(code.locator(".hljs-keyword").first).to_have_text("def")
    await expect(code.locator(".hljs-comment")).to_have_text("# the sum")
    await s.screenshot("12-markdown-code")

    copy_code = content.get_by_test_id("copy-code")
    await expect(copy_code).to_have_count(1)
    await copy_code.click()
    assert (await s.clipboard()).rstrip("\n") == CODE
    await expect(copy_code).to_have_text("Copied")

    await answer.get_by_test_id("copy-message").click()
    assert await s.clipboard() == MARKDOWN  # the message as written, markdown and all


XSS = (
    "Careful: <img src=x onerror=alert(1)> and <script>alert(2)</script> "
    'and a [link](javascript:alert(3)) and <a href="javascript:alert(4)">another</a>.'
)


async def test_html_in_an_answer_renders_inert(stack: StartStack, fake_openai: FakeOpenAI) -> None:
    fake_openai.scripts["up"] = text_script(pieces_of(XSS, 5), delay_s=0.01)
    s = await stack()
    await s.open()
    answer = await s.send("Say <img src=y onerror=alert(5)> please")
    await s.settled(answer)
    await s.page.wait_for_timeout(300)  # time for anything that would fire

    assert s.dialogs == []
    content = answer.get_by_test_id("message-content")
    found = await content.evaluate(
        """(root) => ({
            scripts: root.querySelectorAll("script").length,
            images: root.querySelectorAll("img").length,
            handlers: [...root.querySelectorAll("*")].flatMap((el) =>
                [...el.attributes].filter((a) => a.name.startsWith("on")).map((a) => a.name)),
            hrefs: [...root.querySelectorAll("a")].map((a) => a.getAttribute("href")),
        })"""
    )
    assert found["scripts"] == 0
    assert found["images"] == 0
    assert found["handlers"] == []
    assert not [h for h in found["hrefs"] if h and h.strip().lower().startswith("javascript")]
    # Shown as text, not dropped: the reader sees what the model wrote.
    await expect(content).to_contain_text("<img src=x onerror=alert(1)>")
    await expect(content).to_contain_text("<script>alert(2)</script>")
    # Nothing anywhere in the page (the user's message, the sidebar title) either.
    page_wide = await s.page.evaluate(
        """() => ({
            handlers: [...document.querySelectorAll("*")].flatMap((el) =>
                [...el.attributes].filter((a) => a.name.startsWith("on")).map((a) => a.name)),
            inlineScripts: [...document.querySelectorAll("script")].filter((el) => !el.src).length,
        })"""
    )
    assert page_wide == {"handlers": [], "inlineScripts": 0}
    await expect(s.page.locator("[data-role=user] [data-testid=message-content]")).to_have_text(
        "Say <img src=y onerror=alert(5)> please"
    )


async def test_a_thread_survives_a_reload(stack: StartStack, fake_openai: FakeOpenAI) -> None:
    fake_openai.scripts["up"] = text_script(["Noted", ": ", "blue", "."], delay_s=0.02)
    s = await stack()
    await s.open()
    await s.page.get_by_test_id("system-prompt").fill("Answer in one line.")
    answer = await s.send("My favourite colour is blue.")
    await s.settled(answer)
    assert fake_openai.received[0].body["messages"][0] == {
        "role": "system",
        "content": "Answer in one line.",
    }
    await expect(s.page).to_have_url(re.compile(r"/t/[^/]+$"))
    thread_url = s.page.url

    await s.page.reload()
    await expect(s.page.get_by_test_id("thread-item")).to_have_count(1)
    await expect(s.page.get_by_test_id("thread-item")).to_contain_text("My favourite colour")
    messages = s.page.get_by_test_id("message")
    await expect(messages).to_have_count(2)
    await expect(messages.first.get_by_test_id("message-content")).to_have_text(
        "My favourite colour is blue."
    )
    await expect(messages.last).to_have_attribute("data-state", "done")
    await expect(messages.last.get_by_test_id("message-content")).to_have_text("Noted: blue.")
    await expect(s.page.get_by_test_id("system-prompt")).to_have_value("Answer in one line.")

    # A new chat, then back to the stored one from the sidebar.
    await s.page.get_by_test_id("new-thread").click()
    await expect(s.page.get_by_test_id("message")).to_have_count(0)
    stored = s.page.get_by_test_id("thread-item").filter(has_text="My favourite colour")
    await stored.get_by_test_id("thread-title").click()
    await expect(s.page).to_have_url(thread_url)
    await expect(s.page.get_by_test_id("message")).to_have_count(2)
    await s.page.get_by_test_id("thread-search").fill("colour")
    await expect(s.page.get_by_test_id("thread-item")).to_have_count(1)
    await s.page.get_by_test_id("thread-search").fill("nothing like it")
    await expect(s.page.get_by_test_id("thread-item")).to_have_count(0)


async def test_edit_and_regenerate(stack: StartStack, fake_openai: FakeOpenAI) -> None:
    fake_openai.scripts["up"] = [
        text_script(["First ", "answer."]),
        text_script(["Second ", "answer."]),
        text_script(["Third ", "answer."]),
    ]
    s = await stack()
    await s.open()
    answer = await s.send("Question one")
    await s.settled(answer)
    await expect(answer.get_by_test_id("message-content")).to_have_text("First answer.")

    await answer.get_by_test_id("regenerate").click()
    await expect(s.answers).to_have_count(1)
    await s.settled(s.answers.last)
    await expect(s.answers.last.get_by_test_id("message-content")).to_have_text("Second answer.")

    user = s.page.locator("[data-testid=message][data-role=user]")
    await user.get_by_test_id("edit-message").click()
    await user.get_by_test_id("edit-input").fill("Question one, edited")
    await user.get_by_test_id("edit-input").press("Enter")
    await expect(user.get_by_test_id("message-content")).to_have_text("Question one, edited")
    await s.settled(s.answers.last)
    await expect(s.answers.last.get_by_test_id("message-content")).to_have_text("Third answer.")
    await expect(s.page.get_by_test_id("message")).to_have_count(2)
    assert fake_openai.received[-1].body["messages"][-1]["content"] == "Question one, edited"


async def test_reasoning_streams_into_the_thinking_panel(
    stack: StartStack, fake_openai: FakeOpenAI
) -> None:
    thoughts = ["Let me ", "think ", "about ", "the ", "question ", "step ", "by ", "step."]
    fake_openai.scripts["up"] = rich_script(
        reasoning=thoughts, content=["The ", "answer ", "is ", "42."], delay_s=0.15
    )
    s = await stack(page_options=AXE_PAGE)
    await s.open()
    answer = await s.send("What is the answer?")
    thinking = answer.get_by_test_id("thinking")
    await expect(thinking).to_contain_text("think")
    await expect(thinking).to_have_js_property("open", True)
    await expect(thinking.locator("summary")).to_contain_text("Thinking")
    await s.screenshot("03-thinking")

    await expect(answer.get_by_test_id("message-content")).to_contain_text("The answer")
    await expect(thinking).to_have_js_property("open", False)  # closed once the answer starts
    await s.settled(answer)
    await expect(thinking).to_have_js_property("open", False)
    await expect(thinking.locator("summary")).to_contain_text("Thought")
    await expect(answer.get_by_test_id("message-content")).to_have_text("The answer is 42.")
    await thinking.locator("summary").click()
    await expect(thinking).to_have_js_property("open", True)
    await expect(thinking).to_contain_text("".join(thoughts))
    await assert_accessible(s, "the thinking panel, open")
    await s.screenshot("03-thinking-done")


async def test_a_tool_call_renders_as_a_card(stack: StartStack, fake_openai: FakeOpenAI) -> None:
    calls = [
        {
            "index": 0,
            "id": "call_weather_1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": ""},
        },
        {"index": 0, "function": {"arguments": '{"city": "Par'}},
        {"index": 0, "function": {"arguments": 'is", "unit": "celsius"}'}},
    ]
    fake_openai.scripts["up"] = rich_script(tool_calls=calls, finish="tool_calls", delay_s=0.05)
    s = await stack(page_options=AXE_PAGE)
    await s.open()
    answer = await s.send("What's the weather in Paris?")
    await s.settled(answer)
    card = answer.get_by_test_id("tool-call")
    await expect(card).to_have_count(1)
    await expect(card).to_contain_text("get_weather")
    await expect(card).to_contain_text("call_weather_1")
    await expect(card.locator("pre")).to_have_text('{\n  "city": "Paris",\n  "unit": "celsius"\n}')
    await assert_accessible(s, "a tool call's card")
    await s.screenshot("04-tool-call")
