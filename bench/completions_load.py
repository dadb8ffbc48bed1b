"""The Completions scenario's two sides: OpenAI's legacy ``POST /v1/completions`` streamed.

The fake upstream serves it (``encode_text_stream``: one ``text_completion`` chunk per piece,
then one with ``finish_reason: "stop"``, the usage chunk when asked, ``[DONE]``), so the gateway
passes it through (an ``openai`` provider serves legacy completions by default) and the direct
run reads the very same stream from the upstream. The load generator checks every answer
whole (bench.sse's parser: only ``data:`` events): each chunk is a ``text_completion`` naming the
model asked for, its pieces are exactly the upstream's, one finish reason ``stop``, then
``[DONE]``; an error event fails the request. Its chunks count as relayed chunks (51 per answer
against chat's 52: chat has a role chunk).
"""

from __future__ import annotations

import time

import aiohttp
import orjson

from bench.answers import Encoded, _event, _frame, _head, _usage
from bench.load import Failure, LoadClient, LoadSpec, Stream
from bench.shape import Shape, content_pieces
from bench.sse import SSEParser

_COMPLETION_ID = "cmpl-BnchF4k3Up5tr3amQx7Lm2Vz9Rt1Wc"
PROMPT = "Say something for the benchmark."


def encode_text_stream(shape: Shape, created: int, include_usage: bool) -> Encoded:
    """The SSE answer OpenAI's legacy completions would send for this shape, as bytes."""

    def chunk(text: str, finish: str | None) -> dict[str, object]:
        body: dict[str, object] = {
            "id": _COMPLETION_ID,
            "object": "text_completion",
            "created": created,
            "model": shape.model,
            "choices": [{"text": text, "index": 0, "logprobs": None, "finish_reason": finish}],
        }
        if include_usage:
            body["usage"] = None
        return body

    contents = [_event(chunk(piece, None)) for piece in content_pieces(shape)]
    tail = _event(chunk("", "stop"))
    if include_usage:
        final = chunk("", None)
        final["choices"] = []
        final["usage"] = _usage(shape)
        tail += _event(final)
    tail += _frame(b"data: [DONE]\n\n") + b"0\r\n\r\n"
    head = _head(
        200, b"text/event-stream", b"Transfer-Encoding: chunked\r\nCache-Control: no-cache\r\n"
    )
    return Encoded(head=head, first=contents[0], rest=tuple(contents[1:]), tail=tail)


def completions_body(model: str) -> bytes:
    """The legacy completions request every benchmark client sends: streamed, one prompt."""
    return orjson.dumps({"model": model, "prompt": PROMPT, "max_tokens": 4096, "stream": True})


def check_text_chunk(data: bytes, now: float, model: str, state: Stream) -> None:
    """Apply one SSE data payload to ``state``; raise Failure if it breaks the contract."""
    if state.done:
        raise Failure("after_done", f"event after [DONE]: {data[:80]!r}")
    if data == b"[DONE]":
        state.done = True
        return
    try:
        chunk = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise Failure("bad_json", f"{exc}: {data[:80]!r}") from exc
    if not isinstance(chunk, dict):
        raise Failure("bad_json", f"not an object: {data[:80]!r}")
    if "error" in chunk:
        raise Failure("error_event", orjson.dumps(chunk["error"]).decode())
    if chunk.get("object") != "text_completion":
        raise Failure("wrong_object", f"object={chunk.get('object')!r}")
    if chunk.get("model") != model:
        raise Failure("wrong_model", f"model={chunk.get('model')!r}, asked {model!r}")
    choices = chunk.get("choices")
    if not choices:
        raise Failure("unexpected_usage", f"chunk without choices: {data[:120]!r}")
    state.chunks += 1
    choice = choices[0]
    text = choice.get("text")
    if not isinstance(text, str):
        raise Failure("shape", f"text {text!r}")
    if text:
        state.pieces.append(text)
        state.times.append(now)
    if choice.get("finish_reason") is not None:
        state.finishes.append(choice["finish_reason"])


async def read_completions(
    resp: aiohttp.ClientResponse, model: str, expected: tuple[str, ...], start: float
) -> tuple[Stream, int]:
    """Read and check one streamed legacy completion; return its bookkeeping and size."""
    if resp.content_type != "text/event-stream":
        raise Failure("content_type", f"Content-Type {resp.content_type!r}")
    if resp.headers.get("Content-Encoding", "identity") != "identity":
        raise Failure("compressed", f"Content-Encoding {resp.headers['Content-Encoding']!r}")
    parser = SSEParser()
    state = Stream()
    size = 0
    async for data in resp.content.iter_any():
        now = time.perf_counter() - start
        if not size:
            state.first_byte = now
        size += len(data)
        events = parser.feed(data)
        if parser.problems:
            raise Failure("sse_framing", "; ".join(parser.problems[:3]))
        for event in events:
            state.events += 1
            check_text_chunk(event.data, now, model, state)
    parser.close()
    if parser.problems:
        raise Failure("sse_framing", "; ".join(parser.problems[:3]))
    if not state.done:
        raise Failure("no_done", f"stream ended without [DONE] after {len(state.pieces)} chunks")
    if state.pieces != list(expected):
        raise Failure("content", f"{len(state.pieces)} pieces differ from the upstream's")
    if state.finishes != ["stop"]:
        raise Failure("shape", f"finish reasons {state.finishes}")
    return state, size


class CompletionsLoadClient(LoadClient):
    """A LoadClient that streams ``POST /v1/completions``."""

    def __init__(self, spec: LoadSpec, expected: tuple[str, ...]) -> None:
        super().__init__(spec, expected)
        if not spec.stream or spec.resumable:
            raise ValueError("Completions are benchmarked streamed, without X-Stream-Resumable")
        self._body = completions_body(spec.model)

    async def read_stream(self, resp: aiohttp.ClientResponse, start: float) -> tuple[Stream, int]:
        """Read and check one legacy completions stream."""
        return await read_completions(resp, self.spec.model, self.expected, start)
