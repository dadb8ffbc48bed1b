"""What answers render (issue 15): math, task lists, aligned tables, sub/superscript, code
highlighted with languages loaded on first use (also while a block streams), the bundled font,
and the assets sent compressed."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from playwright.async_api import expect

from tests.browser.support import Stack
from tests.upstreams.openai import FakeOpenAI, Script, chunk, sse, text_script

StartStack = Callable[..., Awaitable[Stack]]


def pieces_of(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


def held_script(text: str, size: int = 6) -> Script:
    """`text` in pieces, then the stream holds (the answer stays streaming until stopped)."""
    objects: list[Any] = [chunk({"role": "assistant", "content": ""})]
    objects += [chunk({"content": piece}) for piece in pieces_of(text, size)]
    return Script(writes=sse(*objects), delay_s=0.005, fault="stall")


MATH = (
    "Einstein: $E=mc^2$, and Pythagoras \\(a^2+b^2=c^2\\).\n\n"
    "$$\n\\int_0^1 x^2\\,dx = \\frac{1}{3}\n$$\n\n"
    "OpenAI style:\n\n\\[\\sum_{i=1}^{n} i = \\frac{n(n+1)}{2}\\]\n\n"
    "Prices stay text: $5 and $10.\n"
)


async def test_math_is_typeset(stack: StartStack, fake_openai: FakeOpenAI) -> None:
    fake_openai.scripts["up"] = text_script(pieces_of(MATH, 5), delay_s=0.005)
    s = await stack()
    await s.open()
    answer = await s.send("Some formulas")
    await s.settled(answer)
    content = answer.get_by_test_id("message-content")
    await expect(content.locator(".katex-display")).to_have_count(2)
    await expect(content.locator(".katex")).to_have_count(4)
    sources = await content.locator("annotation").all_text_contents()
    assert sources == [
        "E=mc^2",
        "a^2+b^2=c^2",
        "\\int_0^1 x^2\\,dx = \\frac{1}{3}",
        "\\sum_{i=1}^{n} i = \\frac{n(n+1)}{2}",
    ]
    text = await s.answer_text(answer)
    assert "Prices stay text: $5 and $10." in text
    assert "(a^2" not in text and "\\(" not in text and "$$" not in text
    # KaTeX's own fonts, bundled and served by the gateway (no CDN), are in use.
    assert await s.page.evaluate("document.fonts.check('20px KaTeX_Main')")
    fonts = [r.url for r in s.requests if "KaTeX_" in r.url]
    assert fonts and all(url.startswith(s.url + "/assets/") for url in fonts)
    assert all(r.url.startswith(s.url) for r in s.requests)
    # Real layout: the fraction is stacked (numerator above denominator), not inline text.
    boxes = await content.locator(".katex-display .mfrac .vlist > span").evaluate_all(
        "(spans) => spans.map((s) => s.getBoundingClientRect().top)"
    )
    assert len(set(round(b) for b in boxes)) > 1
    await s.screenshot("40-math")

    # A stored answer after a reload: rendered before KaTeX is loaded, typeset when it is.
    await s.page.reload()
    await expect(s.answers.last.locator(".katex")).to_have_count(4)
    await expect(s.answers.last.locator(".math-pending")).to_have_count(0)


async def test_a_formula_being_written_is_not_garbage(
    stack: StartStack, fake_openai: FakeOpenAI
) -> None:
    fake_openai.scripts["up"] = held_script("The sum:\n\n$$\n\\sum_{i=1}^{n} \\frac{1}{i^2")
    s = await stack()
    await s.open()
    answer = await s.send("A long formula")
    content = answer.get_by_test_id("message-content")
    pending = content.locator(".math-pending")
    await expect(pending).to_have_text("$$\n\\sum_{i=1}^{n} \\frac{1}{i^2")
    await expect(content.locator(".katex")).to_have_count(0)  # no half-typeset formula
    await expect(content.locator("p")).to_have_text("The sum:")
    await s.screenshot("41-math-streaming")
    await s.page.get_by_test_id("stop").click()
    await expect(s.page.get_by_test_id("stop")).to_have_count(0)


MARKDOWN = (
    "Plan:\n\n- [x] parse\n- [ ] render\n\n"
    "| Left | Center | Right |\n|:-----|:------:|------:|\n"
    "| a | one<br>two | 1.50 |\n| longer cell | x | 100.00 |\n\n"
    "Water is H~2~O, 2^10^ is 1024, and ~~this~~ is struck. A raw <br> stays text.\n"
)


async def test_task_lists_tables_and_scripts(stack: StartStack, fake_openai: FakeOpenAI) -> None:
    fake_openai.scripts["up"] = text_script(pieces_of(MARKDOWN, 7), delay_s=0.005)
    s = await stack()
    await s.open()
    answer = await s.send("Markdown please")
    await s.settled(answer)
    content = answer.get_by_test_id("message-content")

    boxes = content.locator("li input[type=checkbox]")
    await expect(boxes).to_have_count(2)
    await expect(boxes.first).to_be_checked()
    await expect(boxes.last).not_to_be_checked()
    for box in await boxes.all():
        await expect(box).to_be_disabled()
    await boxes.last.click(force=True)  # a click changes nothing
    await expect(boxes.last).not_to_be_checked()

    aligns = await content.locator("tr:first-child td").evaluate_all(
        "(cells) => cells.map((c) => getComputedStyle(c).textAlign)"
    )
    assert aligns == ["left", "center", "right"]
    cell = content.locator("td").nth(1)
    assert await cell.inner_text() == "one\ntwo"
    await expect(cell.locator("br")).to_have_count(1)

    await expect(content.locator("sub")).to_have_text("2")
    await expect(content.locator("sup")).to_have_text("10")
    await expect(content.locator("del")).to_have_text("this")
    await expect(content.locator("p").last).to_contain_text("A raw <br> stays text.")
    await s.screenshot("42-markdown-extras")


GO = 'package main\n\nimport "fmt"\n\nfunc main() {\n\tfmt.Println("hi") // greet\n}\n'
RUST = 'fn main() {\n    let n: u32 = 42;\n    println!("{n}");\n}\n'


async def test_languages_load_on_first_use(stack: StartStack, fake_openai: FakeOpenAI) -> None:
    answer_text = f"Go:\n\n```go\n{GO}```\n\nRust:\n\n```rust\n{RUST}```\n"
    fake_openai.scripts["up"] = text_script(pieces_of(answer_text, 9), delay_s=0.005)
    s = await stack()
    await s.open()
    chunks = [r.url for r in s.requests if "/assets/" in r.url and r.url.endswith(".js")]
    assert not [url for url in chunks if "/go-" in url or "/rust-" in url or "/python-" in url]
    answer = await s.send("Two programs")
    await s.settled(answer)
    blocks = answer.locator("pre code")
    await expect(blocks.nth(0).locator(".hljs-keyword").first).to_have_text("package")
    await expect(blocks.nth(0).locator(".hljs-comment")).to_have_text("// greet")
    await expect(blocks.nth(1).locator(".hljs-keyword").first).to_have_text("fn")
    await expect(blocks.nth(1).locator(".hljs-built_in").first).to_have_text("println!")
    assert await blocks.nth(0).inner_text() == GO.rstrip("\n")
    loaded = [r.url for r in s.requests if "/assets/" in r.url and r.url.endswith(".js")]
    assert any("/go-" in url for url in loaded) and any("/rust-" in url for url in loaded)
    assert not any("/python-" in url for url in loaded)  # only what the answer used
    await s.screenshot("43-code-languages")

    await s.page.reload()  # a stored answer: highlighted once its languages are loaded again
    await expect(
        s.answers.last.locator("pre code").nth(1).locator(".hljs-keyword").first
    ).to_have_text("fn")


PYTHON = (
    "def fib(n: int) -> int:\n"
    '    """The n-th Fibonacci number."""\n'
    "    a, b = 0, 1\n"
    "    for _ in range(n):\n"
    "        a, b = b, a + b\n"
    "    return a\n"
)


async def test_a_code_block_is_highlighted_while_it_streams(
    stack: StartStack, fake_openai: FakeOpenAI
) -> None:
    fake_openai.scripts["up"] = held_script(f"Here:\n\n```python\n{PYTHON}    # still wri", 4)
    s = await stack()
    await s.open()
    answer = await s.send("Fibonacci")
    code = answer.locator("pre code")
    await expect(code).to_have_text(PYTHON + "    # still wri")
    await expect(answer).to_have_attribute("data-state", "streaming")
    await expect(code.locator(".hljs-keyword").first).to_have_text("def")
    await expect(code.locator(".hljs-string")).to_have_text('"""The n-th Fibonacci number."""')
    await expect(code.locator(".hljs-number").first).to_have_text("0")
    await s.screenshot("44-code-streaming")
    await s.page.get_by_test_id("stop").click()
    await expect(s.page.get_by_test_id("stop")).to_have_count(0)


async def test_bundled_font_and_compressed_assets(stack: StartStack) -> None:
    s = await stack()
    await s.open()
    family = await s.page.evaluate("getComputedStyle(document.body).fontFamily")
    assert family.startswith('"Inter Variable"')
    await s.page.evaluate("document.fonts.ready")
    assert await s.page.evaluate("document.fonts.check('15px \"Inter Variable\"')")
    inter = [r.url for r in s.requests if "/assets/inter-" in r.url and r.url.endswith(".woff2")]
    assert inter and all(url.startswith(s.url) for url in inter)

    # The browser got its script and styles compressed (Chromium accepts br).
    main = [r for r in s.requests if r.url.startswith(s.url + "/assets/index-")]
    assert {r.url.rsplit(".", 1)[1] for r in main} >= {"js", "css"}
    for request in main:
        response = await request.response()
        assert response is not None
        headers = await response.all_headers()
        assert headers.get("content-encoding") == "br", request.url
        assert headers.get("vary") == "Accept-Encoding"

    # Byte counts, as the gateway sends them: brotli is a fraction of the plain file.
    script = next(r.url for r in main if r.url.endswith(".js"))
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        sizes = {}
        for accept in ("br", "gzip", "identity"):
            async with session.get(script, headers={"Accept-Encoding": accept}) as resp:
                sizes[accept] = len(await resp.read())
                assert resp.headers.get("Content-Encoding") == (
                    None if accept == "identity" else accept
                )
        assert sizes["br"] < sizes["gzip"] < sizes["identity"] / 2

        async with session.get(s.url + "/robots.txt") as resp:
            assert resp.status == 200
            assert await resp.text() == "User-agent: *\nDisallow: /\n"
    await s.page.goto(s.url + "/robots.txt")
    assert (await s.page.locator("body").inner_text()).strip() == "User-agent: *\nDisallow: /"


async def test_math_code_and_tasks_in_the_dark_theme(
    stack: StartStack, fake_openai: FakeOpenAI
) -> None:
    text = MATH + "\n" + MARKDOWN + f"\n```python\n{PYTHON}```\n"
    fake_openai.scripts["up"] = text_script(pieces_of(text, 11), delay_s=0.003)
    s = await stack(
        page_options={"color_scheme": "dark", "viewport": {"width": 1280, "height": 1200}}
    )
    await s.open()
    answer = await s.send("Everything, in the dark")
    await s.settled(answer)
    content = answer.get_by_test_id("message-content")
    await expect(content.locator(".katex")).to_have_count(4)
    await expect(content.locator(".hljs-keyword").first).to_have_text("def")
    # Formulas take the text's colour, not KaTeX's black.
    colours = await content.evaluate(
        """(root) => [getComputedStyle(root.querySelector("p")).color,
                      getComputedStyle(root.querySelector(".katex")).color]"""
    )
    assert colours[0] == colours[1]
    assert colours[0] != "rgb(0, 0, 0)"
    await s.screenshot("45-content-dark", full_page=True)
