"""Parse and validate a client's chat request: every field the gateway reads, or a 400 naming it.

What is checked here is what the gateway or one of its adapters reads (type and range, the
shapes of `messages`, `tools`, `tool_choice`, `response_format`…), so that no body, however
wrong, reaches code that would fail on it. Unknown fields pass through to OpenAI-compatible
upstreams unchanged. The OpenAPI document (openapi.py) describes the same rules.
"""

from __future__ import annotations

from typing import Any, cast

import orjson
from aiohttp import web

from llms.errors import InvalidRequest
from llms.server import fields, keys
from llms.server.bodies import check_json_nodes, read_chat_body
from llms.server.fields import fail, number, obj, string, wrong_type
from llms.server.request_messages import check_messages
from llms.server.request_tools import check_tool_choice, check_tools
from llms.wire import ChatRequest

MAX_JSON_DEPTH = 64
MAX_MODEL_LENGTH = 256
MAX_USER_LENGTH = 256
# OpenAI's limits on `metadata`.
MAX_METADATA_PAIRS = 16
MAX_METADATA_KEY = 64
MAX_METADATA_VALUE = 512
# Optional strings some upstreams take; only their type matters here.
STRING_FIELDS = (
    "reasoning_effort",
    "service_tier",
    "verbosity",
    "safety_identifier",
    "prompt_cache_key",
)
OBJECT_FIELDS = ("audio", "prediction", "web_search_options")


MAX_JSON_NODES = 500_000  # server.max_json_nodes's default


async def read_chat_request(request: web.Request) -> ChatRequest:
    """The body of POST /v1/chat/completions read (see bodies.py: its deadline, its budget,
    big ones parsed off the event loop) and validated."""
    server = request.app[keys.CONFIG].server
    return await read_chat_body(
        request,
        parse_chat_request,
        timeout_s=server.request_timeout_s,
        max_nodes=server.max_json_nodes,
    )


async def read_json_request(request: web.Request) -> dict[str, Any]:
    """The body of a request to another client-facing API (Responses, Messages) read as
    read_chat_request reads one (its deadline, its budget, big ones parsed off the event loop),
    as a JSON object; the API validates its fields."""
    server = request.app[keys.CONFIG].server
    body = await read_chat_body(
        request,
        parse_json_object,  # type: ignore[arg-type]
        timeout_s=server.request_timeout_s,
        max_nodes=server.max_json_nodes,
    )
    return cast(dict[str, Any], body)


def parse_json_object(raw: bytes | bytearray, max_nodes: int = MAX_JSON_NODES) -> dict[str, Any]:
    """A request body as a JSON object: at most `max_nodes` values, at most 64 levels deep."""
    opens = check_json_nodes(raw, max_nodes)
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if "depth" in str(exc):  # orjson's own limit (1024): deeper than ours anyway
            raise _too_deep() from None
        raise InvalidRequest(
            "We could not parse the JSON body of your request. The body must be valid JSON."
        ) from None
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    # Nesting needs a bracket a level: a body with few of them is not walked.
    if opens > MAX_JSON_DEPTH and not fields.depth_within(body, MAX_JSON_DEPTH):
        raise _too_deep()
    return body


def parse_chat_request(raw: bytes | bytearray, max_nodes: int = MAX_JSON_NODES) -> ChatRequest:
    """The body of POST /v1/chat/completions, validated; unknown fields pass through."""
    body = parse_json_object(raw, max_nodes)
    model = body.get("model")
    if model is None:
        raise fields.missing("model")
    if not isinstance(model, str) or not model:
        raise fail("model", "Invalid 'model': expected a non-empty string.", "invalid_type")
    string(model, "model", max_length=MAX_MODEL_LENGTH)
    check_messages(body.get("messages"))
    _stream(body)
    if not _CHECKED_ABOVE.issuperset(body):
        _optional_fields(body)
    return cast(ChatRequest, body)


# A body of these fields alone (the common minimal request) skips the optional fields' checks.
_CHECKED_ABOVE = frozenset({"model", "messages", "stream"})


def _optional_fields(body: dict[str, Any]) -> None:
    """Every field but model, messages and stream (each check lets an absent field pass)."""
    _sampling(body)
    fields.stop(body.get("stop"))
    check_tools(body.get("tools"))
    check_tool_choice(body.get("tool_choice"))
    _functions(body)
    _response_format(body.get("response_format"))
    string(body.get("user"), "user", max_length=MAX_USER_LENGTH)
    for name in STRING_FIELDS:
        string(body.get(name), name, max_length=MAX_USER_LENGTH)
    for name in OBJECT_FIELDS:
        obj(body.get(name), name)
    fields.strings(body.get("modalities"), "modalities")
    _metadata(body.get("metadata"))
    fields.logit_bias(body.get("logit_bias"))


def _too_deep() -> InvalidRequest:
    return InvalidRequest(
        f"The request body nests arrays and objects more than {MAX_JSON_DEPTH} levels deep.",
        code="json_too_deep",
    )


def _stream(body: dict[str, Any]) -> None:
    fields.boolean(body.get("stream"), "stream")
    options = obj(body.get("stream_options"), "stream_options")
    if options is None:
        return
    if not body.get("stream"):
        raise fail("stream_options", "'stream_options' is only allowed when 'stream' is true.")
    fields.boolean(options.get("include_usage"), "stream_options.include_usage")


def _sampling(body: dict[str, Any]) -> None:
    number(body.get("temperature"), "temperature", 0, 2)
    number(body.get("top_p"), "top_p", 0, 1)
    number(body.get("presence_penalty"), "presence_penalty", -2, 2)
    number(body.get("frequency_penalty"), "frequency_penalty", -2, 2)
    number(body.get("n"), "n", 1, 128, integer=True)
    number(body.get("max_tokens"), "max_tokens", 1, 2**31, integer=True)
    number(body.get("max_completion_tokens"), "max_completion_tokens", 1, 2**31, integer=True)
    number(body.get("top_logprobs"), "top_logprobs", 0, 20, integer=True)
    number(body.get("top_k"), "top_k", 0, 2**31, integer=True)
    number(body.get("seed"), "seed", -(2**63), 2**63 - 1, integer=True)
    for name in ("logprobs", "parallel_tool_calls", "store"):
        fields.boolean(body.get(name), name)


def _functions(body: dict[str, Any]) -> None:
    """The deprecated `functions` / `function_call` (forwarded to OpenAI-compatible upstreams)."""
    for i, function in enumerate(fields.array(body.get("functions"), "functions") or ()):
        spec = fields.required_obj(function, f"functions[{i}]")
        string(spec.get("name"), f"functions[{i}].name", required=True)
    call = body.get("function_call")
    if call is None or isinstance(call, str):
        return
    if not isinstance(call, dict):
        raise wrong_type("function_call", "a string or an object", call)
    string(call.get("name"), "function_call.name", required=True)


def _response_format(value: Any) -> None:
    fmt = obj(value, "response_format")
    if fmt is None:
        return
    string(fmt.get("type"), "response_format.type", required=True)
    spec = obj(fmt.get("json_schema"), "response_format.json_schema")
    if fmt["type"] == "json_schema" and spec is None:
        raise fields.missing("response_format.json_schema")
    if spec is not None:
        string(spec.get("name"), "response_format.json_schema.name", max_length=MAX_USER_LENGTH)
        string(spec.get("description"), "response_format.json_schema.description")
        obj(spec.get("schema"), "response_format.json_schema.schema")
        fields.boolean(spec.get("strict"), "response_format.json_schema.strict")


def _metadata(value: Any) -> None:
    metadata = obj(value, "metadata")
    if metadata is None:
        return
    if len(metadata) > MAX_METADATA_PAIRS:
        raise fail("metadata", f"Invalid 'metadata': at most {MAX_METADATA_PAIRS} pairs.")
    for key, item in metadata.items():
        where = f"metadata.{key[:MAX_METADATA_KEY]}"
        if len(key) > MAX_METADATA_KEY:
            raise fail(where, f"Invalid 'metadata': keys are at most {MAX_METADATA_KEY} long.")
        string(item, where, required=True, max_length=MAX_METADATA_VALUE)
