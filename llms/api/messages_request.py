"""A `POST /v1/messages` body (Anthropic's Messages API) -> a chat-completions request.

Every field read is validated (a 400 naming its Messages path, rendered in Anthropic's shape by
`llms.api.messages.error_body`). Translated (docs: responses-and-messages.md §2.1): `model`,
`max_tokens` (required) -> `max_tokens`, `system` and `messages` (messages_input.py),
`temperature`, `top_p`, `top_k` (passed through: some upstreams take it), `stop_sequences` ->
`stop`, `tools` (`input_schema` -> `parameters`), `tool_choice` (auto/any/tool/none ->
auto/required/function/none; `disable_parallel_tool_use` -> `parallel_tool_calls: false`),
`thinking` -> `reasoning_effort` (`THINKING_EFFORTS`), `output_config.effort` ->
`reasoning_effort`, `output_config.format` -> `response_format`, `metadata.user_id` -> `user`.

Dropped, as hints a non-Anthropic model cannot use (Claude Code sends several on every request):
`cache_control` (top level and on any block or tool), `context_management`, other `metadata` keys,
`service_tier`, `inference_geo`, `speed`, `diagnostics`, a tool's `defer_loading`,
`input_examples`, `eager_input_streaming`, `allowed_callers`. Refused with a 400 naming them,
since they change what the answer means: server tools (`tools[i].type` such as
`web_search_20250305`, code execution, bash/text editor/computer/memory tools), `container`,
`mcp_servers`, citation requests.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from llms.api.messages_input import from_messages, with_thinking_blocks
from llms.server import fields
from llms.server.fields import fail, number, obj, required_obj, string

MAX_INT = 2**31 - 1
# `thinking.budget_tokens` -> `reasoning_effort`: the inverse of the Anthropic adapter's budgets
# (low 1024, medium 4096, high 16384): a budget gets the largest effort it covers. The budgets
# past `high` stay `high`, the effort every reasoning upstream knows.
THINKING_EFFORTS = ((16384, "high"), (4096, "medium"), (0, "low"))
EFFORTS = frozenset(("low", "medium", "high", "xhigh", "max"))
TOOL_CHOICES = {"auto": "auto", "any": "required", "none": "none"}
# Top-level fields that would change the answer's meaning and only Anthropic can honour.
REFUSED = {
    "container": "containers (code execution, skills)",
    "mcp_servers": "MCP servers",
}
# Every request field this module reads; anything else is listed in `MessagesCall.ignored`.
KNOWN_FIELDS = frozenset(
    (
        "model",
        "max_tokens",
        "messages",
        "system",
        "stream",
        "temperature",
        "top_p",
        "top_k",
        "stop_sequences",
        "tools",
        "tool_choice",
        "thinking",
        "metadata",
        "output_config",
        "container",
        "mcp_servers",
        # hints, dropped
        "cache_control",
        "context_management",
        "service_tier",
        "inference_geo",
        "speed",
        "diagnostics",
    )
)


@dataclass(frozen=True, slots=True)
class MessagesCall:
    """One validated `POST /v1/messages`.

    `chat` is the chat-completions request to route (stream on, usage on); `stop_sequences`
    what the answer's `stop_sequence` may be; `thinking` the thinking blocks of earlier
    assistant turns by chat message index (`chat_with_thinking()` puts them in the messages);
    `origins` the Messages path behind each chat message; `ignored` the top-level fields the
    gateway did not read.
    """

    model: str
    chat: dict[str, Any]
    stream: bool
    stop_sequences: tuple[str, ...] = ()
    thinking: Mapping[int, list[dict[str, Any]]] = field(default_factory=dict)
    origins: tuple[str, ...] = ()
    ignored: tuple[str, ...] = ()

    def chat_with_thinking(self) -> dict[str, Any]:
        """`chat` whose assistant messages carry their signed and redacted thinking blocks
        (signatures intact) in the `thinking_blocks` extension field, for an adapter that
        replays them; unsigned thinking (another model's) is left out."""
        signed = {
            index: kept
            for index, blocks in self.thinking.items()
            if (kept := [block for block in blocks if block.get("signature") or "data" in block])
        }
        if not signed:
            return self.chat
        return {**self.chat, "messages": with_thinking_blocks(self.chat["messages"], signed)}

    def messages_param(self, param: str | None) -> str | None:
        """The Messages field a chat request's `param` came from (for a 400 an adapter raised
        about `chat`): `messages[3]…` -> the block or message it was made of, `stop` ->
        `stop_sequences`, `tools[0].function.parameters` -> `tools[0].input_schema`."""
        if not param:
            return param
        head, _, rest = param.partition(".")
        name, bracket, index = head.partition("[")
        if name == "messages" and bracket:
            number_ = index.rstrip("]")
            if number_.isdigit() and int(number_) < len(self.origins):
                return self.origins[int(number_)]
            return "messages"
        if name == "tools" and bracket:
            rest = rest.removeprefix("function.").replace("parameters", "input_schema")
            return f"{head}.{rest}" if rest and rest != "function" else head
        return CHAT_PARAMS.get(name, name if name in KNOWN_FIELDS else param)


CHAT_PARAMS = {
    "stop": "stop_sequences",
    "reasoning_effort": "thinking",
    "user": "metadata.user_id",
    "parallel_tool_calls": "tool_choice.disable_parallel_tool_use",
    "response_format": "output_config.format",
    "max_completion_tokens": "max_tokens",
}


def from_request(body: Mapping[str, Any]) -> MessagesCall:
    """Validate a Messages request and translate it."""
    string(body.get("model"), "model", required=True)
    model: str = body["model"]
    if body.get("max_tokens") is None:
        raise fail("max_tokens", "max_tokens: Field required", "missing_required_parameter")
    number(body.get("max_tokens"), "max_tokens", 1, MAX_INT, integer=True)
    fields.boolean(body.get("stream"), "stream")
    for name, what in REFUSED.items():
        if body.get(name):
            raise fail(
                name,
                f"{name}: {what} are not supported for this model; only Anthropic models "
                "served by an Anthropic provider take them.",
                "unsupported_parameter",
            )
    number(body.get("temperature"), "temperature", 0, 1)
    number(body.get("top_p"), "top_p", 0, 1)
    number(body.get("top_k"), "top_k", 0, MAX_INT, integer=True)
    stops = fields.array(body.get("stop_sequences"), "stop_sequences") or []
    for i, stop in enumerate(stops):
        string(stop, f"stop_sequences[{i}]", required=True)
    metadata = obj(body.get("metadata"), "metadata") or {}
    string(metadata.get("user_id"), "metadata.user_id")

    conversation = from_messages(body.get("system"), body.get("messages"))
    chat: dict[str, Any] = {
        "model": model,
        "messages": conversation.messages,
        "max_tokens": body["max_tokens"],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    for name in ("temperature", "top_p", "top_k"):
        if body.get(name) is not None:
            chat[name] = body[name]
    if stops:
        chat["stop"] = list(stops)
    if metadata.get("user_id"):
        chat["user"] = metadata["user_id"]
    _add_tools(body, chat)
    effort = from_thinking(body.get("thinking"))
    config = obj(body.get("output_config"), "output_config") or {}
    if config.get("effort") is not None:
        if config["effort"] not in EFFORTS:
            raise fail(
                "output_config.effort",
                f"output_config.effort: expected one of {', '.join(sorted(EFFORTS))}.",
            )
        effort = effort if effort == "none" else config["effort"]
    if effort is not None and effort != "none":
        chat["reasoning_effort"] = effort
    response_format = from_output_format(config.get("format"))
    if response_format is not None:
        chat["response_format"] = response_format
    return MessagesCall(
        model=model,
        chat=chat,
        stream=bool(body.get("stream")),
        stop_sequences=tuple(stops),
        thinking=conversation.thinking,
        origins=tuple(conversation.origins),
        ignored=tuple(sorted(key for key in body if key not in KNOWN_FIELDS)),
    )


def from_thinking(value: Any) -> str | None:
    """`thinking` -> a `reasoning_effort`: `enabled` by its budget (`THINKING_EFFORTS`),
    `disabled` -> "none" (nothing is sent), `adaptive` or absent -> None (the model decides)."""
    thinking = obj(value, "thinking")
    if thinking is None:
        return None
    kind = thinking.get("type")
    if kind == "enabled":
        budget = thinking.get("budget_tokens")
        if budget is None:
            raise fail("thinking.budget_tokens", "thinking.budget_tokens: Field required")
        number(budget, "thinking.budget_tokens", 1024, MAX_INT, integer=True)
        return next(effort for floor, effort in THINKING_EFFORTS if budget >= floor)
    if kind == "disabled":
        return "none"
    if kind == "adaptive":
        return None
    raise fail("thinking.type", "thinking.type: expected 'enabled', 'adaptive' or 'disabled'.")


def from_output_format(value: Any) -> dict[str, Any] | None:
    """`output_config.format` (`{type: "json_schema", schema}`) -> a chat `response_format`."""
    form = obj(value, "output_config.format")
    if form is None:
        return None
    if form.get("type") != "json_schema":
        raise fail("output_config.format.type", "output_config.format.type: expected json_schema.")
    schema = obj(form.get("schema"), "output_config.format.schema", required=True)
    return {
        "type": "json_schema",
        "json_schema": {"name": "output", "schema": schema, "strict": True},
    }


def _add_tools(body: Mapping[str, Any], chat: dict[str, Any]) -> None:
    tools = fields.array(body.get("tools"), "tools") or []
    specs: list[dict[str, Any]] = []
    for i, tool in enumerate(tools):
        where = f"tools[{i}]"
        tool = required_obj(tool, where)
        kind = tool.get("type")
        if kind not in (None, "custom"):
            string(kind, f"{where}.type")
            raise fail(
                f"{where}.type",
                f"{where}.type: '{kind}' is one of Anthropic's own tools, which this model "
                "cannot run; only custom tools (name, description, input_schema) are translated.",
                "unsupported_value",
            )
        string(tool.get("name"), f"{where}.name", required=True, max_length=128)
        string(tool.get("description"), f"{where}.description")
        schema = obj(tool.get("input_schema"), f"{where}.input_schema", required=True)
        fields.boolean(tool.get("strict"), f"{where}.strict")
        function: dict[str, Any] = {"name": tool["name"]}
        if tool.get("description"):
            function["description"] = tool["description"]
        function["parameters"] = schema
        if tool.get("strict") is not None:
            function["strict"] = tool["strict"]
        specs.append({"type": "function", "function": function})
    choice = obj(body.get("tool_choice"), "tool_choice")
    if choice is None:
        if specs:
            chat["tools"] = specs
        return
    kind = choice.get("type")
    fields.boolean(choice.get("disable_parallel_tool_use"), "tool_choice.disable_parallel_tool_use")
    if kind == "tool":
        string(choice.get("name"), "tool_choice.name", required=True)
        if choice["name"] not in {spec["function"]["name"] for spec in specs}:
            raise fail(
                "tool_choice.name", f"tool_choice.name: no tool named '{choice['name']}' in tools."
            )
        chat_choice: Any = {"type": "function", "function": {"name": choice["name"]}}
    elif kind in TOOL_CHOICES:
        chat_choice = TOOL_CHOICES[kind]
    else:
        raise fail("tool_choice.type", "tool_choice.type: expected auto, any, tool or none.")
    if not specs:
        if kind in ("auto", "none"):
            return
        raise fail("tool_choice", f"tool_choice: '{kind}' requires tools.")
    chat["tools"] = specs
    chat["tool_choice"] = chat_choice
    if choice.get("disable_parallel_tool_use") and kind != "none":
        chat["parallel_tool_calls"] = False
