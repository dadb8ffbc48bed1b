"""`python -m bench.tracing`' own checks: its receiver counts the spans of real OTLP exports (the
SDK's exporter posting to it), and its summary compares every gateway with `unset`.

Loopback servers in this process only: no program is started.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.test_utils import TestServer
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from bench.tracing import Receiver, summary, to_markdown

ServerFactory = Callable[[web.Application], Awaitable[TestServer]]


async def test_the_receiver_counts_the_spans_it_decodes(aiohttp_server: ServerFactory) -> None:
    receiver = Receiver()
    server = await aiohttp_server(receiver.app)
    exporter = OTLPSpanExporter(endpoint=str(server.make_url("/v1/traces")))
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))

    def export() -> None:
        tracer = provider.get_tracer("test")
        for name in ("a", "b", "c"):
            with tracer.start_as_current_span(name):
                pass
        provider.shutdown()

    await asyncio.to_thread(export)
    assert receiver.spans == 3


def test_the_summary_compares_every_gateway_with_unset() -> None:
    def run(cpu: float, errors: int = 0) -> dict[str, object]:
        return {"cpu_us_per_request": cpu, "rps": 100.0, "errors": ["x"] * errors}

    out = summary(
        {
            "unset": [run(1000), run(1100), run(900)],
            "traced": [run(1500), run(1300, errors=1), run(1400)],
        }
    )
    assert out["unset"]["added_us_per_request"] == 0
    assert out["traced"]["cpu_us_per_request"] == 1400
    assert out["traced"]["added_us_per_request"] == 400
    assert out["errors"] == 1
    report = {"modes": {"stream": out}, "spans_received": 4, "spans_expected": 4, "errors": 1}
    assert "| stream | traced | 1400 | +400 | 100 |" in to_markdown(report)
