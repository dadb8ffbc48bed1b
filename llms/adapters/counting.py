"""Upstream token counting (`POST /v1/messages/count_tokens`): each protocol's counting requests
and the count in their answers. Pure, like every adapter: server/count_tokens.py sends them.

- `anthropic`: its own `POST /v1/messages/count_tokens`, the client's Messages body passed
  through with the model rewritten; the answer is `{"input_tokens": N}`.
- `gemini`: `POST models/{model}:countTokens` with a `generateContentRequest` (the same
  contents, system instruction and tools as the generation request); the answer's `totalTokens`.
- `openai` and `local` when the server is llama.cpp's: `POST /apply-template` renders the chat
  request with the model's chat template (the prompt the server would evaluate), then
  `POST /tokenize` with `add_special` (the BOS the server adds, which the rendered template
  leaves out) counts it; the answer is `{"tokens": [...]}`. Both live at the server's root,
  beside `/v1`. Another OpenAI-compatible server answers 404 there: it cannot count.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import orjson

from llms.adapters import gemini_request, openai
from llms.adapters.anthropic_request import ANTHROPIC_VERSION, messages_url
from llms.adapters.base import UpstreamRequest
from llms.config import ProviderConfig
from llms.errors import UpstreamMalformed
from llms.wire import ChatRequest

Counter = Literal["anthropic", "gemini", "llama.cpp"]

# How each provider type counts; a type missing here (ollama) has no counting endpoint.
COUNTERS: dict[str, Counter] = {
    "anthropic": "anthropic",
    "gemini": "gemini",
    "local": "llama.cpp",  # the bundled model is llama.cpp's server
    "openai": "llama.cpp",  # if it is llama.cpp's server: a 404 says it is not
}
# Statuses that say "this server has no such endpoint" (or will not let the gateway use it),
# rather than "this request failed".
CANNOT_COUNT = frozenset((401, 403, 404, 405, 501))


def build_anthropic_count(
    body: Mapping[str, Any], provider: ProviderConfig, upstream_model: str, beta: str | None
) -> UpstreamRequest:
    """Anthropic's `count_tokens` for a Messages request body, the model rewritten."""
    headers = {"anthropic-version": ANTHROPIC_VERSION, "content-type": "application/json"}
    if beta:
        headers["anthropic-beta"] = beta
    if provider.api_key:
        headers["x-api-key"] = provider.api_key
    headers.update(provider.headers)
    data = orjson.dumps({**body, "model": upstream_model})
    return UpstreamRequest("POST", messages_url(provider, "/count_tokens"), headers, data)


def build_gemini_count(
    request: ChatRequest, provider: ProviderConfig, upstream_model: str
) -> UpstreamRequest:
    """Gemini's `countTokens` for what `streamGenerateContent` would be sent."""
    generate = gemini_request.build_request(request, provider, upstream_model)
    path = upstream_model if "/" in upstream_model else f"models/{upstream_model}"
    body = {"generateContentRequest": {"model": path, **orjson.loads(generate.body)}}
    headers = {**generate.headers, "Accept": "application/json"}
    url = f"{provider.base_url}/{path}:countTokens"
    return UpstreamRequest("POST", url, headers, orjson.dumps(body))


def build_template_request(
    request: ChatRequest, provider: ProviderConfig, upstream_model: str
) -> UpstreamRequest:
    """llama.cpp's `/apply-template` for the body `/v1/chat/completions` would get."""
    chat = openai.build_whole_request(request, provider, upstream_model)
    return UpstreamRequest("POST", f"{_root(provider)}/apply-template", chat.headers, chat.body)


def build_tokenize_request(prompt: str, provider: ProviderConfig) -> UpstreamRequest:
    """llama.cpp's `/tokenize` for a rendered prompt, special tokens added and parsed as the
    server does for a chat request."""
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if provider.api_key:
        headers["Authorization"] = f"Bearer {provider.api_key}"
    headers.update(provider.headers)
    body = orjson.dumps({"content": prompt, "add_special": True, "parse_special": True})
    return UpstreamRequest("POST", f"{_root(provider)}/tokenize", headers, body)


def from_anthropic_count(body: bytes) -> int:
    return _count(_object(body).get("input_tokens"), "input_tokens")


def from_gemini_count(body: bytes) -> int:
    return _count(_object(body).get("totalTokens", 0), "totalTokens")


def from_template(body: bytes) -> str:
    prompt = _object(body).get("prompt")
    if not isinstance(prompt, str):
        raise UpstreamMalformed("The upstream's /apply-template answer has no `prompt` string.")
    return prompt


def from_tokenize(body: bytes) -> int:
    tokens = _object(body).get("tokens")
    if not isinstance(tokens, list):
        raise UpstreamMalformed("The upstream's /tokenize answer has no `tokens` list.")
    return len(tokens)


def _root(provider: ProviderConfig) -> str:
    """The server's root: llama.cpp serves its own endpoints beside `/v1`, not under it."""
    return provider.base_url.rstrip("/").removesuffix("/v1")


def _object(body: bytes) -> dict[str, Any]:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise UpstreamMalformed("The upstream's token count is not JSON.") from None
    if not isinstance(data, dict):
        raise UpstreamMalformed("The upstream's token count is not a JSON object.")
    return data


def _count(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise UpstreamMalformed(f"The upstream's token count has no `{name}` count.")
    return value
