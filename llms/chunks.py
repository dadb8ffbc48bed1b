"""Chunk builders shared by the adapters, and `fold()`: a chunk stream -> one chat.completion."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from llms.wire import (
    Chunk,
    ChunkChoice,
    Completion,
    CompletionChoice,
    Delta,
    FinishReason,
    ResponseMessage,
    ToolCallDelta,
    Usage,
)


def new_completion_id() -> str:
    """An unguessable `chatcmpl-…` id (also the stream id)."""
    return "chatcmpl-" + secrets.token_urlsafe(18)


def new_call_id() -> str:
    return "call_" + secrets.token_urlsafe(12)


@dataclass(slots=True)
class StreamMeta:
    """What every chunk of one response shares."""

    id: str = field(default_factory=new_completion_id)
    created: int = field(default_factory=lambda: int(time.time()))
    model: str = ""


def chunk(meta: StreamMeta, choices: list[ChunkChoice]) -> Chunk:
    return {
        "id": meta.id,
        "object": "chat.completion.chunk",
        "created": meta.created,
        "model": meta.model,
        "choices": choices,
    }


def delta_chunk(
    meta: StreamMeta, delta: Delta, *, index: int = 0, finish: FinishReason | None = None
) -> Chunk:
    return chunk(
        meta, [{"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}]
    )


def role_chunk(meta: StreamMeta, index: int = 0) -> Chunk:
    return delta_chunk(meta, {"role": "assistant", "content": ""}, index=index)


def finish_chunk(meta: StreamMeta, reason: FinishReason, index: int = 0) -> Chunk:
    return delta_chunk(meta, {}, index=index, finish=reason)


def usage_chunk(meta: StreamMeta, usage: Usage) -> Chunk:
    out = chunk(meta, [])
    out["usage"] = usage
    return out


def tool_call_delta(
    index: int, *, id: str | None = None, name: str | None = None, arguments: str = ""
) -> ToolCallDelta:
    """The first delta of a call carries id, type and name; later ones only index and arguments."""
    if id is None:
        return {"index": index, "function": {"arguments": arguments}}
    return {
        "index": index,
        "id": id,
        "type": "function",
        "function": {"name": name or "", "arguments": arguments},
    }


def make_usage(prompt: int, completion: int, total: int | None = None) -> Usage:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion if total is None else total,
    }


@dataclass(slots=True)
class _ChoiceFold:
    content: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    refusal: list[str] = field(default_factory=list)
    tools: dict[int, dict[str, Any]] = field(default_factory=dict)
    logprobs: dict[str, list[Any]] | None = None
    finish: FinishReason | None = None


def fold(chunks: Iterable[Chunk], meta: StreamMeta) -> Completion:
    """Merge a chunk stream into the `chat.completion` a non-stream client expects."""
    choices: dict[int, _ChoiceFold] = {}
    usage: Usage | None = None
    fingerprint: str | None = None
    for item in chunks:
        if item.get("usage"):
            usage = item["usage"]
        fingerprint = item.get("system_fingerprint") or fingerprint
        for choice in item["choices"]:
            state = choices.get(choice["index"])
            if state is None:
                state = choices[choice["index"]] = _ChoiceFold()
            _fold_delta(state, choice["delta"])
            logprobs = choice.get("logprobs")
            if logprobs:
                merged = state.logprobs if state.logprobs is not None else {}
                for key, items in logprobs.items():
                    if isinstance(items, list):
                        merged.setdefault(key, []).extend(items)
                state.logprobs = merged
            if choice["finish_reason"] is not None:
                state.finish = choice["finish_reason"]
    if not choices:
        choices[0] = _ChoiceFold()
    completion: Completion = {
        "id": meta.id,
        "object": "chat.completion",
        "created": meta.created,
        "model": meta.model,
        "choices": [_to_choice(index, choices[index]) for index in sorted(choices)],
        "usage": usage,
    }
    if fingerprint:
        completion["system_fingerprint"] = fingerprint
    return completion


def _fold_delta(state: _ChoiceFold, delta: Delta) -> None:
    if delta.get("content"):
        state.content.append(delta["content"] or "")
    if delta.get("reasoning_content"):
        state.reasoning.append(delta["reasoning_content"])
    if delta.get("refusal"):
        state.refusal.append(delta["refusal"] or "")
    for call in delta.get("tool_calls") or ():
        slot = state.tools.setdefault(
            call.get("index", 0), {"id": "", "type": "function", "name": "", "arguments": []}
        )
        slot["id"] = call.get("id") or slot["id"]
        function = call.get("function") or {}
        slot["name"] = function.get("name") or slot["name"]
        if function.get("arguments"):
            slot["arguments"].append(function["arguments"])


def _to_choice(index: int, state: _ChoiceFold) -> CompletionChoice:
    message: ResponseMessage = {
        "role": "assistant",
        "content": "".join(state.content) if state.content or not state.tools else None,
        "refusal": "".join(state.refusal) if state.refusal else None,
    }
    if state.reasoning:
        message["reasoning_content"] = "".join(state.reasoning)
    if state.tools:
        message["tool_calls"] = [
            {
                "id": slot["id"],
                "type": "function",
                "function": {"name": slot["name"], "arguments": "".join(slot["arguments"])},
            }
            for _, slot in sorted(state.tools.items())
        ]
    return {
        "index": index,
        "message": message,
        "logprobs": state.logprobs,
        "finish_reason": state.finish,
    }
