"""The OpenAPI document's Messages and legacy completions parts (openapi.py): `POST /v1/messages`,
`POST /v1/messages/count_tokens` and `POST /v1/completions`, their schemas and paths.

The request schemas state the checks llms/api/messages_request.py (with messages_input.py) and
llms/api/completions_request.py make: types, ranges, enums, required fields. What a schema
cannot state is in the descriptions (a `tool_use` must be answered by a `tool_result` in the
next user turn; `tool_choice.name` must name a tool; `best_of` ≥ `n`). The Messages routes
answer errors in Anthropic's shape (`{"type": "error", "error": {"type", "message"}}`), an
overloaded gateway as 529; legacy completions in OpenAI's.
"""

from __future__ import annotations

from typing import Any

from llms.api.completions_request import MAX_PROMPTS, MAX_USER_LENGTH
from llms.api.messages_input import IMAGE_TYPES
from llms.api.messages_object import ERROR_TYPES
from llms.api.messages_request import EFFORTS, MAX_INT, REFUSED, TOOL_CHOICES
from llms.server.fields import MAX_LOGIT_BIAS, MAX_STOP
from llms.server.openapi_schemas import NULL_STR, Schema, nullable, obj, ref, string

_MODEL_LENGTH = 256  # completions_request.MAX_MODEL_LENGTH


def _int(low: int, high: int) -> Schema:
    return nullable({"type": "integer", "minimum": low, "maximum": high})


def _num(low: float, high: float) -> Schema:
    return nullable({"type": "number", "minimum": low, "maximum": high})


_BOOL = nullable({"type": "boolean"})
_TEXT_BLOCK = obj({"type": {"const": "text"}, "text": string()}, ("type",))
_BLOCK = obj(
    {"type": string()},
    ("type",),
    description="A content block: text, image (base64 of "
    + ", ".join(sorted(IMAGE_TYPES))
    + ", or a URL), document (plain text or a base64 PDF), tool_use, tool_result, thinking, "
    "redacted_thinking, search_result. Server tools' blocks are refused (400).",
)
_SYSTEM = {
    "anyOf": [string(), {"type": "array", "items": _TEXT_BLOCK}, {"type": "null"}],
    "description": "A string or text blocks.",
}
_MESSAGE = obj(
    {
        "role": {"enum": ["user", "assistant", "system"]},
        "content": {"anyOf": [string(), {"type": "array", "items": _BLOCK}]},
        "clear_at": nullable({"enum": ["never", "next_user_message"]}),
    },
    ("role", "content"),
)
_TOOL = obj(
    {
        "type": nullable({"const": "custom"}),
        "name": string(128),
        "description": NULL_STR,
        "input_schema": {"type": "object"},
        "strict": _BOOL,
    },
    ("name", "input_schema"),
    description="A custom tool; Anthropic's own tools (web search, code execution…) are a 400 "
    "unless an Anthropic provider serves the model.",
)
_THINKING = nullable(
    {
        "type": "object",
        "properties": {"type": {"enum": ["enabled", "adaptive", "disabled"]}},
        "required": ["type"],
        "if": {"properties": {"type": {"const": "enabled"}}},
        "then": {
            "properties": {
                "budget_tokens": {"type": "integer", "minimum": 1024, "maximum": MAX_INT}
            },
            "required": ["budget_tokens"],
        },
    }
)
_OUTPUT_CONFIG = nullable(
    obj(
        {
            "effort": nullable({"enum": sorted(EFFORTS)}),
            "format": nullable(
                obj(
                    {"type": {"const": "json_schema"}, "schema": {"type": "object"}},
                    ("type", "schema"),
                )
            ),
        }
    )
)
_TOOL_CHOICE = nullable(
    {
        "type": "object",
        "properties": {
            "type": {"enum": sorted({*TOOL_CHOICES, "tool"})},
            "name": string(),
            "disable_parallel_tool_use": _BOOL,
        },
        "required": ["type"],
        "if": {"properties": {"type": {"const": "tool"}}},
        "then": {"required": ["name"]},
        "description": "`tool` names one of `tools`; `any` and `tool` need tools.",
    }
)
_REFUSED = {name: {"description": f"{what}: only Anthropic providers take them."}
            for name, what in REFUSED.items()}  # fmt: skip


def _messages_request(max_tokens_required: bool) -> Schema:
    properties: Schema = {
        "model": string(),
        "max_tokens": {"type": "integer", "minimum": 1, "maximum": MAX_INT},
        "messages": {"type": "array", "items": _MESSAGE, "minItems": 1},
        "system": _SYSTEM,
        "stream": _BOOL,
        "temperature": _num(0, 1),
        "top_p": _num(0, 1),
        "top_k": _int(0, MAX_INT),
        "stop_sequences": nullable({"type": "array", "items": string()}),
        "tools": nullable({"type": "array", "items": _TOOL}),
        "tool_choice": _TOOL_CHOICE,
        "thinking": _THINKING,
        "metadata": nullable(obj({"user_id": NULL_STR})),
        "output_config": _OUTPUT_CONFIG,
        **_REFUSED,
    }
    required = ("model", "max_tokens", "messages") if max_tokens_required else ("model", "messages")
    if not max_tokens_required:
        properties["max_tokens"] = nullable(properties["max_tokens"])
    return obj(
        properties,
        required,
        description="Hints a non-Anthropic model cannot use are dropped (cache_control, "
        "context_management, service_tier…); unknown fields are ignored. Every `tool_use` must "
        "be answered by a `tool_result` in the next user turn.",
    )


_USAGE = obj(
    {
        "input_tokens": {"type": "integer"},
        "output_tokens": {"type": "integer"},
        "cache_creation_input_tokens": {"type": "integer"},
        "cache_read_input_tokens": {"type": "integer"},
        "output_tokens_details": obj({"thinking_tokens": {"type": "integer"}}),
    },
    ("input_tokens", "output_tokens"),
)
_STOP_REASONS = ["end_turn", "max_tokens", "stop_sequence", "tool_use", "refusal", "pause_turn"]
_MESSAGE_OBJECT = obj(
    {
        "id": string(),
        "type": {"const": "message"},
        "role": {"const": "assistant"},
        "model": string(),
        "content": {"type": "array", "items": obj({"type": string()}, ("type",))},
        "stop_reason": nullable({"enum": _STOP_REASONS}),
        "stop_sequence": NULL_STR,
        "usage": _USAGE,
    },
    ("id", "type", "role", "model", "content", "stop_reason", "usage"),
)
_ANTHROPIC_ERROR = obj(
    {
        "type": {"const": "error"},
        "error": obj(
            {"type": {"enum": sorted(set(ERROR_TYPES.values()))}, "message": string()},
            ("type", "message"),
        ),
        "request_id": string(),
    },
    ("type", "error"),
)
_TOKENS = {"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 2**32 - 1}}
_COMPLETION_REQUEST = obj(
    {
        "model": string(_MODEL_LENGTH, minLength=1),
        "prompt": {
            "anyOf": [
                string(),
                {"type": "array", "items": string(), "minItems": 1, "maxItems": MAX_PROMPTS},
                {**_TOKENS, "minItems": 1, "maxItems": MAX_PROMPTS},
                {
                    "type": "array",
                    "items": {**_TOKENS, "minItems": 1},
                    "minItems": 1,
                    "maxItems": MAX_PROMPTS,
                },
            ],
            "description": "A batch or token ids only where a provider serves /v1/completions.",
        },
        "stream": _BOOL,
        "stream_options": nullable(obj({"include_usage": _BOOL})),
        "temperature": _num(0, 2),
        "top_p": _num(0, 1),
        "presence_penalty": _num(-2, 2),
        "frequency_penalty": _num(-2, 2),
        "n": _int(1, 128),
        "best_of": _int(1, 20),
        "max_tokens": _int(0, 2**31),
        "logprobs": _int(0, 5),
        "seed": _int(-(2**63), 2**63 - 1),
        "echo": _BOOL,
        "suffix": NULL_STR,
        "user": nullable(string(MAX_USER_LENGTH)),
        "stop": {
            "anyOf": [
                string(),
                {"type": "array", "items": string(), "maxItems": MAX_STOP},
                {"type": "null"},
            ]
        },
        "logit_bias": nullable(
            {
                "type": "object",
                "maxProperties": MAX_LOGIT_BIAS,
                "propertyNames": {"pattern": "^[0-9]+$"},
                "additionalProperties": {"type": "number", "minimum": -100, "maximum": 100},
            }
        ),
    },
    ("model", "prompt"),
    description="`stream_options` only with `stream: true`; `best_of` ≥ `n` and not with "
    "`stream`. `echo`, `suffix`, `logprobs`, `best_of` > 1, `max_tokens: 0`, a batch or token "
    "ids need a provider that serves /v1/completions itself (else a 400 naming the field).",
)
_TEXT_COMPLETION = obj(
    {
        "id": string(),
        "object": {"const": "text_completion"},
        "created": {"type": "integer"},
        "model": string(),
        "choices": {
            "type": "array",
            "items": obj(
                {
                    "text": string(),
                    "index": {"type": "integer"},
                    "logprobs": {},
                    "finish_reason": NULL_STR,
                },
                ("text", "index", "finish_reason"),
            ),
        },
        "usage": {"type": "object"},
    },
    ("id", "object", "created", "model", "choices"),
)
MESSAGES_SCHEMAS: dict[str, Schema] = {
    "MessagesRequest": _messages_request(True),
    "MessagesCountTokensRequest": _messages_request(False),
    "MessagesMessage": _MESSAGE_OBJECT,
    "AnthropicError": _ANTHROPIC_ERROR,
    "CompletionRequest": _COMPLETION_REQUEST,
    "TextCompletion": _TEXT_COMPLETION,
}

_ANTHROPIC_STATUSES = {
    400: "invalid_request_error: the body is not JSON, or a field is missing or wrong.",
    401: "authentication_error: missing or wrong API key.",
    403: "permission_error: the key may not use this model, or a browser origin is not allowed.",
    404: "not_found_error: unknown model.",
    408: "The request body did not arrive within `server.request_timeout_s`.",
    413: "request_too_large: the body is larger than `server.max_body_mb`.",
    429: "rate_limit_error: a limit of the key or of the upstream; see Retry-After.",
    500: "api_error: an internal error (logged).",
    502: "api_error: the upstream failed or could not be reached.",
    504: "timeout_error: the upstream did not answer in time.",
    529: "overloaded_error: the gateway or every provider of the model is unavailable.",
}


def anthropic_errors(request_id: Schema, *statuses: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for status in statuses:
        headers = dict(request_id)
        if status == 429:
            headers["Retry-After"] = {"schema": string(), "description": "Seconds to wait."}
        out[str(status)] = {
            "description": _ANTHROPIC_STATUSES[status],
            "headers": headers,
            "content": {"application/json": {"schema": ref("AnthropicError")}},
        }
    return out


def _body(name: str) -> Schema:
    return {"required": True, "content": {"application/json": {"schema": ref(name)}}}


# Anthropic's events: `event: <type>` + `data: <json>` (message_start, content_block_start,
# content_block_delta, content_block_stop, message_delta, message_stop, ping, error).
_EVENTS = {
    "text/event-stream": {
        "schema": obj({"event": string(), "data": string()}, ("event", "data")),
    }
}


def messages_paths(
    request_id: Schema, provider: Schema, errors: Any, chat_errors: tuple[int, ...]
) -> Schema:
    """The paths: `request_id` and `provider` are the headers every answer carries, `errors`
    openapi._errors (OpenAI's shape), `chat_errors` the statuses of a routed request."""
    routed = tuple(529 if status == 503 else status for status in chat_errors)
    return {
        "/v1/messages": {
            "post": {
                "operationId": "createMessage",
                "summary": "Anthropic's Messages API on any model: Anthropic's events "
                "(`stream: true`) or one Message.",
                "description": "Translated onto chat completions and routed like one (an "
                "Anthropic provider gets the body as written). A stream's heartbeat is `event: "
                "ping`; a failure after the first event is an `event: error`. Errors are "
                "Anthropic's shape; an overloaded gateway or model is 529.",
                "requestBody": _body("MessagesRequest"),
                "responses": {
                    "200": {
                        "description": "The Message, or its events.",
                        "headers": {**provider, **request_id},
                        "content": {
                            "application/json": {"schema": ref("MessagesMessage")},
                            **_EVENTS,
                        },
                    },
                    **anthropic_errors(request_id, *routed),
                },
            }
        },
        "/v1/messages/count_tokens": {
            "post": {
                "operationId": "countMessageTokens",
                "summary": "The input tokens of a Messages request: exact where an upstream "
                "can count, else an estimate (`X-Token-Count`).",
                "requestBody": _body("MessagesCountTokensRequest"),
                "responses": {
                    "200": {
                        "description": "The count.",
                        "headers": {
                            "X-Token-Count": {"schema": {"enum": ["exact", "estimate"]}},
                            **request_id,
                        },
                        "content": {
                            "application/json": {
                                "schema": obj(
                                    {"input_tokens": {"type": "integer", "minimum": 0}},
                                    ("input_tokens",),
                                )
                            }
                        },
                    },
                    **anthropic_errors(request_id, 400, 401, 403, 404, 408, 413, 429, 500, 529),
                },
            }
        },
        "/v1/completions": {
            "post": {
                "operationId": "createCompletion",
                "summary": "OpenAI's legacy text completions: streamed as SSE (`stream: true`) "
                "or one JSON object; a chat model answers the prompt as one user message.",
                "requestBody": _body("CompletionRequest"),
                "responses": {
                    "200": {
                        "description": "The completion, or its chunks (`data: [DONE]` ends).",
                        "headers": {**provider, **request_id},
                        "content": {
                            "application/json": {"schema": ref("TextCompletion")},
                            "text/event-stream": {
                                "schema": obj({"data": string()}, ("data",)),
                            },
                        },
                    },
                    **errors(*chat_errors),
                },
            }
        },
    }
