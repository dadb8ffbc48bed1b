"""A Responses request's `tools` and `tool_choice` -> chat `tools` and `tool_choice`.

Function tools are flat in Responses (`{type, name, parameters…}`) and nested in chat. Custom
(freeform) tools become a function tool with one string parameter, `input`; the builder turns a
call of one back into a `custom_tool_call` item. A namespace's tools are offered by their own
names; their calls carry the namespace again. Built-in tools (web search, file search, code
interpreter, computer use, MCP, local shell…) are a 400 naming `tools[i].type`: only an
upstream that serves Responses itself can run them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from llms.server import fields
from llms.server.fields import fail, obj, required_obj, string

TOOL_CHOICES = frozenset(("none", "auto", "required"))
ALLOWED_MODES = frozenset(("auto", "required"))


def from_tools(
    value: Any,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[str]]:
    """(chat tools, the tools as the Response echoes them, the path of each chat tool).
    Built-in tools are a 400 naming `tools[i].type`: a chat upstream cannot run them."""
    tools = fields.array(value, "tools") or []
    chat: list[dict[str, Any]] = []
    echo: list[dict[str, Any]] = []
    origins: list[str] = []
    for i, tool in enumerate(tools):
        where = f"tools[{i}]"
        tool = required_obj(tool, where)
        kind = tool.get("type")
        string(kind, f"{where}.type", required=True)
        if kind == "namespace":
            string(tool.get("name"), f"{where}.name", required=True)
            inner = fields.array(tool.get("tools"), f"{where}.tools", required=True) or []
            members = [_tool(member, f"{where}.tools[{j}]") for j, member in enumerate(inner)]
            chat += [member[0] for member in members]
            origins += [f"{where}.tools[{j}]" for j in range(len(members))]
            echo.append({**tool, "tools": [member[1] for member in members]})
        else:
            function, echoed = _tool(tool, where)
            chat.append(function)
            echo.append(echoed)
            origins.append(where)
    return chat, echo, origins


def _tool(tool: Any, where: str) -> tuple[dict[str, Any], dict[str, Any]]:
    tool = required_obj(tool, where)
    kind = tool.get("type")
    string(kind, f"{where}.type", required=True)
    if kind not in ("function", "custom"):
        raise fail(
            f"{where}.type",
            f"Tool type '{kind}' is not supported for this model: it is a built-in tool that "
            "only a Responses upstream can run; only 'function' and 'custom' tools are "
            "translated.",
            "unsupported_value",
        )
    string(tool.get("name"), f"{where}.name", required=True, max_length=128)
    string(tool.get("description"), f"{where}.description")
    function: dict[str, Any] = {"name": tool["name"]}
    if kind == "function":
        obj(tool.get("parameters"), f"{where}.parameters")
        fields.boolean(tool.get("strict"), f"{where}.strict")
        for key in ("description", "parameters", "strict"):
            if tool.get(key) is not None:
                function[key] = tool[key]
        echoed = {
            "type": "function",
            "name": tool["name"],
            "description": tool.get("description"),
            "parameters": tool.get("parameters"),
            "strict": tool.get("strict"),
        }
        return {"type": "function", "function": function}, echoed
    # A custom (freeform) tool: one string parameter holds its whole input.
    function["description"] = _custom_description(tool, where)
    function["parameters"] = {
        "type": "object",
        "properties": {"input": {"type": "string", "description": "The tool's whole input."}},
        "required": ["input"],
        "additionalProperties": False,
    }
    return {"type": "function", "function": function}, dict(tool)


def _custom_description(tool: Mapping[str, Any], where: str) -> str:
    described: str = tool.get("description") or ""
    form = obj(tool.get("format"), f"{where}.format")
    if form is None or form.get("type") == "text":
        return described
    if form.get("type") != "grammar":
        raise fail(f"{where}.format.type", "Invalid custom tool format: expected text or grammar.")
    string(form.get("syntax"), f"{where}.format.syntax", required=True)
    string(form.get("definition"), f"{where}.format.definition", required=True)
    # A chat model cannot be held to a grammar; it is told the grammar instead.
    return (
        f"{described}\n\nThe input must match this {form['syntax']} grammar:\n{form['definition']}"
    ).strip()


def from_tool_choice(choice: Any) -> str | dict[str, Any] | None:
    """The chat `tool_choice` for a Responses one (validated)."""
    if choice is None or (isinstance(choice, str) and choice in TOOL_CHOICES):
        return choice
    if not isinstance(choice, dict):
        raise fail(
            "tool_choice",
            "Invalid 'tool_choice': expected 'none', 'auto', 'required' or an object.",
        )
    kind = choice.get("type")
    string(kind, "tool_choice.type", required=True)
    if kind in ("function", "custom"):
        string(choice.get("name"), "tool_choice.name", required=True)
        return {"type": "function", "function": {"name": choice["name"]}}
    if kind == "allowed_tools":
        mode = choice.get("mode")
        if mode is None:
            raise fields.missing("tool_choice.mode")
        if not isinstance(mode, str) or mode not in ALLOWED_MODES:
            raise fail("tool_choice.mode", "Invalid 'tool_choice.mode': expected auto or required.")
        tools = fields.array(choice.get("tools"), "tool_choice.tools", required=True) or []
        named = []
        for i, tool in enumerate(tools):
            tool = required_obj(tool, f"tool_choice.tools[{i}]")
            if tool.get("type") not in ("function", "custom"):
                raise _builtin_choice(f"tool_choice.tools[{i}].type", tool.get("type"))
            string(tool.get("name"), f"tool_choice.tools[{i}].name", required=True)
            named.append({"type": "function", "function": {"name": tool["name"]}})
        return {"type": "allowed_tools", "allowed_tools": {"mode": mode, "tools": named}}
    raise _builtin_choice("tool_choice.type", kind)


def _builtin_choice(param: str, kind: Any) -> Exception:
    return fail(
        param,
        f"Invalid '{param}': '{kind}' names a built-in tool, which this model cannot run.",
        "unsupported_value",
    )
