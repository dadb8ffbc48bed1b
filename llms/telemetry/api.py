"""HTTP endpoints of telemetry: `GET /metrics` (Prometheus) and `GET /api/usage`."""

from __future__ import annotations

import logging
import sqlite3

from aiohttp import web
from prometheus_client.exposition import choose_encoder

from llms.errors import InvalidRequest, NotFound, ServiceUnavailable
from llms.server import keys
from llms.server.routes import json_response
from llms.telemetry.report import GROUPS, default_window, in_range, parse_time, usage_report

log = logging.getLogger("llms.telemetry")


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text format (0.0.4 unless the scraper's Accept asks for a later one)."""
    encode, content_type = choose_encoder(request.headers.get("Accept", ""))
    body = encode(request.app[keys.METRICS].registry)
    return web.Response(body=body, headers={"Content-Type": content_type})


async def usage(request: web.Request) -> web.Response:
    """GET /api/usage?from=&to=&group_by=model|provider|key|day (default: the last 24 h, model).

    `from` and `to` are Unix seconds or ISO 8601 (UTC without an offset); `to` is exclusive.
    """
    request_log = request.app[keys.REQUEST_LOG]
    if request_log is None:
        raise NotFound(
            "The request log is off (`state.request_log` is null): there is no usage to report.",
            code="request_log_disabled",
        )
    if not request_log.available:
        raise ServiceUnavailable(
            "The request log could not be opened when the gateway started (the reason is in "
            "its log), so there is no usage to report.",
            code="request_log_unavailable",
        )
    query = request.query
    start, end = default_window()
    if "to" in query:
        end = _time_param(query["to"], "to")
        start = end - 86400.0
    if "from" in query:
        start = _time_param(query["from"], "from")
    # `from` defaults to a day before `to`, which may be before the first representable time.
    if not in_range(start):
        raise InvalidRequest(
            "The window starts before 0001-01-01: give a later `to`, or a `from`.",
            param="from" if "from" in query else "to",
            code="invalid_value",
        )
    if start > end:
        raise InvalidRequest("`from` must not be after `to`.", param="from", code="invalid_value")
    group_by = query.get("group_by", "model")
    if group_by not in GROUPS:
        raise InvalidRequest(
            f"`group_by` must be one of {', '.join(GROUPS)}; got {group_by[:50]!r}.",
            param="group_by",
            code="invalid_value",
        )
    try:
        report = await usage_report(request_log, start, end, group_by)
    except sqlite3.Error as exc:
        log.warning("usage: the request log could not be read: %s", exc)
        raise ServiceUnavailable(
            "The request log could not be read; try again later.", code="request_log_unavailable"
        ) from None
    return json_response(report)


def _time_param(raw: str, name: str) -> float:
    try:
        return parse_time(raw)
    except (ValueError, OverflowError, OSError):
        raise InvalidRequest(
            f"`{name}` must be Unix seconds or an ISO 8601 date or time; got {raw[:50]!r}.",
            param=name,
            code="invalid_value",
        ) from None
