"""llms.api.responses_request: a Responses request translated to the chat request, with
previous_response_id history (docs: responses-and-messages.md §1.2).
"""

from __future__ import annotations

import json

from llms.api.responses import (
    ResponseBuilder,
    fold_response,
)
from llms.api.responses_request import from_request
from llms.chunks import (
    delta_chunk,
    finish_chunk,
    tool_call_delta,
)
from tests.responses_support import (
    CUSTOM,
    FC1,
    FC2,
    META,
    OUT1,
    OUT2,
    RS,
    USER,
    bad,
    call,
    calls,
    messages,
    reasoning,
    text,
)

# --- requests: the chat request -------------------------------------------------------------------


def test_a_string_input_is_one_user_message_after_the_instructions() -> None:
    result = call(instructions="Be brief.")
    assert result.chat == {
        "model": "m",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "hi"},
        ],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    assert (result.stream, result.background, result.store) == (False, False, True)
    assert result.previous_response_id is None and result.ignored == ()
    (item,) = result.input_items
    assert item["id"].startswith("msg_")
    assert {k: v for k, v in item.items() if k != "id"} == {
        "type": "message",
        "role": "user",
        "content": [{"type": "input_text", "text": "hi"}],
        "status": "completed",
    }


def test_a_string_input_is_translated_as_its_one_message_list() -> None:
    """The string form has a shortcut of its own: it must agree with the general path, with
    and without a stored conversation before it."""
    listed = [{"type": "message", "role": "user", "content": "hi"}]
    history = [{**USER, "id": "msg_earlier"}]
    for before in (None, history):
        short = from_request({"model": "m", "input": "hi"}, before)
        long = from_request({"model": "m", "input": listed}, before)
        assert short.chat == long.chat and short.settings == long.settings
        assert short.message_origins == long.message_origins
        ids = [item.pop("id") for item in short.input_items + long.input_items]
        assert short.input_items == long.input_items and len(set(ids)) == 2


def test_roles_and_easy_messages() -> None:
    got = messages(
        input=[
            {"role": "developer", "content": "Rules."},
            {"role": "system", "content": [{"type": "input_text", "text": "More rules."}]},
            {"type": "message", "role": "user", "content": "Q"},
            {
                "type": "message",
                "role": "assistant",
                "phase": "commentary",
                "content": [
                    {"type": "output_text", "text": "A1", "annotations": []},
                    {"type": "refusal", "refusal": "no"},
                ],
            },
            {"role": "assistant", "content": "A2"},
        ]
    )
    assert got == [
        {"role": "system", "content": "Rules."},
        {"role": "system", "content": "More rules."},
        {"role": "user", "content": "Q"},
        {"role": "assistant", "content": "A1\nno"},
        {"role": "assistant", "content": "A2"},
    ]


def test_images_and_files_become_chat_parts() -> None:
    content = [
        {"type": "input_text", "text": "What is this?"},
        {"type": "input_image", "image_url": "https://x.test/a.png", "detail": "high"},
        {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo="},
        {
            "type": "input_file",
            "file_data": "data:application/pdf;base64,JVBE",
            "filename": "a.pdf",
        },
    ]
    result = call(input=[{"role": "user", "content": content}])
    assert result.chat["messages"][0]["content"] == [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "https://x.test/a.png", "detail": "high"}},
        {
            "type": "image_url",
            "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "auto"},
        },
        {
            "type": "file",
            "file": {"file_data": "data:application/pdf;base64,JVBE", "filename": "a.pdf"},
        },
    ]
    assert result.input_items[0]["content"][2]["detail"] == "auto"


def test_calls_join_the_assistant_text_before_them_keyed_by_call_id() -> None:
    # peers' bug #1: an assistant message with text + function_call items
    text_item = {"role": "assistant", "content": "Checking both."}
    got = messages(input=[USER, RS, text_item, FC1, FC2, OUT1, OUT2])
    assert got == [
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {
            "role": "assistant",
            "content": "Checking both.",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "weather", "arguments": '{"city":"Paris"}'},
                },
                {
                    "id": "call_2",
                    "type": "function",
                    "function": {"name": "weather", "arguments": '{"city":"Rome"}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
        {"role": "tool", "tool_call_id": "call_2", "content": "21C"},
    ]


def test_text_between_calls_and_their_outputs_joins_the_calls_message() -> None:
    got = messages(input=[USER, FC1, {"role": "assistant", "content": "Waiting."}, OUT1])
    assert [m["role"] for m in got] == ["user", "assistant", "tool"]
    assert got[1]["content"] == "Waiting." and got[1]["tool_calls"][0]["id"] == "call_1"


def test_many_turns_keep_every_call_and_never_send_reasoning_as_text() -> None:
    # peers' bug #2: replay of function_call/reasoning items over several turns
    turn2 = {"role": "user", "content": "And Oslo?"}
    fc3 = {**FC1, "id": "fc_3", "call_id": "call_3", "arguments": '{"city":"Oslo"}'}
    out3 = {**OUT1, "call_id": "call_3", "output": "2C"}
    answer = {"role": "assistant", "content": "Paris 18C."}
    items = [USER, RS, FC1, OUT1, answer, turn2, RS | {"id": "rs_2"}, fc3, out3]
    got = messages(input=items)
    assert [m["role"] for m in got] == [
        "user",
        "assistant",
        "tool",
        "assistant",
        "user",
        "assistant",
        "tool",
    ]
    assert got[1] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "weather", "arguments": '{"city":"Paris"}'},
            }
        ],
    }
    assert got[5]["tool_calls"][0]["id"] == "call_3" and got[6]["tool_call_id"] == "call_3"
    assert "SECRET" not in json.dumps(got)
    # the items keep the reasoning and the given ids
    ids = [item["id"] for item in call(input=items).input_items]
    assert ids[1] == "rs_1" and ids[2] == "fc_1" and ids[7] == "fc_3"


def test_a_list_output_is_flattened_to_text_and_its_image_follows_the_tools() -> None:
    # peers' bug #3: function_call_output.output as a list of parts
    out = {
        **OUT1,
        "output": [
            {"type": "input_text", "text": "line 1"},
            {"type": "input_image", "image_url": "data:image/png;base64,AA=="},
            {"type": "input_text", "text": "line 2"},
        ],
    }
    got = messages(input=[USER, FC1, FC2, out, OUT2, {"role": "user", "content": "next"}])
    assert got[2] == {"role": "tool", "tool_call_id": "call_1", "content": "line 1\nline 2"}
    assert got[3] == {"role": "tool", "tool_call_id": "call_2", "content": "21C"}
    assert got[4] == {
        "role": "user",
        "content": [
            {
                "type": "image_url",
                "image_url": {"url": "data:image/png;base64,AA==", "detail": "auto"},
            }
        ],
    }
    assert got[5] == {"role": "user", "content": "next"}


def test_custom_tool_items_are_replayed_like_function_calls() -> None:
    ctc = {
        "type": "custom_tool_call",
        "call_id": "call_p",
        "name": "apply_patch",
        "input": "*** Begin",
    }
    cto = {"type": "custom_tool_call_output", "call_id": "call_p", "output": "Done"}
    result = call(input=[USER, ctc, cto], tools=[CUSTOM])
    got = result.chat["messages"]
    assert got[1]["tool_calls"][0]["function"] == {
        "name": "apply_patch",
        "arguments": '{"input":"*** Begin"}',
    }
    assert got[2] == {"role": "tool", "tool_call_id": "call_p", "content": "Done"}
    assert result.input_items[1]["id"].startswith("ctc_")


def test_every_meaningful_field_reaches_the_chat_request() -> None:
    # peers' bugs #4 and #6: nothing that changes the answer is dropped
    schema = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}
    result = call(
        tools=[
            {
                "type": "function",
                "name": "f",
                "description": "F.",
                "parameters": {"type": "object", "properties": {}},
                "strict": True,
            }
        ],
        tool_choice="required",
        parallel_tool_calls=False,
        max_output_tokens=100,
        temperature=0.5,
        top_p=0.8,
        top_logprobs=2,
        reasoning={"effort": "high", "summary": "detailed"},
        text={"format": {"type": "json_schema", "name": "out", "schema": schema, "strict": True}},
        prompt_cache_key="sess",
        user="u",
        safety_identifier="sid",
        truncation="auto",
        include=["reasoning.encrypted_content"],
        service_tier="flex",
        max_tool_calls=3,
        metadata={"a": "b"},
        stream=True,
        stream_options={"include_obfuscation": False},
        store=False,
        background=True,
    )
    chat = result.chat
    assert chat["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "f",
                "description": "F.",
                "parameters": {"type": "object", "properties": {}},
                "strict": True,
            },
        }
    ]
    assert chat["tool_choice"] == "required" and chat["parallel_tool_calls"] is False
    assert chat["max_tokens"] == 100 and chat["temperature"] == 0.5 and chat["top_p"] == 0.8
    assert chat["logprobs"] is True and chat["top_logprobs"] == 2
    assert chat["reasoning_effort"] == "high"
    assert chat["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "out", "schema": schema, "strict": True},
    }
    assert chat["prompt_cache_key"] == "sess" and chat["user"] == "u"
    assert chat["safety_identifier"] == "sid"
    # hints: echoed, not forwarded
    for hint in ("include", "service_tier", "max_tool_calls", "metadata", "truncation", "store"):
        assert hint not in chat
    settings = result.settings
    assert settings["service_tier"] == "flex" and settings["max_tool_calls"] == 3
    assert settings["text"]["format"]["name"] == "out"
    assert (result.stream, result.store, result.background) == (True, False, True)


def test_named_and_allowed_tool_choices() -> None:
    tools = [{"type": "function", "name": "f"}, {"type": "function", "name": "g"}]
    named = call(tools=tools, tool_choice={"type": "function", "name": "g"}).chat
    assert named["tool_choice"] == {"type": "function", "function": {"name": "g"}}
    allowed = call(
        tools=tools,
        tool_choice={
            "type": "allowed_tools",
            "mode": "auto",
            "tools": [{"type": "function", "name": "f"}],
        },
    ).chat
    assert allowed["tool_choice"] == {
        "type": "allowed_tools",
        "allowed_tools": {
            "mode": "auto",
            "tools": [{"type": "function", "function": {"name": "f"}}],
        },
    }


def test_without_tools_auto_choices_are_not_forwarded() -> None:
    chat = call(tool_choice="auto", parallel_tool_calls=True, tools=[]).chat
    assert "tool_choice" not in chat and "parallel_tool_calls" not in chat and "tools" not in chat


def test_json_object_format() -> None:
    assert call(text={"format": {"type": "json_object"}}).chat["response_format"] == {
        "type": "json_object"
    }
    assert "response_format" not in call(text={"format": {"type": "text"}}).chat


def test_unknown_fields_are_listed_not_forwarded() -> None:
    result = call(some_new_hint=1)
    assert result.ignored == ("some_new_hint",) and "some_new_hint" not in result.chat


# --- requests: previous_response_id history -------------------------------------------------------


def test_history_comes_first_and_only_this_requests_instructions_apply() -> None:
    history = [
        {
            "type": "message",
            "id": "msg_u",
            "role": "user",
            "content": [{"type": "input_text", "text": "Q1"}],
        },
        RS,
        FC1,
    ]
    result = from_request(
        {
            "model": "m",
            "input": [OUT1],
            "instructions": "New rules.",
            "previous_response_id": "resp_0",
        },
        history,
    )
    assert result.chat["messages"] == [
        {"role": "system", "content": "New rules."},
        {"role": "user", "content": "Q1"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "weather", "arguments": '{"city":"Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
    ]
    assert result.previous_response_id == "resp_0"
    # only this request's input is its input items
    assert [item["type"] for item in result.input_items] == ["function_call_output"]


def test_a_conversation_round_trip_through_the_builder() -> None:
    first = call(input="Weather?", tools=[{"type": "function", "name": "weather"}])
    response = fold_response(
        "resp_1",
        "m",
        1,
        first,
        [
            reasoning("hmm"),
            calls(tool_call_delta(0, id="call_9", name="weather", arguments="{}")),
            finish_chunk(META, "tool_calls"),
        ],
    )
    history = first.input_items + response["output"]
    follow = {"type": "function_call_output", "call_id": "call_9", "output": "sunny"}
    second = from_request(
        {"model": "m", "input": [follow], "previous_response_id": "resp_1"}, history
    )
    got = second.chat["messages"]
    assert [m["role"] for m in got] == ["user", "assistant", "tool"]
    assert got[1]["tool_calls"][0]["id"] == "call_9" and got[2]["tool_call_id"] == "call_9"


def test_every_output_item_kind_replays_as_history() -> None:
    first = call(input="Go", tools=[CUSTOM])
    builder = ResponseBuilder("resp_1", "m", 1, first, reasoning="summary")
    builder.start()
    builder.feed(
        [
            reasoning("plan"),
            delta_chunk(META, {"refusal": "not that"}),
            text("but this"),
            calls(tool_call_delta(0, id="call_p", name="apply_patch", arguments='{"input":"P"}')),
            finish_chunk(META, "tool_calls"),
        ]
    )
    builder.finish()
    output = builder.response["output"]
    assert [item["type"] for item in output] == ["reasoning", "message", "custom_tool_call"]
    answer = {"type": "custom_tool_call_output", "call_id": "call_p", "output": "ok"}
    second = from_request(
        {"model": "m", "input": [answer], "tools": [CUSTOM]}, first.input_items + output
    )
    assert second.chat["messages"] == [
        {"role": "user", "content": "Go"},
        {
            "role": "assistant",
            "content": "not that\nbut this",
            "tool_calls": [
                {
                    "id": "call_p",
                    "type": "function",
                    "function": {"name": "apply_patch", "arguments": '{"input":"P"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_p", "content": "ok"},
    ]


def test_an_item_reference_resolves_from_history() -> None:
    history = [{"type": "message", "id": "msg_a", "role": "user", "content": "Earlier"}]
    result = from_request(
        {
            "model": "m",
            "input": [
                {"type": "item_reference", "id": "msg_a"},
                {"role": "user", "content": "Now"},
            ],
        },
        history,
    )
    assert result.chat["messages"][-2:] == [
        {"role": "user", "content": "Earlier"},
        {"role": "user", "content": "Now"},
    ]
    assert result.input_items[0]["id"] == "msg_a"
    bad("input[0].id", input=[{"type": "item_reference", "id": "msg_zz"}])
