"""TypedDicts for the OpenAI shapes the gateway reads and writes."""

from __future__ import annotations

from typing import Any, Literal, NotRequired, TypedDict

FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "function_call"]
FINISH_REASONS: frozenset[str] = frozenset(
    ("stop", "length", "tool_calls", "content_filter", "function_call")
)


class FunctionDelta(TypedDict, total=False):
    name: str
    arguments: str


class ToolCallDelta(TypedDict, total=False):
    index: int
    id: str
    type: Literal["function"]
    function: FunctionDelta


class Delta(TypedDict, total=False):
    role: Literal["assistant"]
    content: str | None
    refusal: str | None
    reasoning_content: str
    tool_calls: list[ToolCallDelta]
    # The legacy `functions` call, OpenAI's web-search citations and audio output. The fold keeps
    # any other key the upstream sent too.
    function_call: FunctionDelta
    annotations: list[dict[str, Any]]
    audio: dict[str, Any]
    # Reasoning that must go back to the upstream that made it (README: thinking_blocks):
    # Anthropic's and Bedrock's signed or redacted thinking, Gemini's thought signatures.
    thinking_blocks: list[dict[str, Any]]


class ChunkChoice(TypedDict):
    index: int
    delta: Delta
    logprobs: NotRequired[dict[str, Any] | None]
    finish_reason: FinishReason | None


class Usage(TypedDict):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    prompt_tokens_details: NotRequired[dict[str, int]]
    completion_tokens_details: NotRequired[dict[str, int]]


class Chunk(TypedDict):
    id: str
    object: Literal["chat.completion.chunk"]
    created: int
    model: str
    choices: list[ChunkChoice]
    system_fingerprint: NotRequired[str | None]
    service_tier: NotRequired[str | None]
    usage: NotRequired[Usage | None]
    # A native attempt's chunk (llms/native.py): the upstream's own event it summarises, as
    # (type, JSON), and whether that event is output with no chat equivalent. Never sent.
    native: NotRequired[tuple[str, str]]
    native_output: NotRequired[bool]


class Message(TypedDict, total=False):
    role: str
    content: Any
    name: str
    tool_calls: list[dict[str, Any]]
    tool_call_id: str


class StreamOptions(TypedDict, total=False):
    include_usage: bool


class ChatRequest(TypedDict, total=False):
    """A validated client request; fields the gateway does not read pass through untouched."""

    model: str
    messages: list[Message]
    stream: bool
    stream_options: StreamOptions | None
    temperature: float | None
    top_p: float | None
    n: int | None
    max_tokens: int | None
    max_completion_tokens: int | None
    stop: str | list[str] | None
    tools: list[dict[str, Any]]
    tool_choice: str | dict[str, Any]


class ResponseMessage(TypedDict):
    """The fields the gateway writes; every other field the upstream sent is kept as well."""

    role: Literal["assistant"]
    content: str | None
    refusal: str | None
    reasoning_content: NotRequired[str]
    tool_calls: NotRequired[list[dict[str, Any]]]
    function_call: NotRequired[dict[str, str]]
    annotations: NotRequired[list[dict[str, Any]]]
    audio: NotRequired[dict[str, Any]]


class CompletionChoice(TypedDict):
    index: int
    message: ResponseMessage
    logprobs: dict[str, Any] | None
    finish_reason: FinishReason | None


class Completion(TypedDict):
    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage | None
    system_fingerprint: NotRequired[str | None]
    service_tier: NotRequired[str | None]


class ModelCard(TypedDict):
    id: str
    object: Literal["model"]
    created: int
    owned_by: str
    # Where the upstream tells (llms/server/model_kinds.py): an embedding model; whether it
    # reads images (["text", "image"]) or text only (["text"]), as OpenRouter's cards say it.
    type: NotRequired[Literal["embedding"]]
    input_modalities: NotRequired[list[str]]
