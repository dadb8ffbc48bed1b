"""The embeddings scenario: ``POST /v1/embeddings``, measured like non-stream chat.

Every request embeds ``INPUTS`` texts and asks for ``encoding_format: "base64"`` (what the
openai SDKs send by default); the fake upstream (bench.upstream) answers ``DIMENSIONS`` float32
values per text. Every answer is checked whole: ``object: "list"``, the model asked for, one
``embedding`` object per input with its ``index`` in order, each vector exactly the upstream's
(its base64 text, compared byte for byte), and the usage the upstream reported. The direct run
asks the fake upstream itself; the gateway run asks the gateway, which routes the request to it.
"""

from __future__ import annotations

import base64
import struct
from functools import cache
from typing import Any

import aiohttp
import orjson

from bench.load import Failure, LoadClient, LoadSpec

INPUTS = 8
DIMENSIONS = 1536
TOKENS_PER_INPUT = 9
TEXTS = tuple(f"Passage {i} of the benchmark's document, to be embedded." for i in range(INPUTS))


@cache
def vector(index: int) -> str:
    """The upstream's embedding of input ``index``: base64 of little-endian float32 values."""
    values = [((index * 31 + d * 7) % 251 - 125) / 128 for d in range(DIMENSIONS)]
    return base64.b64encode(struct.pack(f"<{DIMENSIONS}f", *values)).decode()


def embeddings_answer(model: str, count: int, encoding: str) -> dict[str, Any]:
    """What the fake upstream answers to ``count`` inputs (float or base64 vectors)."""
    data = []
    for i in range(count):
        b64 = vector(i % INPUTS)
        embedding: Any = b64
        if encoding != "base64":
            embedding = list(struct.unpack(f"<{DIMENSIONS}f", base64.b64decode(b64)))
        data.append({"object": "embedding", "index": i, "embedding": embedding})
    tokens = TOKENS_PER_INPUT * count
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


def embeddings_body(model: str) -> bytes:
    return orjson.dumps({"model": model, "input": list(TEXTS), "encoding_format": "base64"})


class EmbeddingsLoadClient(LoadClient):
    """The load client of the embeddings scenario (one whole JSON answer per request)."""

    def __init__(self, spec: LoadSpec, expected: tuple[str, ...]) -> None:
        super().__init__(spec, expected)
        self._body = embeddings_body(spec.model)

    async def read_whole(self, resp: aiohttp.ClientResponse) -> int:
        return await read_embeddings(resp, self.spec.model)


async def read_embeddings(resp: aiohttp.ClientResponse, model: str) -> int:
    """Read and check one embeddings answer; return its size in bytes."""
    if resp.content_type != "application/json":
        raise Failure("content_type", f"Content-Type {resp.content_type!r}")
    body = await resp.read()
    try:
        answer: Any = orjson.loads(body)
        data = answer["data"]
    except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
        raise Failure("bad_json", f"{exc!r}: {body[:120]!r}") from exc
    if answer.get("object") != "list" or answer.get("model") != model:
        raise Failure(
            "wrong_object", f"object={answer.get('object')!r} model={answer.get('model')!r}"
        )
    if not isinstance(data, list) or len(data) != INPUTS:
        raise Failure("embedding_count", f"{len(data)} embeddings for {INPUTS} inputs")
    for i, item in enumerate(data):
        if not isinstance(item, dict) or item.get("object") != "embedding":
            raise Failure("wrong_object", f"data[{i}] is not an embedding object")
        if item.get("index") != i:
            raise Failure("index", f"data[{i}] has index {item.get('index')!r}")
        if item.get("embedding") != vector(i):
            raise Failure("vector", f"data[{i}] is not the upstream's vector")
    tokens = TOKENS_PER_INPUT * INPUTS
    if answer.get("usage") != {"prompt_tokens": tokens, "total_tokens": tokens}:
        raise Failure("usage", f"usage {answer.get('usage')!r}")
    return len(body)
