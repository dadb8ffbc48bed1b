"""llms.api.responses*: invalid requests are 400s naming the Responses field, structured output,
input_items pages and the API's other bodies (docs: responses-and-messages.md §1.2).
"""

from __future__ import annotations

from typing import Any

import pydantic
import pytest

from llms.api.responses import (
    deleted,
    input_items_page,
    new_response_id,
    previous_response_not_found,
    response_not_found,
)
from llms.api.responses_request import from_request
from llms.chunks import (
    finish_chunk,
)
from llms.errors import (
    InvalidRequest,
)
from tests.responses_support import (
    FC1,
    FC2,
    META,
    OUT1,
    OUT2,
    RS,
    USER,
    bad,
    call,
    run,
    sdk_stream,
    text,
)

# --- requests: 400s naming the Responses field ----------------------------------------------------


def test_pairing_errors_name_the_item() -> None:
    error = bad("input[1].call_id", input=[USER, OUT1])
    assert "call_1" in error.message
    error = bad("input[1]", input=[USER, FC1, FC2, OUT2])
    assert "call_1" in error.message


@pytest.mark.parametrize(
    ("param", "code", "body"),
    [
        ("model", "missing_required_parameter", {"model": None}),
        ("model", "invalid_type", {"model": 3}),
        ("input", "missing_required_parameter", {"input": None}),
        ("input", "invalid_type", {"input": {"role": "user"}}),
        ("input", "empty_array", {"input": []}),
        ("input[0]", "invalid_type", {"input": ["hi"]}),
        ("input[0].role", "invalid_value", {"input": [{"role": "tool", "content": "x"}]}),
        (
            "input[0].role",
            "missing_required_parameter",
            {"input": [{"type": "message", "content": "x"}]},
        ),
        ("input[0].content", "missing_required_parameter", {"input": [{"role": "user"}]}),
        ("input[0].type", "invalid_value", {"input": [{"type": "telepathy"}]}),
        (
            "input[0].content[0].type",
            "invalid_value",
            {"input": [{"role": "user", "content": [{"type": "video"}]}]},
        ),
        (
            "input[0].content[0].type",
            "invalid_value",
            {
                "input": [
                    {
                        "role": "system",
                        "content": [{"type": "input_image", "image_url": "https://x"}],
                    }
                ]
            },
        ),
        (
            "input[0].content[0].text",
            "invalid_type",
            {"input": [{"role": "user", "content": [{"type": "input_text", "text": 5}]}]},
        ),
        (
            "input[2].content[0].image_url",
            "missing_required_parameter",
            {"input": [USER, USER, {"role": "user", "content": [{"type": "input_image"}]}]},
        ),
        (
            "input[0].content[0].file_id",
            "invalid_value",
            {
                "input": [
                    {"role": "user", "content": [{"type": "input_image", "file_id": "file_1"}]}
                ]
            },
        ),
        (
            "input[0].content[0].file_id",
            "invalid_value",
            {"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "file_1"}]}]},
        ),
        (
            "input[0].content[0].detail",
            "invalid_value",
            {
                "input": [
                    {
                        "role": "user",
                        "content": [{"type": "input_image", "image_url": "https://x", "detail": 1}],
                    }
                ]
            },
        ),
        (
            "input[0].content[0].file_url",
            "invalid_value",
            {
                "input": [
                    {
                        "role": "user",
                        "content": [{"type": "input_file", "file_url": "https://x/a.pdf"}],
                    }
                ]
            },
        ),
        (
            "input[0].call_id",
            "missing_required_parameter",
            {"input": [{"type": "function_call", "name": "f", "arguments": "{}"}]},
        ),
        (
            "input[0].arguments",
            "invalid_type",
            {"input": [{"type": "function_call", "call_id": "c", "name": "f", "arguments": {}}]},
        ),
        ("input[1].output", "invalid_type", {"input": [FC1, {**OUT1, "output": 5}]}),
        (
            "input[1].output[0].type",
            "invalid_value",
            {"input": [FC1, {**OUT1, "output": [{"type": "audio"}]}]},
        ),
        ("instructions", "invalid_type", {"instructions": ["x"]}),
        ("tools", "invalid_type", {"tools": {"type": "function"}}),
        (
            "tools[1].type",
            "unsupported_value",
            {"tools": [{"type": "function", "name": "f"}, {"type": "web_search"}]},
        ),
        (
            "tools[0].type",
            "unsupported_value",
            {"tools": [{"type": "code_interpreter", "container": {"type": "auto"}}]},
        ),
        ("tools[0].type", "unsupported_value", {"tools": [{"type": "local_shell"}]}),
        ("tools[0].name", "missing_required_parameter", {"tools": [{"type": "function"}]}),
        (
            "tools[0].parameters",
            "invalid_type",
            {"tools": [{"type": "function", "name": "f", "parameters": "x"}]},
        ),
        (
            "tool_choice.type",
            "unsupported_value",
            {
                "tools": [{"type": "function", "name": "f"}],
                "tool_choice": {"type": "web_search_preview"},
            },
        ),
        (
            "tool_choice.mode",
            "invalid_value",
            {
                "tools": [{"type": "function", "name": "f"}],
                "tool_choice": {"type": "allowed_tools", "mode": "all", "tools": []},
            },
        ),
        (
            "tool_choice.mode",
            "missing_required_parameter",
            {
                "tools": [{"type": "function", "name": "f"}],
                "tool_choice": {"type": "allowed_tools", "tools": []},
            },
        ),
        (
            "tool_choice.tools[0].type",
            "unsupported_value",
            {
                "tools": [{"type": "function", "name": "f"}],
                "tool_choice": {
                    "type": "allowed_tools",
                    "mode": "auto",
                    "tools": [{"type": "mcp"}],
                },
            },
        ),
        (
            "tools[0].tools[0].type",
            "unsupported_value",
            {"tools": [{"type": "namespace", "name": "n", "tools": [{"type": "web_search"}]}]},
        ),
        (
            "tools[0].format.type",
            "invalid_value",
            {"tools": [{"type": "custom", "name": "c", "format": {"type": "regexish"}}]},
        ),
        ("tool_choice", "invalid_value", {"tool_choice": "sometimes"}),
        ("tool_choice", "invalid_value", {"tool_choice": "required"}),
        ("parallel_tool_calls", "invalid_type", {"parallel_tool_calls": "yes"}),
        ("max_output_tokens", "invalid_value", {"max_output_tokens": 0}),
        ("max_output_tokens", "invalid_type", {"max_output_tokens": 1.5}),
        ("temperature", "invalid_value", {"temperature": 3}),
        ("top_p", "invalid_type", {"top_p": "1"}),
        ("top_logprobs", "invalid_value", {"top_logprobs": 21}),
        ("text", "invalid_type", {"text": "json"}),
        ("text.format.type", "invalid_value", {"text": {"format": {"type": "yaml"}}}),
        (
            "text.format.schema",
            "missing_required_parameter",
            {"text": {"format": {"type": "json_schema", "name": "x"}}},
        ),
        (
            "text.format.name",
            "missing_required_parameter",
            {"text": {"format": {"type": "json_schema", "schema": {}}}},
        ),
        ("text.verbosity", "invalid_value", {"text": {"verbosity": "loud"}}),
        ("reasoning.effort", "invalid_value", {"reasoning": {"effort": "huge"}}),
        ("reasoning.effort", "invalid_type", {"reasoning": {"effort": ["low"]}}),
        ("reasoning.summary", "invalid_value", {"reasoning": {"summary": "long"}}),
        ("include", "invalid_type", {"include": "reasoning.encrypted_content"}),
        ("include[0]", "invalid_type", {"include": [1]}),
        ("metadata.k", "invalid_type", {"metadata": {"k": 1}}),
        ("metadata", "invalid_value", {"metadata": {str(i): "v" for i in range(17)}}),
        ("truncation", "invalid_value", {"truncation": "middle"}),
        ("truncation", "invalid_type", {"truncation": ["auto"]}),
        ("store", "invalid_type", {"store": "no"}),
        ("stream", "invalid_type", {"stream": 1}),
        ("background", "invalid_type", {"background": "yes"}),
        ("previous_response_id", "invalid_type", {"previous_response_id": 5}),
        (
            "stream_options.include_obfuscation",
            "invalid_type",
            {"stream_options": {"include_obfuscation": "no"}},
        ),
        ("conversation", "unsupported_parameter", {"conversation": "conv_1"}),
        ("prompt", "unsupported_parameter", {"prompt": {"id": "pmpt_1"}}),
        ("n", "invalid_value", {"n": 2}),
        ("user", "invalid_type", {"user": 5}),
        ("service_tier", "invalid_type", {"service_tier": 5}),
    ],
)
def test_invalid_requests_name_the_responses_field(
    param: str, code: str, body: dict[str, Any]
) -> None:
    bad(param, code, **body)


def test_only_reasoning_in_the_input_is_a_400() -> None:
    bad("input", "empty_array", input=[RS])


def test_an_adapters_400_about_the_chat_request_names_the_responses_field() -> None:
    history = [{"type": "message", "id": "msg_h", "role": "user", "content": "Earlier"}]
    ns = {
        "type": "namespace",
        "name": "crm",
        "description": "CRM",
        "tools": [{"type": "function", "name": "a"}, {"type": "function", "name": "b"}],
    }
    result = from_request(
        {
            "model": "m",
            "instructions": "Rules.",
            "input": [RS, {"role": "user", "content": "Now"}, FC1, OUT1],
            "tools": [{"type": "function", "name": "f"}, ns],
        },
        history,
    )
    # messages: instructions, history[0], input[1], input[2] (the call), input[3] (its output)
    assert result.message_origins == (
        "instructions",
        "history[0]",
        "input[1]",
        "input[2]",
        "input[3]",
    )
    to = result.responses_param
    assert to("messages[0].content") == "instructions"
    assert to("messages[1].content") == "previous_response_id"
    assert to("messages[2].content[0].image_url") == "input[1]"
    assert to("messages[3].tool_calls[0].function.arguments") == "input[2]"
    assert to("messages[9]") == "input" and to("messages") == "input"
    assert to("tools[0].function.parameters") == "tools[0].parameters"
    assert to("tools[2].function.name") == "tools[1].tools[1].name"
    assert to("tools[2]") == "tools[1].tools[1]"
    assert to("response_format") == "text.format"
    assert to("response_format.json_schema") == "text.format"
    assert to("max_tokens") == "max_output_tokens"
    assert to("max_completion_tokens") == "max_output_tokens"
    assert to("reasoning_effort") == "reasoning.effort"
    assert to("parallel_tool_calls") == "parallel_tool_calls"
    assert to("temperature") == "temperature"
    assert to(None) is None


class Weather(pydantic.BaseModel):
    city: str
    celsius: int


def test_structured_output_parses_in_the_sdk_like_responses_parse() -> None:
    schema = Weather.model_json_schema() | {"additionalProperties": False}
    body = {"text": {"format": {"type": "json_schema", "name": "Weather", "schema": schema}}}
    assert call(**body).chat["response_format"]["json_schema"]["name"] == "Weather"
    chunks = [text('{"city": "Par'), text('is", "celsius": 18}'), finish_chunk(META, "stop")]
    payloads, response = run(chunks, body=body)
    final = sdk_stream(payloads, text_format=Weather)
    assert final.output_parsed == Weather(city="Paris", celsius=18)
    assert response["text"]["format"]["type"] == "json_schema"


# --- the API's other bodies ---------------------------------------------------------------------


def test_input_items_pages_newest_first_by_default() -> None:
    items = call(input=[{"role": "user", "content": str(i)} for i in range(5)]).input_items
    ids = [item["id"] for item in items]
    page = input_items_page(items, limit="2")
    assert [item["id"] for item in page["data"]] == [ids[4], ids[3]]
    assert (page["object"], page["first_id"], page["last_id"], page["has_more"]) == (
        "list",
        ids[4],
        ids[3],
        True,
    )
    rest = input_items_page(items, after=ids[3], limit=10)
    assert [item["id"] for item in rest["data"]] == [ids[2], ids[1], ids[0]]
    assert rest["has_more"] is False
    ascending = input_items_page(items, order="asc")
    assert [item["id"] for item in ascending["data"]] == ids
    empty = input_items_page([], limit=5)
    assert empty["data"] == [] and empty["first_id"] is None and empty["has_more"] is False
    for query, param in (
        ({"limit": "0"}, "limit"),
        ({"limit": "101"}, "limit"),
        ({"limit": "x"}, "limit"),
        ({"order": "up"}, "order"),
        ({"after": "msg_nope"}, "after"),
    ):
        with pytest.raises(InvalidRequest) as caught:
            input_items_page(items, **query)
        assert caught.value.param == param


def test_ids_and_the_errors_the_api_names() -> None:
    assert new_response_id().startswith("resp_") and new_response_id() != new_response_id()
    assert deleted("resp_1") == {"id": "resp_1", "object": "response.deleted", "deleted": True}
    missing = response_not_found("resp_x")
    assert missing.status == 404 and missing.message == "Response with id 'resp_x' not found."
    previous = previous_response_not_found("resp_y")
    assert previous.to_body()["error"] == {
        "message": "Previous response with id 'resp_y' not found.",
        "type": "invalid_request_error",
        "param": "previous_response_id",
        "code": "previous_response_not_found",
    }
