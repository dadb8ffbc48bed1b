"""What the numbers mean: each derived from one finished RequestRecord, None when unknown.

All times are the event loop's clock. `started` is when the chat handler began: after aiohttp
parsed the request line and headers and the middlewares (request id, auth) ran, before the body
was read. `first_output` is when the first chunk carrying output was written to the client
(resumable: appended to the stream's log; `stream: false`: received, as the answer is sent whole).
"""

from __future__ import annotations

from llms.adapters.usage import from_count
from llms.telemetry.record import RequestRecord


def time_to_first_token(record: RequestRecord) -> float | None:
    """Request arrival -> first output written: what the client waits for."""
    if record.first_output is None:
        return None
    return max(0.0, record.first_output - record.started)


def duration(record: RequestRecord) -> float:
    return max(0.0, (record.ended or record.started) - record.started)


def upstream_latency(record: RequestRecord) -> float | None:
    """The committed attempt's request sent -> its first output chunk received (decoded)."""
    if record.attempt_sent is None or record.committed is None:
        return None
    return max(0.0, record.committed - record.attempt_sent)


def gateway_overhead(record: RequestRecord) -> float | None:
    """Time to first token spent in the gateway itself, for requests that produced output.

    Two measured spans: arrival -> the first attempt's upstream request being sent (reading and
    validating the body, auth, routing, building the upstream request), plus the committed
    first chunk received -> written to the client (encoding, the first write). Not included:
    waiting on failed attempts and retry back-off (upstream time), and the relay's per-chunk
    cost after the first chunk, which is not timed on the hot path.
    """
    if record.upstream_sent is None or record.committed is None or record.first_output is None:
        return None
    before = record.upstream_sent - record.started
    after = record.first_output - record.committed
    return max(0.0, before) + max(0.0, after)


def mean_chunk_gap(record: RequestRecord) -> float | None:
    """Approximate: (end - first output) / (chunks - 1), one value per stream.

    Per-chunk gaps would need a clock read per chunk on the relay's hot path; the mean per
    stream is what the record holds. It includes the final [DONE] and close after the last chunk.
    """
    if record.first_output is None or record.ended is None or record.chunks < 2:
        return None
    return max(0.0, record.ended - record.first_output) / (record.chunks - 1)


def tokens_per_second(record: RequestRecord) -> float | None:
    """Decode rate: completion tokens after the first / time from the first output to the end.

    Needs the upstream's usage (completion_tokens) and at least two tokens.
    """
    usage = record.usage
    if usage is None or record.first_output is None or record.ended is None:
        return None
    tokens = from_count(usage.get("completion_tokens")) or 0
    elapsed = record.ended - record.first_output
    if tokens < 2 or elapsed <= 0:
        return None
    return (tokens - 1) / elapsed
