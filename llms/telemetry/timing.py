"""What the numbers mean: each derived from one finished RequestRecord, None when unknown.

All times are the event loop's clock. `started` is when the chat handler began: after aiohttp
parsed the request line and headers and the middlewares (request id, auth) ran, before the body
was read. `first_output` is when the first chunk carrying output was written to the client
(resumable: appended to the stream's log; `stream: false`: received, as the answer is sent whole).
"""

from __future__ import annotations

from typing import NamedTuple

from llms.adapters.usage import COUNT_LIMIT, from_count
from llms.telemetry.record import RequestRecord


class Measures(NamedTuple):
    """The numbers of one finished request, None when unknown.

    - `duration`: request arrival -> the end of the answer (0 if it has not ended).
    - `ttft`: request arrival -> first output written: what the client waits for.
    - `gap`: approximate mean gap between chunks, (end - first output) / (chunks - 1), one value
      per stream (per-chunk gaps would need a clock read per chunk on the relay's hot path). It
      includes the final [DONE] and close after the last chunk.
    - `upstream`: the committed attempt's request sent -> its first output chunk received.
    - `overhead`: time to first token spent in the gateway itself, for requests that produced
      output. Two measured spans: arrival -> the first attempt's upstream request being sent
      (reading and validating the body, auth, routing, building the upstream request), plus
      the committed first chunk received -> written to the client (encoding, the first write).
      Not included: waiting on failed attempts and retry back-off (upstream time), and the
      relay's per-chunk cost after the first chunk, which is not timed on the hot path.
    - `rate`: decode rate, completion tokens after the first / time from the first output to
      the end; needs the upstream's usage and at least two tokens.
    - `prompt`, `completion`: the usage's token counts (`from_count`: None if missing or not a
      count).
    """

    duration: float
    ttft: float | None
    gap: float | None
    upstream: float | None
    overhead: float | None
    rate: float | None
    prompt: int | None
    completion: int | None


def measures(record: RequestRecord) -> Measures:
    """Every number of a finished request at once (see Measures): each sink (metrics, the
    request log) asks once, with the record's fields read once. The one place their formulas
    are written.

    (`x if x > 0.0 else 0.0` is `max(0.0, x)`, NaN included, without the call.)
    """
    started = record.started
    first = record.first_output
    ended = record.ended
    committed = record.committed
    usage = record.usage
    prompt = completion = None
    if usage is not None:  # from_count, with its common case (an int in range) first
        raw = usage.get("prompt_tokens")
        prompt = raw if type(raw) is int and 0 <= raw < COUNT_LIMIT else from_count(raw)
        raw = usage.get("completion_tokens")
        completion = raw if type(raw) is int and 0 <= raw < COUNT_LIMIT else from_count(raw)
    duration = (ended or started) - started
    duration = duration if duration > 0.0 else 0.0
    ttft = gap = upstream = overhead = rate = None
    if first is not None:
        ttft = first - started
        ttft = ttft if ttft > 0.0 else 0.0
        if ended is not None:
            elapsed = ended - first
            if record.chunks >= 2:
                gap = (elapsed if elapsed > 0.0 else 0.0) / (record.chunks - 1)
            if completion is not None and completion >= 2 and elapsed > 0:
                rate = (completion - 1) / elapsed
    if committed is not None:
        sent = record.attempt_sent
        if sent is not None:
            upstream = committed - sent
            upstream = upstream if upstream > 0.0 else 0.0
        sent = record.upstream_sent
        if sent is not None and first is not None:
            before, after = sent - started, first - committed
            overhead = (before if before > 0.0 else 0.0) + (after if after > 0.0 else 0.0)
    return Measures(duration, ttft, gap, upstream, overhead, rate, prompt, completion)
