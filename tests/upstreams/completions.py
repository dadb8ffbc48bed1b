"""The fake OpenAI-compatible server's legacy completions: `POST /v1/completions`, as OpenAI,
vLLM and llama.cpp serve it, behind `Authorization: Bearer <api_key>` when the fake has a key.

Each prompt is continued with `CONTINUATION`, one token per piece, cut at `max_tokens`
(default 16; finish `length` when cut, else `stop`). A batch of prompts (strings or token-id
arrays) and `n` give one choice per prompt and sample, indexed as OpenAI does
(prompt * n + sample); sample j > 0 appends ` #j` to its last piece. `echo` puts the prompt
first, `suffix` after the text, `logprobs` gives each token's (fake) log probability. A stream
is one chunk per piece, then one with the finish reason, then, with
`stream_options.include_usage`, a usage chunk (and `usage: null` before it), then `[DONE]`.
A model with a script in `fake.completion_scripts` plays that script's exact bytes instead.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
from aiohttp import web

from tests.upstreams.openai import FakeOpenAI, Received

CONTINUATION = ["Once", " upon", " a", " time", ","]


def _prompts(prompt: Any) -> list[str]:
    if isinstance(prompt, str):
        return [prompt]
    if prompt and all(isinstance(t, int) for t in prompt):
        return [_detokenize(prompt)]
    return [p if isinstance(p, str) else _detokenize(p) for p in prompt]


def _detokenize(tokens: list[int]) -> str:
    return "".join(f"<{t}>" for t in tokens)


def pieces_for(body: dict[str, Any], sample: int = 0) -> tuple[list[str], str]:
    """The pieces one choice is made of (without echo and suffix), and its finish reason."""
    limit = body.get("max_tokens")
    limit = 16 if limit is None else limit
    pieces = CONTINUATION[:limit]
    if sample and pieces:
        pieces = [*pieces[:-1], f"{pieces[-1]} #{sample}"]
    return pieces, "length" if limit < len(CONTINUATION) else "stop"


def _logprobs(pieces: list[str], offset: int, top: int) -> dict[str, Any]:
    offsets, at = [], offset
    for piece in pieces:
        offsets.append(at)
        at += len(piece)
    return {
        "tokens": pieces,
        "token_logprobs": [-0.5] * len(pieces),
        "top_logprobs": [{p: -0.5} for p in pieces] if top else None,
        "text_offset": offsets,
    }


def _choices(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The whole answer's choices."""
    n = body.get("n") or 1
    out = []
    for p, prompt in enumerate(_prompts(body["prompt"])):
        for sample in range(n):
            pieces, finish = pieces_for(body, sample)
            if body.get("echo"):
                pieces = [prompt, *pieces]
            if body.get("suffix"):
                pieces = [*pieces, body["suffix"]]
            logprobs = body.get("logprobs")
            out.append(
                {
                    "text": "".join(pieces),
                    "index": p * n + sample,
                    "logprobs": None if logprobs is None else _logprobs(pieces, 0, logprobs),
                    "finish_reason": finish,
                }
            )
    return out


def _usage(body: dict[str, Any], choices: list[dict[str, Any]]) -> dict[str, int]:
    prompt = sum(len(p.split()) for p in _prompts(body["prompt"]))
    completion = sum(len(pieces_for(body)[0]) for _ in choices)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _chunk(body: dict[str, Any], choices: list[dict[str, Any]]) -> bytes:
    obj: dict[str, Any] = {
        "id": "cmpl-upstream",
        "object": "text_completion",
        "created": 1700000000,
        "model": body["model"],
        "choices": choices,
    }
    if (body.get("stream_options") or {}).get("include_usage"):
        obj["usage"] = None
    return b"data: " + orjson.dumps(obj) + b"\n\n"


def stream_writes(body: dict[str, Any]) -> list[bytes]:
    """A stream's writes: each choice's pieces in turn, its finish, usage, [DONE]."""
    whole = _choices(body)
    writes = []
    for choice in whole:
        pieces, finish = pieces_for(body, choice["index"] % (body.get("n") or 1))
        if body.get("echo"):
            pieces = [_prompts(body["prompt"])[choice["index"] // (body.get("n") or 1)], *pieces]
        if body.get("suffix"):
            pieces = [*pieces, body["suffix"]]
        for piece in pieces:
            lp = None if body.get("logprobs") is None else _logprobs([piece], 0, body["logprobs"])
            text = {"text": piece, "index": choice["index"], "logprobs": lp, "finish_reason": None}
            writes.append(_chunk(body, [text]))
        end = {"text": "", "index": choice["index"], "logprobs": None, "finish_reason": finish}
        writes.append(_chunk(body, [end]))
    if (body.get("stream_options") or {}).get("include_usage"):
        usage = {
            "id": "cmpl-upstream",
            "object": "text_completion",
            "created": 1700000000,
            "model": body["model"],
            "choices": [],
            "usage": _usage(body, whole),
        }
        writes.append(b"data: " + orjson.dumps(usage) + b"\n\n")
    writes.append(b"data: [DONE]\n\n")
    return writes


async def openai_completions(fake: FakeOpenAI, request: web.Request) -> web.StreamResponse:
    """POST /v1/completions of the fake OpenAI-compatible server."""
    if not fake.serves_completions:
        return web.Response(status=404, text="404: Not Found")
    if fake.api_key and request.headers.get("Authorization") != f"Bearer {fake.api_key}":
        error = {
            "message": "Incorrect API key provided.",
            "type": "invalid_request_error",
            "param": None,
            "code": "invalid_api_key",
        }
        return web.json_response({"error": error}, status=401)
    body = orjson.loads(await request.read())
    fake.received.append(Received(request.path, dict(request.headers), body, time.monotonic()))
    script = fake.completion_scripts.get(body.get("model", ""))
    if script is not None:
        fake.active += 1
        try:
            return await fake._play(request, script)
        except (asyncio.CancelledError, ConnectionResetError):
            fake.gone.append(time.monotonic())
            raise
        finally:
            fake.active -= 1
    if not body.get("prompt"):
        error = {
            "message": "you must provide a prompt",
            "type": "invalid_request_error",
            "param": "prompt",
            "code": None,
        }
        return web.json_response({"error": error}, status=400)
    if body.get("stream"):
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for data in stream_writes(body):
            await response.write(data)
        await response.write_eof()
        return response
    choices = _choices(body)
    return web.json_response(
        {
            "id": "cmpl-upstream",
            "object": "text_completion",
            "created": 1700000000,
            "model": body["model"],
            "system_fingerprint": "fp_test",
            "choices": choices,
            "usage": _usage(body, choices),
        }
    )
