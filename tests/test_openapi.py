"""GET /openapi.json: the gateway's own OpenAPI 3.1 document, and schemathesis against it.

Schemathesis generates requests from the document (valid ones and, in negative mode, invalid
ones) and sends them to the real gateway on a loopback port, in front of fake providers: no
answer may be a 5xx, and every answer must match the document (status, content type, body).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import jsonschema_rs
import orjson
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.parameters import ParameterLocation
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from llms import create_app
from llms.server import keys
from tests.conftest import gateway_config
from tests.fuzz_support import KEY, ThreadedGateway
from tests.test_security_requests import BAD

PATHS = {
    "/v1/chat/completions": {"post"},
    "/v1/responses": {"post"},
    "/v1/responses/compact": {"post"},
    "/v1/responses/{id}": {"get", "delete"},
    "/v1/responses/{id}/input_items": {"get"},
    "/v1/responses/{id}/cancel": {"post"},
    "/v1/embeddings": {"post"},
    "/v1/models": {"get"},
    "/v1/models/{model}": {"get"},
    "/v1/streams/{id}": {"get"},
    "/v1/streams/{id}/cancel": {"post"},
    "/health": {"get"},
    "/ready": {"get"},
    "/metrics": {"get"},
    "/api/usage": {"get"},
    "/openapi.json": {"get"},
    "/v1/messages": {"post"},
    "/v1/messages/count_tokens": {"post"},
    "/v1/completions": {"post"},
    "/admin/keys": {"post", "get"},
    "/admin/keys/{id}": {"get", "patch", "delete"},
    "/admin/keys/{id}/spend": {"get"},
}
# Fuzzed by schemathesis in tests/test_fuzz_messages.py (Anthropic's errors; completions), and
# the admin API, served only with `server.admin_key` (test_admin_keys*.py, test_fuzz_admin.py).
ELSEWHERE = {"/v1/messages", "/v1/messages/count_tokens", "/v1/completions", "/admin/keys",
             "/admin/keys/{id}", "/admin/keys/{id}/spend"}  # fmt: skip


@pytest.fixture(scope="module")
def served() -> Iterator[ThreadedGateway]:
    with ThreadedGateway() as gateway:
        yield gateway


@pytest.fixture(scope="module")
def document(served: ThreadedGateway) -> dict[str, Any]:
    status, headers, raw = served.call("GET", "/openapi.json", Authorization="")
    assert status == 200
    assert headers["Content-Type"].startswith("application/json")
    return dict(orjson.loads(raw))


def test_the_document_describes_every_endpoint(document: dict[str, Any]) -> None:
    assert document["openapi"] == "3.1.0"
    assert {path: set(ops) for path, ops in document["paths"].items()} == PATHS
    schemes = document["components"]["securitySchemes"]
    assert schemes["bearer"] == {"type": "http", "scheme": "bearer"}
    assert schemes["apiKey"] == {"type": "apiKey", "in": "header", "name": "x-api-key"}
    chat = document["paths"]["/v1/chat/completions"]["post"]
    assert set(chat["responses"]["200"]["content"]) == {"application/json", "text/event-stream"}
    for status in ("400", "401", "403", "404", "408", "413", "429", "500", "502", "503", "504"):
        response = chat["responses"][status]
        ref = response["content"]["application/json"]["schema"]["$ref"]
        assert ref == "#/components/schemas/Error"
    assert "Retry-After" in chat["responses"]["429"]["headers"]
    properties = document["components"]["schemas"]["ChatRequest"]["properties"]
    for field in ("tool_choice", "response_format", "reasoning_effort", "metadata", "user"):
        assert field in properties
    for path in ("/health", "/ready", "/openapi.json"):
        assert document["paths"][path]["get"]["security"] == []


def test_every_route_is_documented(document: dict[str, Any]) -> None:
    """The route table of a gateway with every optional API on (the admin API) is the
    document's paths, but for the web UI's pages: a new route without its document fails."""
    config = gateway_config(
        {"p": {"type": "openai", "base_url": "http://127.0.0.1:9/v1", "models": {"m": "m"}}},
        server={"api_keys": [KEY], "admin_key": "sk-admin-openapi"},
    )
    app = create_app(config)
    routed: dict[str, set[str]] = {}
    for route in app.router.routes():
        if route.method == "HEAD" or route.resource is None:
            continue
        if route.resource in app[keys.PUBLIC]:  # the web UI: pages and assets, no key
            continue
        routed.setdefault(route.resource.canonical, set()).add(route.method.lower())
    assert routed == {path: set(ops) for path, ops in document["paths"].items()}


def test_the_document_describes_the_responses_api(document: dict[str, Any]) -> None:
    create = document["paths"]["/v1/responses"]["post"]
    assert set(create["responses"]["200"]["content"]) == {"application/json", "text/event-stream"}
    assert create["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Response"
    }
    for status in ("400", "401", "403", "404", "408", "413", "429", "500", "502", "503", "504"):
        response = create["responses"][status]
        ref = response["content"]["application/json"]["schema"]["$ref"]
        assert ref == "#/components/schemas/Error"
    schemas = document["components"]["schemas"]
    properties = schemas["ResponsesRequest"]["properties"]
    for field in ("model", "input", "instructions", "tools", "tool_choice", "text", "reasoning",
                  "max_output_tokens", "temperature", "top_p", "metadata", "store", "background",
                  "stream", "previous_response_id", "include", "truncation"):  # fmt: skip
        assert field in properties, field
    assert schemas["ResponsesRequest"]["required"] == ["model", "input"]
    retrieve = document["paths"]["/v1/responses/{id}"]["get"]
    assert {p["name"] for p in retrieve["parameters"]} == {"id", "stream", "starting_after"}
    assert set(retrieve["responses"]["200"]["content"]) == {
        "application/json",
        "text/event-stream",
    }
    assert set(schemas["Response"]["required"]) >= {"id", "object", "status", "output", "usage"}


def chat_validator(document: dict[str, Any]) -> jsonschema_rs.Validator:
    schema = {"$ref": "#/components/schemas/ChatRequest", "components": document["components"]}
    return jsonschema_rs.validator_for(schema)


def test_the_schema_refuses_what_the_gateway_refuses(document: dict[str, Any]) -> None:
    validator = chat_validator(document)
    for body, param, _ in BAD:
        assert not validator.is_valid(body), param


def responses_validator(document: dict[str, Any]) -> jsonschema_rs.Validator:
    schema = {"$ref": "#/components/schemas/ResponsesRequest", "components": document["components"]}
    return jsonschema_rs.validator_for(schema)


def message(*parts: Any, role: str = "user") -> list[dict[str, Any]]:
    return [{"role": role, "content": list(parts)}]


CALL = {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"}
TOOLS = [{"type": "function", "name": "f"}]
# Responses bodies the gateway refuses (400, naming `param`) that the schema refuses too.
RESPONSES_BAD: list[tuple[dict[str, Any], str]] = [
    ({"input": "x"}, "model"),
    ({"model": 5, "input": "x"}, "model"),
    ({"model": "M"}, "input"),
    ({"model": "M", "input": 5}, "input"),
    ({"model": "M", "input": [5]}, "input[0]"),
    ({"model": "M", "input": [{"role": "tool", "content": "x"}]}, "input[0].role"),
    ({"model": "M", "input": [{"role": "user"}]}, "input[0].content"),
    ({"model": "M", "input": [{"type": "weird"}]}, "input[0].type"),
    ({"model": "M", "input": message({"type": "refusal", "refusal": "r"})},
     "input[0].content[0].type"),
    ({"model": "M", "input": message({"type": "input_image"}, role="assistant")},
     "input[0].content[0].type"),
    ({"model": "M", "input": message({"type": "input_text"})}, "input[0].content[0].text"),
    ({"model": "M", "input": message({"type": "input_image", "image_url": "u", "detail": "x"})},
     "input[0].content[0].detail"),
    ({"model": "M", "input": message({"type": "input_file", "file_url": "https://x"})},
     "input[0].content[0].file_url"),
    ({"model": "M", "input": [{**CALL, "call_id": None}]}, "input[0].call_id"),
    ({"model": "M", "input": [CALL, {"type": "function_call_output", "call_id": "c"}]},
     "input[1].output"),
    ({"model": "M", "input": [{"type": "reasoning", "summary": [{"type": "x", "text": "t"}]}]},
     "input[0].summary[0]"),
    ({"model": "M", "input": [{"type": "item_reference"}]}, "input[0].id"),
    ({"model": "M", "input": "x", "instructions": 5}, "instructions"),
    ({"model": "M", "input": "x", "tools": [{"type": "web_search"}]}, "tools[0].type"),
    ({"model": "M", "input": "x", "tools": [{"type": "function", "name": "f" * 129}]},
     "tools[0].name"),
    ({"model": "M", "input": "x",
      "tools": [{"type": "custom", "name": "c", "format": {"type": "regex"}}]},
     "tools[0].format.type"),
    ({"model": "M", "input": "x", "tools": [{"type": "namespace", "name": "n"}]}, "tools[0].tools"),
    ({"model": "M", "input": "x", "tool_choice": "any"}, "tool_choice"),
    ({"model": "M", "input": "x", "tool_choice": "required"}, "tool_choice"),
    ({"model": "M", "input": "x", "tools": TOOLS, "tool_choice": {"type": "web_search"}},
     "tool_choice.type"),
    ({"model": "M", "input": "x", "tools": TOOLS,
      "tool_choice": {"type": "allowed_tools", "mode": "none", "tools": []}}, "tool_choice.mode"),
    ({"model": "M", "input": "x", "max_output_tokens": 0}, "max_output_tokens"),
    ({"model": "M", "input": "x", "temperature": 2.5}, "temperature"),
    ({"model": "M", "input": "x", "top_p": -1}, "top_p"),
    ({"model": "M", "input": "x", "top_logprobs": 21}, "top_logprobs"),
    ({"model": "M", "input": "x", "text": {"format": {"type": "xml"}}}, "text.format.type"),
    ({"model": "M", "input": "x", "text": {"format": {"type": "json_schema", "name": "n"}}},
     "text.format.schema"),
    ({"model": "M", "input": "x", "text": {"verbosity": "max"}}, "text.verbosity"),
    ({"model": "M", "input": "x", "reasoning": {"effort": "extreme"}}, "reasoning.effort"),
    ({"model": "M", "input": "x", "reasoning": {"generate_summary": "all"}},
     "reasoning.generate_summary"),
    ({"model": "M", "input": "x", "metadata": {f"k{i}": "v" for i in range(17)}}, "metadata"),
    ({"model": "M", "input": "x", "metadata": {"k": "v" * 513}}, "metadata.k"),
    ({"model": "M", "input": "x", "store": "yes"}, "store"),
    ({"model": "M", "input": "x", "background": 1}, "background"),
    ({"model": "M", "input": "x", "stream": "true"}, "stream"),
    ({"model": "M", "input": "x", "previous_response_id": 5}, "previous_response_id"),
    ({"model": "M", "input": "x", "conversation": "conv_1"}, "conversation"),
    ({"model": "M", "input": "x", "prompt": {"id": "p"}}, "prompt"),
    ({"model": "M", "input": "x", "n": 2}, "n"),
    ({"model": "M", "input": "x", "n": True}, "n"),
    ({"model": "M", "input": "x", "truncation": "middle"}, "truncation"),
    ({"model": "M", "input": "x", "include": [None]}, "include[0]"),
    ({"model": "M", "input": "x", "stream_options": {"include_obfuscation": "no"}},
     "stream_options.include_obfuscation"),
]  # fmt: skip


@pytest.mark.parametrize(("body", "param"), RESPONSES_BAD, ids=[p for _, p in RESPONSES_BAD])
def test_the_responses_schema_refuses_what_the_gateway_refuses(
    document: dict[str, Any], served: ThreadedGateway, body: dict[str, Any], param: str
) -> None:
    assert not responses_validator(document).is_valid(body)
    body = {**body, "model": "via-openai"} if body.get("model") == "M" else body
    status, _, raw = served.call("POST", "/v1/responses", orjson.dumps(body))
    assert status == 400, raw
    assert orjson.loads(raw)["error"]["param"] == param


@pytest.mark.parametrize(
    "body",
    [
        {"model": "via-openai", "input": "hi"},
        {
            "model": "via-openai",
            "instructions": "be brief",
            "input": [
                {"role": "developer", "content": "d"},
                {"type": "message", "role": "user", "content": [
                    {"type": "input_text", "text": "t"},
                    {"type": "input_image", "image_url": "data:image/png;base64,AA==",
                     "detail": "low"},
                    {"type": "input_file", "file_data": "data:text/plain;base64,aGk=",
                     "filename": "a.txt"},
                ]},
                {"role": "assistant", "content": [{"type": "output_text", "text": "o"},
                                                  {"type": "refusal", "refusal": "r"}]},
                {"type": "reasoning", "summary": [{"type": "summary_text", "text": "s"}]},
                CALL,
                {"type": "function_call_output", "call_id": "c",
                 "output": [{"type": "input_text", "text": "ok"}]},
                {"type": "web_search_call", "id": "ws_1", "status": "completed"},
            ],
            "tools": [
                {"type": "function", "name": "f", "parameters": {"type": "object"},
                 "strict": False, "description": None},
                {"type": "custom", "name": "c",
                 "format": {"type": "grammar", "syntax": "lark", "definition": "start: x"}},
                {"type": "namespace", "name": "n", "tools": [{"type": "function", "name": "g"}]},
            ],
            "tool_choice": {"type": "allowed_tools", "mode": "auto",
                            "tools": [{"type": "function", "name": "f"}]},
            "text": {"format": {"type": "json_schema", "name": "n", "schema": {}, "strict": True},
                     "verbosity": "low"},
            "reasoning": {"effort": "low", "summary": "auto", "generate_summary": "ignored"},
            "include": ["reasoning.encrypted_content"],
            "metadata": {"k": "v", "n": None},
            "max_output_tokens": 100,
            "max_tool_calls": 3,
            "temperature": 0.5,
            "top_p": 0.9,
            "parallel_tool_calls": True,
            "store": False,
            "stream": True,
            "stream_options": {"include_obfuscation": False},
            "truncation": "auto",
            "prompt_cache_key": "k",
            "safety_identifier": "s",
            "service_tier": "auto",
            "n": 1,
            "unknown": {"ignored": True},
        },
    ],
)  # fmt: skip
def test_the_responses_schema_accepts_what_the_gateway_answers(
    document: dict[str, Any], served: ThreadedGateway, body: dict[str, Any]
) -> None:
    assert responses_validator(document).is_valid(body)
    status, _, raw = served.call("POST", "/v1/responses", orjson.dumps(body))
    assert status == 200, raw


def response_validator(document: dict[str, Any]) -> jsonschema_rs.Validator:
    schema = {"$ref": "#/components/schemas/Response", "components": document["components"]}
    return jsonschema_rs.validator_for(schema)


def test_the_response_schema_matches_the_answers(
    document: dict[str, Any], served: ThreadedGateway
) -> None:
    validator = response_validator(document)
    for extra in ({}, {"tools": TOOLS, "tool_choice": "required"}, {"background": True}):
        status, _, raw = served.call(
            "POST", "/v1/responses", orjson.dumps({"model": "via-openai", "input": "x", **extra})
        )
        assert status == 200, raw
        answer = orjson.loads(raw)
        assert validator.is_valid(answer), list(validator.iter_errors(answer))[:3]


@pytest.mark.parametrize(
    "body",
    [
        {"model": "m", "messages": [{"role": "user", "content": "hi"}]},
        {
            "model": "m",
            "messages": [
                {"role": "system", "content": "s"},
                {"role": "user", "content": [{"type": "text", "text": "t"}]},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f"}}],
                },
                {"role": "tool", "tool_call_id": "c", "content": "r"},
            ],
            "stream": True,
            "stream_options": {"include_usage": True},
            "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
            "tool_choice": {"type": "function", "function": {"name": "f"}},
            "response_format": {"type": "json_schema", "json_schema": {"name": "n", "schema": {}}},
            "temperature": 0.5,
            "metadata": {"k": "v"},
            "user": "u",
            "reasoning_effort": "low",
        },
    ],
)
def test_the_schema_accepts_valid_requests(document: dict[str, Any], body: Any) -> None:
    assert chat_validator(document).is_valid(body)


@pytest.fixture(scope="module")
def api_schema(served: ThreadedGateway) -> Any:
    return schemathesis.openapi.from_url(f"http://127.0.0.1:{served.port}/openapi.json")


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
OPERATIONS = sorted(
    (path, method) for path, methods in PATHS.items() if path not in ELSEWHERE for method in methods
)
RESPONSES = {path for path in PATHS if path.startswith("/v1/responses")}
# Negative mode needs something to get wrong: a body, a parameter.
WITH_INPUT = {"/v1/chat/completions", "/v1/models/{model}", "/v1/streams/{id}",
              "/v1/streams/{id}/cancel", "/api/usage", *RESPONSES}  # fmt: skip
RUNS = [(path, method, GenerationMode.POSITIVE) for path, method in OPERATIONS] + [
    (path, method, GenerationMode.NEGATIVE) for path, method in OPERATIONS if path in WITH_INPUT
]


def served_model(case: Any) -> Any:
    """Half the valid chat requests name a model the gateway serves, to reach its answers."""
    if isinstance(case.body, dict):
        case.body["model"] = "via-openai"
    return case


DELETES = 32  # responses made for the DELETE cases to remove (see Reach)


class Reach:
    """Every other generated Responses request reaches past the 404 of an unknown model or
    id: a POST names a served model (and, when valid, continues no unknown response), an id
    route names a stored response, foreground and background in turn (DELETE a new one each
    time). In negative mode only where the case stays invalid, so what reaches the gateway is
    still something the schema forbids."""

    def __init__(self, served: ThreadedGateway, document: dict[str, Any]) -> None:
        self.served = served
        self.validator = responses_validator(document)
        self.ids = [self.create(), self.create(background=True)]
        # The responses the DELETE cases remove, made now rather than while Hypothesis draws a
        # case (a strategy should not do I/O; when the gateway named parts from the shared
        # `random`, making one there moved its state, which Hypothesis reported). 25 cases a
        # run, half reaching, in two modes.
        self.doomed = [self.create() for _ in range(DELETES)]
        self.turn = 0

    def create(self, **extra: Any) -> str:
        body = {"model": "via-openai", "input": [{"role": "user", "content": "a"}], **extra}
        status, _, raw = self.served.call("POST", "/v1/responses", orjson.dumps(body))
        assert status == 200, raw
        return str(orjson.loads(raw)["id"])

    def __call__(self, case: Any) -> Any:
        self.turn += 1
        if self.turn % 2:
            return case
        if case.path == "/v1/responses":
            return self.body(case)
        path = case.meta.components.get(ParameterLocation.PATH) if case.meta else None
        if path is None or not path.mode.is_negative:
            if case.method == "DELETE":
                stored = self.doomed.pop() if self.doomed else self.create()
            else:
                stored = self.ids[self.turn // 2 % 2]
            case.path_parameters = {"id": stored}
        return case

    def body(self, case: Any) -> Any:
        if not isinstance(case.body, dict):
            return case
        mapped = {**case.body, "model": "via-openai"}
        if case.meta is not None and case.meta.generation.mode.is_negative:
            if not self.validator.is_valid(mapped):
                case.body = mapped
            return case
        mapped.pop("previous_response_id", None)
        case.body = mapped
        return case


@pytest.fixture(scope="module")
def reach(served: ThreadedGateway, document: dict[str, Any]) -> Reach:
    return Reach(served, document)


@pytest.mark.parametrize(("path", "method", "mode"), RUNS)
def test_schemathesis(
    api_schema: Any, reach: Reach, path: str, method: str, mode: GenerationMode
) -> None:
    """Bounded: 25 generated requests per operation and mode (about 25 s in all)."""
    operation = api_schema[path][method.upper()]
    strategy = operation.as_strategy(generation_mode=mode)
    checks = list(CHECKS)
    if path == "/v1/chat/completions":
        if mode is GenerationMode.NEGATIVE:
            checks.append(negative_data_rejection)  # what the schema forbids is refused
        else:
            strategy = strategy | strategy.map(served_model)
    elif path in RESPONSES:
        if mode is GenerationMode.NEGATIVE:
            checks.append(negative_data_rejection)
        strategy = strategy.map(reach)

    @settings(max_examples=25, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(case=strategy)
    def run(case: Any) -> None:
        case.call_and_validate(
            headers={"Authorization": f"Bearer {KEY}"}, checks=checks, timeout=30
        )

    run()
