"""Validation of a chat request's `tools` and `tool_choice`."""

from __future__ import annotations

from typing import Any

from llms.errors import InvalidRequest
from llms.server import fields
from llms.server.fields import fail, obj, required_obj, string

TOOL_CHOICES = frozenset(("none", "auto", "required"))
ALLOWED_TOOLS_MODES = frozenset(("auto", "required"))
MAX_TOOL_NAME = 256


def check_tools(value: Any) -> None:
    tools = fields.array(value, "tools")
    for i, tool in enumerate(tools or ()):
        where = f"tools[{i}]"
        if not isinstance(tool, dict) or not isinstance(tool.get("type"), str):
            raise fail(
                where, f"Invalid '{where}': expected an object with a 'type'.", "invalid_type"
            )
        if tool["type"] == "function":
            function = tool.get("function")
            if not isinstance(function, dict) or not isinstance(function.get("name"), str):
                raise fields.missing(f"{where}.function.name")
            string(function["name"], f"{where}.function.name", max_length=MAX_TOOL_NAME)
            string(function.get("description"), f"{where}.function.description")
            obj(function.get("parameters"), f"{where}.function.parameters")
            fields.boolean(function.get("strict"), f"{where}.function.strict")
        elif tool["type"] == "custom":
            custom = required_obj(tool.get("custom"), f"{where}.custom")
            string(custom.get("name"), f"{where}.custom.name", required=True)


def check_tool_choice(choice: Any) -> None:
    """ "none" | "auto" | "required", or a named function, custom tool or allowed-tools list."""
    if choice is None:
        return
    if isinstance(choice, str):
        if choice not in TOOL_CHOICES:
            raise _bad_choice()
        return
    if not isinstance(choice, dict):
        raise _bad_choice()
    kind = choice.get("type")
    string(kind, "tool_choice.type", required=True)
    if kind == "function":
        function = required_obj(choice.get("function"), "tool_choice.function")
        string(function.get("name"), "tool_choice.function.name", required=True)
    elif kind == "custom":
        custom = required_obj(choice.get("custom"), "tool_choice.custom")
        string(custom.get("name"), "tool_choice.custom.name", required=True)
    elif kind == "allowed_tools":
        allowed = required_obj(choice.get("allowed_tools"), "tool_choice.allowed_tools")
        mode = allowed.get("mode")
        if not isinstance(mode, str) or mode not in ALLOWED_TOOLS_MODES:
            raise fail(
                "tool_choice.allowed_tools.mode",
                "Invalid 'tool_choice.allowed_tools.mode': expected 'auto' or 'required'.",
            )
        tools = fields.array(allowed.get("tools"), "tool_choice.allowed_tools.tools", required=True)
        for i, tool in enumerate(tools or ()):
            where = f"tool_choice.allowed_tools.tools[{i}]"
            tool = required_obj(tool, where)
            string(tool.get("type"), f"{where}.type", required=True)
            if tool["type"] == "function":
                function = required_obj(tool.get("function"), f"{where}.function")
                string(function.get("name"), f"{where}.function.name", required=True)


def _bad_choice() -> InvalidRequest:
    return fail(
        "tool_choice",
        "Invalid 'tool_choice': expected 'none', 'auto', 'required' or an object.",
    )
