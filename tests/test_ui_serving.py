"""The built UI is served at / with the right cache headers, and never shadows the API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from llms import create_app
from llms.server.ui import add_ui_routes
from tests.conftest import gateway_config


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[str]:
    (tmp_path / "assets").mkdir()
    (tmp_path / "index.html").write_text("<!doctype html><title>llms</title>")
    (tmp_path / "assets" / "index-3f2a1b.js").write_text("console.log(1)")
    (tmp_path / "favicon.svg").write_text("<svg/>")
    providers = {"a": {"type": "openai", "base_url": "http://127.0.0.1:9/v1", "models": ["m"]}}
    app = create_app(gateway_config(providers), ui_dist=tmp_path)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()


@pytest.mark.parametrize(
    ("method", "path", "status", "cache", "body"),
    [
        ("GET", "/", 200, "no-cache", b"<!doctype html>"),
        ("GET", "/thread/42", 200, "no-cache", b"<!doctype html>"),  # client-side route
        ("GET", "/favicon.svg", 200, "no-cache", b"<svg/>"),
        ("GET", "/assets/index-3f2a1b.js", 200, "public, max-age=31536000, immutable", b"console"),
        ("GET", "/assets/missing.js", 404, None, b'{"error"'),
        ("GET", "/v1/nothing", 404, None, b'{"error"'),
        ("POST", "/v1/nothing", 404, None, b'{"error"'),
        ("GET", "/v1/chat/completions", 405, None, b'{"error"'),
        ("GET", "/api/nothing", 404, None, b'{"error"'),
        ("GET", "/health", 200, None, b'{"status":"ok"}'),
        ("GET", "/v1/models", 200, None, b'{"object":"list"'),
    ],
)
async def test_routes(
    served: str, method: str, path: str, status: int, cache: str | None, body: bytes
) -> None:
    async with aiohttp.ClientSession() as session, session.request(method, served + path) as resp:
        assert resp.status == status
        assert resp.headers.get("Cache-Control") == cache
        assert (await resp.read()).startswith(body)
        if path == "/":
            assert "default-src 'self'" in resp.headers["Content-Security-Policy"]
            assert resp.headers["X-Content-Type-Options"] == "nosniff"


def test_no_build_no_routes(tmp_path: Path) -> None:
    app = web.Application()
    assert not add_ui_routes(app, tmp_path)
    assert len(app.router.routes()) == 0
