"""`GET /openapi.json`: the gateway's own OpenAPI 3.1 document, written by hand."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from llms.server.fields import MAX_EVENT_ID
from llms.server.openapi_admin import ADMIN_SCHEMAS, admin_paths
from llms.server.openapi_messages import MESSAGES_SCHEMAS, messages_paths
from llms.server.openapi_responses import RESPONSES_SCHEMAS
from llms.server.openapi_schemas import MODEL, SCHEMAS, Schema, obj, ref, string

_ERRORS = {
    400: "Invalid request: the body is not JSON, or a field is missing or wrong (`param`).",
    401: "Missing or wrong API key.",
    403: "The API key may not use this model, or a browser origin is not allowed.",
    404: "Unknown model, stream, response or path.",
    408: "The request body did not arrive within `server.request_timeout_s`.",
    409: "A key of that name is configured in config.json (admin API).",
    410: "The stream's events before this position were dropped to bound memory.",
    413: "The body is larger than `server.max_body_mb`.",
    429: "A limit of the key (rpm, tpm, max_streams) or of the upstream; see Retry-After.",
    500: "An internal error (logged).",
    502: "The upstream failed or could not be reached.",
    503: "The gateway, every provider of the model, or the response store is unavailable.",
    504: "The upstream did not answer in time.",
}
_REQUEST_ID = {"X-Request-Id": {"schema": string(), "description": "This request's id."}}


def _errors(*statuses: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for status in statuses:
        response: Schema = {
            "description": _ERRORS[status],
            "content": {"application/json": {"schema": ref("Error")}},
            "headers": dict(_REQUEST_ID),
        }
        if status == 429:
            response["headers"]["Retry-After"] = {
                "schema": string(),
                "description": "Seconds until the limit lets a request through.",
            }
        out[str(status)] = response
    return out


def _json(schema: Schema, description: str) -> Schema:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


# One server-sent event: `data` is a chunk's JSON, an error's JSON or `[DONE]`; `id` and
# `event: status` only in resumable mode.
_SSE = {
    "text/event-stream": {
        "schema": obj(
            {"data": string(), "event": string(), "id": string(), "retry": {"type": "integer"}},
            ("data",),
        )
    }
}
_CHAT_ERRORS = (400, 401, 403, 404, 408, 413, 429, 500, 502, 503, 504)
_OPEN: list[Schema] = []
_STREAM_ID = {"name": "id", "in": "path", "required": True, "schema": string()}
_RESPONSE_ID = {"name": "id", "in": "path", "required": True, "schema": string()}
_PATHS: Schema = {
    "/v1/chat/completions": {
        "post": {
            "operationId": "createChatCompletion",
            "summary": "A chat answer: streamed as SSE (`stream: true`) or one JSON object.",
            "parameters": [
                {
                    "name": "X-Stream-Resumable",
                    "in": "header",
                    "required": False,
                    "schema": {"enum": ["true", "false"]},
                    "description": "`true`: events carry ids and the stream can be resumed.",
                }
            ],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": ref("ChatRequest")}},
            },
            "responses": {
                "200": {
                    "description": "The answer; an error after the first byte is an error event.",
                    "headers": {
                        "X-Provider": {"schema": string()},
                        **_REQUEST_ID,
                    },
                    "content": {
                        "application/json": {"schema": ref("ChatCompletion")},
                        **_SSE,
                    },
                },
                **_errors(*_CHAT_ERRORS),
            },
        }
    },
    "/v1/responses": {
        "post": {
            "operationId": "createResponse",
            "summary": "A Response on any model: streamed as SSE (`stream: true`) or one JSON "
            "object; `background: true` runs it apart from the connection.",
            "description": "The request is translated onto chat completions and routed like "
            "one (retries and fallback before the first output, circuits, deadlines). A stream "
            "is `event: <type>` + `data: <json>` events (`response.created` … "
            "`response.completed`, `response.incomplete` at the token limit, "
            "`response.failed` after an upstream failure); a failure before any output is an "
            "HTTP error. A background stream's events also carry `id: <sequence_number>`.",
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": ref("ResponsesRequest")}},
            },
            "responses": {
                "200": {
                    "description": "The Response (a background one `queued`), or its events.",
                    "headers": {"X-Provider": {"schema": string()}, **_REQUEST_ID},
                    "content": {"application/json": {"schema": ref("Response")}, **_SSE},
                },
                **_errors(*_CHAT_ERRORS),
            },
        }
    },
    "/v1/responses/compact": {
        "post": {
            "operationId": "compactResponse",
            "summary": "Not served by this gateway: always a 404 that says so.",
            "description": "Continue a conversation with `previous_response_id`, or send it whole "
            "in `input`.",
            "responses": {**_errors(401, 404)},
        }
    },
    "/v1/responses/{id}": {
        "get": {
            "operationId": "retrieveResponse",
            "summary": "A stored Response of this key (a background one as it stands); with "
            "`stream=true`, a background response's events after `starting_after`, then live.",
            "parameters": [
                _RESPONSE_ID,
                {"name": "stream", "in": "query", "schema": {"type": "boolean"}},
                {
                    "name": "starting_after",
                    "in": "query",
                    "schema": {"type": "integer", "minimum": 0, "maximum": MAX_EVENT_ID},
                    "description": "The `sequence_number` of the last event received.",
                },
            ],
            "responses": {
                "200": {
                    "description": "The Response, or its events (SSE with `id:`).",
                    "content": {"application/json": {"schema": ref("Response")}, **_SSE},
                },
                **_errors(400, 401, 404, 410, 429, 500, 502, 503, 504),
            },
        },
        "delete": {
            "operationId": "deleteResponse",
            "summary": "Forget a stored response (its conversation can no longer be continued).",
            "parameters": [_RESPONSE_ID],
            "responses": {
                "200": _json(ref("ResponseDeleted"), "Deleted."),
                **_errors(401, 404, 503),
            },
        },
    },
    "/v1/responses/{id}/input_items": {
        "get": {
            "operationId": "listResponseInputItems",
            "parameters": [
                _RESPONSE_ID,
                {
                    "name": "after",
                    "in": "query",
                    "schema": string(),
                    "description": "The id of the item before the page.",
                },
                {
                    "name": "limit",
                    "in": "query",
                    "schema": {"type": "integer", "minimum": 1, "maximum": 100},
                },
                {"name": "order", "in": "query", "schema": {"enum": ["asc", "desc"]}},
            ],
            "responses": {
                "200": _json(ref("ResponsesInputItems"), "A page of the response's input."),
                **_errors(400, 401, 404, 503),
            },
        }
    },
    "/v1/responses/{id}/cancel": {
        "post": {
            "operationId": "cancelResponse",
            "summary": "Stop a background response wherever it runs.",
            "parameters": [_RESPONSE_ID],
            "responses": {
                "200": _json(ref("Response"), "`cancelled`, or as it ended if it had."),
                **_errors(400, 401, 404, 503),
            },
        }
    },
    "/v1/embeddings": {
        "post": {
            "operationId": "createEmbeddings",
            "summary": "Embeddings of a string, strings or token arrays; routed like chat.",
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": ref("EmbeddingsRequest")}},
            },
            "responses": {
                "200": {
                    "description": "One embedding per input, in input order.",
                    "headers": {"X-Provider": {"schema": string()}, **_REQUEST_ID},
                    "content": {"application/json": {"schema": ref("Embeddings")}},
                },
                **_errors(*_CHAT_ERRORS),
            },
        }
    },
    "/v1/models": {
        "get": {
            "operationId": "listModels",
            "responses": {
                "200": _json(
                    obj(
                        {"object": {"const": "list"}, "data": {"type": "array", "items": MODEL}},
                        ("object", "data"),
                    ),
                    "The models this key may use.",
                ),
                **_errors(401),
            },
        }
    },
    "/v1/models/{model}": {
        "get": {
            "operationId": "retrieveModel",
            "parameters": [{"name": "model", "in": "path", "required": True, "schema": string()}],
            "responses": {"200": _json(MODEL, "One model."), **_errors(401, 404)},
        }
    },
    "/v1/streams/{id}": {
        "get": {
            "operationId": "resumeStream",
            "summary": "Replay a resumable stream after `Last-Event-ID`, then follow it live.",
            "parameters": [
                _STREAM_ID,
                {"name": "Last-Event-ID", "in": "header", "schema": string()},
                {"name": "last_event_id", "in": "query", "schema": string()},
            ],
            "responses": {
                "200": {"description": "The stream's events (SSE).", "content": _SSE},
                **_errors(400, 401, 404, 410),
            },
        }
    },
    "/v1/streams/{id}/cancel": {
        "post": {
            "operationId": "cancelStream",
            "parameters": [_STREAM_ID],
            "responses": {
                "200": _json(
                    obj(
                        {
                            "id": string(),
                            "object": {"const": "chat.completion.stream"},
                            "status": {"enum": ["cancelled", "finished"]},
                        },
                        ("id", "object", "status"),
                    ),
                    "The stream is stopped (idempotent).",
                ),
                **_errors(401, 404),
            },
        }
    },
    "/health": {
        "get": {
            "operationId": "health",
            "security": _OPEN,
            "responses": {"200": _json(obj({"status": {"const": "ok"}}), "Alive.")},
        }
    },
    "/ready": {
        "get": {
            "operationId": "ready",
            "security": _OPEN,
            "responses": {
                status: _json(
                    obj(
                        {"status": string(), "providers": {"type": "object"}},
                        ("status", "providers"),
                    ),
                    text,
                )
                for status, text in (
                    ("200", "Ready, with each provider's state."),
                    ("503", "Starting (a provider loads) or shutting down."),
                )
            },
        }
    },
    "/metrics": {
        "get": {
            "operationId": "metrics",
            "description": "Prometheus metrics; see `server.open_metrics` for who needs a key.",
            "security": [{}, {"bearer": []}, {"apiKey": []}],
            "responses": {
                "200": {
                    "description": "Prometheus text format.",
                    "content": {"text/plain": {"schema": string()}},
                },
                **_errors(401),
            },
        }
    },
    "/api/usage": {
        "get": {
            "operationId": "usage",
            "parameters": [
                {"name": "from", "in": "query", "schema": string()},
                {"name": "to", "in": "query", "schema": string()},
                {
                    "name": "group_by",
                    "in": "query",
                    "schema": {"enum": ["model", "provider", "key", "day"]},
                },
            ],
            "responses": {
                "200": _json(
                    obj(
                        {
                            "object": {"const": "usage"},
                            "data": {"type": "array", "items": {"type": "object"}},
                            "totals": {"type": "object"},
                        },
                        ("object", "data", "totals"),
                    ),
                    "Totals per group in the window.",
                ),
                **_errors(400, 401, 404),
            },
        }
    },
    "/openapi.json": {
        "get": {
            "operationId": "openapi",
            "security": _OPEN,
            "responses": {"200": _json({"type": "object"}, "This document.")},
        }
    },
}

# POST /v1/messages, /v1/messages/count_tokens (Anthropic's errors) and /v1/completions.
_MESSAGES_PATHS = messages_paths(
    _REQUEST_ID, {"X-Provider": {"schema": string()}}, _errors, _CHAT_ERRORS
)


def build_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document."""
    from llms import __version__  # the package imports this module while it initialises

    return {
        "openapi": "3.1.0",
        "info": {
            "title": "llms gateway",
            "version": __version__,
            "description": "An OpenAI-compatible LLM gateway. Errors have OpenAI's shape, but "
            "on the Messages API (/v1/messages…), where they have Anthropic's.",
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}, {"apiKey": []}],
        "paths": {**_PATHS, **_MESSAGES_PATHS, **admin_paths(_errors)},
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"},
            },
            "schemas": {**SCHEMAS, **RESPONSES_SCHEMAS, **MESSAGES_SCHEMAS, **ADMIN_SCHEMAS},
        },
    }


async def document(request: web.Request) -> web.Response:
    return web.Response(body=orjson.dumps(build_document()), content_type="application/json")
