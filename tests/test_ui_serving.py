"""The built UI is served at / with the right cache headers, and never shadows the API."""

from __future__ import annotations

import gzip
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


async def test_robots_txt_is_not_the_app(served: str) -> None:
    async with aiohttp.ClientSession() as session, session.get(served + "/robots.txt") as resp:
        assert resp.status == 200
        assert resp.content_type == "text/plain"
        assert await resp.text() == "User-agent: *\nDisallow: /\n"


@pytest.mark.parametrize(
    ("accept", "encoding"),
    [("br, gzip, deflate", "br"), ("gzip, deflate", "gzip"), ("identity", None), ("", None)],
)
async def test_precompressed_assets(tmp_path: Path, accept: str, encoding: str | None) -> None:
    """The build's `.br`/`.gz` siblings are sent to a client that accepts them, byte for byte."""
    script = b"console.log('hello');\n" * 200
    (tmp_path / "assets").mkdir()
    (tmp_path / "index.html").write_text("<!doctype html><title>llms</title>")
    (tmp_path / "assets" / "index-3f2a1b.js").write_bytes(script)
    (tmp_path / "assets" / "index-3f2a1b.js.gz").write_bytes(gzip.compress(script))
    (tmp_path / "assets" / "index-3f2a1b.js.br").write_bytes(b"brotli bytes")  # sent as they are
    app = web.Application()
    assert add_ui_routes(app, tmp_path)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/assets/index-3f2a1b.js"
    try:
        async with (
            aiohttp.ClientSession(auto_decompress=False) as session,
            session.get(url, headers={"Accept-Encoding": accept}) as resp,
        ):
            body = await resp.read()
            assert resp.status == 200
            assert resp.content_type.endswith("javascript")
            assert resp.headers.get("Content-Encoding") == encoding
            assert resp.headers["Cache-Control"] == "public, max-age=31536000, immutable"
            # A cache must not hand the compressed copy to a client that did not ask for it.
            assert resp.headers["Vary"] == "Accept-Encoding"
            if encoding == "br":
                assert body == b"brotli bytes"
            elif encoding == "gzip":
                assert gzip.decompress(body) == script
            else:
                assert body == script
    finally:
        await runner.cleanup()
