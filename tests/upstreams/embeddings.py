"""The fakes' embeddings endpoints, as each provider serves them, checking its real auth.

- OpenAI-compatible `POST /v1/embeddings` (FakeOpenAI): `input` as a string, strings, a token
  array or token arrays; `encoding_format` float or base64 (little-endian float32); `dimensions`;
  `Authorization: Bearer <api_key>` when the fake has a key.
- Ollama `POST /api/embed` (FakeOllama): `input` a string or strings (token arrays are refused as
  Ollama refuses them), `dimensions`, `prompt_eval_count`.
- Gemini `models/{m}:embedContent` and `:batchEmbedContents` (FakeGemini), `outputDimensionality`,
  the key in `x-goog-api-key`.

The vectors are `vector_of(input, dimensions)`: made from a hash of the input, each value a
multiple of 1/128 (exact in float32, so a base64 round trip gives them back exactly), so a test
knows the vector it must get. Tokens are `tokens_in`: a word or punctuation mark is one. A model
whose script (FakeOpenAI.scripts) is an error status, a fault or a JSON body plays that script
instead (a JSON body: the exact answer to send).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
import struct
import time
from typing import Any

import orjson
from aiohttp import web

from tests.upstreams.openai import FakeOpenAI, Received

DIMENSIONS = 8


def vector_of(item: str | list[int], dimensions: int | None = None) -> list[float]:
    """The fakes' embedding of one input: `dimensions` (default 8) values in [-1, 1)."""
    n = dimensions or DIMENSIONS
    digest = b""
    seed = orjson.dumps(item)
    while len(digest) < n:
        digest += hashlib.sha256(seed + len(digest).to_bytes(4, "big")).digest()
    return [(byte - 128) / 128 for byte in digest[:n]]


def tokens_in(item: str | list[int]) -> int:
    if isinstance(item, list):
        return len(item)
    return len(re.findall(r"\w+|[^\w\s]", item))


def to_base64(vector: list[float]) -> str:
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()


async def _played(fake: FakeOpenAI, request: web.Request, model: str) -> web.StreamResponse | None:
    """The model's script when it is an error or a fault (then the fake answers that), else None."""
    script = fake.script_for(model)
    answer = script.status == 200 and script.content_type != "application/json"
    if answer and script.fault is None and not script.header_delay_s:
        return None
    fake.active += 1
    try:
        if script.status == 200 and script.fault == "stall":
            await asyncio.sleep(3600)
        return await fake._play(request, script)
    except (asyncio.CancelledError, ConnectionResetError):
        fake.gone.append(time.monotonic())
        raise
    finally:
        fake.active -= 1


def _openai_error(
    status: int, message: str, code: str | None = None, param: str | None = None
) -> web.Response:
    error = {"message": message, "type": "invalid_request_error", "param": param, "code": code}
    return web.json_response({"error": error}, status=status)


async def openai_embeddings(fake: FakeOpenAI, request: web.Request) -> web.StreamResponse:
    if fake.api_key and request.headers.get("Authorization") != f"Bearer {fake.api_key}":
        return _openai_error(401, "Incorrect API key provided.", "invalid_api_key")
    body = orjson.loads(await request.read())
    fake.received.append(Received(request.path, dict(request.headers), body, time.monotonic()))
    model = body.get("model", "")
    played = await _played(fake, request, model)
    if played is not None:
        return played
    raw = body.get("input")
    if isinstance(raw, str) or (isinstance(raw, list) and raw and isinstance(raw[0], int)):
        inputs = [raw]
    elif isinstance(raw, list) and raw:
        inputs = raw
    else:
        return _openai_error(400, "'$.input' is invalid.", param="input")
    encoding = body.get("encoding_format", "float")
    if encoding not in ("float", "base64"):
        return _openai_error(400, "Invalid encoding_format.", param="encoding_format")
    vectors = [vector_of(item, body.get("dimensions")) for item in inputs]
    data = [
        {
            "object": "embedding",
            "index": i,
            "embedding": to_base64(vector) if encoding == "base64" else vector,
        }
        for i, vector in enumerate(vectors)
    ]
    tokens = sum(tokens_in(item) for item in inputs)
    return web.json_response(
        {
            "object": "list",
            "data": data,
            "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
    )


async def ollama_embed(fake: FakeOpenAI, request: web.Request) -> web.StreamResponse:
    if fake.api_key and request.headers.get("Authorization") != f"Bearer {fake.api_key}":
        return web.json_response({"error": "unauthorized"}, status=401)
    body = orjson.loads(await request.read())
    fake.received.append(Received(request.path, dict(request.headers), body, time.monotonic()))
    model = body.get("model", "")
    played = await _played(fake, request, model)
    if played is not None:
        return played
    raw = body.get("input")
    inputs = [raw] if isinstance(raw, str) else raw
    if not isinstance(inputs, list) or not all(isinstance(item, str) for item in inputs):
        return web.json_response({"error": "invalid input type"}, status=400)
    return web.json_response(
        {
            "model": model,
            "embeddings": [vector_of(item, body.get("dimensions")) for item in inputs],
            "total_duration": 14143917,
            "load_duration": 1019500,
            "prompt_eval_count": sum(tokens_in(item) for item in inputs),
        }
    )


def _gemini_one(item: Any) -> tuple[str, int | None] | None:
    """(text, outputDimensionality) of one EmbedContentRequest; None if it is not one."""
    if not isinstance(item, dict):
        return None
    parts = (item.get("content") or {}).get("parts")
    if not isinstance(parts, list) or len(parts) != 1 or not isinstance(parts[0].get("text"), str):
        return None
    return parts[0]["text"], item.get("outputDimensionality")


async def gemini_embed(
    fake: FakeOpenAI, request: web.Request, model: str, method: str, body: dict[str, Any]
) -> web.StreamResponse:
    """`:embedContent` / `:batchEmbedContents` (the key was checked by the caller)."""
    from tests.upstreams.gemini import _error

    played = await _played(fake, request, model)
    if played is not None:
        return played
    if method == "embedContent":
        one = _gemini_one(body)
        if one is None:
            return _error(400, "INVALID_ARGUMENT", "Invalid JSON payload received.")
        return web.json_response({"embedding": {"values": vector_of(*one)}})
    items = body.get("requests")
    if not isinstance(items, list) or not items:
        return _error(400, "INVALID_ARGUMENT", "* BatchEmbedContentsRequest.requests: required")
    values = []
    for i, item in enumerate(items):
        one = _gemini_one(item)
        if one is None or item.get("model") != f"models/{model}":
            return _error(400, "INVALID_ARGUMENT", f"* requests[{i}]: model or content invalid")
        values.append({"values": vector_of(*one)})
    return web.json_response({"embeddings": values})


def capabilities_of(model: str) -> list[str]:
    """What the fakes say a model can do: a name with "embed" in it only embeds, one with
    "llava" in it also reads images (as Ollama's vision models say)."""
    if "embed" in model:
        return ["embedding"]
    return ["completion", "vision"] if "llava" in model else ["completion", "tools"]


async def ollama_show(fake: FakeOpenAI, request: web.Request) -> web.Response:
    """`POST /api/show`: the model's details and `capabilities` (Ollama 0.6.4 and later)."""
    if fake.api_key and request.headers.get("Authorization") != f"Bearer {fake.api_key}":
        return web.json_response({"error": "unauthorized"}, status=401)
    body = orjson.loads(await request.read())  # not in `received`: the gateway asks on its own
    model = body.get("model")
    if not isinstance(model, str) or not model:
        return web.json_response({"error": "model is required"}, status=400)
    family = "nomic-bert" if "embed" in model else "llama"
    return web.json_response(
        {
            "modelfile": f"FROM {model}",
            "details": {"format": "gguf", "family": family, "families": [family]},
            "model_info": {"general.architecture": family},
            "capabilities": capabilities_of(model),
        }
    )


def gemini_model(model: str) -> web.Response:
    """`GET models/{m}`: the Model resource, with its `supportedGenerationMethods`."""
    embeds = "embedding" in capabilities_of(model)
    methods = ["embedContent", "countTextTokens"] if embeds else ["generateContent", "countTokens"]
    return web.json_response(
        {
            "name": f"models/{model}",
            "version": "001",
            "displayName": model,
            "inputTokenLimit": 2048,
            "supportedGenerationMethods": methods,
        }
    )
