"""`llms serve | chat | models | check`: parses arguments, calls the library, prints."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import ipaddress
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import orjson
from aiohttp import web

from llms.config import Config, load_config
from llms.errors import ConfigError
from llms.framing import SSEDecoder
from llms.telemetry.logs import LOG_FORMATS, configure_logging
from llms.telemetry.redact import secrets_of

if TYPE_CHECKING:
    from llms.server.worker import Worker

DEFAULT_BASE_URL = "http://127.0.0.1:8000/v1"
LOG_LEVELS = ("debug", "info", "warning", "error")


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port number 0-65535, got {text!r}")
    return port


def _workers(text: str) -> int:
    try:
        workers = int(text)
    except ValueError:
        workers = 0
    if workers < 1:
        raise argparse.ArgumentTypeError(f"expected a number of processes, 1 or more, got {text!r}")
    return workers


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="llms", description="An OpenAI-compatible LLM gateway.")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the gateway")
    serve.add_argument("--config", default=os.environ.get("LLMS_CONFIG", "config.json"))
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=_port, default=8000)
    serve.add_argument(
        "--insecure-no-auth",
        action="store_true",
        help="allow a non-loopback host without server.api_keys",
    )
    serve.add_argument(
        "--workers",
        type=_workers,
        default=os.environ.get("LLMS_WORKERS", "1"),
        help="processes serving the port together (SO_REUSEPORT); 1: this process serves",
    )
    # A worker of `--workers N`, started by the supervisor (llms/workers.py).
    serve.add_argument("--worker-index", type=int, default=None, help=argparse.SUPPRESS)
    serve.add_argument("--runtime-dir", type=Path, default=None, help=argparse.SUPPRESS)
    serve.add_argument(
        "--log-level",
        type=str.lower,
        choices=LOG_LEVELS,
        default=os.environ.get("LLMS_LOG_LEVEL", "info").lower(),
    )
    serve.add_argument(
        "--log-format",
        type=str.lower,
        choices=LOG_FORMATS,
        default=os.environ.get("LLMS_LOG_FORMAT", "text").lower(),
        help="text lines, or one JSON object a line (with the request id)",
    )

    chat = commands.add_parser("chat", help="stream an answer to the terminal")
    chat.add_argument("prompt")
    chat.add_argument("-m", "--model", default=None, help="default: the first model served")
    _client_args(chat)
    chat.add_argument("--max-tokens", type=int, default=None)

    models = commands.add_parser("models", help="list the models the gateway serves")
    _client_args(models)

    check = commands.add_parser("check", help="probe each provider with a tiny request")
    check.add_argument("provider", nargs="?")
    check.add_argument("--config", default=os.environ.get("LLMS_CONFIG", "config.json"))
    check.add_argument(
        "--gateway",
        metavar="URL",
        help="also show the circuit state of each provider in this running gateway (its /ready)",
    )

    args = parser.parse_args(argv)
    if args.command == "serve":
        sys.exit(_serve(args))
    if args.command == "chat":
        sys.exit(asyncio.run(_chat(args)))
    if args.command == "models":
        sys.exit(asyncio.run(_models(args)))
    if args.command == "check":
        from llms.probe import run_check

        config = _load_or_exit(args.config)
        live = asyncio.run(_live_states(args.gateway)) if args.gateway else None
        sys.exit(asyncio.run(run_check(config, args.provider, live)))


def _client_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--base-url", default=os.environ.get("LLMS_BASE_URL", DEFAULT_BASE_URL))
    parser.add_argument("--api-key", default=os.environ.get("LLMS_API_KEY"))


def _fail(message: str, code: int = 1) -> int:
    print(f"llms: {message}", file=sys.stderr)
    return code


def _load_or_exit(path: str) -> Config:
    try:
        return load_config(path)
    except ConfigError as error:
        sys.exit(_fail(str(error), 2))


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# --- serve --------------------------------------------------------------------------------------


def _serve(args: argparse.Namespace) -> int:
    config = _load_or_exit(args.config)
    worker = None
    if args.worker_index is not None and args.runtime_dir is not None:
        from llms.server.worker import Worker

        worker = Worker(args.worker_index, args.runtime_dir)
    # The formatter also scrubs every credential the config holds from whatever is logged.
    configure_logging(args.log_level, args.log_format, secrets_of(config), args.worker_index)
    log = logging.getLogger("llms")
    if not config.server.api_keys and not _is_loopback(args.host) and not args.insecure_no_auth:
        return _fail(
            f"refusing to listen on {args.host} without server.api_keys: anyone who can reach it "
            "could use your providers. Add keys to the config, or pass --insecure-no-auth.",
            2,
        )
    if worker is None:  # a worker's supervisor has said all this
        for note in config.notes:
            log.warning("%s", note)
        _raise_fd_limit(log)
        if args.workers > 1:
            return _supervise(config, args)
    if os.environ.get("LLMS_EVENT_LOOP", "uvloop") != "asyncio":
        with contextlib.suppress(ImportError):
            # uvloop (a dependency where it builds): the event loop in C, measurably cheaper
            # per chunk and per request; LLMS_EVENT_LOOP=asyncio keeps the standard one.
            importlib.import_module("uvloop").install()
    try:
        asyncio.run(_run_server(config, args.host, args.port, worker))
    except OSError as exc:
        return _fail(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}", 1)
    except ConfigError as error:  # found while starting (Redis unreachable)
        return _fail(str(error), 2)
    return 0


def _raise_fd_limit(log: logging.Logger) -> None:
    import resource

    from llms.workers import raise_fd_limit

    before, now = raise_fd_limit()
    shown = "unlimited" if now == resource.RLIM_INFINITY else str(now)
    raised = f", raised from {before}" if now != before else ""
    log.info(
        "open files limit: %s per process%s; each open stream needs 2 (client and upstream)",
        shown,
        raised,
    )


def _supervise(config: Config, args: argparse.Namespace) -> int:
    """`--workers N`: this process runs N workers (llms/workers.py)."""
    from llms.workers import Reservation, run_supervisor

    try:
        reservation = Reservation(args.host, args.port)
    except OSError as exc:
        return _fail(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}", 1)

    def command(index: int, port: int, runtime_dir: Path) -> list[str]:
        argv = [sys.executable, "-m", "llms", "serve", "--config", os.path.abspath(args.config)]
        argv += ["--host", args.host, "--port", str(port), "--log-level", args.log_level]
        argv += ["--log-format", args.log_format, "--worker-index", str(index)]
        argv += ["--runtime-dir", str(runtime_dir)]
        return argv + (["--insecure-no-auth"] if args.insecure_no_auth else [])

    return run_supervisor(config, reservation, args.workers, command)


async def _run_server(config: Config, host: str, port: int, worker: Worker | None = None) -> None:
    from llms.server.app import create_app, server_options
    from llms.server.heap import settle

    log = logging.getLogger("llms")
    app = create_app(config, worker=worker)
    runner = web.AppRunner(
        app,
        shutdown_timeout=config.server.drain_s + 5,
        access_log=None,
        **server_options(config),
    )
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        # A worker shares the port with its siblings; the kernel spreads connections among them.
        site = web.TCPSite(runner, host, port, backlog=1024, reuse_port=worker is not None)
        await site.start()
        settle()  # the garbage collector set for many open streams (llms/server/heap.py)
        if worker is None:
            models = ", ".join(sorted(config.routes())) or "none"
            log.info("llms serving on http://%s:%d (models: %s)", host, port, models)
        else:
            await worker.attach(runner, stop)
        await stop.wait()
        log.info("stopping: finishing in-flight streams (up to %g s)", config.server.drain_s)
    finally:
        if worker is not None:
            await worker.detach()
        await runner.cleanup()
    log.info("stopped")


# --- client commands ----------------------------------------------------------------------------


def _headers(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


async def _first_model(session: aiohttp.ClientSession, base_url: str) -> str:
    async with session.get(f"{base_url}/models") as response:
        body = await response.read()
        if response.status != 200:
            raise RuntimeError(_error_text(response.status, body))
        data = orjson.loads(body)["data"]
    if not data:
        raise RuntimeError("the gateway serves no models")
    return str(data[0]["id"])


def _error_text(status: int, body: bytes) -> str:
    try:
        error = orjson.loads(body)["error"]
        return f"HTTP {status}: {error['message']}"
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return f"HTTP {status}: {body[:200].decode('utf-8', 'replace')}"


async def _chat(args: argparse.Namespace) -> int:
    base_url = args.base_url.rstrip("/")
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=10)
    try:
        async with aiohttp.ClientSession(
            headers=_headers(args.api_key), timeout=timeout
        ) as session:
            model = args.model or await _first_model(session, base_url)
            return await _stream_chat(session, base_url, model, args)
    except aiohttp.ClientConnectorError:
        return _fail(f"cannot reach the gateway at {base_url} (is `llms serve` running?)")
    except aiohttp.ClientError as exc:
        return _fail(f"the connection to the gateway failed: {exc}")
    except RuntimeError as exc:
        return _fail(str(exc))


async def _stream_chat(
    session: aiohttp.ClientSession, base_url: str, model: str, args: argparse.Namespace
) -> int:
    body: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "user", "content": args.prompt}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if args.max_tokens:
        body["max_tokens"] = args.max_tokens
    started = time.perf_counter()
    first: float | None = None
    usage: dict[str, Any] | None = None
    pieces = 0
    async with session.post(f"{base_url}/chat/completions", json=body) as response:
        if response.status != 200:
            return _fail(_error_text(response.status, await response.read()))
        provider = response.headers.get("X-Provider", "?")
        decoder = SSEDecoder()
        async for data in response.content.iter_any():
            for event in decoder.feed(data):
                if event.data == "[DONE]":
                    break
                chunk = orjson.loads(event.data)
                if chunk.get("error"):
                    print()
                    return _fail(f"the stream failed: {chunk['error'].get('message')}")
                usage = chunk.get("usage") or usage
                for choice in chunk.get("choices", []):
                    text = choice["delta"].get("content")
                    if text:
                        first = first or time.perf_counter()
                        pieces += 1
                        sys.stdout.write(text)
                        sys.stdout.flush()
    ended = time.perf_counter()
    tokens = usage["completion_tokens"] if usage else pieces
    ttft = (first or ended) - started
    rate = tokens / (ended - first) if first and ended > first else 0.0
    print(
        f"\n[{model} via {provider}] {tokens} tokens, first token {ttft * 1000:.0f} ms, "
        f"{rate:.1f} tokens/s",
        file=sys.stderr,
    )
    return 0


async def _live_states(url: str) -> dict[str, dict[str, Any]] | None:
    """The provider states a running gateway reports on /ready (None if unreachable)."""
    root = url.rstrip("/").removesuffix("/v1")
    try:
        async with aiohttp.ClientSession() as session, session.get(f"{root}/ready") as response:
            data = orjson.loads(await response.read())
    except (aiohttp.ClientError, orjson.JSONDecodeError) as exc:
        print(f"note: cannot read {root}/ready: {exc}", file=sys.stderr)
        return None
    providers: dict[str, dict[str, Any]] = data.get("providers", {})
    return providers


async def _models(args: argparse.Namespace) -> int:
    base_url = args.base_url.rstrip("/")
    try:
        async with (
            aiohttp.ClientSession(headers=_headers(args.api_key)) as session,
            session.get(f"{base_url}/models") as response,
        ):
            body = await response.read()
            if response.status != 200:
                return _fail(_error_text(response.status, body))
    except aiohttp.ClientConnectorError:
        return _fail(f"cannot reach the gateway at {base_url} (is `llms serve` running?)")
    except aiohttp.ClientError as exc:
        return _fail(f"the connection to the gateway failed: {exc or type(exc).__name__}")
    for card in orjson.loads(body)["data"]:
        print(f"{card['id']}\t{card['owned_by']}")
    return 0
