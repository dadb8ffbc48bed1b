"""The schemas of the gateway's OpenAPI document (openapi.py): requests, answers, errors.

The chat request schema states the rules requests.py enforces (types, ranges, shapes), so a
request the schema accepts is never refused by the gateway for its shape. Optional fields
accept null, as the gateway does.
"""

from __future__ import annotations

from typing import Any

from llms.server.fields import MAX_LOGIT_BIAS, MAX_STOP
from llms.server.request_messages import ROLES
from llms.server.requests import (
    MAX_JSON_DEPTH,
    MAX_METADATA_KEY,
    MAX_METADATA_PAIRS,
    MAX_METADATA_VALUE,
    MAX_MODEL_LENGTH,
    MAX_USER_LENGTH,
    OBJECT_FIELDS,
    STRING_FIELDS,
)

Schema = dict[str, Any]
REF = "#/components/schemas/"
INT64 = 2**63


def ref(name: str) -> Schema:
    return {"$ref": REF + name}


def nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


def string(max_length: int | None = None, **extra: Any) -> Schema:
    schema: Schema = {"type": "string", **extra}
    if max_length is not None:
        schema["maxLength"] = max_length
    return schema


def _number(low: float, high: float, kind: str = "number") -> Schema:
    return nullable({"type": kind, "minimum": low, "maximum": high})


def obj(properties: Schema, required: tuple[str, ...] = (), **extra: Any) -> Schema:
    schema: Schema = {"type": "object", "properties": properties, **extra}
    if required:
        schema["required"] = list(required)
    return schema


def when(prop: str, value: str, then: Schema) -> Schema:
    """`then` applies when `prop` equals `value`."""
    return {"if": {"properties": {prop: {"const": value}}, "required": [prop]}, "then": then}


def _named() -> Schema:
    return obj({"name": string()}, ("name",))


NULL_STR = nullable(string())
_CONTENT_PART = {
    "type": "object",
    "properties": {"type": string()},
    "required": ["type"],
    "allOf": [
        when("type", "text", obj({"text": string()}, ("text",))),
        when("type", "refusal", obj({"refusal": string()}, ("refusal",))),
        when(
            "type",
            "image_url",
            obj(
                {
                    "image_url": {
                        "anyOf": [
                            string(),
                            obj({"url": string(), "detail": NULL_STR}, ("url",)),
                        ]
                    }
                },
                ("image_url",),
            ),
        ),
        when(
            "type",
            "input_audio",
            obj(
                {"input_audio": obj({"data": string(), "format": string()}, ("data", "format"))},
                ("input_audio",),
            ),
        ),
        when(
            "type",
            "file",
            obj(
                {"file": obj({"file_data": NULL_STR, "file_id": NULL_STR, "filename": NULL_STR})},
                ("file",),
            ),
        ),
    ],
}
_TOOL_CALL = obj(
    {
        "id": NULL_STR,
        "type": {"const": "function"},
        "function": obj(
            {
                "name": string(),
                "arguments": {"anyOf": [{"type": "string"}, {"type": "object"}, {"type": "null"}]},
            },
            ("name",),
        ),
    },
    ("function",),
)
_MESSAGE = {
    "type": "object",
    "properties": {
        "role": {"enum": sorted(ROLES)},
        "content": {
            "anyOf": [string(), {"type": "array", "items": ref("ContentPart")}, {"type": "null"}]
        },
        "name": nullable(string(256)),
        "tool_call_id": NULL_STR,
        "refusal": NULL_STR,
        "reasoning_content": NULL_STR,
        "tool_calls": nullable({"type": "array", "items": ref("ToolCall")}),
        "function_call": nullable(_named()),
    },
    "required": ["role"],
    "allOf": [
        {
            "if": {"properties": {"role": {"const": "assistant"}}},
            "else": {
                "required": ["content"],
                "properties": {"content": {"not": {"type": "null"}}},
            },
        },
        when(
            "role",
            "tool",
            {"required": ["tool_call_id"], "properties": {"tool_call_id": string()}},
        ),
    ],
}
_FUNCTION = obj(
    {
        "name": string(256),
        "description": NULL_STR,
        "parameters": nullable({"type": "object"}),
        "strict": nullable({"type": "boolean"}),
    },
    ("name",),
)
_TOOL = {
    "type": "object",
    "properties": {"type": string()},
    "required": ["type"],
    "allOf": [
        when("type", "function", obj({"function": _FUNCTION}, ("function",))),
        when("type", "custom", obj({"custom": _named()}, ("custom",))),
    ],
}
_TOOL_CHOICE = {
    "anyOf": [
        {"enum": ["none", "auto", "required"]},
        {
            "type": "object",
            "properties": {"type": string()},
            "required": ["type"],
            "allOf": [
                when("type", "function", obj({"function": _named()}, ("function",))),
                when("type", "custom", obj({"custom": _named()}, ("custom",))),
                when(
                    "type",
                    "allowed_tools",
                    obj(
                        {
                            "allowed_tools": obj(
                                {
                                    "mode": {"enum": ["auto", "required"]},
                                    "tools": {
                                        "type": "array",
                                        "items": {
                                            "type": "object",
                                            "properties": {"type": string()},
                                            "required": ["type"],
                                            "allOf": [
                                                when(
                                                    "type",
                                                    "function",
                                                    obj({"function": _named()}, ("function",)),
                                                )
                                            ],
                                        },
                                    },
                                },
                                ("mode", "tools"),
                            )
                        },
                        ("allowed_tools",),
                    ),
                ),
            ],
        },
        {"type": "null"},
    ]
}
_RESPONSE_FORMAT = {
    "type": "object",
    "properties": {
        "type": string(),
        "json_schema": nullable(
            obj(
                {
                    "name": nullable(string(MAX_USER_LENGTH)),
                    "description": NULL_STR,
                    "schema": nullable({"type": "object"}),
                    "strict": nullable({"type": "boolean"}),
                }
            )
        ),
    },
    "required": ["type"],
    "allOf": [
        when(
            "type",
            "json_schema",
            {"required": ["json_schema"], "properties": {"json_schema": {"type": "object"}}},
        )
    ],
}
_BOOLEAN = nullable({"type": "boolean"})
_CHAT_REQUEST = {
    "type": "object",
    "description": (
        "OpenAI's chat request. Unknown fields are passed to OpenAI-compatible upstreams. "
        f"Arrays and objects nest at most {MAX_JSON_DEPTH} deep."
    ),
    "properties": {
        "model": string(MAX_MODEL_LENGTH, minLength=1),
        "messages": {"type": "array", "minItems": 1, "items": ref("Message")},
        "stream": _BOOLEAN,
        "stream_options": nullable(obj({"include_usage": _BOOLEAN})),
        "temperature": _number(0, 2),
        "top_p": _number(0, 1),
        "presence_penalty": _number(-2, 2),
        "frequency_penalty": _number(-2, 2),
        "n": _number(1, 128, "integer"),
        "max_tokens": _number(1, 2**31, "integer"),
        "max_completion_tokens": _number(1, 2**31, "integer"),
        "top_logprobs": _number(0, 20, "integer"),
        "top_k": _number(0, 2**31, "integer"),
        "seed": _number(-INT64, INT64 - 1, "integer"),
        "logprobs": _BOOLEAN,
        "parallel_tool_calls": _BOOLEAN,
        "store": _BOOLEAN,
        "stop": {
            "anyOf": [
                string(),
                {"type": "array", "maxItems": MAX_STOP, "items": string()},
                {"type": "null"},
            ]
        },
        "tools": nullable({"type": "array", "items": ref("Tool")}),
        "tool_choice": _TOOL_CHOICE,
        "functions": nullable({"type": "array", "items": _named()}),
        "function_call": {"anyOf": [string(), _named(), {"type": "null"}]},
        "response_format": nullable(_RESPONSE_FORMAT),
        "user": nullable(string(MAX_USER_LENGTH)),
        **{name: nullable(string(MAX_USER_LENGTH)) for name in STRING_FIELDS},
        **{name: nullable({"type": "object"}) for name in OBJECT_FIELDS},
        "modalities": nullable({"type": "array", "items": string()}),
        "metadata": nullable(
            {
                "type": "object",
                "maxProperties": MAX_METADATA_PAIRS,
                "propertyNames": {"maxLength": MAX_METADATA_KEY},
                "additionalProperties": string(MAX_METADATA_VALUE),
            }
        ),
        "logit_bias": nullable(
            {
                "type": "object",
                "maxProperties": MAX_LOGIT_BIAS,
                "propertyNames": {"pattern": "^[0-9]+$"},
                "additionalProperties": {"type": "number", "minimum": -100, "maximum": 100},
            }
        ),
    },
    "required": ["model", "messages"],
    "allOf": [
        {
            "if": {
                "properties": {"stream_options": {"type": "object"}},
                "required": ["stream_options"],
            },
            "then": {"properties": {"stream": {"const": True}}, "required": ["stream"]},
        }
    ],
}

_ERROR = obj(
    {
        "error": obj(
            {
                "message": string(),
                "type": string(),
                "param": NULL_STR,
                "code": NULL_STR,
            },
            ("message", "type", "param", "code"),
            additionalProperties=False,
        )
    },
    ("error",),
)
_CHAT_COMPLETION = obj(
    {
        "id": string(),
        "object": {"const": "chat.completion"},
        "created": {"type": "integer"},
        "model": string(),
        "choices": {
            "type": "array",
            "items": obj(
                {
                    "index": {"type": "integer"},
                    "message": obj({"role": {"const": "assistant"}, "content": NULL_STR}),
                    "finish_reason": NULL_STR,
                },
                ("index", "message", "finish_reason"),
            ),
        },
        "usage": nullable(
            obj(
                {
                    "prompt_tokens": {"type": "integer"},
                    "completion_tokens": {"type": "integer"},
                    "total_tokens": {"type": "integer"},
                },
                ("prompt_tokens", "completion_tokens", "total_tokens"),
            )
        ),
    },
    ("id", "object", "created", "model", "choices"),
)
MODEL = obj(
    {
        "id": string(),
        "object": {"const": "model"},
        "created": {"type": "integer"},
        "owned_by": string(),
        # Only on models the upstream says are embedding models (server/model_kinds.py).
        "type": {"const": "embedding"},
        # Only where the upstreams tell: ["text", "image"] or ["text"] (server/model_kinds.py).
        "input_modalities": {"type": "array", "items": {"enum": ["text", "image"]}},
    },
    ("id", "object", "created", "owned_by"),
)
_TOKENS = {
    "type": "array",
    "items": {"type": "integer", "minimum": 0, "maximum": 2**31 - 1},
    "minItems": 1,
}
_EMBEDDINGS_REQUEST = obj(
    {
        "model": string(),
        "input": {
            "anyOf": [
                string(minLength=1),
                {"type": "array", "items": string(minLength=1), "minItems": 1, "maxItems": 2048},
                _TOKENS,
                {"type": "array", "items": _TOKENS, "minItems": 1, "maxItems": 2048},
            ]
        },
        "encoding_format": {"enum": ["float", "base64"]},
        "dimensions": {"type": "integer", "minimum": 1, "maximum": 65536},
        "user": string(),
    },
    ("model", "input"),
)
_EMBEDDINGS = obj(
    {
        "object": {"const": "list"},
        "data": {
            "type": "array",
            "items": obj(
                {
                    "object": {"const": "embedding"},
                    "index": {"type": "integer"},
                    "embedding": {
                        "anyOf": [{"type": "array", "items": {"type": "number"}}, string()],
                        "description": "Numbers, or base64 of little-endian float32 values.",
                    },
                },
                ("object", "index", "embedding"),
            ),
        },
        "model": string(),
        "usage": obj(
            {"prompt_tokens": {"type": "integer"}, "total_tokens": {"type": "integer"}},
            ("prompt_tokens", "total_tokens"),
        ),
    },
    ("object", "data", "model", "usage"),
)
SCHEMAS: dict[str, Schema] = {
    "ChatRequest": _CHAT_REQUEST,
    "Message": _MESSAGE,
    "ContentPart": _CONTENT_PART,
    "ToolCall": _TOOL_CALL,
    "Tool": _TOOL,
    "ChatCompletion": _CHAT_COMPLETION,
    "Model": MODEL,
    "EmbeddingsRequest": _EMBEDDINGS_REQUEST,
    "Embeddings": _EMBEDDINGS,
    "Error": _ERROR,
}
