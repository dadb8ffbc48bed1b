"""llms.api.messages_request: a Messages request's fields translated to a chat request —
tools, tool_choice, thinking, output_config, dropped hints, and the 400s naming a field.

Shared helpers: tests/messages_support.py.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from llms.api.messages_request import from_request
from tests.messages_support import (
    refused,
    request,
    tool_turns,
)

# --- the request: tools and fields ----------------------------------------------------------------


def test_tools_become_function_tools() -> None:
    tools = [
        {
            "name": "Bash",
            "description": "Run a command",
            "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}},
            "cache_control": {"type": "ephemeral"},
        },
        {"type": "custom", "name": "noop", "input_schema": {"type": "object"}, "strict": True},
    ]
    call = request(tools=tools)
    assert call.chat["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "Bash",
                "description": "Run a command",
                "parameters": tools[0]["input_schema"],
            },
        },
        {
            "type": "function",
            "function": {"name": "noop", "parameters": {"type": "object"}, "strict": True},
        },
    ]
    assert "tool_choice" not in call.chat


@pytest.mark.parametrize(
    ("choice", "expected", "parallel"),
    [
        ({"type": "auto"}, "auto", None),
        ({"type": "any"}, "required", None),
        ({"type": "none"}, "none", None),
        ({"type": "tool", "name": "f"}, {"type": "function", "function": {"name": "f"}}, None),
        ({"type": "auto", "disable_parallel_tool_use": True}, "auto", False),
        ({"type": "any", "disable_parallel_tool_use": True}, "required", False),
    ],
)
def test_tool_choice_maps(choice: dict[str, Any], expected: Any, parallel: Any) -> None:
    call = request(tools=[{"name": "f", "input_schema": {"type": "object"}}], tool_choice=choice)
    assert call.chat["tool_choice"] == expected
    assert call.chat.get("parallel_tool_calls") == parallel


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"tools": [{"type": "web_search_20250305", "name": "web_search"}]}, "tools[0].type"),
        ({"tools": [{"type": "bash_20250124", "name": "bash"}]}, "tools[0].type"),
        ({"tools": [{"type": "code_execution_20250825", "name": "code"}]}, "tools[0].type"),
        ({"tools": [{"name": "f"}]}, "tools[0].input_schema"),
        ({"tools": [{"input_schema": {}}]}, "tools[0].name"),
        ({"tools": "f"}, "tools"),
        ({"tool_choice": {"type": "tool", "name": "f"}}, "tool_choice.name"),
        ({"tool_choice": {"type": "any"}}, "tool_choice"),
        ({"tool_choice": {"type": "sometimes"}}, "tool_choice.type"),
        ({"container": "cntr_1"}, "container"),
        ({"mcp_servers": [{"type": "url", "url": "https://m", "name": "m"}]}, "mcp_servers"),
        ({"max_tokens": None}, "max_tokens"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_tokens": "10"}, "max_tokens"),
        ({"model": None}, "model"),
        ({"temperature": 1.5}, "temperature"),
        ({"top_k": 1.5}, "top_k"),
        ({"stop_sequences": "###"}, "stop_sequences"),
        ({"stop_sequences": [1]}, "stop_sequences[0]"),
        ({"stream": "yes"}, "stream"),
        ({"metadata": {"user_id": 5}}, "metadata.user_id"),
        ({"thinking": {"type": "enabled"}}, "thinking.budget_tokens"),
        ({"thinking": {"type": "enabled", "budget_tokens": 512}}, "thinking.budget_tokens"),
        ({"thinking": {"type": "sometimes"}}, "thinking.type"),
        ({"output_config": {"effort": "extreme"}}, "output_config.effort"),
        ({"output_config": {"format": {"type": "xml"}}}, "output_config.format.type"),
    ],
)
def test_invalid_or_unhonourable_fields_are_400s_naming_them(
    body: dict[str, Any], param: str
) -> None:
    refused(param, **body)


@pytest.mark.parametrize(
    ("thinking", "effort"),
    [
        ({"type": "enabled", "budget_tokens": 1024}, "low"),
        ({"type": "enabled", "budget_tokens": 4095}, "low"),
        ({"type": "enabled", "budget_tokens": 4096}, "medium"),
        ({"type": "enabled", "budget_tokens": 16384}, "high"),
        ({"type": "enabled", "budget_tokens": 64000}, "high"),
        ({"type": "adaptive"}, None),
        ({"type": "disabled"}, None),
    ],
)
def test_thinking_becomes_reasoning_effort(thinking: dict[str, Any], effort: Any) -> None:
    assert request(thinking=thinking).chat.get("reasoning_effort") == effort


def test_output_config_effort_and_format() -> None:
    call = request(
        thinking={"type": "adaptive"},
        output_config={
            "effort": "max",
            "format": {"type": "json_schema", "schema": {"type": "object"}},
        },
    )
    assert call.chat["reasoning_effort"] == "max"
    assert call.chat["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "output", "schema": {"type": "object"}, "strict": True},
    }
    assert (
        "reasoning_effort"
        not in request(thinking={"type": "disabled"}, output_config={"effort": "high"}).chat
    )


def test_hints_a_chat_model_cannot_use_are_dropped() -> None:
    call = request(
        cache_control={"type": "ephemeral"},
        context_management={"edits": [{"type": "clear_thinking_20251015"}]},
        service_tier="auto",
        inference_geo="us",
        speed="fast",
        metadata={"tenant": "x"},
        some_future_field=1,
    )
    assert call.chat == request().chat
    assert call.ignored == ("some_future_field",)


def test_a_claude_code_request_translates() -> None:
    """The shape Claude Code sends on every turn (responses-and-messages.md §2.4)."""
    body = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 32000,
        "stream": True,
        "system": [
            {"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1"},
            {
                "type": "text",
                "text": "You are Claude Code.",
                "cache_control": {"type": "ephemeral"},
            },
        ],
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "<system-reminder>ctx</system-reminder>"},
                    {"type": "text", "text": "list files", "cache_control": {"type": "ephemeral"}},
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "Use Bash.", "signature": "EqQB"},
                    {
                        "type": "tool_use",
                        "id": "toolu_01",
                        "name": "Bash",
                        "input": {"command": "ls"},
                    },
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_01",
                        "content": "a.txt\nb.txt",
                        "cache_control": {"type": "ephemeral"},
                    }
                ],
            },
        ],
        "tools": [
            {
                "name": "Bash",
                "description": "Runs a shell command",
                "input_schema": {
                    "type": "object",
                    "properties": {"command": {"type": "string"}},
                    "required": ["command"],
                    "additionalProperties": False,
                    "$schema": "http://json-schema.org/draft-07/schema#",
                },
            }
        ],
        "metadata": {"user_id": "user_abc_account__session_1234"},
        "thinking": {"type": "enabled", "budget_tokens": 31999},
        "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
        "temperature": 1,
    }
    call = from_request(body)
    assert call.stream and call.ignored == ()
    chat = call.chat
    assert [m["role"] for m in chat["messages"]] == ["system", "user", "assistant", "tool"]
    assert chat["messages"][3] == {
        "role": "tool",
        "tool_call_id": "toolu_01",
        "content": "a.txt\nb.txt",
    }
    assert chat["reasoning_effort"] == "high" and chat["user"].startswith("user_abc")
    assert chat["tools"][0]["function"]["name"] == "Bash"
    assert "cache_control" not in orjson.dumps(chat).decode()
    assert "context_management" not in chat


def test_chat_params_map_back_to_messages_paths() -> None:
    messages = tool_turns(
        {"type": "tool_result", "tool_use_id": "toolu_a", "content": "x"},
        {"type": "tool_result", "tool_use_id": "toolu_b", "content": "y"},
    )
    call = request(system="S", messages=messages, tools=[{"name": "f", "input_schema": {}}])
    assert call.messages_param("messages[0].content") == "system"
    assert call.messages_param("messages[2]") == "messages[1]"
    assert call.messages_param("messages[3].content") == "messages[2].content[0]"
    assert call.messages_param("messages[99]") == "messages"
    assert call.messages_param("tools[0].function.parameters") == "tools[0].input_schema"
    assert call.messages_param("stop") == "stop_sequences"
    assert call.messages_param("reasoning_effort") == "thinking"
    assert call.messages_param("temperature") == "temperature"
    assert call.messages_param(None) is None
