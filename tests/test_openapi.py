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
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.test_fuzz import KEY, ThreadedGateway
from tests.test_security_requests import BAD

PATHS = {
    "/v1/chat/completions": {"post"},
    "/v1/models": {"get"},
    "/v1/models/{model}": {"get"},
    "/v1/streams/{id}": {"get"},
    "/v1/streams/{id}/cancel": {"post"},
    "/health": {"get"},
    "/ready": {"get"},
    "/metrics": {"get"},
    "/api/usage": {"get"},
    "/openapi.json": {"get"},
}


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


def chat_validator(document: dict[str, Any]) -> jsonschema_rs.Validator:
    schema = {"$ref": "#/components/schemas/ChatRequest", "components": document["components"]}
    return jsonschema_rs.validator_for(schema)


def test_the_schema_refuses_what_the_gateway_refuses(document: dict[str, Any]) -> None:
    validator = chat_validator(document)
    for body, param, _ in BAD:
        assert not validator.is_valid(body), param


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
OPERATIONS = sorted((path, method) for path, methods in PATHS.items() for method in methods)
# Negative mode needs something to get wrong: a body, a parameter.
WITH_INPUT = {"/v1/chat/completions", "/v1/models/{model}", "/v1/streams/{id}",
              "/v1/streams/{id}/cancel", "/api/usage"}  # fmt: skip
RUNS = [(path, method, GenerationMode.POSITIVE) for path, method in OPERATIONS] + [
    (path, method, GenerationMode.NEGATIVE) for path, method in OPERATIONS if path in WITH_INPUT
]


def served_model(case: Any) -> Any:
    """Half the valid chat requests name a model the gateway serves, to reach its answers."""
    if isinstance(case.body, dict):
        case.body["model"] = "via-openai"
    return case


@pytest.mark.parametrize(("path", "method", "mode"), RUNS)
def test_schemathesis(api_schema: Any, path: str, method: str, mode: GenerationMode) -> None:
    """Bounded: 25 generated requests per operation and mode (about 15 s in all)."""
    operation = api_schema[path][method.upper()]
    strategy = operation.as_strategy(generation_mode=mode)
    checks = list(CHECKS)
    if path == "/v1/chat/completions":
        if mode is GenerationMode.NEGATIVE:
            checks.append(negative_data_rejection)  # what the schema forbids is refused
        else:
            strategy = strategy | strategy.map(served_model)

    @settings(max_examples=25, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(case=strategy)
    def run(case: Any) -> None:
        case.call_and_validate(
            headers={"Authorization": f"Bearer {KEY}"}, checks=checks, timeout=30
        )

    run()
