"""OpenAI's legacy text completions (`POST /v1/completions`): the request, validated, and its
two forms: as written (for upstreams that serve `/completions` themselves) and as a chat
request (for every other provider).

The translation is an approximation, documented as such: the prompt becomes one user message,
so a chat model answers it through its chat template instead of continuing the raw text.
What only a raw completion can honour (`echo`, `suffix`, `logprobs`, `best_of` > 1, a batch or
token ids as the prompt, `max_tokens: 0`) is the request's `refusal`: only providers that serve
`/completions` are then tried, and a model none of whose providers does is a 400 naming the
field, never an answer that silently ignored it. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

from llms.errors import InvalidRequest
from llms.server import fields
from llms.server.fields import fail, number, obj, string, wrong_type
from llms.wire import ChatRequest

# OpenAI's default for legacy completions (chat's is the model's own limit).
DEFAULT_MAX_TOKENS = 16
MAX_MODEL_LENGTH = 256
MAX_USER_LENGTH = 256
MAX_PROMPTS = 2048
# Fields a chat request carries under the same name and meaning.
_CHAT_FIELDS = (
    "temperature",
    "top_p",
    "n",
    "stop",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
    "user",
)


@dataclass(frozen=True, slots=True)
class CompletionsCall:
    """One legacy completions request: `body` as the client wrote it (the default
    `max_tokens` filled in), `chat` its translation, and `refusal`: why only a provider that
    serves `/completions` can answer it (None: any can)."""

    model: str
    stream: bool
    include_usage: bool
    body: Mapping[str, Any]
    chat: ChatRequest
    refusal: InvalidRequest | None


def from_request(body: dict[str, Any]) -> CompletionsCall:
    """Validate a `POST /v1/completions` body (a 400 naming the field for a wrong one)."""
    model = body.get("model")
    if model is None:
        raise fields.missing("model")
    if not isinstance(model, str) or not model:
        raise fail("model", "Invalid 'model': expected a non-empty string.", "invalid_type")
    string(model, "model", max_length=MAX_MODEL_LENGTH)
    prompt = _prompt(body)
    fields.boolean(body.get("stream"), "stream")
    stream = bool(body.get("stream"))
    options = obj(body.get("stream_options"), "stream_options")
    if options is not None and not stream:
        raise fail("stream_options", "'stream_options' is only allowed when 'stream' is true.")
    fields.boolean((options or {}).get("include_usage"), "stream_options.include_usage")
    number(body.get("temperature"), "temperature", 0, 2)
    number(body.get("top_p"), "top_p", 0, 1)
    number(body.get("presence_penalty"), "presence_penalty", -2, 2)
    number(body.get("frequency_penalty"), "frequency_penalty", -2, 2)
    number(body.get("n"), "n", 1, 128, integer=True)
    number(body.get("best_of"), "best_of", 1, 20, integer=True)
    number(body.get("max_tokens"), "max_tokens", 0, 2**31, integer=True)
    number(body.get("logprobs"), "logprobs", 0, 5, integer=True)
    number(body.get("seed"), "seed", -(2**63), 2**63 - 1, integer=True)
    fields.boolean(body.get("echo"), "echo")
    string(body.get("suffix"), "suffix")
    string(body.get("user"), "user", max_length=MAX_USER_LENGTH)
    fields.stop(body.get("stop"))
    fields.logit_bias(body.get("logit_bias"))
    n = body.get("n") or 1
    best_of = body.get("best_of")
    if best_of is not None and best_of < n:
        raise fail("best_of", f"Invalid 'best_of': {best_of} is less than 'n' ({n}).")
    if stream and best_of is not None and best_of > 1:
        raise fail("best_of", "'best_of' cannot be used with 'stream': true.")
    written = dict(body)
    if written.get("max_tokens") is None:
        written["max_tokens"] = DEFAULT_MAX_TOKENS
    return CompletionsCall(
        model=model,
        stream=stream,
        include_usage=bool((options or {}).get("include_usage")),
        body=written,
        chat=_to_chat(written, prompt),
        refusal=_refusal(written, prompt),
    )


def _prompt(body: Mapping[str, Any]) -> str | None:
    """The prompt as one string, or None when it is a batch or token ids (which only an
    upstream serving `/completions` takes)."""
    prompt = body.get("prompt")
    if prompt is None:
        raise fields.missing("prompt")
    if isinstance(prompt, str):
        return prompt
    expected = "a string, an array of strings, an array of token ids or an array of those"
    if not isinstance(prompt, list) or not prompt:
        raise (
            fail("prompt", "Invalid 'prompt': the array is empty.")
            if isinstance(prompt, list)
            else wrong_type("prompt", expected, prompt)
        )
    if len(prompt) > MAX_PROMPTS:
        raise fail("prompt", f"Invalid 'prompt': at most {MAX_PROMPTS} items.")
    if all(isinstance(item, str) for item in prompt):
        return prompt[0] if len(prompt) == 1 else None
    if all(_is_token(item) for item in prompt):
        return None
    for item in prompt:
        if not isinstance(item, list) or not item or not all(_is_token(t) for t in item):
            raise wrong_type("prompt", expected, prompt)
    return None


def _is_token(value: Any) -> bool:
    return type(value) is int and 0 <= value < 2**32


def _refusal(body: Mapping[str, Any], prompt: str | None) -> InvalidRequest | None:
    """Why a chat model cannot answer this request faithfully, naming the field."""
    why: tuple[str, str] | None = None
    if prompt is None:
        why = ("prompt", "a batch of prompts, or token ids as the prompt")
    elif body.get("echo"):
        why = ("echo", "`echo`")
    elif body.get("suffix"):
        why = ("suffix", "`suffix` (insertion)")
    elif body.get("logprobs") is not None:
        why = ("logprobs", "`logprobs`")
    elif (body.get("best_of") or 1) > 1:
        why = ("best_of", "`best_of` greater than 1")
    elif body["max_tokens"] == 0:
        why = ("max_tokens", "`max_tokens: 0`")
    if why is None:
        return None
    param, what = why
    return InvalidRequest(
        f"This model's providers answer legacy completions through chat, which cannot honour "
        f"{what}; only a provider that serves /v1/completions itself can.",
        param=param,
        code="unsupported_parameter",
    )


def _to_chat(body: Mapping[str, Any], prompt: str | None) -> ChatRequest:
    """The request as chat: the prompt as one user message, the shared sampling fields."""
    chat: dict[str, Any] = {
        "model": body["model"],
        "messages": [{"role": "user", "content": prompt or ""}],
        "max_tokens": body["max_tokens"] or DEFAULT_MAX_TOKENS,
    }
    for name in _CHAT_FIELDS:
        if body.get(name) is not None:
            chat[name] = body[name]
    if body.get("stream"):
        chat["stream"] = True
        if body.get("stream_options") is not None:
            chat["stream_options"] = body["stream_options"]
    return cast(ChatRequest, chat)


def chat_param(param: str | None) -> str | None:
    """The completions field an adapter's error about a chat field came from."""
    if param is not None and param.startswith("messages"):
        return "prompt"
    return param
