"""Log lines: text or JSON, each with the id of the request being handled, never a credential.

The request id travels in a `ContextVar` (set by the request-id middleware), so every line
logged while a request is handled carries it, including lines from the resumable stream's
pump task, which inherits the context of the request that started it.
"""

from __future__ import annotations

import logging
import sys
import time
from contextvars import ContextVar

import orjson
from aiohttp.http_exceptions import HttpProcessingError

from llms.telemetry.record import RequestRecord
from llms.telemetry.redact import redact

# Context-local (one value per request's task), not process state.
CURRENT_REQUEST_ID: ContextVar[str | None] = ContextVar("llms_request_id", default=None)

LOG_FORMATS = ("text", "json")
access_log = logging.getLogger("llms.access")
http_log = logging.getLogger("llms.http")


class _Redacting(logging.Formatter):
    """Renders a line, then replaces every known secret in it (a last line of defence)."""

    def __init__(self, secrets: tuple[str, ...] = (), fmt: str | None = None) -> None:
        super().__init__(fmt)
        self.secrets = secrets

    def format(self, record: logging.LogRecord) -> str:
        return redact(self.render(record), self.secrets)

    def render(self, record: logging.LogRecord) -> str:
        return super().format(record)


class TextFormatter(_Redacting):
    """`time level logger: message`, with ` [request_id]` while a request is handled.

    A worker of `llms serve --workers N` says which: `time level worker 2 logger: message`.
    """

    def __init__(self, secrets: tuple[str, ...] = (), worker: int | None = None) -> None:
        who = "" if worker is None else f"worker {worker} "
        super().__init__(secrets, f"%(asctime)s %(levelname)s {who}%(name)s: %(message)s")

    def render(self, record: logging.LogRecord) -> str:
        line = super().render(record)
        request_id = CURRENT_REQUEST_ID.get()
        if request_id is None:
            return line
        head, newline, rest = line.partition("\n")
        return f"{head} [{request_id}]{newline}{rest}"


class JSONFormatter(_Redacting):
    """One JSON object a line: time (UTC, ISO 8601), level, logger, message, request_id
    (and `worker` in a worker of `llms serve --workers N`)."""

    def __init__(self, secrets: tuple[str, ...] = (), worker: int | None = None) -> None:
        super().__init__(secrets)
        self.worker = worker

    def render(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": _iso(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": CURRENT_REQUEST_ID.get(),
        }
        if self.worker is not None:
            entry["worker"] = self.worker
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry).decode()


def _iso(created: float) -> str:
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created))
    return f"{seconds}.{int(created % 1 * 1000):03d}Z"


class MalformedRequests(logging.Filter):
    """On aiohttp's server logger: a request that does not parse as HTTP is one debug line.

    aiohttp logs each one as an ERROR with a traceback quoting the raw bytes: anyone who can
    connect could flood the log. The client got its 400 already; the line says from where and
    what kind of mistake, without the bytes.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if not isinstance(exc, HttpProcessingError):
            return True
        if http_log.isEnabledFor(logging.DEBUG):
            first = (exc.message or "").strip().splitlines()[:1]
            # The description only: aiohttp's message goes on to quote the bytes themselves.
            what = first[0].split("'")[0].split('"')[0].split(":")[0].strip()[:80] if first else ""
            remote = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
            http_log.debug(
                "malformed HTTP request from %s: %s (HTTP %d)",
                remote,
                what or type(exc).__name__,
                exc.code,
            )
        return False


def quiet_malformed_requests() -> None:
    """Install `MalformedRequests` on aiohttp's server logger (once)."""
    server_log = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, MalformedRequests) for f in server_log.filters):
        server_log.addFilter(MalformedRequests())


def configure_logging(
    level: str, fmt: str, secrets: tuple[str, ...] = (), worker: int | None = None
) -> logging.Handler:
    """The root logger writes to stderr in `fmt` ("text" or "json") at `level`; `worker`: the
    number of this worker of `llms serve --workers N`, shown on every line."""
    handler = logging.StreamHandler(sys.stderr)
    formatter = JSONFormatter(secrets, worker) if fmt == "json" else TextFormatter(secrets, worker)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    quiet_malformed_requests()
    return handler


class AccessLog:
    """A sink: one debug line per finished chat request (no content, no key, only its name)."""

    def finish(self, record: RequestRecord) -> None:
        if not access_log.isEnabledFor(logging.DEBUG):
            return
        duration = (record.ended or record.started) - record.started
        usage = record.usage
        access_log.debug(
            "chat model=%s provider=%s status=%d stream=%s attempts=%d duration_ms=%.1f "
            "tokens=%s finish=%s error=%s key=%s",
            record.model or "-",
            record.provider or "-",
            record.status,
            "resumable" if record.resumable else record.stream,
            record.attempts,
            duration * 1000,
            usage.get("completion_tokens", "-") if usage else "-",
            record.finish_reason or "-",
            record.error_code or record.error_type or "-",
            record.key or "-",
        )
