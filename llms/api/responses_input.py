"""A Responses request's `input` (and a stored conversation's items) -> chat `messages`.

Every item is first validated and normalised into its Responses item form (with an id: the one
given, else a new `msg_`/`fc_`/… id), which is what `GET /v1/responses/{id}/input_items` lists
and what a later `previous_response_id` replays; the chat messages are then built from the
normalised items, so a replayed conversation goes through exactly the same mapping.

The mapping (docs: responses-and-messages.md §1.2): `developer` -> `system`; `function_call`
items join the assistant message just before them (its text included) as `tool_calls`, keyed by
`call_id`; `function_call_output` -> a `tool` message, its output flattened to text (images and
files in an output follow the tool messages as one user message, since a tool message holds
text only); `reasoning` and built-in tool items are kept in the items but never sent as text. A
reasoning item with `encrypted_content` the gateway made (`signed_thinking`) goes to the next
assistant message's `thinking_blocks`, for the upstream that signed it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from llms.chunks import new_item_id
from llms.server.fields import fail, missing, string, wrong_type

ROLES = frozenset(("user", "system", "developer", "assistant"))
TEXT_PARTS = frozenset(("input_text", "output_text", "text"))
DETAILS = frozenset(("auto", "low", "high", "original"))
MEDIA_PARTS = frozenset(("input_image", "input_file"))
# Items of built-in tools (and Codex's compaction): they only come back from a native Responses
# upstream and mean nothing to a chat model; kept in the items, left out of the messages.
DROPPED_ITEMS = frozenset(
    (
        "reasoning",
        "compaction",
        "web_search_call",
        "file_search_call",
        "computer_call",
        "computer_call_output",
        "code_interpreter_call",
        "image_generation_call",
        "local_shell_call",
        "local_shell_call_output",
        "shell_call",
        "shell_call_output",
        "apply_patch_call",
        "apply_patch_call_output",
        "mcp_list_tools",
        "mcp_approval_request",
        "mcp_approval_response",
        "mcp_call",
        "tool_search_call",
        "tool_search_output",
    )
)
CALLS = {"function_call": "fc_", "custom_tool_call": "ctc_"}
OUTPUTS = {"function_call_output": "fco_", "custom_tool_call_output": "ctco_"}


def from_input(
    value: Any, history: list[dict[str, Any]] | None = None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[str]]:
    """(the chat messages of `history` + `value`, this request's input as normalised items,
    the Responses path each message came from: `input[i]` or `history[i]`).

    `value` is the request's `input`: a string (one user message) or a list of items.
    """
    if isinstance(value, str):
        if not history:  # one user message, as the general path below would make it
            item = {
                "id": new_item_id("msg_"),
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": value}],
                "status": "completed",
            }
            return [{"role": "user", "content": value}], [item], ["input[0]"]
        value = [{"type": "message", "role": "user", "content": value}]
    elif value is None:
        raise missing("input")
    elif not isinstance(value, list):
        raise wrong_type("input", "a string or an array of items", value)
    known = {
        item["id"]: item
        for item in history or ()
        if isinstance(item, dict) and isinstance(item.get("id"), str)
    }
    chat = _Chat()
    for i, item in enumerate(history or ()):
        chat.add(normalised(item, f"history[{i}]", {}), f"history[{i}]")
    items = []
    for i, item in enumerate(value):
        where = f"input[{i}]"
        item = normalised(item, where, known)
        items.append(item)
        chat.add(item, where)
    chat.close()
    return chat.messages, items, chat.origins


def normalised(item: Any, where: str, known: Mapping[str, dict[str, Any]]) -> dict[str, Any]:
    """One input item, validated, in its Responses form with an id; `item_reference`s resolved
    from `known` (the stored conversation's items by id)."""
    if not isinstance(item, dict):
        raise wrong_type(where, "an object", item)
    kind = item.get("type")
    if kind is None or kind == "message":
        return _message(item, where)
    if not isinstance(kind, str):
        raise wrong_type(f"{where}.type", "a string", kind)
    if kind in CALLS:
        return _call(item, kind, where)
    if kind in OUTPUTS:
        return _output(item, kind, where)
    if kind == "item_reference":
        string(item.get("id"), f"{where}.id", required=True)
        found = known.get(item["id"])
        if found is None:
            raise fail(f"{where}.id", f"Item with id '{item['id']}' not found.")
        return normalised(found, where, {})
    if kind == "reasoning":
        return _reasoning(item, where)
    if kind in DROPPED_ITEMS:  # kept as given: only a native Responses upstream reads them
        string(item.get("id"), f"{where}.id")
        return {**item, "id": item.get("id") or new_item_id("item_")}
    raise fail(f"{where}.type", f"Invalid '{where}.type': unknown item type '{kind}'.")


def _reasoning(item: Mapping[str, Any], where: str) -> dict[str, Any]:
    """A reasoning item: its summary and content texts; never sent to a chat model."""
    string(item.get("id"), f"{where}.id")
    string(item.get("encrypted_content"), f"{where}.encrypted_content")
    out: dict[str, Any] = {"id": item.get("id") or new_item_id("rs_"), "type": "reasoning"}
    for name, kinds in (("summary", ("summary_text",)), ("content", ("reasoning_text", "text"))):
        parts = item.get(name)
        if parts is None:
            continue
        if not isinstance(parts, list):
            raise wrong_type(f"{where}.{name}", "an array", parts)
        for j, part in enumerate(parts):
            if not isinstance(part, dict) or part.get("type") not in kinds:
                raise fail(
                    f"{where}.{name}[{j}]",
                    f"Invalid '{where}.{name}[{j}]': expected a {kinds[0]} part.",
                )
            string(part.get("text"), f"{where}.{name}[{j}].text", required=True)
        out[name] = [{"type": part["type"], "text": part["text"]} for part in parts]
    out.setdefault("summary", [])
    if item.get("encrypted_content") is not None:
        out["encrypted_content"] = item["encrypted_content"]
    return out


def _message(item: Mapping[str, Any], where: str) -> dict[str, Any]:
    role = item.get("role")
    if role is None:
        raise missing(f"{where}.role")
    if not isinstance(role, str) or role not in ROLES:
        raise fail(
            f"{where}.role",
            f"Invalid '{where}.role': expected one of assistant, developer, system, user.",
        )
    string(item.get("id"), f"{where}.id")
    content = item.get("content")
    if content is None:
        raise missing(f"{where}.content")
    if isinstance(content, str):
        kind = "output_text" if role == "assistant" else "input_text"
        content = [{"type": kind, "text": content}]
    elif not isinstance(content, list):
        raise wrong_type(f"{where}.content", "a string or an array of content parts", content)
    parts = [_part(part, role, f"{where}.content[{j}]") for j, part in enumerate(content)]
    out: dict[str, Any] = {
        "id": item.get("id") or new_item_id("msg_"),
        "type": "message",
        "role": role,
        "content": parts,
        "status": "completed",
    }
    if isinstance(item.get("phase"), str):  # Codex's commentary/final_answer label: kept
        out["phase"] = item["phase"]
    return out


def _part(part: Any, role: str, where: str) -> dict[str, Any]:
    if not isinstance(part, dict) or not isinstance(part.get("type"), str):
        raise fail(where, f"Invalid '{where}': expected a content part with a 'type'.")
    kind = part["type"]
    if kind in TEXT_PARTS:
        string(part.get("text"), f"{where}.text", required=True)
        if role != "assistant":
            return {"type": "input_text", "text": part["text"]}
        annotations = part.get("annotations")
        return {
            "type": "output_text",
            "text": part["text"],
            "annotations": annotations if isinstance(annotations, list) else [],
        }
    if kind == "refusal" and role == "assistant":
        string(part.get("refusal"), f"{where}.refusal", required=True)
        return {"type": "refusal", "refusal": part["refusal"]}
    if kind in MEDIA_PARTS and role == "user":
        return media_part(part, where)
    if kind in MEDIA_PARTS or kind == "refusal":
        raise fail(f"{where}.type", f"Invalid '{where}.type': a {role} message takes no {kind}.")
    raise fail(f"{where}.type", f"Invalid '{where}.type': unknown content part type '{kind}'.")


def media_part(part: Mapping[str, Any], where: str) -> dict[str, Any]:
    """An `input_image` or `input_file` part, validated; a file id is a 400
    (the gateway serves no Files API), and so is a file URL (it fetches nothing)."""
    kind = part["type"]
    if (
        part.get("file_id") is not None
        and part.get("image_url" if kind == "input_image" else "file_data") is None
    ):
        raise fail(
            f"{where}.file_id",
            f"Invalid '{where}.file_id': file ids are not supported by this gateway; send the "
            f"{'image as a URL or data URL' if kind == 'input_image' else 'file as file_data'}.",
        )
    if kind == "input_image":
        string(part.get("image_url"), f"{where}.image_url", required=True)
        detail = part.get("detail")
        if detail is not None and (not isinstance(detail, str) or detail not in DETAILS):
            raise fail(f"{where}.detail", f"Invalid '{where}.detail': expected auto, low or high.")
        return {
            "type": kind,
            "image_url": part["image_url"],
            "detail": part.get("detail") or "auto",
        }
    if part.get("file_url") is not None:
        raise fail(
            f"{where}.file_url",
            f"Invalid '{where}.file_url': file URLs are not supported by this gateway; send "
            "the file as file_data.",
        )
    string(part.get("file_data"), f"{where}.file_data", required=True)
    string(part.get("filename"), f"{where}.filename")
    out = {"type": kind, "file_data": part["file_data"]}
    if part.get("filename") is not None:
        out["filename"] = part["filename"]
    return out


def _call(item: Mapping[str, Any], kind: str, where: str) -> dict[str, Any]:
    string(item.get("id"), f"{where}.id")
    string(item.get("call_id"), f"{where}.call_id", required=True)
    string(item.get("name"), f"{where}.name", required=True)
    field_name = "input" if kind == "custom_tool_call" else "arguments"
    string(item.get(field_name), f"{where}.{field_name}", required=True)
    out = {
        "id": item.get("id") or new_item_id(CALLS[kind]),
        "type": kind,
        "call_id": item["call_id"],
        "name": item["name"],
        field_name: item[field_name],
        "status": "completed",
    }
    if isinstance(item.get("namespace"), str):
        out["namespace"] = item["namespace"]
    return out


def _output(item: Mapping[str, Any], kind: str, where: str) -> dict[str, Any]:
    string(item.get("id"), f"{where}.id")
    string(item.get("call_id"), f"{where}.call_id", required=True)
    output = item.get("output")
    if output is None:
        raise missing(f"{where}.output")
    if isinstance(output, list):
        output = [_output_part(part, f"{where}.output[{j}]") for j, part in enumerate(output)]
    elif not isinstance(output, str):
        raise wrong_type(f"{where}.output", "a string or an array of content parts", output)
    return {
        "id": item.get("id") or new_item_id(OUTPUTS[kind]),
        "type": kind,
        "call_id": item["call_id"],
        "output": output,
        "status": "completed",
    }


def _output_part(part: Any, where: str) -> dict[str, Any]:
    if not isinstance(part, dict) or not isinstance(part.get("type"), str):
        raise fail(where, f"Invalid '{where}': expected a content part with a 'type'.")
    if part["type"] in TEXT_PARTS:
        string(part.get("text"), f"{where}.text", required=True)
        return {"type": "input_text", "text": part["text"]}
    if part["type"] in ("input_image", "input_file"):
        return media_part(part, where)
    raise fail(f"{where}.type", f"Invalid '{where}.type': unknown output part '{part['type']}'.")


def to_chat_part(part: Mapping[str, Any]) -> dict[str, Any]:
    """A normalised Responses content part -> its chat-completions content part."""
    kind = part["type"]
    if kind == "input_image":
        return {
            "type": "image_url",
            "image_url": {"url": part["image_url"], "detail": part["detail"]},
        }
    if kind == "input_file":
        file = {key: part[key] for key in ("file_data", "filename") if key in part}
        return {"type": "file", "file": file}
    return {"type": "text", "text": part.get("text", part.get("refusal", ""))}


# A reasoning item's `encrypted_content` for redacted thinking: the prefix, then the data. A
# signed thinking block's is its bare signature (Anthropic's and Google's are base64: no colon).
REDACTED = "redacted_thinking:"


def signed_thinking(block: Mapping[str, Any]) -> str | None:
    """The `encrypted_content` for a `thinking_blocks` entry; None if it holds nothing to
    replay."""
    kind = block.get("type")
    value = block.get("signature" if kind == "thinking" else "data")
    if not value or not isinstance(value, str):
        return None
    if kind == "thinking":
        return value
    return REDACTED + value if kind == "redacted_thinking" else None


def thinking_block(item: Mapping[str, Any]) -> dict[str, Any] | None:
    """The `thinking_blocks` entry a normalised reasoning item stands for; None without
    `encrypted_content`. Its text is its content (raw reasoning), else its summary."""
    encrypted = item.get("encrypted_content")
    if not isinstance(encrypted, str) or not encrypted:
        return None
    if encrypted.startswith(REDACTED):
        return {"type": "redacted_thinking", "data": encrypted.removeprefix(REDACTED)}
    parts = item.get("content") or item.get("summary") or ()
    text = "".join(part["text"] for part in parts)
    return {"type": "thinking", "thinking": text, "signature": encrypted}


@dataclass(slots=True)
class _Chat:
    """Normalised items -> chat messages, keeping every tool message paired with its call."""

    messages: list[dict[str, Any]] = field(default_factory=list)
    origins: list[str] = field(default_factory=list)
    # The assistant message that a following function_call joins; None after anything else.
    assistant: dict[str, Any] | None = None
    unanswered: dict[str, str] = field(default_factory=dict)
    calls: set[str] = field(default_factory=set)
    media: list[dict[str, Any]] = field(default_factory=list)
    media_where: str = ""
    # Signed thinking of reasoning items, for the assistant message that follows them.
    thinking: list[dict[str, Any]] = field(default_factory=list)

    def _append(self, message: dict[str, Any], where: str) -> None:
        self.messages.append(message)
        self.origins.append(where)

    def _sign(self, message: dict[str, Any]) -> None:
        if self.thinking:
            message.setdefault("thinking_blocks", []).extend(self.thinking)
            self.thinking = []

    def add(self, item: Mapping[str, Any], where: str) -> None:
        kind = item["type"]
        if kind == "message":
            message = _to_message(item)
            joined = self.assistant
            # Text after calls that await their outputs joins the calls' message: a message
            # between the calls and their tool messages would break the pairing.
            if (
                joined
                and joined.get("tool_calls")
                and message["role"] == "assistant"
                and isinstance(message["content"], str)
            ):
                texts = [joined["content"], message["content"]]
                joined["content"] = "\n".join(text for text in texts if text)
                self._sign(joined)
                return
            self._flush_media()
            self._append(message, where)
            self.assistant = message if message["role"] == "assistant" else None
            if self.assistant is not None:
                self._sign(self.assistant)
            else:
                self.thinking = []  # a user turn: the thinking of earlier turns is not needed
        elif kind in CALLS:
            self._call(item, where)
        elif kind in OUTPUTS:
            self._output(item, where)
        elif kind == "reasoning":
            block = thinking_block(item)
            if block is not None:
                self.thinking.append(block)
        # other built-in tool items: no chat equivalent, never sent as text

    def _call(self, item: Mapping[str, Any], where: str) -> None:
        if self.assistant is None:
            self._flush_media()
            self.assistant = {"role": "assistant", "content": None}
            self._append(self.assistant, where)
        self._sign(self.assistant)
        arguments = item["arguments"] if item["type"] == "function_call" else _custom_args(item)
        self.assistant.setdefault("tool_calls", []).append(
            {
                "id": item["call_id"],
                "type": "function",
                "function": {"name": item["name"], "arguments": arguments},
            }
        )
        self.calls.add(item["call_id"])
        self.unanswered[item["call_id"]] = where

    def _output(self, item: Mapping[str, Any], where: str) -> None:
        call_id = item["call_id"]
        if call_id not in self.calls:
            raise fail(
                f"{where}.call_id",
                f"No tool call found for function call output with call_id {call_id}.",
            )
        self.unanswered.pop(call_id, None)
        self.assistant = None
        output = item["output"]
        if isinstance(output, list):
            texts = [part["text"] for part in output if part["type"] == "input_text"]
            media = [to_chat_part(part) for part in output if part["type"] != "input_text"]
            self.media += media
            self.media_where = where if media else self.media_where
            if media and not texts:
                texts = ["(The tool's output is the attachment in the next message.)"]
            output = "\n".join(texts)
        self._append({"role": "tool", "tool_call_id": call_id, "content": output}, where)

    def _flush_media(self) -> None:
        # Media of tool outputs: after the run of tool messages, so that every tool message
        # still follows the assistant message that made its call.
        if self.media:
            self._append({"role": "user", "content": self.media}, self.media_where)
            self.media = []

    def close(self) -> None:
        self._flush_media()
        for call_id, where in self.unanswered.items():
            param = where if where.startswith("input") else "input"
            raise fail(param, f"No tool output found for function call {call_id}.")


def _custom_args(item: Mapping[str, Any]) -> str:
    return orjson.dumps({"input": item["input"]}).decode()


def _to_message(item: Mapping[str, Any]) -> dict[str, Any]:
    role = "system" if item["role"] == "developer" else item["role"]
    parts = item["content"]
    if all(part["type"] in ("input_text", "output_text", "refusal") for part in parts):
        texts = [part.get("text", part.get("refusal", "")) for part in parts]
        return {"role": role, "content": "\n".join(texts)}
    return {"role": role, "content": [to_chat_part(part) for part in parts]}
