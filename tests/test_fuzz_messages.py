"""Fuzz POST /v1/messages, /v1/messages/count_tokens and /v1/completions against the real gateway.

Schemathesis generates requests from the gateway's own /openapi.json (valid ones and, in negative
mode, invalid ones) and sends them to the gateway (tests/fuzz_support.py) in front of fake
providers: no answer is a 5xx, every answer matches the document (status, content type, body,
headers) and what the schema forbids is refused. Every other generated request names a served
model (through the translation, or passed through to the Anthropic provider), so the answers
are reached, not only the 404 of an unknown model. Hypothesis then sends any JSON, in any field:
never a 5xx, every error in the API's own shape (Anthropic's on the Messages routes), and the
gateway still serves afterwards. Bounded: about 30-45 s in all on a busy 2-core machine.
"""

from __future__ import annotations

from typing import Any

import jsonschema_rs
import orjson
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.fuzz_support import (
    CLIENT_ERRORS,
    KEY,
    MODELS,
    ThreadedGateway,
    check,
    dumps,
    gateway_fixture,  # noqa: F401 (the `gateway` fixture)
    json_values,
)

OPERATIONS = {
    "/v1/messages": "MessagesRequest",
    "/v1/messages/count_tokens": "MessagesCountTokensRequest",
    "/v1/completions": "CompletionRequest",
}
ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
}
MESSAGE = {"model": "via-openai", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}
COMPLETION = {"model": "via-openai", "prompt": "hi"}
FIELDS = {
    "/v1/messages": ["model", "max_tokens", "messages", "system", "stream", "temperature", "top_p",
                     "top_k", "stop_sequences", "tools", "tool_choice", "thinking", "metadata",
                     "output_config", "container", "mcp_servers", "cache_control"],
    "/v1/completions": ["model", "prompt", "stream", "stream_options", "temperature", "top_p",
                        "presence_penalty", "frequency_penalty", "n", "best_of", "max_tokens",
                        "logprobs", "seed", "echo", "suffix", "user", "stop", "logit_bias"],
}  # fmt: skip
FUZZ = settings(
    max_examples=20,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)


def check_anthropic(answer: tuple[int, dict[str, str], bytes]) -> None:
    """Never a 5xx; an error is Anthropic's shape, its type the one of its status."""
    status, headers, raw = answer
    if status == 200:
        return
    assert status in CLIENT_ERRORS, (status, raw[:500])
    assert headers["Content-Type"].startswith("application/json")
    body = orjson.loads(raw)
    assert body["type"] == "error", body
    assert set(body) <= {"type", "error", "request_id"}
    assert set(body["error"]) == {"type", "message"}
    assert body["error"]["type"] == ANTHROPIC_TYPES[status]
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]


@pytest.fixture(scope="module")
def document(gateway: ThreadedGateway) -> dict[str, Any]:
    status, _, raw = gateway.call("GET", "/openapi.json")
    assert status == 200
    return dict(orjson.loads(raw))


@pytest.fixture(scope="module")
def api_schema(gateway: ThreadedGateway) -> Any:
    return schemathesis.openapi.from_url(f"http://127.0.0.1:{gateway.port}/openapi.json")


class Served:
    """Every other case names a served model (alternately translated and passed through to
    Anthropic); in negative mode a translated one, and only when the case stays invalid, so
    what reaches the gateway is still something the schema forbids."""

    def __init__(self, validator: jsonschema_rs.Validator) -> None:
        self.validator = validator
        self.turn = 0

    def __call__(self, case: Any) -> Any:
        self.turn += 1
        if self.turn % 2 or not isinstance(case.body, dict):
            return case
        negative = case.meta is not None and case.meta.generation.mode.is_negative
        # An Anthropic provider is sent the body as written and is the judge of it (the fake
        # one judges nothing): negative cases reach the translation only.
        model = "via-openai" if negative else ("via-openai", "via-anthropic")[self.turn // 2 % 2]
        mapped = {**case.body, "model": model}
        if not negative or not self.validator.is_valid(mapped):
            case.body = mapped
        return case


def validator(document: dict[str, Any], name: str) -> jsonschema_rs.Validator:
    schema = {"$ref": f"#/components/schemas/{name}", "components": document["components"]}
    return jsonschema_rs.validator_for(schema)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
@pytest.mark.parametrize("path", sorted(OPERATIONS))
def test_schemathesis(
    api_schema: Any, document: dict[str, Any], path: str, mode: GenerationMode
) -> None:
    """20 generated requests per operation and mode, each answer checked against the document."""
    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
        response_headers_conformance,
    ]
    if mode is GenerationMode.NEGATIVE:
        checks.append(negative_data_rejection)  # what the schema forbids is refused
    served = Served(validator(document, OPERATIONS[path]))
    strategy = api_schema[path]["POST"].as_strategy(generation_mode=mode).map(served)

    @FUZZ
    @given(case=strategy)
    def run(case: Any) -> None:
        case.call_and_validate(
            headers={"Authorization": f"Bearer {KEY}"}, checks=checks, timeout=30
        )

    run()


PER_FIELD = settings(FUZZ, max_examples=8)


@pytest.mark.parametrize("field", FIELDS["/v1/messages"])
@PER_FIELD
@given(model=st.sampled_from(MODELS), value=json_values, stream=st.booleans())
def test_every_messages_field_with_any_value(
    gateway: ThreadedGateway, field: str, model: str, value: Any, stream: bool
) -> None:
    body = {**MESSAGE, "model": model, "stream": stream, field: value}
    check_anthropic(gateway.post(dumps(body), "/v1/messages"))
    count = {**MESSAGE, "model": model, field: value}
    check_anthropic(gateway.post(dumps(count), "/v1/messages/count_tokens"))


@pytest.mark.parametrize("field", FIELDS["/v1/completions"])
@PER_FIELD
@given(model=st.sampled_from(MODELS), value=json_values, stream=st.booleans())
def test_every_completions_field_with_any_value(
    gateway: ThreadedGateway, field: str, model: str, value: Any, stream: bool
) -> None:
    body = {**COMPLETION, "model": model, "stream": stream, field: value}
    check(gateway.post(dumps(body), "/v1/completions"))


@FUZZ
@given(value=json_values, path=st.sampled_from(sorted(OPERATIONS)))
def test_any_json_body(gateway: ThreadedGateway, value: Any, path: str) -> None:
    answer = gateway.post(dumps(value), path)
    (check if path == "/v1/completions" else check_anthropic)(answer)


def test_the_gateway_still_serves(gateway: ThreadedGateway) -> None:
    """After everything above: each operation answers a valid request."""
    for model in ("via-openai", "via-anthropic"):
        status, _, raw = gateway.post(orjson.dumps({**MESSAGE, "model": model}), "/v1/messages")
        assert status == 200, raw
        assert orjson.loads(raw)["type"] == "message"
        status, _, raw = gateway.post(
            orjson.dumps({**MESSAGE, "model": model}), "/v1/messages/count_tokens"
        )
        assert status == 200, raw
        assert orjson.loads(raw)["input_tokens"] > 0
    status, _, raw = gateway.post(orjson.dumps(COMPLETION), "/v1/completions")
    assert status == 200, raw
    assert orjson.loads(raw)["object"] == "text_completion"
