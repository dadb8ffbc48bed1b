"""The web UI: the built Vue app (llms/ui/dist) served at `/` by the same process.

Hashed assets are immutable; `index.html` is never cached, so a new build reaches browsers at
once. Any other GET outside the API paths gets `index.html` (the app routes on the client),
except `/robots.txt`, which asks crawlers to stay out. The build writes `.br` and `.gz` beside
each text file (vite.config.ts); aiohttp's FileResponse sends one of them to a client that
accepts it, with `Content-Encoding` and `Vary: Accept-Encoding`.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from llms.errors import NotFound

DIST = Path(__file__).resolve().parent.parent / "ui" / "dist"
API_PREFIXES = ("/v1", "/api", "/admin", "/metrics", "/health", "/ready", "/openapi\\.json")
# Only the gateway itself: no inline scripts, no third-party origins.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data: blob:; connect-src 'self'; font-src 'self' data:; "
        "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
# A private gateway: nothing here is for a search engine.
ROBOTS = "User-agent: *\nDisallow: /\n"


def add_ui_routes(app: web.Application, dist: Path = DIST) -> bool:
    """Serve the UI if it was built; False (and nothing added) otherwise."""
    index = dist / "index.html"
    if not index.is_file():
        return False
    # The build is fixed while the process runs: index it once, so a request never touches
    # the filesystem to decide what to serve, and no path outside the build can be named.
    files = {p.relative_to(dist).as_posix(): p for p in dist.rglob("*") if p.is_file()}

    async def page(request: web.Request) -> web.StreamResponse:
        path = files.get(request.match_info.get("path", ""), index)
        response = web.FileResponse(path, headers={"Cache-Control": "no-cache"})
        response.headers.update(SECURITY_HEADERS)
        return response

    async def asset(request: web.Request) -> web.StreamResponse:
        path = files.get("assets/" + request.match_info["name"])
        if path is None:
            raise NotFound(f"Unknown asset: {request.path}", code="unknown_url")
        # Vite puts a content hash in every asset name: a changed file is a new URL.
        headers = {
            "Cache-Control": "public, max-age=31536000, immutable",
            "Vary": "Accept-Encoding",  # the same URL is sent as br, gzip or plain
            **SECURITY_HEADERS,
        }
        return web.FileResponse(path, headers=headers)

    async def robots(request: web.Request) -> web.StreamResponse:
        return web.Response(text=ROBOTS, headers={"Cache-Control": "public, max-age=86400"})

    app.router.add_get("/robots.txt", robots)
    app.router.add_get("/assets/{name:.+}", asset)
    app.router.add_get("/", page)
    # Everything else outside the API paths is the app's (client-side routes, favicon…).
    excluded = "|".join(prefix.strip("/") for prefix in API_PREFIXES)
    app.router.add_get("/{path:(?!" + excluded + ").+}", page)
    return True
