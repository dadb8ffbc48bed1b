"""`POST /v1/messages/count_tokens` on the Messages side: what the request is, and what of it an
estimate counts when no upstream can count it exactly.

The request is a Messages request without `max_tokens` (its fields are validated as
`/v1/messages` validates them, by llms/api/messages_request.py); the answer is
`{"input_tokens": N}`. The estimate reads the request leniently: every text (system, text and
thinking blocks, tool results), each tool call's name and input, and each tool's definition as
JSON; an image or a binary document counts as `MEDIA_TOKENS`; each message adds
`MESSAGE_TOKENS` for its role markers, and the answer's opening `REPLY_TOKENS`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

# Anthropic's cost of one image of about 1.15 megapixels (width * height / 750), the largest it
# takes without resizing; the estimate has no pixels to measure.
MEDIA_TOKENS = 1600
# The role markers around each message, and the opening of the reply (chat templates' usual).
MESSAGE_TOKENS = 3
REPLY_TOKENS = 3
# Blocks whose text is what the model reads.
TEXT_KEYS = ("text", "thinking", "data")


@dataclass(frozen=True, slots=True)
class EstimateInput:
    """The texts an estimate tokenizes, and the tokens it adds without tokenizing."""

    texts: tuple[str, ...]
    fixed_tokens: int


def to_estimate_input(body: Mapping[str, Any]) -> EstimateInput:
    """What of a (validated) count_tokens body an estimate counts."""
    texts: list[str] = []
    fixed = REPLY_TOKENS
    system = body.get("system")
    if system:
        fixed += MESSAGE_TOKENS + _content(system, texts)
    for message in body.get("messages") or ():
        if isinstance(message, Mapping):
            fixed += MESSAGE_TOKENS + _content(message.get("content"), texts)
    for tool in body.get("tools") or ():
        if isinstance(tool, Mapping):
            texts.append(
                orjson.dumps({k: v for k, v in tool.items() if k != "cache_control"}).decode()
            )
    return EstimateInput(tuple(texts), fixed)


def to_count_answer(input_tokens: int) -> dict[str, int]:
    return {"input_tokens": input_tokens}


def _content(content: Any, texts: list[str]) -> int:
    """Adds a content's texts to `texts`; returns the fixed tokens of its media."""
    if isinstance(content, str):
        texts.append(content)
        return 0
    if not isinstance(content, list):
        return 0
    fixed = 0
    for block in content:
        if isinstance(block, Mapping):
            fixed += _block(block, texts)
    return fixed


def _block(block: Mapping[str, Any], texts: list[str]) -> int:
    kind = block.get("type")
    if kind in ("image", "document"):
        source = block.get("source")
        if isinstance(source, Mapping) and source.get("type") == "text":
            texts.append(str(source.get("data", "")))
            return 0
        if isinstance(source, Mapping) and source.get("type") == "content":
            return _content(source.get("content"), texts)
        return MEDIA_TOKENS
    if kind in ("tool_use", "server_tool_use"):
        texts.append(str(block.get("name", "")))
        texts.append(orjson.dumps(block.get("input", {})).decode())
        return 0
    if kind in ("tool_result", "search_result") or "content" in block:
        return _content(block.get("content"), texts)
    found = [block[key] for key in TEXT_KEYS if isinstance(block.get(key), str)]
    if found:
        texts.extend(found)
    else:
        texts.append(orjson.dumps({k: v for k, v in block.items() if k != "type"}).decode())
    return 0
