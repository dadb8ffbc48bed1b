"""Attachments (issue 15): images picked, pasted or dropped are sent as OpenAI `image_url` parts
with data URLs (a very large one drawn smaller first), text files inlined as a fenced block under
their name; previews in the composer and in the sent question, which keep through a reload and
an edit. Files that cannot be sent are refused in words. A long pasted question is collapsed."""

from __future__ import annotations

import asyncio
import base64
import struct
import zlib
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from playwright.async_api import FilePayload, expect

from tests.browser.support import Stack
from tests.browser.test_accessibility import AXE_PAGE, PHONE, SMALL_TARGETS, assert_accessible
from tests.upstreams.ollama import FakeOllama
from tests.upstreams.openai import FakeOpenAI, error_script, text_script

StartStack = Callable[..., Awaitable[Stack]]


def png(width: int, height: int, rgb: tuple[int, int, int] = (220, 60, 40)) -> bytes:
    """A PNG of one colour, made here (no imaging library)."""
    row = b"\x00" + bytes(rgb) * width
    raw = row * height

    def part(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    body = part(b"IHDR", header) + part(b"IDAT", zlib.compress(raw)) + part(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body


def file(name: str, mime_type: str, data: bytes) -> FilePayload:
    return {"name": name, "mimeType": mime_type, "buffer": data}


def png_size(data_url: str) -> tuple[int, int]:
    assert data_url.startswith("data:image/png;base64,"), data_url[:40]
    data = base64.b64decode(data_url.split(",", 1)[1])
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def answered(fake: FakeOpenAI) -> list[dict[str, Any]]:
    """The chat requests the upstream got (not the UI's own non-streaming title requests)."""
    return [r.body for r in fake.received if r.body.get("stream") is not False]


async def send_current(s: Stack) -> Any:
    """Press Enter in the composer as it is (typed text, attached files); the new answer."""
    before = await s.answers.count()
    await s.page.get_by_test_id("composer").press("Enter")
    await expect(s.answers).to_have_count(before + 1)
    return s.answers.last


async def shot(s: Stack, name: str) -> None:
    await s.screenshot(f"attachments-{name}")


PAGE_FILES = """
async ([kind, name, type, b64]) => {
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const data = new DataTransfer();
  data.items.add(new File([bytes], name, { type }));
  const box = document.querySelector("[data-testid=composer]");
  const event = kind === "paste"
    ? new ClipboardEvent("paste", { clipboardData: data, bubbles: true, cancelable: true })
    : new DragEvent("drop", { dataTransfer: data, bubbles: true, cancelable: true });
  box.dispatchEvent(event);
  return event.defaultPrevented;
}
"""


async def test_picked_image_and_text_file_are_sent_as_parts(
    stack: StartStack, fake_openai: FakeOpenAI
) -> None:
    fake_openai.scripts["up"] = text_script(["A red ", "square."])
    s = await stack(page_options=AXE_PAGE)
    await s.open()
    image = png(160, 120)
    notes = "# Notes\nuse `x`\n"
    await s.page.get_by_test_id("attach-input").set_input_files(
        [
            file("red.png", "image/png", image),
            file("notes.md", "text/markdown", notes.encode()),
        ]
    )
    composer_files = s.page.locator(".composer").get_by_test_id("attachment")
    await expect(composer_files).to_have_count(2)
    await expect(composer_files.nth(0).locator("img")).to_have_attribute("alt", "red.png")
    await expect(composer_files.nth(1)).to_contain_text("notes.md")
    await expect(composer_files.nth(1)).to_contain_text("16 B")
    await s.page.get_by_test_id("composer").fill("What is in these?")
    await shot(s, "01-composer-previews")
    await assert_accessible(s, "attachments")

    await s.settled(await send_current(s))
    data_url = "data:image/png;base64," + base64.b64encode(image).decode()
    text = "What is in these?\n\nnotes.md:\n```markdown\n# Notes\nuse `x`\n```"
    parts = [{"type": "text", "text": text}, {"type": "image_url", "image_url": {"url": data_url}}]
    [body] = answered(fake_openai)
    assert body["messages"] == [{"role": "user", "content": parts}]
    await expect(composer_files).to_have_count(0)  # the composer is empty again

    # The sent question shows them; a click shows the image full size.
    question = s.page.locator("[data-testid=message][data-role=user]")
    await expect(question.get_by_test_id("attachment")).to_have_count(2)
    await expect(question.get_by_test_id("message-content")).to_have_text("What is in these?")
    await question.get_by_test_id("attachment-open").click()
    viewer = s.page.get_by_test_id("image-viewer")
    await expect(viewer).to_be_visible()
    await expect(viewer.get_by_test_id("image-full")).to_have_attribute("src", data_url)
    await assert_accessible(s, "the image viewer")
    await shot(s, "02-image-full-size")
    await s.page.keyboard.press("Escape")
    await expect(viewer).to_be_hidden()
    await shot(s, "03-sent-question")

    # Stored: a reload shows them, and an edited question keeps them.
    await s.page.reload()
    await expect(question.get_by_test_id("attachment")).to_have_count(2)
    await question.hover()
    await question.get_by_test_id("edit-message").click()
    await s.page.get_by_test_id("edit-input").fill("And now?")
    await s.page.get_by_test_id("edit-save").click()
    await s.settled(s.answers.last)
    edited = answered(fake_openai)[-1]["messages"][-1]["content"]
    new_text = text.replace("What is in these?", "And now?")
    assert edited == [{"type": "text", "text": new_text}, parts[1]]
    await expect(question.get_by_test_id("attachment")).to_have_count(2)


async def test_pasted_image_is_made_smaller_and_dropped_file_inlined(
    stack: StartStack, fake_openai: FakeOpenAI
) -> None:
    s = await stack()
    await s.open()
    big = base64.b64encode(png(3000, 1500)).decode()
    pasted = await s.page.evaluate(PAGE_FILES, ["paste", "shot.png", "image/png", big])
    assert pasted is True  # the image did not land in the text box as well
    csv = base64.b64encode(b"a,b\n1,2").decode()
    await s.page.evaluate(PAGE_FILES, ["drop", "data.csv", "text/csv", csv])
    files = s.page.locator(".composer").get_by_test_id("attachment")
    await expect(files).to_have_count(2)
    await expect(s.page.get_by_test_id("composer")).to_have_value("")
    await s.settled(await send_current(s))  # nothing typed: the files are the question

    [body] = answered(fake_openai)
    [text_part, image_part] = body["messages"][-1]["content"]
    assert text_part == {"type": "text", "text": "data.csv:\n```csv\na,b\n1,2\n```"}
    assert image_part["type"] == "image_url"
    assert png_size(image_part["image_url"]["url"]) == (2048, 1024)


async def test_files_that_cannot_be_sent_are_refused_in_words(stack: StartStack) -> None:
    s = await stack(page_options=AXE_PAGE)
    await s.open()
    picker = s.page.get_by_test_id("attach-input")
    notice = s.page.get_by_test_id("attach-notice")
    await picker.set_input_files([file("report.pdf", "application/pdf", b"%PDF-1.7")])
    await expect(notice).to_have_text(
        "report.pdf cannot be attached: only images and text files"
        " (such as .txt, .md, .json, .csv or code) can."
    )
    await picker.set_input_files([file("huge.log", "text/plain", b"x" * (300 * 1024))])
    await expect(notice).to_have_text(
        "huge.log is 300 KB: text files up to 256 KB can be attached."
    )
    await assert_accessible(s, "a refused file's notice")
    await shot(s, "04-refused-file")
    await expect(s.page.get_by_test_id("send")).to_be_disabled()

    await picker.set_input_files([file("a.txt", "text/plain", b"hi")])
    await expect(notice).to_be_hidden()
    await expect(s.page.get_by_test_id("send")).to_be_enabled()
    await s.page.get_by_test_id("attachment-remove").click()
    await expect(s.page.get_by_test_id("attachment")).to_have_count(0)
    await expect(s.page.get_by_test_id("send")).to_be_disabled()


async def test_a_model_that_takes_no_images_is_said_plainly(
    stack: StartStack, fake_openai: FakeOpenAI
) -> None:
    # llama.cpp's words for a model without a vision projector (the bundled model's case).
    refusal = {"code": 500, "message": "image input is not supported", "type": "server_error"}
    fake_openai.scripts["up"] = error_script(500, {"error": refusal})
    s = await stack()
    await s.open()
    await s.page.get_by_test_id("attach-input").set_input_files(
        [file("red.png", "image/png", png(2, 2))]
    )
    await s.page.get_by_test_id("composer").fill("Describe it")
    answer = await send_current(s)
    await s.settled(answer, "failed")
    said = "The model cannot take this input: image input is not supported."
    await expect(answer).to_contain_text(said)
    await shot(s, "05-image-refused-upstream")


async def test_an_image_for_a_text_only_model_is_refused_before_sending(
    stack: StartStack, fake_ollama: FakeOllama
) -> None:
    """Ollama says what a model reads (/api/show `capabilities`): the gateway's card for a model
    without "vision" says `input_modalities: ["text"]`, and the UI says so instead of sending."""
    base = fake_ollama.base_url  # type: ignore[attr-defined]
    s = await stack(provider_options={"type": "ollama", "base_url": base})
    async with aiohttp.ClientSession() as session:  # the gateway asks in the background
        for _ in range(100):
            async with session.get(f"{s.url}/v1/models") as response:
                card = (await response.json())["data"][0]
            if "input_modalities" in card:
                break
            await asyncio.sleep(0.05)
    assert card["input_modalities"] == ["text"]
    await s.open()
    await s.page.get_by_test_id("attach-input").set_input_files(
        [file("red.png", "image/png", png(2, 2))]
    )
    await s.page.get_by_test_id("composer").fill("Describe it")
    notice = s.page.get_by_test_id("attach-notice")  # said as soon as the image is there
    await expect(notice).to_contain_text("test-model does not take images.")
    await expect(s.page.get_by_test_id("send")).to_be_disabled()
    await s.page.get_by_test_id("composer").press("Enter")
    await expect(s.answers).to_have_count(0)  # nothing was sent
    await expect(s.page.get_by_test_id("attachment")).to_have_count(1)  # nor lost
    assert fake_ollama.received == []
    await shot(s, "08-image-refused-before-sending")


async def test_a_long_question_is_collapsed(stack: StartStack) -> None:
    s = await stack(page_options=AXE_PAGE)
    await s.open()
    question = "\n".join(f"line {i}" for i in range(40))
    await s.settled(await s.send(question))
    bubble = s.page.locator("[data-testid=message][data-role=user] [data-testid=message-content]")
    toggle = s.page.get_by_test_id("show-more")
    await expect(toggle).to_have_text("Show more")
    await expect(toggle).to_have_attribute("aria-expanded", "false")
    clipped = await bubble.evaluate("el => el.scrollHeight > el.clientHeight + 20")
    assert clipped
    await shot(s, "06-long-question-collapsed")
    await assert_accessible(s, "attachments")
    await toggle.click()
    await expect(toggle).to_have_text("Show less")
    await expect(toggle).to_have_attribute("aria-expanded", "true")
    assert await bubble.evaluate("el => el.scrollHeight <= el.clientHeight + 1")
    await shot(s, "07-long-question-expanded")
    # A short one has no toggle.
    await s.settled(await s.send("Short"))
    await expect(toggle).to_have_count(1)


async def test_attachments_on_a_phone_are_44px_targets(stack: StartStack) -> None:
    s = await stack(page_options=PHONE)
    await s.open()
    await s.page.get_by_test_id("attach-input").set_input_files(
        [file("red.png", "image/png", png(120, 90)), file("a.txt", "text/plain", b"hi")]
    )
    await expect(s.page.get_by_test_id("attachment")).to_have_count(2)
    await s.page.get_by_test_id("composer").fill("\n".join(f"line {i}" for i in range(20)))
    assert await s.page.evaluate(SMALL_TARGETS) == []
    await assert_accessible(s, "attachments in the composer on a phone")
    await shot(s, "phone-composer")
    await s.settled(await send_current(s))
    await expect(s.page.get_by_test_id("show-more")).to_be_visible()
    assert await s.page.evaluate(SMALL_TARGETS) == []
    await assert_accessible(s, "a question with attachments on a phone")
    await shot(s, "phone-question")
