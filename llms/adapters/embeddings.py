"""Embeddings, per upstream protocol: the request each provider takes, and its answer read back.

Pure translation, as every adapter: no I/O. An `EmbeddingRequest` (validated by
llms/api/embeddings.py) becomes the provider's HTTP request; its 2xx body becomes `Embedded`:
one vector per input, in input order, and the prompt tokens where the upstream counts them.

- OpenAI-compatible (`openai`): `POST {base_url}/embeddings`, the client's body with `model`
  rewritten. Asked in the client's `encoding_format`, so base64 vectors pass through as sent.
- Ollama: `POST /api/embed` with `input` as a list; `dimensions`; `prompt_eval_count` is usage.
- Gemini: `models/{m}:embedContent` for one input, `:batchEmbedContents` for several, with
  `outputDimensionality`; the key in `x-goog-api-key`. Gemini does not count the tokens.

Anthropic has no embeddings, and the bundled model (llama.cpp started for chat) does not serve
them: `EMBEDDERS` has no row for them. Only OpenAI-compatible servers take token arrays.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import orjson

from llms.adapters.base import UpstreamRequest
from llms.adapters.ollama_request import to_headers
from llms.adapters.usage import from_count
from llms.config import ProviderConfig
from llms.errors import UpstreamHTTPError, UpstreamMalformed

# A vector as a list of numbers, or as base64 little-endian float32 (as the upstream sent it).
Vector = list[float] | str


@dataclass(frozen=True, slots=True)
class EmbeddingRequest:
    """A client's embeddings request, validated. `inputs` is always a list: of strings, or of
    token arrays when `tokens`. `body` is the client's JSON, for a pass-through."""

    inputs: list[str] | list[list[int]]
    tokens: bool
    encoding_format: Literal["float", "base64"]
    dimensions: int | None
    body: dict[str, Any]


class Embedded(NamedTuple):
    vectors: list[Vector]
    prompt_tokens: int | None


class Embedder(NamedTuple):
    """One protocol's embeddings: whether it takes token arrays, its request, its answer."""

    takes_tokens: bool
    build: Callable[[EmbeddingRequest, ProviderConfig, str], UpstreamRequest]
    parse: Callable[[EmbeddingRequest, bytes], Embedded]


def _json(body: bytes, who: str) -> dict[str, Any]:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise UpstreamMalformed(f"{who}'s embeddings answer is not JSON.") from None
    if not isinstance(data, dict):
        raise UpstreamMalformed(f"{who}'s embeddings answer is not a JSON object.")
    return data


def _vectors(items: Any, count: int, who: str, *, text_ok: bool = False) -> list[Vector]:
    """`count` vectors, each a non-empty list (or, with `text_ok`, a base64 string)."""
    if not isinstance(items, list) or len(items) != count:
        raise UpstreamMalformed(
            f"{who} answered {len(items) if isinstance(items, list) else 'no'} embeddings "
            f"for {count} inputs."
        )
    for item in items:
        if not ((isinstance(item, list) and item) or (text_ok and isinstance(item, str))):
            raise UpstreamMalformed(f"{who} sent an embedding that is not a list of numbers.")
    return items


def refine_error(status: int, error: UpstreamHTTPError) -> UpstreamHTTPError:
    """An upstream that does not serve embeddings (501: llama.cpp's server started without
    them) is no failure of its health: a 400 naming `model`, tried on the model's next provider
    and never counted against this one's circuit."""
    if status != 501:
        return error
    refused = UpstreamHTTPError(
        f"The upstream does not serve embeddings for this model ({error.message})",
        status=400,
        type="invalid_request_error",
        param="model",
        code="model_not_supported",
    )
    refused.next_provider = True
    return refused


# --- OpenAI-compatible ------------------------------------------------------------------------


def build_openai(
    request: EmbeddingRequest, provider: ProviderConfig, upstream_model: str
) -> UpstreamRequest:
    body = dict(request.body)
    body["model"] = upstream_model
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if provider.api_key:
        headers["Authorization"] = f"Bearer {provider.api_key}"
    headers.update(provider.headers)
    return UpstreamRequest("POST", f"{provider.base_url}/embeddings", headers, orjson.dumps(body))


def parse_openai(request: EmbeddingRequest, body: bytes) -> Embedded:
    """`{"data": [{"embedding", "index"}], "usage"}`: vectors put back in input order."""
    data = _json(body, "The upstream")
    items = data.get("data")
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise UpstreamMalformed("The upstream's embeddings answer has no `data` list.")
    ordered = items
    if any(item.get("index") != i for i, item in enumerate(items)):
        indexes = [item.get("index") for item in items]
        if sorted(map(str, indexes)) != sorted(map(str, range(len(items)))):
            raise UpstreamMalformed("The upstream's embeddings have no proper `index`es.")
        ordered = sorted(items, key=lambda item: int(item["index"]))
    vectors = [item.get("embedding") for item in ordered]
    usage = data.get("usage")
    tokens = from_count(usage.get("prompt_tokens")) if isinstance(usage, dict) else None
    count = len(request.inputs)
    return Embedded(_vectors(vectors, count, "The upstream", text_ok=True), tokens)


# --- Ollama -----------------------------------------------------------------------------------


def build_ollama(
    request: EmbeddingRequest, provider: ProviderConfig, upstream_model: str
) -> UpstreamRequest:
    body: dict[str, Any] = {"model": upstream_model, "input": request.inputs}
    if request.dimensions is not None:
        body["dimensions"] = request.dimensions
    headers = to_headers(provider, "application/json", json_body=True)
    return UpstreamRequest("POST", f"{provider.base_url}/api/embed", headers, orjson.dumps(body))


def parse_ollama(request: EmbeddingRequest, body: bytes) -> Embedded:
    """`{"embeddings": [[...]], "prompt_eval_count": N}`."""
    data = _json(body, "Ollama")
    vectors = _vectors(data.get("embeddings"), len(request.inputs), "Ollama")
    return Embedded(vectors, from_count(data.get("prompt_eval_count")))


# --- Gemini -----------------------------------------------------------------------------------


def build_gemini(
    request: EmbeddingRequest, provider: ProviderConfig, upstream_model: str
) -> UpstreamRequest:
    path = upstream_model if "/" in upstream_model else f"models/{upstream_model}"

    def one(text: Any) -> dict[str, Any]:
        item: dict[str, Any] = {"content": {"parts": [{"text": text}]}}
        if request.dimensions is not None:
            item["outputDimensionality"] = request.dimensions
        return item

    if len(request.inputs) == 1:
        method, body = "embedContent", one(request.inputs[0])
    else:
        method = "batchEmbedContents"
        body = {"requests": [{"model": path, **one(text)} for text in request.inputs]}
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if provider.api_key:
        headers["x-goog-api-key"] = provider.api_key
    headers.update(provider.headers)
    url = f"{provider.base_url}/{path}:{method}"
    return UpstreamRequest("POST", url, headers, orjson.dumps(body))


def parse_gemini(request: EmbeddingRequest, body: bytes) -> Embedded:
    """`{"embedding": {"values"}}` (one) or `{"embeddings": [{"values"}]}` (a batch)."""
    data = _json(body, "Gemini")
    items = data.get("embeddings") if "embeddings" in data else [data.get("embedding")]
    if not isinstance(items, list):
        raise UpstreamMalformed("Gemini's embeddings answer has no `embeddings` list.")
    values = [item.get("values") if isinstance(item, dict) else None for item in items]
    return Embedded(_vectors(values, len(request.inputs), "Gemini"), None)


# The adapter module (protocols.py's `adapter`) -> its embeddings; none for Anthropic.
EMBEDDERS: dict[str, Embedder] = {
    "openai": Embedder(True, build_openai, parse_openai),
    "ollama": Embedder(False, build_ollama, parse_ollama),
    "gemini": Embedder(False, build_gemini, parse_gemini),
}


# --- which models embed (for GET /v1/models) --------------------------------------------------


def ollama_show_request(provider: ProviderConfig, upstream_model: str) -> UpstreamRequest:
    """`POST /api/show`: a model's details, with its `capabilities` (Ollama 0.6.4 and later)."""
    headers = to_headers(provider, "application/json", json_body=True)
    body = orjson.dumps({"model": upstream_model})
    return UpstreamRequest("POST", f"{provider.base_url}/api/show", headers, body)


class ModelKind(NamedTuple):
    """What an upstream says of one of its models."""

    embeds: bool  # it only embeds: `"type": "embedding"` in GET /v1/models
    images: bool | None  # it reads images (None: the upstream does not say)


def from_ollama_show(body: bytes) -> ModelKind | None:
    """Whether the model only embeds (`capabilities: ["embedding"]`, no "completion") and
    whether it reads images ("vision"); None when the server does not say."""
    capabilities = _json(body, "Ollama").get("capabilities")
    if not isinstance(capabilities, list):
        return None
    embeds = "embedding" in capabilities and "completion" not in capabilities
    return ModelKind(embeds, "vision" in capabilities)


def gemini_model_request(provider: ProviderConfig, upstream_model: str) -> UpstreamRequest:
    """`GET models/{m}`: the model's `supportedGenerationMethods`."""
    path = upstream_model if "/" in upstream_model else f"models/{upstream_model}"
    headers = {"Accept": "application/json"}
    if provider.api_key:
        headers["x-goog-api-key"] = provider.api_key
    headers.update(provider.headers)
    return UpstreamRequest("GET", f"{provider.base_url}/{path}", headers, b"")


def from_gemini_model(body: bytes) -> ModelKind | None:
    """Whether the model embeds and does not generate; None when the answer does not say.
    The Model resource does not say which inputs a model reads."""
    methods = _json(body, "Gemini").get("supportedGenerationMethods")
    if not isinstance(methods, list):
        return None
    return ModelKind("embedContent" in methods and "generateContent" not in methods, None)


# The adapter module -> how to ask whether one of its models is an embedding model.
KIND_QUESTIONS: dict[
    str,
    tuple[Callable[[ProviderConfig, str], UpstreamRequest], Callable[[bytes], ModelKind | None]],
] = {
    "ollama": (ollama_show_request, from_ollama_show),
    "gemini": (gemini_model_request, from_gemini_model),
}
