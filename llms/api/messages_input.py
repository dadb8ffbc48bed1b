"""A Messages request's `system` and `messages` -> chat-completions `messages`.

The mapping (docs: responses-and-messages.md §2.1): `system` (a string or text blocks) -> the
first `system` message; a `role: "system"` message in `messages` (the beta Claude Code sends
after the user's turn) -> a `system` message in its place (after the tool results when it sits
between a call and its result; left out once its `clear_at: "next_user_message"` has passed;
`tool_addition`/`tool_removal` blocks are a 400); text blocks -> text (several joined with a
newline, one string when a message holds text only); `image` (base64 or URL) -> an
`image_url` part; a plain-text `document` -> text and a base64 PDF -> a `file` part; assistant
`tool_use` -> `tool_calls`
(`arguments` = the JSON of `input`, the id kept); each user `tool_result` -> its own `tool`
message, placed right after the assistant message that made the call, in the order of the calls
(pairing by `tool_use_id`), before the rest of that user turn (`is_error` prefixes its text with
`Error: `; images in a result follow the tool messages in a user message, as a tool message holds
text only). `thinking` and `redacted_thinking` blocks of earlier turns are never sent as text:
they are kept, signatures intact, in `Conversation.thinking` (see `with_thinking_blocks`).

Hints are dropped (`cache_control` on any block, `citations` of earlier answers); what would
change the meaning and cannot be honoured is a 400 naming it: a server tool's blocks, a citation
request on a document, a file id, a URL document, container uploads.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from llms.server import fields
from llms.server.fields import fail, missing, required_obj, string, wrong_type

THINKING_BLOCKS = "thinking_blocks"
"""The extension field of a chat assistant message that carries its Anthropic thinking blocks,
`[{"type": "thinking", "thinking", "signature"} | {"type": "redacted_thinking", "data"}]`
verbatim and in order (LiteLLM's name and shape), for an adapter that can replay them."""

IMAGE_TYPES = frozenset(("image/jpeg", "image/png", "image/gif", "image/webp"))
ROLES = frozenset(("user", "assistant", "system"))
ERROR_PREFIX = "Error: "
# Blocks only Anthropic's own server tools produce: a chat model cannot be shown them truthfully.
SERVER_BLOCKS = frozenset(
    (
        "server_tool_use",
        "web_search_tool_result",
        "web_fetch_tool_result",
        "code_execution_tool_result",
        "bash_code_execution_tool_result",
        "text_editor_code_execution_tool_result",
        "tool_search_tool_result",
        "mcp_tool_use",
        "mcp_tool_result",
        "container_upload",
    )
)


@dataclass(slots=True)
class Conversation:
    """The chat messages of a Messages request, the request path each came from, and the
    thinking blocks of each assistant turn by the index of its chat message (a turn made of
    thinking alone has no chat message: its blocks are under the index of the next one)."""

    messages: list[dict[str, Any]] = field(default_factory=list)
    origins: list[str] = field(default_factory=list)
    thinking: dict[int, list[dict[str, Any]]] = field(default_factory=dict)


def from_messages(system: Any, value: Any) -> Conversation:
    """Validate `system` and `messages` and translate them (a 400 names the bad path)."""
    out = Conversation()
    text = from_system(system)
    if text:
        out.messages.append({"role": "system", "content": text})
        out.origins.append("system")
    items = fields.array(value, "messages", required=True) or []
    if not items:
        raise fail("messages", "messages: at least one message is required.")
    if all(_role_of(item) == "system" for item in items):
        raise fail(
            "messages[0].role",
            "messages[0].role: the conversation needs a 'user' or 'assistant' message, not "
            "only 'system' ones.",
        )
    pending: dict[str, tuple[str, int]] = {}  # unanswered tool_use id -> (its path, call order)
    held: list[dict[str, Any]] = []  # thinking blocks of a turn that became no chat message
    # `role: "system"` messages between a tool_use and its tool_result, placed after the results
    deferred: list[tuple[str, str]] = []
    last_user = max((i for i, m in enumerate(items) if _role_of(m) == "user"), default=-1)
    for i, item in enumerate(items):
        where = f"messages[{i}]"
        message = required_obj(item, where)
        role = message.get("role")
        if role not in ROLES:
            if role is None:
                raise missing(f"{where}.role")
            raise fail(f"{where}.role", f"{where}.role: expected 'user', 'assistant' or 'system'.")
        if role == "system":
            text = _system_message(message, where, cleared=i < last_user)
            if text and pending:
                deferred.append((where, text))
            elif text:
                out.messages.append({"role": "system", "content": text})
                out.origins.append(where)
            continue
        blocks = _blocks(message.get("content"), f"{where}.content")
        if pending and role == "assistant":
            unanswered = next(iter(pending.values()))[0]
            raise fail(
                unanswered,
                f"{unanswered}: tool_use ids were found without tool_result blocks immediately "
                "after it.",
            )
        if role == "assistant":
            pending = _assistant(out, blocks, where, held)
        else:
            _user(out, blocks, where, pending)
            pending = {}
            for path, text in deferred:
                out.messages.append({"role": "system", "content": text})
                out.origins.append(path)
            deferred = []
    if pending:
        # A conversation may end with the assistant's turn (a prefill), but not with calls.
        unanswered = next(iter(pending.values()))[0]
        raise fail(unanswered, f"{unanswered}: a tool_use must be answered by a tool_result.")
    if held:
        out.thinking.setdefault(len(out.messages), []).extend(held)
    return out


def from_system(value: Any, at: str = "system") -> str:
    """`system` (or a system message's content at `at`) as one text (text blocks joined with a
    newline); "" when absent."""
    if value is None or isinstance(value, str):
        return value or ""
    if not isinstance(value, list):
        raise wrong_type(at, "a string or an array of text blocks", value)
    texts = []
    for j, block in enumerate(value):
        where = f"{at}[{j}]"
        block = required_obj(block, where)
        if block.get("type") in ("tool_addition", "tool_removal"):
            raise fail(
                f"{where}.type",
                f"{where}.type: mid-conversation tool changes ('{block['type']}') are not "
                "supported by this gateway; send the tools in `tools`.",
            )
        if block.get("type") != "text":
            raise fail(f"{where}.type", f"{where}.type: system blocks must be text blocks.")
        string(block.get("text"), f"{where}.text", required=True)
        _no_citation_request(block, where)
        texts.append(block["text"])
    return "\n".join(texts)


def _role_of(item: Any) -> Any:
    return item.get("role") if isinstance(item, dict) else None


def _system_message(message: Mapping[str, Any], where: str, *, cleared: bool) -> str:
    """A `role: "system"` message's text (Claude Code sends its environment as one after the
    user's turn); "" when it is empty or its `clear_at: "next_user_message"` has passed (a later
    user message exists). Its per-turn `output_config` is a hint, dropped."""
    clear_at = message.get("clear_at")
    if clear_at not in (None, "never", "next_user_message"):
        raise fail(
            f"{where}.clear_at", f"{where}.clear_at: expected 'never' or 'next_user_message'."
        )
    text = from_system(message.get("content"), f"{where}.content")
    return "" if cleared and clear_at == "next_user_message" else text


def _blocks(value: Any, where: str) -> list[tuple[str, Mapping[str, Any]]]:
    if isinstance(value, str):
        return [(f"{where}", {"type": "text", "text": value})]
    if value is None:
        raise missing(where)
    if not isinstance(value, list):
        raise wrong_type(where, "a string or an array of content blocks", value)
    out = []
    for j, block in enumerate(value):
        path = f"{where}[{j}]"
        block = required_obj(block, path)
        kind = block.get("type")
        string(kind, f"{path}.type", required=True)
        if kind in SERVER_BLOCKS:
            raise _server_block(path, kind)
        out.append((path, block))
    return out


def _assistant(
    out: Conversation,
    blocks: list[tuple[str, Mapping[str, Any]]],
    where: str,
    held: list[dict[str, Any]],
) -> dict[str, tuple[str, int]]:
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    pending: dict[str, tuple[str, int]] = {}
    for path, block in blocks:
        kind = block["type"]
        if kind == "text":
            string(block.get("text"), f"{path}.text", required=True)
            texts.append(block["text"])
        elif kind == "tool_use":
            string(block.get("id"), f"{path}.id", required=True)
            string(block.get("name"), f"{path}.name", required=True)
            arguments = block.get("input")
            if not isinstance(arguments, dict):
                raise wrong_type(f"{path}.input", "an object", arguments)
            if block["id"] in pending:
                raise fail(f"{path}.id", f"{path}.id: tool_use ids must be unique.")
            pending[block["id"]] = (path, len(calls))
            calls.append(
                {
                    "id": block["id"],
                    "type": "function",
                    "function": {
                        "name": block["name"],
                        "arguments": orjson.dumps(arguments).decode(),
                    },
                }
            )
        elif kind == "thinking":
            string(block.get("thinking"), f"{path}.thinking", required=True)
            string(block.get("signature"), f"{path}.signature")
            kept = {"type": "thinking", "thinking": block["thinking"]}
            if block.get("signature") is not None:
                kept["signature"] = block["signature"]
            held.append(kept)
        elif kind == "redacted_thinking":
            string(block.get("data"), f"{path}.data", required=True)
            held.append({"type": "redacted_thinking", "data": block["data"]})
        else:
            raise fail(
                f"{path}.type", f"{path}.type: an assistant message takes no '{kind}' block."
            )
    if not texts and not calls:
        return pending  # thinking alone (or nothing): no chat message; the blocks are held
    message: dict[str, Any] = {"role": "assistant", "content": "\n".join(texts) if texts else None}
    if calls:
        message["tool_calls"] = calls
    if held:
        out.thinking[len(out.messages)] = list(held)
        held.clear()
    out.messages.append(message)
    out.origins.append(where)
    return pending


def _user(
    out: Conversation,
    blocks: list[tuple[str, Mapping[str, Any]]],
    where: str,
    pending: Mapping[str, tuple[str, int]],
) -> None:
    answers: dict[str, tuple[int, dict[str, Any], str]] = {}
    media: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for path, block in blocks:
        kind = block["type"]
        if kind == "tool_result":
            string(block.get("tool_use_id"), f"{path}.tool_use_id", required=True)
            call_id: str = block["tool_use_id"]
            if call_id not in pending:
                raise fail(
                    f"{path}.tool_use_id",
                    f"{path}.tool_use_id: unexpected tool_use_id '{call_id}': no tool_use with "
                    "this id in the assistant message just before.",
                )
            if call_id in answers:
                raise fail(
                    f"{path}.tool_use_id",
                    f"{path}.tool_use_id: tool_use '{call_id}' already has a tool_result.",
                )
            text, images = _result(block, path)
            media += images
            answers[call_id] = (
                pending[call_id][1],
                {"role": "tool", "tool_call_id": call_id, "content": text},
                path,
            )
        elif kind in ("thinking", "redacted_thinking", "tool_use"):
            raise fail(f"{path}.type", f"{path}.type: a user message takes no '{kind}' block.")
        else:
            parts.append(_part(block, path))
    for call_id, (call_path, _) in pending.items():
        if call_id not in answers:
            raise fail(
                call_path,
                f"{call_path}: tool_use id '{call_id}' was found without a tool_result block "
                "immediately after it.",
            )
    for _, message, path in sorted(answers.values(), key=lambda answer: answer[0]):
        out.messages.append(message)
        out.origins.append(path)
    content = media + parts
    if not content:
        return
    if all(part["type"] == "text" for part in content):
        out.messages.append({"role": "user", "content": "\n".join(p["text"] for p in content)})
    else:
        out.messages.append({"role": "user", "content": content})
    out.origins.append(where)


def _result(block: Mapping[str, Any], where: str) -> tuple[str, list[dict[str, Any]]]:
    """A tool_result's text, and the images it holds."""
    fields.boolean(block.get("is_error"), f"{where}.is_error")
    content = block.get("content")
    texts: list[str] = []
    media: list[dict[str, Any]] = []
    if isinstance(content, str):
        texts.append(content)
    elif content is not None:
        for path, inner in _blocks(content, f"{where}.content"):
            part = _part(inner, path)
            if part["type"] == "text":
                texts.append(part["text"])
            else:
                media.append(part)
    if media and not texts:
        texts.append("(The tool's output is the attachment in the next message.)")
    text = "\n".join(texts)
    if block.get("is_error"):
        text = ERROR_PREFIX + text
    return text, media


def _part(block: Mapping[str, Any], where: str) -> dict[str, Any]:
    """A user content block (text, image, document, search result) -> a chat content part."""
    kind = block["type"]
    if kind == "text":
        string(block.get("text"), f"{where}.text", required=True)
        _no_citation_request(block, where)
        return {"type": "text", "text": block["text"]}
    if kind == "image":
        return {"type": "image_url", "image_url": {"url": _image_url(block, where)}}
    if kind == "document":
        return _document(block, where)
    if kind == "search_result":
        _no_citation_request(block, where)
        string(block.get("title"), f"{where}.title", required=True)
        string(block.get("source"), f"{where}.source", required=True)
        texts = [block["title"], block["source"], *_texts(block.get("content"), where)]
        return {"type": "text", "text": "\n".join(texts)}
    raise fail(f"{where}.type", f"{where}.type: unknown content block type '{kind}'.")


def _image_url(block: Mapping[str, Any], where: str) -> str:
    source = required_obj(block.get("source"), f"{where}.source")
    kind = source.get("type")
    if kind == "base64":
        media_type = source.get("media_type")
        if media_type not in IMAGE_TYPES:
            raise fail(
                f"{where}.source.media_type",
                f"{where}.source.media_type: expected one of {', '.join(sorted(IMAGE_TYPES))}.",
            )
        string(source.get("data"), f"{where}.source.data", required=True)
        return f"data:{media_type};base64,{source['data']}"
    if kind == "url":
        string(source.get("url"), f"{where}.source.url", required=True)
        return str(source["url"])
    if kind == "file":
        raise _no_files(where)
    raise fail(f"{where}.source.type", f"{where}.source.type: expected 'base64' or 'url'.")


def _document(block: Mapping[str, Any], where: str) -> dict[str, Any]:
    _no_citation_request(block, where)
    source = required_obj(block.get("source"), f"{where}.source")
    kind = source.get("type")
    title = block.get("title")
    string(title, f"{where}.title")
    if kind == "text":
        string(source.get("data"), f"{where}.source.data", required=True)
        return {"type": "text", "text": f"{title}\n{source['data']}" if title else source["data"]}
    if kind == "content":
        texts = _texts(source.get("content"), f"{where}.source")
        return {"type": "text", "text": "\n".join([title, *texts] if title else texts)}
    if kind == "base64":
        if source.get("media_type") != "application/pdf":
            raise fail(
                f"{where}.source.media_type",
                f"{where}.source.media_type: a base64 document must be application/pdf.",
            )
        string(source.get("data"), f"{where}.source.data", required=True)
        file = {"file_data": f"data:application/pdf;base64,{source['data']}"}
        if title:
            file["filename"] = title
        return {"type": "file", "file": file}
    if kind == "file":
        raise _no_files(where)
    if kind == "url":
        raise fail(
            f"{where}.source",
            f"{where}.source: URL documents are not supported by this gateway for this model "
            "(it fetches nothing); send the document as base64 or text.",
        )
    raise fail(f"{where}.source.type", f"{where}.source.type: unknown document source '{kind}'.")


def _texts(value: Any, where: str) -> list[str]:
    """The texts of a list of text blocks (a document's or search result's `content`)."""
    if isinstance(value, str):
        return [value]
    texts = []
    for path, block in _blocks(value, f"{where}.content"):
        if block["type"] != "text":
            raise fail(f"{path}.type", f"{path}.type: expected a text block.")
        string(block.get("text"), f"{path}.text", required=True)
        texts.append(block["text"])
    return texts


def _no_citation_request(block: Mapping[str, Any], where: str) -> None:
    citations = block.get("citations")
    # A list is an earlier answer's citations (a record, dropped); an object asks for new ones.
    if isinstance(citations, dict) and citations.get("enabled"):
        raise fail(
            f"{where}.citations",
            f"{where}.citations: citations are not supported for this model (only Anthropic "
            "models can cite documents).",
        )


def _no_files(where: str) -> Exception:
    return fail(
        f"{where}.source",
        f"{where}.source: file ids are not supported by this gateway; send the content as base64.",
    )


def _server_block(where: str, kind: str) -> Exception:
    return fail(
        f"{where}.type",
        f"{where}.type: '{kind}' blocks come from Anthropic's server tools, which this model "
        "cannot run.",
    )


def with_thinking_blocks(
    messages: list[dict[str, Any]], thinking: Mapping[int, list[dict[str, Any]]]
) -> list[dict[str, Any]]:
    """`messages` (a `Conversation`'s) with each assistant message's thinking blocks under
    `THINKING_BLOCKS`, for an upstream adapter that replays them; the list is a copy."""
    out = list(messages)
    for index, blocks in thinking.items():
        if index < len(out) and out[index]["role"] == "assistant":
            out[index] = {**out[index], THINKING_BLOCKS: blocks}
    return out
