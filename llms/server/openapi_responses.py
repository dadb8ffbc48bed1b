"""The Responses API's schemas in the OpenAPI document (openapi.py): `POST /v1/responses`'s
request, the Response object, its input items and the stored responses' other answers.

The request schema states the checks llms/api/responses_request.py (with responses_input.py
and responses_tools.py) makes: types, ranges, enums, each item's and part's shape by its
`type`, which content part each role takes. What it cannot state is in the descriptions: a
`function_call_output` needs its `function_call` (earlier in `input` or in the conversation
`previous_response_id` continues) and every call needs its output; `input` must hold at least
one message once `instructions` and the conversation are added. Optional fields accept null,
as the gateway does; unknown fields are ignored.
"""

from __future__ import annotations

from llms.api.responses_input import CALLS, DETAILS, DROPPED_ITEMS, OUTPUTS, ROLES, TEXT_PARTS
from llms.api.responses_request import (
    EFFORTS,
    MAX_INT,
    MAX_METADATA,
    SUMMARIES,
    TRUNCATIONS,
    VERBOSITIES,
)
from llms.api.responses_tools import ALLOWED_MODES, TOOL_CHOICES
from llms.server.openapi_schemas import NULL_STR, Schema, nullable, obj, ref, string, when
from llms.server.requests import MAX_JSON_DEPTH

# The metadata bounds responses_request._metadata checks (OpenAI's).
METADATA_KEY = 64
METADATA_VALUE = 512
TOOL_NAME = 128
FORMAT_NAME = 64

_BOOLEAN = nullable({"type": "boolean"})
_TEXT_KINDS = sorted(TEXT_PARTS)
_NULL: Schema = {"type": "null"}


def _number(low: float, high: float, kind: str = "number") -> Schema:
    return nullable({"type": kind, "minimum": low, "maximum": high})


def _enum(values: frozenset[str] | tuple[str, ...]) -> Schema:
    return nullable({"enum": sorted(values)})


def _typed(kinds: list[str], *cases: Schema) -> Schema:
    """An object whose `type` (required) is one of `kinds`, with `cases` per type."""
    return {
        "type": "object",
        "properties": {"type": {"enum": kinds}},
        "required": ["type"],
        "allOf": list(cases),
    }


_TEXT_PART = obj({"text": string(), "annotations": {}}, ("text",))
_IMAGE_PART = obj(
    {
        "image_url": string(description="A URL or a data URL."),
        "detail": _enum(DETAILS),
        "file_id": {"description": "Not served (no Files API): send `image_url`."},
    },
    ("image_url",),
)
_FILE_PART = obj(
    {
        "file_data": string(description="The file as a data URL or base64."),
        "filename": NULL_STR,
        "file_id": {"description": "Not served (no Files API): send `file_data`."},
        "file_url": {**_NULL, "description": "Not served: the gateway fetches nothing."},
    },
    ("file_data",),
)
_CONTENT_PART = _typed(
    [*_TEXT_KINDS, "refusal", "input_image", "input_file"],
    *(when("type", kind, _TEXT_PART) for kind in _TEXT_KINDS),
    when("type", "refusal", obj({"refusal": string()}, ("refusal",))),
    when("type", "input_image", _IMAGE_PART),
    when("type", "input_file", _FILE_PART),
)
_OUTPUT_PART = _typed(
    [*_TEXT_KINDS, "input_image", "input_file"],
    *(when("type", kind, _TEXT_PART) for kind in _TEXT_KINDS),
    when("type", "input_image", _IMAGE_PART),
    when("type", "input_file", _FILE_PART),
)


def _parts_of(role: str, kinds: list[str]) -> Schema:
    """A message of `role` takes content parts of `kinds` only."""
    return when(
        "role",
        role,
        {
            "properties": {
                "content": {
                    "anyOf": [
                        string(),
                        {"type": "array", "items": {"properties": {"type": {"enum": kinds}}}},
                    ]
                }
            }
        },
    )


_MESSAGE = obj(
    {
        "role": {"enum": sorted(ROLES)},
        "content": {
            "anyOf": [string(), {"type": "array", "items": ref("ResponsesContentPart")}],
            "description": "Text, or content parts: `input_text` (any role), `refusal` "
            "(assistant), `input_image` and `input_file` (user).",
        },
        "id": NULL_STR,
        "phase": {"description": "Codex's label of an assistant message (kept)."},
    },
    ("role", "content"),
    allOf=[
        _parts_of("user", [*_TEXT_KINDS, "input_image", "input_file"]),
        _parts_of("assistant", [*_TEXT_KINDS, "refusal"]),
        _parts_of("system", _TEXT_KINDS),
        _parts_of("developer", _TEXT_KINDS),
    ],
)


def _call(argument: str) -> Schema:
    return obj(
        {
            "id": NULL_STR,
            "call_id": string(),
            "name": string(),
            argument: string(),
            "namespace": {},
        },
        ("call_id", "name", argument),
    )


_CALL_OUTPUT = obj(
    {
        "id": NULL_STR,
        "call_id": string(
            description="A call earlier in `input` or in the continued conversation."
        ),
        "output": {
            "anyOf": [string(), {"type": "array", "items": ref("ResponsesOutputPart")}],
        },
    },
    ("call_id", "output"),
)
_REASONING = obj(
    {
        "id": NULL_STR,
        "encrypted_content": NULL_STR,
        "summary": nullable(
            {
                "type": "array",
                "items": obj(
                    {"type": {"const": "summary_text"}, "text": string()}, ("type", "text")
                ),
            }
        ),
        "content": nullable(
            {
                "type": "array",
                "items": obj(
                    {"type": {"enum": ["reasoning_text", "text"]}, "text": string()},
                    ("type", "text"),
                ),
            }
        ),
    }
)
_ITEM_TYPES = sorted({"message", "item_reference", "reasoning", *CALLS, *OUTPUTS, *DROPPED_ITEMS})
_INPUT_ITEM = {
    "type": "object",
    "description": "An input item; without `type` (or null) a message. Built-in tools' items "
    "are kept in the conversation but never sent to a chat model.",
    "properties": {"type": nullable({"enum": _ITEM_TYPES}), "id": NULL_STR},
    "allOf": [
        {"if": {"properties": {"type": {"enum": ["message", None]}}}, "then": _MESSAGE},
        when("type", "function_call", _call("arguments")),
        when("type", "custom_tool_call", _call("input")),
        {
            "if": {"properties": {"type": {"enum": sorted(OUTPUTS)}}, "required": ["type"]},
            "then": _CALL_OUTPUT,
        },
        when(
            "type",
            "item_reference",
            obj({"id": string(description="An item of the continued conversation.")}, ("id",)),
        ),
        when("type", "reasoning", _REASONING),
    ],
}
_FUNCTION_TOOL = obj(
    {
        "name": string(TOOL_NAME),
        "description": NULL_STR,
        "parameters": nullable({"type": "object"}),
        "strict": _BOOLEAN,
    },
    ("name",),
)
_CUSTOM_TOOL = obj(
    {
        "name": string(TOOL_NAME),
        "description": NULL_STR,
        "format": nullable(
            _typed(
                ["text", "grammar"],
                when(
                    "type",
                    "grammar",
                    obj({"syntax": string(), "definition": string()}, ("syntax", "definition")),
                ),
            )
        ),
    },
    ("name",),
)
_TOOL = {
    **_typed(
        ["function", "custom"],
        when("type", "function", _FUNCTION_TOOL),
        when("type", "custom", _CUSTOM_TOOL),
    ),
    "description": "A function or custom (freeform) tool; built-in tools (`web_search`…) "
    "are a 400 naming them.",
}
_TOOL_OR_NAMESPACE = {
    **_typed(
        ["function", "custom", "namespace"],
        when("type", "function", _FUNCTION_TOOL),
        when("type", "custom", _CUSTOM_TOOL),
        when(
            "type",
            "namespace",
            obj({"name": string(), "tools": {"type": "array", "items": _TOOL}}, ("name", "tools")),
        ),
    ),
    "description": _TOOL["description"],
}
_NAMED_CHOICE = obj({"type": {"enum": ["function", "custom"]}, "name": string()}, ("type", "name"))
_TOOL_CHOICE = {
    "anyOf": [
        {"enum": sorted(TOOL_CHOICES)},
        _typed(
            ["function", "custom", "allowed_tools"],
            when("type", "function", _NAMED_CHOICE),
            when("type", "custom", _NAMED_CHOICE),
            when(
                "type",
                "allowed_tools",
                obj(
                    {
                        "mode": {"enum": sorted(ALLOWED_MODES)},
                        "tools": {"type": "array", "items": _NAMED_CHOICE},
                    },
                    ("mode", "tools"),
                ),
            ),
        ),
        _NULL,
    ],
    "description": "Naming a tool (`required`, an object) needs `tools`.",
}
_TEXT_FORMAT = _typed(
    ["text", "json_object", "json_schema"],
    when(
        "type",
        "json_schema",
        obj(
            {
                "name": string(FORMAT_NAME),
                "schema": {"type": "object"},
                "strict": _BOOLEAN,
                "description": NULL_STR,
            },
            ("name", "schema"),
        ),
    ),
)
_REASONING_OPTIONS = obj(
    {
        "effort": _enum(EFFORTS),
        "summary": _enum(SUMMARIES),
        "generate_summary": {"description": "The deprecated name of `summary`."},
    },
    # Its deprecated name is read (and checked) only without `summary`.
    allOf=[
        {
            "if": {"properties": {"summary": _NULL}},
            "then": {"properties": {"generate_summary": _enum(SUMMARIES)}},
        }
    ],
)
_UNSERVED = {**_NULL, "description": "Not served by this gateway: a 400 unless null."}
_REQUEST = {
    "type": "object",
    "description": (
        "OpenAI's Responses request, translated onto chat completions for every model. "
        "Unknown fields are ignored; arrays and objects nest at most "
        f"{MAX_JSON_DEPTH} deep."
    ),
    "properties": {
        "model": string(),
        "input": {
            "anyOf": [
                string(description="One user message."),
                {"type": "array", "items": ref("ResponsesInputItem")},
            ],
            "description": "With `instructions` and the continued conversation it must hold "
            "a message; every function call needs its output and every output its call.",
        },
        "instructions": NULL_STR,
        "tools": nullable({"type": "array", "items": ref("ResponsesTool")}),
        "tool_choice": _TOOL_CHOICE,
        "parallel_tool_calls": _BOOLEAN,
        "max_output_tokens": _number(1, MAX_INT, "integer"),
        "max_tool_calls": _number(0, MAX_INT, "integer"),
        "temperature": _number(0, 2),
        "top_p": _number(0, 1),
        "top_logprobs": _number(0, 20, "integer"),
        "presence_penalty": _number(-2, 2),
        "frequency_penalty": _number(-2, 2),
        "text": nullable(obj({"format": nullable(_TEXT_FORMAT), "verbosity": _enum(VERBOSITIES)})),
        "reasoning": nullable(_REASONING_OPTIONS),
        "include": nullable({"type": "array", "items": string()}),
        "metadata": nullable(
            {
                "type": "object",
                "maxProperties": MAX_METADATA,
                "propertyNames": {"maxLength": METADATA_KEY},
                "additionalProperties": nullable(string(METADATA_VALUE)),
            }
        ),
        "store": {**_BOOLEAN, "description": "Keep the response (default true)."},
        "background": {
            **_BOOLEAN,
            "description": "Run apart from the connection: poll, resume or cancel it by id.",
        },
        "stream": _BOOLEAN,
        "stream_options": nullable(obj({"include_obfuscation": _BOOLEAN})),
        "previous_response_id": {
            **NULL_STR,
            "description": "A stored response of this key to continue (else a 400).",
        },
        "conversation": _UNSERVED,
        "prompt": _UNSERVED,
        "prompt_cache_key": NULL_STR,
        "prompt_cache_retention": NULL_STR,
        "safety_identifier": NULL_STR,
        "user": NULL_STR,
        "service_tier": NULL_STR,
        "truncation": _enum(TRUNCATIONS),
        "n": nullable({"const": 1, "description": "One answer per request."}),
    },
    "required": ["model", "input"],
    "allOf": [
        {
            # A tool named by `tool_choice` needs `tools`.
            "if": {
                "properties": {
                    "tool_choice": {"anyOf": [{"const": "required"}, {"type": "object"}]}
                },
                "required": ["tool_choice"],
            },
            "then": {
                "properties": {"tools": {"type": "array", "minItems": 1}},
                "required": ["tools"],
            },
        }
    ],
}

_USAGE = nullable(
    obj(
        {
            "input_tokens": {"type": "integer"},
            "input_tokens_details": obj({"cached_tokens": {"type": "integer"}}, ("cached_tokens",)),
            "output_tokens": {"type": "integer"},
            "output_tokens_details": obj(
                {"reasoning_tokens": {"type": "integer"}}, ("reasoning_tokens",)
            ),
            "total_tokens": {"type": "integer"},
        },
        (
            "input_tokens",
            "input_tokens_details",
            "output_tokens",
            "output_tokens_details",
            "total_tokens",
        ),
    )
)
_OUTPUT_ITEM = {
    "type": "object",
    "properties": {
        "id": string(),
        "type": string(),
        "status": {"enum": ["in_progress", "completed", "incomplete"]},
    },
    "required": ["id", "type"],
    "allOf": [
        when(
            "type",
            "message",
            obj(
                {
                    "role": {"const": "assistant"},
                    "content": {
                        "type": "array",
                        "items": _typed(
                            ["output_text", "refusal"],
                            when(
                                "type",
                                "output_text",
                                obj(
                                    {"text": string(), "annotations": {"type": "array"}},
                                    ("text",),
                                ),
                            ),
                            when("type", "refusal", obj({"refusal": string()}, ("refusal",))),
                        ),
                    },
                },
                ("role", "content", "status"),
            ),
        ),
        when("type", "function_call", _call("arguments")),
        when("type", "custom_tool_call", _call("input")),
        when("type", "reasoning", _REASONING),
    ],
}
# Every field of a Response is always present (null where the schema allows null).
_RESPONSE_FIELDS: Schema = {
    "id": string(),
    "object": {"const": "response"},
    "created_at": {"type": "integer"},
    "status": {"enum": ["queued", "in_progress", "completed", "incomplete", "failed", "cancelled"]},
    "completed_at": nullable({"type": "integer"}),
    "error": nullable(obj({"code": string(), "message": string()}, ("code", "message"))),
    "incomplete_details": nullable(obj({"reason": string()}, ("reason",))),
    "model": string(),
    "output": {"type": "array", "items": ref("ResponsesOutputItem")},
    "usage": _USAGE,
    "instructions": NULL_STR,
    "previous_response_id": NULL_STR,
    "tools": {"type": "array"},
    "tool_choice": {"anyOf": [string(), {"type": "object"}]},
    "truncation": {"enum": sorted(TRUNCATIONS)},
    "parallel_tool_calls": {"type": "boolean"},
    "text": obj({"format": obj({"type": string()}, ("type",))}, ("format",)),
    "temperature": {"type": "number"},
    "top_p": {"type": "number"},
    "presence_penalty": {"type": "number"},
    "frequency_penalty": {"type": "number"},
    "top_logprobs": {"type": "integer"},
    "reasoning": nullable(obj({"effort": NULL_STR, "summary": NULL_STR})),
    "max_output_tokens": nullable({"type": "integer"}),
    "max_tool_calls": nullable({"type": "integer"}),
    "store": {"type": "boolean"},
    "background": {"type": "boolean"},
    "service_tier": string(),
    "metadata": {"type": "object"},
    "safety_identifier": NULL_STR,
    "prompt_cache_key": NULL_STR,
}
_RESPONSE = obj(_RESPONSE_FIELDS, tuple(_RESPONSE_FIELDS))
_INPUT_ITEMS = obj(
    {
        "object": {"const": "list"},
        "data": {
            "type": "array",
            "items": obj({"id": string(), "type": string()}, ("id", "type")),
        },
        "first_id": NULL_STR,
        "last_id": NULL_STR,
        "has_more": {"type": "boolean"},
    },
    ("object", "data", "first_id", "last_id", "has_more"),
)
_DELETED = obj(
    {"id": string(), "object": {"const": "response.deleted"}, "deleted": {"const": True}},
    ("id", "object", "deleted"),
)
RESPONSES_SCHEMAS: dict[str, Schema] = {
    "ResponsesRequest": _REQUEST,
    "ResponsesInputItem": _INPUT_ITEM,
    "ResponsesContentPart": _CONTENT_PART,
    "ResponsesOutputPart": _OUTPUT_PART,
    "ResponsesTool": _TOOL_OR_NAMESPACE,
    "Response": _RESPONSE,
    "ResponsesOutputItem": _OUTPUT_ITEM,
    "ResponsesInputItems": _INPUT_ITEMS,
    "ResponseDeleted": _DELETED,
}
