"""The OpenAPI document's admin API (openapi.py): managed keys under /admin/keys (server/admin.py),
served only when `server.admin_key` is set, and opened by that key alone.

The body schema states llms/managed/model.check_fields: the known fields only, `name` required
on create, limits positive integers, `expires_at` Unix seconds or an ISO 8601 time with offset.
"""

from __future__ import annotations

from typing import Any

from llms.managed.history import DEFAULT_DAYS, MAX_DAYS
from llms.managed.model import LIMITS, NAME_MAX, PERIODS
from llms.server.openapi_schemas import NULL_STR, Schema, nullable, obj, ref, string

_LIMIT = nullable({"type": "integer", "minimum": 1, "maximum": 2**53 - 1})
_FIELDS: Schema = {
    "name": string(NAME_MAX, minLength=1, pattern=r"\S"),
    "models": nullable({"type": "array", "items": string(minLength=1)}),
    **dict.fromkeys(LIMITS, _LIMIT),
    "budget_usd": nullable({"type": "number", "minimum": 0, "exclusiveMaximum": 1e12}),
    "budget_period": nullable({"enum": list(PERIODS)}),
    "expires_at": {
        "anyOf": [
            {"type": "number", "minimum": 1, "exclusiveMaximum": 2**40},
            string(description="ISO 8601 with its offset, e.g. 2027-01-01T00:00:00Z"),
            {"type": "null"},
        ]
    },
}
_NUMBER = {"type": "number"}
_KEY = obj(
    {
        "id": string(),
        "object": {"const": "api_key"},
        "name": string(),
        "models": nullable({"type": "array", "items": string()}),
        **dict.fromkeys(LIMITS, nullable({"type": "integer"})),
        "budget_usd": nullable(_NUMBER),
        "budget_period": NULL_STR,
        "expires_at": nullable({"type": "integer"}),
        "created_at": {"type": "integer"},
        "last_used_at": nullable({"type": "integer"}),
        "spend_usd": _NUMBER,
        "total_spend_usd": _NUMBER,
        "remaining_budget_usd": nullable(_NUMBER),
        "secret": string(description="Only in the answer to the key's creation."),
    },
    ("id", "object", "name"),
)
_DAY = obj(
    {
        "date": string(description="The UTC day, YYYY-MM-DD."),
        "start": {"type": "integer", "description": "The day's first second (Unix)."},
        "spend_usd": _NUMBER,
        "period_spend_usd": {
            **_NUMBER,
            "description": "Spent in the budget period (day, month or all time) by the day's end.",
        },
        "budget_usd": nullable(_NUMBER),
    },
    ("date", "start", "spend_usd", "period_spend_usd", "budget_usd"),
)
_SPEND = obj(
    {
        "object": {"const": "api_key.spend"},
        "id": string(),
        "name": string(),
        "days": {"type": "integer"},
        "budget_usd": nullable(_NUMBER),
        "budget_period": NULL_STR,
        "spend_usd": _NUMBER,
        "total_spend_usd": _NUMBER,
        "window_spend_usd": _NUMBER,
        "data": {"type": "array", "items": _DAY},
    },
    ("object", "id", "name", "days", "data"),
)
_DAYS = {
    "name": "days",
    "in": "query",
    "required": False,
    "schema": {"type": "integer", "minimum": 1, "maximum": MAX_DAYS, "default": DEFAULT_DAYS},
}
ADMIN_SCHEMAS: dict[str, Schema] = {
    "ApiKeyCreate": obj(_FIELDS, ("name",), additionalProperties=False),
    "ApiKeyUpdate": obj(_FIELDS, additionalProperties=False),
    "ApiKey": _KEY,
    "ApiKeySpend": _SPEND,
}
_ID = {"name": "id", "in": "path", "required": True, "schema": string()}


def admin_paths(errors: Any) -> Schema:
    """The paths; `errors` is openapi._errors (OpenAI's shape). 401: no or a wrong admin key;
    403: a gateway API key; 409: a name configured in config.json; 503: the key store failed."""

    def answer(schema: Schema, description: str) -> Schema:
        return {"description": description, "content": {"application/json": {"schema": schema}}}

    def body(name: str) -> Schema:
        return {"required": True, "content": {"application/json": {"schema": ref(name)}}}

    key = ref("ApiKey")
    return {
        "/admin/keys": {
            "post": {
                "operationId": "createApiKey",
                "summary": "A managed key; its `secret` is shown in this answer only.",
                "requestBody": body("ApiKeyCreate"),
                "responses": {"201": answer(key, "Created."), **errors(400, 401, 403, 409, 503)},
            },
            "get": {
                "operationId": "listApiKeys",
                "responses": {
                    "200": answer(
                        obj(
                            {"object": {"const": "list"}, "data": {"type": "array", "items": key}},
                            ("object", "data"),
                        ),
                        "Every managed key, without secrets.",
                    ),
                    **errors(401, 403, 503),
                },
            },
        },
        "/admin/keys/{id}": {
            "get": {
                "operationId": "retrieveApiKey",
                "parameters": [_ID],
                "responses": {"200": answer(key, "The key."), **errors(401, 403, 404, 503)},
            },
            "patch": {
                "operationId": "updateApiKey",
                "summary": "Change a key's fields (null clears a limit).",
                "parameters": [_ID],
                "requestBody": body("ApiKeyUpdate"),
                "responses": {
                    "200": answer(key, "The key as changed."),
                    **errors(400, 401, 403, 404, 409, 503),
                },
            },
            "delete": {
                "operationId": "deleteApiKey",
                "summary": "Revoke a key.",
                "parameters": [_ID],
                "responses": {
                    "200": answer(
                        obj(
                            {
                                "id": string(),
                                "object": {"const": "api_key"},
                                "deleted": {"const": True},
                            },
                            ("id", "object", "deleted"),
                        ),
                        "Revoked.",
                    ),
                    **errors(401, 403, 404, 503),
                },
            },
        },
        "/admin/keys/{id}/spend": {
            "get": {
                "operationId": "retrieveApiKeySpend",
                "summary": "The key's spend per UTC day (zero-filled, oldest first) and budget.",
                "parameters": [_ID, _DAYS],
                "responses": {
                    "200": answer(ref("ApiKeySpend"), "The series."),
                    **errors(400, 401, 403, 404, 503),
                },
            },
        },
    }
