"""What the browser tests share: Chromium, a page on the gateway, a proxy that cuts connections."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from playwright.async_api import (
    Browser,
    BrowserContext,
    Locator,
    Page,
    Request,
    async_playwright,
    expect,
)

from tests.upstreams.openai import FakeOpenAI, Script, chunk, sse, usage_chunk

__all__ = ["Browser", "CuttableProxy", "Stack", "launch_browser", "wait_until"]

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
# Every wait is bounded: a UI that never reaches a state fails the test in seconds.
# Auto titles (a second request after a new chat's first answer) are off unless a test turns
# them on (Stack.create(auto_titles=True)): the other tests count requests and play scripts in turn.
NO_AUTO_TITLES = """try {
  if (!localStorage.getItem("llms.settings"))
    localStorage.setItem("llms.settings", JSON.stringify({ v: 2, autoTitles: false }));
} catch {}"""
TITLE_PURPOSE = ("x-llms-purpose", "title")
expect.set_options(timeout=10_000)


@contextlib.asynccontextmanager
async def launch_browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True, timeout=30_000
        )
        try:
            yield browser
        finally:
            await browser.close()


async def wait_until(
    predicate: Callable[[], bool], within_s: float = 5.0, what: str = "condition"
) -> None:
    """Poll a condition on the test's side (the fake upstream's records) for at most `within_s`."""
    deadline = time.monotonic() + within_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within_s} s waiting for {what}")
        await asyncio.sleep(0.02)


@dataclass
class Stack:
    """The gateway serving the UI, a fresh browser context (empty storage) and one page on it."""

    fake: FakeOpenAI
    url: str  # the gateway's root, e.g. http://127.0.0.1:12345
    context: BrowserContext
    page: Page
    requests: list[Request] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)

    @classmethod
    async def create(cls, browser: Browser, fake: FakeOpenAI, url: str, **options: Any) -> Stack:
        options.setdefault("viewport", {"width": 1280, "height": 800})
        options.setdefault("reduced_motion", "reduce")
        options.setdefault("color_scheme", "light")
        auto_titles = options.pop("auto_titles", False)
        context = await browser.new_context(**options)
        if not auto_titles:
            await context.add_init_script(NO_AUTO_TITLES)
        context.set_default_timeout(10_000)
        context.set_default_navigation_timeout(15_000)
        page = await context.new_page()
        stack = cls(fake, url, context, page)
        page.on("request", stack._on_request)
        page.on("dialog", stack._on_dialog)
        page.on("pageerror", lambda error: stack.page_errors.append(str(error)))
        return stack

    def _on_request(self, request: Request) -> None:
        self.requests.append(request)

    async def _on_dialog(self, dialog: Any) -> None:
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        await dialog.dismiss()

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.context.close()

    def check(self) -> None:
        """After every test: the UI threw no uncaught error and opened no dialog."""
        assert not self.page_errors, f"uncaught errors in the page: {self.page_errors}"
        assert not self.dialogs, f"unexpected dialogs: {self.dialogs}"

    # --- driving the UI

    async def open(self, path: str = "/", *, base: str | None = None) -> None:
        """Load the UI and wait until the model picker has the gateway's models."""
        await self.page.goto((base or self.url) + path)
        await expect(self.page.get_by_test_id("model-picker")).to_be_enabled()

    async def send(self, text: str) -> Locator:
        """Type a message, press Enter; the answer's <article> (the last assistant message)."""
        before = await self.answers.count()
        composer = self.page.get_by_test_id("composer")
        await composer.fill(text)
        await composer.press("Enter")
        await expect(self.answers).to_have_count(before + 1)
        return self.answers.last

    @property
    def answers(self) -> Locator:
        return self.page.locator("[data-testid=message][data-role=assistant]")

    async def settled(self, answer: Locator, state: str = "done", within_ms: int = 15_000) -> None:
        """Wait for the answer to end in `state`."""
        await expect(answer).to_have_attribute("data-state", state, timeout=within_ms)

    async def answer_text(self, answer: Locator) -> str:
        return await answer.get_by_test_id("message-content").inner_text()

    async def clipboard(self) -> str:
        text = await self.page.evaluate("navigator.clipboard.readText()")
        assert isinstance(text, str)
        return text

    def posts(self, path: str = "/v1/chat/completions") -> list[Request]:
        """The UI's POSTs to `path`, without its title requests (title_posts)."""
        return [
            r
            for r in self.requests
            if r.method == "POST" and r.url.endswith(path) and not self._is_title(r)
        ]

    def title_posts(self) -> list[Request]:
        """The UI's requests for a chat's title (lib/titles.ts)."""
        return [r for r in self.requests if r.method == "POST" and self._is_title(r)]

    @staticmethod
    def _is_title(request: Request) -> bool:
        name, value = TITLE_PURPOSE
        return request.headers.get(name) == value

    def chat_bodies(self) -> list[dict[str, Any]]:
        return [orjson.loads(r.post_data or "{}") for r in self.posts()]

    async def screenshot(self, name: str, *, full_page: bool = False) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        # The caret blinks and live timers tick: keep the picture about layout, not timing.
        await self.page.screenshot(path=str(path), full_page=full_page, caret="hide")
        return path


# --- scripts for the fake upstream


def words(count: int, *, paragraph: int = 0) -> list[str]:
    """`count` token-like pieces ("w0 ", "w1 "…); a blank line every `paragraph` pieces."""
    out = []
    for i in range(count):
        piece = f"w{i} "
        if paragraph and (i + 1) % paragraph == 0:
            piece = f"w{i}\n\n"
        out.append(piece)
    return out


def rich_script(
    *,
    reasoning: Sequence[str] = (),
    content: Sequence[str] = (),
    tool_calls: Sequence[dict[str, Any]] = (),
    finish: str = "stop",
    **kw: Any,
) -> Script:
    """Reasoning pieces, then content pieces, then tool-call deltas: one chunk (write) each."""
    objects: list[Any] = [chunk({"role": "assistant", "content": ""})]
    objects += [chunk({"reasoning_content": piece}) for piece in reasoning]
    objects += [chunk({"content": piece}) for piece in content]
    objects += [chunk({"tool_calls": [call]}) for call in tool_calls]
    tokens = len(reasoning) + len(content) + len(tool_calls)
    objects += [chunk({}, finish), usage_chunk(completion=tokens), "[DONE]"]
    return Script(writes=sse(*objects), **kw)


def batched_script(pieces: Sequence[str], per_write: int, **kw: Any) -> Script:
    """Many small chunks per network write: a fast model, without a write per token."""
    objects: list[Any] = [chunk({"role": "assistant", "content": ""})]
    objects += [chunk({"content": piece}) for piece in pieces]
    objects += [chunk({}, "stop"), usage_chunk(completion=len(pieces)), "[DONE]"]
    events = sse(*objects)
    writes = [b"".join(events[i : i + per_write]) for i in range(0, len(events), per_write)]
    return Script(writes=writes, **kw)


# --- a proxy between the browser and the gateway


class CuttableProxy:
    """A TCP proxy on 127.0.0.1 whose live connections can be cut at once, like a network drop."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.server: asyncio.Server | None = None
        self.port = 0
        self.connections = 0
        self.cuts = 0
        self._live: set[asyncio.StreamWriter] = set()
        self._frozen: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{self.port}"

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self._live |= {writer, up_writer}
        pumps = [
            asyncio.create_task(self._pump(reader, up_writer)),
            asyncio.create_task(self._pump(up_reader, writer)),
        ]
        self._tasks.update(pumps)
        try:
            await asyncio.gather(*pumps, return_exceptions=True)
        finally:
            self._tasks.difference_update(pumps)
            for w in (writer, up_writer):
                self._live.discard(w)
                w.transport.abort()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                if writer in self._frozen:
                    continue  # silent, not closed: only a watchdog notices
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.transport.abort()

    def cut(self) -> int:
        """Reset every connection open now (both sides); new ones are still accepted."""
        live = list(self._live)
        for writer in live:
            writer.transport.abort()
        self.cuts += 1
        return len(live) // 2

    def freeze(self) -> None:
        """Let nothing more through the connections open now, without closing them (a proxy
        that dropped the flow); new connections pass."""
        self._frozen |= self._live

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
        self.cut()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.server is not None:
            await self.server.wait_closed()
