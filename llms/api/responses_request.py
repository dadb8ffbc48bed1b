"""A `POST /v1/responses` body -> a chat-completions request, and the Response's echo fields.

Every field read is validated (a 400 naming its Responses path). Fields that change what the
answer means are translated (docs: responses-and-messages.md §1.1) or refused with a 400 naming
them, never dropped: built-in tools, `conversation`, stored `prompt` templates, `n` > 1.
Hints that only shape what comes back (`include`, `reasoning.summary`, `text.verbosity`,
`service_tier`, `truncation`, `max_tool_calls`, `metadata`…) are validated and echoed in the
Response object only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from llms.api.responses_input import from_input
from llms.api.responses_object import ECHO_DEFAULTS
from llms.api.responses_tools import from_tool_choice, from_tools
from llms.server import fields
from llms.server.fields import fail, number, obj, string, wrong_type

EFFORTS = frozenset(("none", "minimal", "low", "medium", "high", "xhigh", "max"))
SUMMARIES = frozenset(("auto", "concise", "detailed"))
VERBOSITIES = frozenset(("low", "medium", "high"))
TRUNCATIONS = frozenset(("auto", "disabled"))
LOGPROBS_INCLUDE = "message.output_text.logprobs"
MAX_METADATA = 16
# The echo fields `from_request` copies from a request as they are (it derives the others).
_ECHOED_AS_SENT = frozenset(
    (
        "instructions",
        "previous_response_id",
        "temperature",
        "top_p",
        "presence_penalty",
        "frequency_penalty",
        "top_logprobs",
        "max_output_tokens",
        "max_tool_calls",
        "safety_identifier",
        "prompt_cache_key",
        "user",
    )
)
# Chat request fields whose Responses name differs.
CHAT_PARAMS = {
    "messages": "input",
    "response_format": "text.format",
    "max_tokens": "max_output_tokens",
    "max_completion_tokens": "max_output_tokens",
    "reasoning_effort": "reasoning.effort",
    "logprobs": "top_logprobs",
    "stream_options": "stream",
}
MAX_INT = 2**31 - 1

# Every request field this module reads; anything else is listed in `ResponsesCall.ignored`.
KNOWN_FIELDS = frozenset(
    (
        "model",
        "input",
        "instructions",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "max_output_tokens",
        "max_tool_calls",
        "temperature",
        "top_p",
        "top_logprobs",
        "presence_penalty",
        "frequency_penalty",
        "text",
        "reasoning",
        "include",
        "metadata",
        "store",
        "background",
        "stream",
        "stream_options",
        "previous_response_id",
        "conversation",
        "prompt",
        "prompt_cache_key",
        "prompt_cache_retention",
        "safety_identifier",
        "user",
        "service_tier",
        "truncation",
        "n",
    )
)


@dataclass(frozen=True, slots=True)
class ResponsesCall:
    """One validated `POST /v1/responses`.

    `chat` is the chat-completions request to route (stream on, usage on); `settings` the
    fields every Response object of this call echoes (all present, null when unset);
    `input_items` this request's input as normalised items with ids; `ignored` the top-level
    fields the gateway did not read.
    """

    model: str
    chat: dict[str, Any]
    settings: dict[str, Any]
    input_items: list[dict[str, Any]]
    stream: bool
    background: bool
    store: bool
    previous_response_id: str | None
    ignored: tuple[str, ...]
    # The Responses path behind each chat message and chat tool (see `responses_param`).
    message_origins: tuple[str, ...] = ()
    tool_origins: tuple[str, ...] = ()

    def responses_param(self, param: str | None) -> str | None:
        """The Responses field that a chat request's `param` came from, for a 400 an adapter
        raised about `chat` (e.g. `response_format` -> `text.format`, `messages[3].content`
        -> `input[2]`, `tools[0].function.parameters` -> `tools[0].parameters`)."""
        if not param:
            return param
        head, _, rest = param.partition(".")
        name, bracket, index = head.partition("[")
        if bracket and name in ("messages", "tools"):
            origins = self.message_origins if name == "messages" else self.tool_origins
            number = index.rstrip("]")
            if not number.isdigit() or int(number) >= len(origins):
                return "input" if name == "messages" else "tools"
            origin = origins[int(number)]
            if name == "messages":
                return "previous_response_id" if origin.startswith("history") else origin
            rest = rest.removeprefix("function.").removeprefix("function")
            return f"{origin}.{rest}" if rest else origin
        return CHAT_PARAMS.get(name, name if name in KNOWN_FIELDS else param)


def from_request(
    body: dict[str, Any], history: list[dict[str, Any]] | None = None
) -> ResponsesCall:
    """Validate a Responses request and translate it; `history` is the stored conversation
    (earlier input and output items) when `previous_response_id` is used."""
    string(body.get("model"), "model", required=True)
    model: str = body["model"]
    for name, value in body.items():
        # Only the fields sent are checked (most requests send a handful), in their order.
        if value is not None:
            check = _CHECKS.get(name)
            if check is not None:
                check(value)
    stream = body.get("stream") is True
    background = body.get("background") is True
    store = body.get("store") is not False
    tools, echo_tools, tool_origins = from_tools(body.get("tools"))
    tool_choice = body.get("tool_choice")
    chat_choice = from_tool_choice(tool_choice)
    response_format, text = from_text(body.get("text"))
    reasoning = from_reasoning(body.get("reasoning"))
    truncation = _enum(body.get("truncation"), "truncation", TRUNCATIONS)

    messages, items, origins = from_input(body.get("input"), history)
    if body.get("instructions") is not None:
        messages.insert(0, {"role": "system", "content": body["instructions"]})
        origins.insert(0, "instructions")
    if not messages:
        raise fail("input", "Invalid 'input': it holds no message for the model.", "empty_array")
    chat: dict[str, Any] = {
        "model": model,
        "messages": messages,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if tools:
        chat["tools"] = tools
        if chat_choice is not None:
            chat["tool_choice"] = chat_choice
        if body.get("parallel_tool_calls") is not None:
            chat["parallel_tool_calls"] = body["parallel_tool_calls"]
    elif tool_choice not in (None, "auto", "none"):
        raise fail("tool_choice", "Invalid 'tool_choice': it names a tool but 'tools' is empty.")
    for source, target in (
        ("max_output_tokens", "max_tokens"),
        ("temperature", "temperature"),
        ("top_p", "top_p"),
        ("presence_penalty", "presence_penalty"),
        ("frequency_penalty", "frequency_penalty"),
        ("user", "user"),
        ("safety_identifier", "safety_identifier"),
        ("prompt_cache_key", "prompt_cache_key"),
    ):
        if body.get(source) is not None:
            chat[target] = body[source]
    if response_format is not None:
        chat["response_format"] = response_format
    if reasoning is not None and reasoning["effort"] is not None:
        chat["reasoning_effort"] = reasoning["effort"]
    top_logprobs = body.get("top_logprobs") or 0
    if top_logprobs or LOGPROBS_INCLUDE in (body.get("include") or ()):
        chat["logprobs"] = True
        if top_logprobs:
            chat["top_logprobs"] = top_logprobs

    # OpenAI's defaults in the Response's order, each replaced by the request's value if sent.
    settings = ECHO_DEFAULTS.copy()
    for name, value in body.items():
        if value is not None and name in _ECHOED_AS_SENT:
            settings[name] = value
    settings["tools"] = echo_tools
    if tool_choice is not None:
        settings["tool_choice"] = tool_choice
    if truncation is not None:
        settings["truncation"] = truncation
    settings["parallel_tool_calls"] = body.get("parallel_tool_calls") is not False
    settings["text"] = text
    settings["reasoning"] = reasoning
    settings["store"] = store
    settings["background"] = background
    settings["service_tier"] = _service_tier(body.get("service_tier"))
    settings["metadata"] = body.get("metadata") or {}
    if body.get("prompt_cache_retention") is not None:
        settings["prompt_cache_retention"] = body["prompt_cache_retention"]
    return ResponsesCall(
        model=model,
        chat=chat,
        settings=settings,
        input_items=items,
        stream=stream,
        background=background,
        store=store,
        previous_response_id=body.get("previous_response_id"),
        ignored=tuple(sorted(key for key in body if key not in KNOWN_FIELDS)),
        message_origins=tuple(origins),
        tool_origins=tuple(tool_origins),
    )


def _service_tier(value: str | None) -> str:
    # The tier a response reports is the one that served it: "auto" resolves to "default".
    return "default" if value in (None, "auto") else str(value)


def _metadata(value: Any) -> None:
    metadata = obj(value, "metadata")
    if metadata is None:
        return
    if len(metadata) > MAX_METADATA:
        raise fail("metadata", f"Invalid 'metadata': at most {MAX_METADATA} keys.")
    for key, item in metadata.items():
        if len(key) > 64:
            raise fail("metadata", f"Invalid 'metadata': key '{key[:64]}…' is over 64 characters.")
        string(item, f"metadata.{key}", max_length=512)


def _refused(name: str, what: str) -> Callable[[Any], None]:
    def refuse(value: Any) -> None:
        raise fail(
            name,
            f"'{name}' is not supported by this gateway (it keeps no {what}); send the "
            "conversation in 'input' or continue it with 'previous_response_id'.",
            "unsupported_parameter",
        )

    return refuse


def _one_answer(value: Any) -> None:
    if isinstance(value, bool) or value != 1:  # `true == 1` in Python
        raise fail("n", "The Responses API makes one answer per request: 'n' must be 1.")


def _stream_options(value: Any) -> None:
    options = obj(value, "stream_options")
    assert options is not None
    fields.boolean(options.get("include_obfuscation"), "stream_options.include_obfuscation")


def _number(name: str, low: float, high: float, *, integer: bool = False) -> Callable[[Any], None]:
    return partial(number, param=name, low=low, high=high, integer=integer)


# The checks of the fields that are only validated here (their values are copied as they are);
# `from_request` runs those of the fields a request sends, which are not null.
_CHECKS: dict[str, Callable[[Any], None]] = {
    **{
        name: partial(fields.boolean, param=name)
        for name in ("stream", "background", "store", "parallel_tool_calls")
    },
    **{
        name: partial(string, param=name)
        for name in (
            "previous_response_id",
            "instructions",
            "prompt_cache_key",
            "safety_identifier",
            "user",
            "service_tier",
            "prompt_cache_retention",
        )
    },
    "conversation": _refused("conversation", "conversations"),
    "prompt": _refused("prompt", "stored prompt templates"),
    "n": _one_answer,
    "max_output_tokens": _number("max_output_tokens", 1, MAX_INT, integer=True),
    "max_tool_calls": _number("max_tool_calls", 0, MAX_INT, integer=True),
    "temperature": _number("temperature", 0, 2),
    "top_p": _number("top_p", 0, 1),
    "top_logprobs": _number("top_logprobs", 0, 20, integer=True),
    "presence_penalty": _number("presence_penalty", -2, 2),
    "frequency_penalty": _number("frequency_penalty", -2, 2),
    "include": partial(fields.strings, param="include"),
    "metadata": _metadata,
    "stream_options": _stream_options,
}


def from_text(value: Any) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """(chat `response_format` or None, the `text` the Response echoes)."""
    text = obj(value, "text") or {}
    verbosity = _enum(text.get("verbosity"), "text.verbosity", VERBOSITIES)
    form = obj(text.get("format"), "text.format") or {"type": "text"}
    kind = form.get("type")
    string(kind, "text.format.type", required=True)
    echo: dict[str, Any] = {"format": {"type": kind}}
    chat: dict[str, Any] | None = None
    if kind == "json_object":
        chat = {"type": "json_object"}
    elif kind == "json_schema":
        string(form.get("name"), "text.format.name", required=True, max_length=64)
        schema = obj(form.get("schema"), "text.format.schema", required=True)
        fields.boolean(form.get("strict"), "text.format.strict")
        string(form.get("description"), "text.format.description")
        spec: dict[str, Any] = {"name": form["name"], "schema": schema}
        for key in ("strict", "description"):
            if form.get(key) is not None:
                spec[key] = form[key]
        chat = {"type": "json_schema", "json_schema": spec}
        # Echoed whole, as OpenAI does (description and strict present, null/false if unset).
        echo["format"] = {
            "type": "json_schema",
            "description": None,
            **spec,
            "strict": bool(form.get("strict")),
        }
    elif kind != "text":
        raise fail(
            "text.format.type",
            "Invalid 'text.format.type': expected text, json_object or json_schema.",
        )
    if verbosity is not None:
        echo["verbosity"] = verbosity
    return chat, echo


def from_reasoning(value: Any) -> dict[str, Any] | None:
    """The `reasoning` the Response echoes ({effort, summary}), or None when not asked."""
    reasoning = obj(value, "reasoning")
    if reasoning is None:
        return None
    effort = _enum(reasoning.get("effort"), "reasoning.effort", EFFORTS)
    summary = reasoning.get("summary")
    if summary is None:  # its deprecated name
        summary = _enum(reasoning.get("generate_summary"), "reasoning.generate_summary", SUMMARIES)
    return {"effort": effort, "summary": _enum(summary, "reasoning.summary", SUMMARIES)}


def _enum(value: Any, param: str, allowed: frozenset[str]) -> Any:
    """`value` when it is None or one of `allowed`; else a 400 naming `param`."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise wrong_type(param, "a string", value)
    if value not in allowed:
        raise fail(param, f"Invalid '{param}': expected one of {', '.join(sorted(allowed))}.")
    return value
