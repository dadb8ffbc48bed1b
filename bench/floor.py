"""The Python floor: a bare aiohttp byte relay, measured exactly like the gateway (bench.board).

Every request is forwarded as it came (method, path, query, body, Content-Type) to the fake
upstream over one pooled ``aiohttp.ClientSession``; the answer's status and Content-Type are kept
and its bytes are copied to the client as they arrive (``iter_any``), with no parsing. No routing,
no translation, no checks: what one aiohttp process costs to relay a stream is the limit a Python
gateway can approach, so the board reports the gateway's figures as ratios to this floor's. It
runs on the gateway's event loop (uvloop unless ``LLMS_EVENT_LOOP=asyncio``)::

    python -m bench.floor --port 9200 --upstream http://127.0.0.1:9100

Not part of the product.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

UPSTREAM = web.AppKey("upstream", str)
SESSION = web.AppKey("session", aiohttp.ClientSession)


async def relay(request: web.Request) -> web.StreamResponse:
    """Forward one request and copy the answer's bytes back as they come."""
    session = request.app[SESSION]
    body = await request.read()
    headers = {"Content-Type": request.headers.get("Content-Type", "application/json")}
    url = request.app[UPSTREAM] + request.rel_url.raw_path_qs
    async with session.request(request.method, url, data=body, headers=headers) as upstream:
        response = web.StreamResponse(status=upstream.status)
        response.content_type = upstream.content_type
        if upstream.content_length is not None:
            response.content_length = upstream.content_length
        await response.prepare(request)
        async for data in upstream.content.iter_any():
            await response.write(data)
        await response.write_eof()
        return response


async def _session(app: web.Application) -> AsyncIterator[None]:
    """One pooled client session for the relay's life, unbounded like the gateway's pool."""
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=10)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        app[SESSION] = session
        yield


def make_app(upstream: str) -> web.Application:
    """The relay: every path of every method is forwarded to ``upstream``."""
    app = web.Application()
    app[UPSTREAM] = upstream.rstrip("/")
    app.cleanup_ctx.append(_session)
    app.router.add_route("*", "/{tail:.*}", relay)
    return app


def use_uvloop() -> None:
    """The gateway's event loop rule (llms.cli): uvloop unless ``LLMS_EVENT_LOOP=asyncio``, so
    that the floor and the gateway are measured on the same loop."""
    if os.environ.get("LLMS_EVENT_LOOP", "uvloop") != "asyncio":
        with contextlib.suppress(ImportError):
            importlib.import_module("uvloop").install()


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.floor --port N --upstream URL``; serves until SIGTERM or SIGINT."""
    parser = argparse.ArgumentParser(prog="python -m bench.floor", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="base URL of the fake upstream")
    args = parser.parse_args(argv)
    use_uvloop()
    web.run_app(
        make_app(args.upstream),
        host=args.host,
        port=args.port,
        print=lambda text: print(text, flush=True),
        access_log=None,
        backlog=4096,
        # As the gateway: a client that leaves cancels its handler, which closes the upstream
        # (else a stream left while the upstream is silent is held until the upstream writes).
        handler_cancellation=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
