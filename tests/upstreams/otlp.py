"""A small OTLP/HTTP trace receiver: a real aiohttp server on 127.0.0.1 (the Collector is not
installable here). It decodes the real protobuf payloads (opentelemetry-proto's
ExportTraceServiceRequest), checks the bearer token the exporter was configured with
(`OTEL_EXPORTER_OTLP_HEADERS`), and keeps every span with its resource.
"""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

TOKEN = "otlp-secret-token"


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(item) for item in value.array_value.values]
    return getattr(value, kind) if kind is not None else None


@dataclass
class Span:
    name: str
    kind: int  # 2 SERVER, 3 CLIENT
    trace_id: str
    span_id: str
    parent_id: str
    start_ns: int
    end_ns: int
    attributes: dict[str, Any]
    events: list[tuple[str, int]]
    status: int  # 0 unset, 1 ok, 2 error
    service: str


class OTLPReceiver:
    def __init__(self) -> None:
        self.spans: list[Span] = []
        self.payloads: list[bytes] = []  # the decoded requests, serialized again (for searching)
        self.rejected = 0
        self.endpoint = ""
        self.changed = asyncio.Event()
        self.app = web.Application()
        self.app.router.add_post("/v1/traces", self._traces)

    async def _traces(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            self.rejected += 1
            return web.Response(status=401)
        if request.content_type != "application/x-protobuf":
            return web.Response(status=415)
        body = await request.read()
        if request.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        export = ExportTraceServiceRequest.FromString(body)
        self.payloads.append(body)
        for resource_spans in export.resource_spans:
            resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    self.spans.append(
                        Span(
                            name=span.name,
                            kind=span.kind,
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_id=span.parent_span_id.hex(),
                            start_ns=span.start_time_unix_nano,
                            end_ns=span.end_time_unix_nano,
                            attributes={a.key: _value(a.value) for a in span.attributes},
                            events=[(e.name, e.time_unix_nano) for e in span.events],
                            status=span.status.code,
                            service=str(resource.get("service.name")),
                        )
                    )
        self.changed.set()
        return web.Response(
            body=ExportTraceServiceResponse().SerializeToString(),
            content_type="application/x-protobuf",
        )

    async def wait_for(self, count: int, timeout_s: float = 20.0) -> list[Span]:
        """Until `count` spans arrived (the exporter batches them), then all of them."""
        async with asyncio.timeout(timeout_s):
            while len(self.spans) < count:
                self.changed.clear()
                await self.changed.wait()
        return self.spans


@asynccontextmanager
async def otlp_receiver() -> AsyncIterator[OTLPReceiver]:
    receiver = OTLPReceiver()
    server = TestServer(receiver.app, host="127.0.0.1")
    await server.start_server()
    receiver.endpoint = str(server.make_url("")).rstrip("/")
    try:
        yield receiver
    finally:
        await server.close()
