"""`llms check`: a timed probe of each provider through the same routing code the gateway uses."""

from __future__ import annotations

import dataclasses
import sys
import time
from dataclasses import dataclass
from typing import Any

import aiohttp

from llms.adapters import ollama
from llms.chunks import StreamMeta
from llms.config import Config, ProviderConfig, RoutingConfig
from llms.errors import GatewayError
from llms.local import LocalServer
from llms.providers import Providers
from llms.routing import Router
from llms.upstream import fetch, new_session
from llms.wire import ChatRequest


@dataclass(frozen=True, slots=True)
class ProbeResult:
    provider: str
    type: str
    model: str
    ok: bool
    first_token_ms: float | None
    total_ms: float | None
    detail: str


async def probe(config: Config, provider: ProviderConfig) -> ProbeResult:
    """Ask one provider for a one-token answer; time the first chunk and the whole answer."""
    single = dataclasses.replace(
        config,
        providers=(provider,),
        routing=RoutingConfig(max_attempts=1, timeouts=config.routing.timeouts),
    )
    registry = Providers(single)
    local: LocalServer | None = None
    model = next(iter(provider.models), "?")
    started = time.perf_counter()
    async with new_session() as session:
        try:
            if provider.type == "local":
                options = provider.options
                local = LocalServer(options["model"], model_path=options.get("model_path"))
                await local.start()
                registry.add_source(provider.name, local)
                started = time.perf_counter()
            if provider.options.get("discover"):
                model = await _discover_one(session, provider)
                registry.set_models(provider.name, {model: model})
                started = time.perf_counter()
            router = Router(registry, session)
            request: ChatRequest = {
                "model": model,
                "messages": [{"role": "user", "content": "Say OK."}],
                "max_tokens": 1,
            }
            generation = await router.open(request, StreamMeta(model=model), include_usage=True)
            first = time.perf_counter()
            try:
                while await generation.next() is not None:
                    pass
            finally:
                generation.close()
            ended = time.perf_counter()
        except GatewayError as error:
            return ProbeResult(
                provider.name, provider.type, model, False, None, None, error.message
            )
        finally:
            if local is not None:
                await local.stop()
    return ProbeResult(
        provider.name,
        provider.type,
        model,
        True,
        (first - started) * 1000,
        (ended - started) * 1000,
        "ok",
    )


async def _discover_one(session: aiohttp.ClientSession, provider: ProviderConfig) -> str:
    """The first model an Ollama server lists (the probe needs one to ask)."""
    status, headers, body = await fetch(session, ollama.models_request(provider), provider.timeouts)
    if status != 200:
        raise ollama.from_error_response(status, headers, body)
    names = ollama.from_models_response(body)
    if not names:
        raise GatewayError("The Ollama server lists no models (`ollama pull` one).")
    return names[0]


async def run_check(
    config: Config, only: str | None, live: dict[str, dict[str, Any]] | None = None
) -> int:
    """Probe every provider (or one), print a table; exit status 1 if any failed.

    `live` is a running gateway's `/ready` provider states: their circuits are shown too.
    """
    providers = [p for p in config.providers if only is None or p.name == only]
    if only is not None and not providers:
        print(f"llms: no provider named {only!r} in {config.source}", file=sys.stderr)
        return 2
    for note in config.notes:
        print(f"note: {note}")
    results = [await probe(config, provider) for provider in providers]
    rows = [("provider", "type", "model", "result", "first token", "total", "circuit", "detail")]
    for r in results:
        state = (live or {}).get(r.provider, {})
        circuit = state.get("circuit", "-")
        if state.get("consecutive_failures"):
            circuit += f" ({state['consecutive_failures']} failures)"
        rows.append(
            (
                r.provider,
                r.type,
                r.model,
                "ok" if r.ok else "FAILED",
                f"{r.first_token_ms:.0f} ms" if r.first_token_ms is not None else "-",
                f"{r.total_ms:.0f} ms" if r.total_ms is not None else "-",
                circuit,
                r.detail if not r.ok else "",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )
    return 0 if all(r.ok for r in results) else 1
