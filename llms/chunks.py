"""Chunk builders shared by the adapters, and `Fold`: a chunk stream -> one chat.completion."""

from __future__ import annotations

import os
import random
import secrets
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from llms.errors import UpstreamMalformed
from llms.wire import (
    Chunk,
    ChunkChoice,
    Completion,
    CompletionChoice,
    Delta,
    FinishReason,
    ToolCallDelta,
    Usage,
)


def new_completion_id() -> str:
    """An unguessable `chatcmpl-…` id (also the stream id)."""
    return "chatcmpl-" + secrets.token_urlsafe(18)


def from_completion(completion: Completion) -> Chunk:
    """A folded `chat.completion` as one chunk whose delta is the whole message (choice 0), so
    an API's builder (Responses, Messages) makes its non-stream answer by the same rules as a
    stream."""
    choices: list[Any] = []
    for choice in completion["choices"][:1]:
        message: dict[str, Any] = dict(choice["message"])
        message.pop("role", None)
        calls = message.get("tool_calls")
        if calls:
            message["tool_calls"] = [{"index": i, **call} for i, call in enumerate(calls)]
        choices.append(
            {
                "index": 0,
                "delta": message,
                "logprobs": choice.get("logprobs"),
                "finish_reason": choice["finish_reason"],
            }
        )
    chunk: dict[str, Any] = {
        "id": completion["id"],
        "object": "chat.completion.chunk",
        "created": completion["created"],
        "model": completion["model"],
        "choices": choices,
        "usage": completion.get("usage"),
    }
    for name in ("service_tier", "system_fingerprint"):
        if name in completion:
            chunk[name] = completion.get(name)
    return chunk  # type: ignore[return-value]


# A generator of the gateway's own, not the `random` module's shared one: naming parts of an
# answer (and routing's retry jitter) must not move the state of a program that embeds the
# gateway or runs it in a thread (Hypothesis, in tests/test_openapi.py, saw it move while it
# drew). Reseeded in a forked child, as the shared one is, so that a program forking after the
# import never names two parts alike (`llms serve --workers` starts fresh interpreters, each
# seeded on import).
RANDOM = random.Random()
os.register_at_fork(after_in_child=RANDOM.seed)
_random_bits = RANDOM.getrandbits


def new_item_id(prefix: str, bits: int = 128) -> str:
    """`prefix` + `bits` of hex: the name of a part of one answer (a Responses output or input
    item, a Messages message or tool use). Unique, not secret: nothing is fetched by it, so it
    comes from `RANDOM` (seeded in each process) instead of a syscall to the kernel's
    generator each time, as `secrets` makes (a streamed answer names two or three)."""
    return f"{prefix}{_random_bits(bits):0{bits // 4}x}"


def new_call_id() -> str:
    return "call_" + secrets.token_urlsafe(12)


@dataclass(slots=True)
class StreamMeta:
    """What every chunk of one response shares."""

    id: str = field(default_factory=new_completion_id)
    created: int = field(default_factory=lambda: int(time.time()))
    model: str = ""
    # Whether the client gets the chunks as chat completion JSON: the commit's check then
    # encodes them, once, for the relay to write. False for the APIs that write events of
    # their own from the chunks' values (Responses, Messages).
    chat_json: bool = True


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


# What one non-stream answer may hold while it is folded (server.max_answer_mb, the default of
# the OpenAI whole-body limit in framing.py too).
DEFAULT_MAX_ANSWER_BYTES = 16 * 1024 * 1024

# Chunk and choice keys the fold sets itself; every other key the upstream sent is kept.
_CHUNK_KEYS = frozenset(("id", "object", "created", "model", "choices", "usage"))
_CHOICE_KEYS = frozenset(("index", "delta", "logprobs", "finish_reason"))
# Keys a later delta replaces instead of extending (as openai-python's stream accumulator does).
_REPLACED = frozenset(("id", "index", "type"))
# Deeper values are kept whole (last wins): no recursion on an upstream's nesting.
_MAX_DEPTH = 16
# Bytes counted for what a value costs beyond its text: objects, pointers, dict slots.
_OVERHEAD = 64


def answer_too_large(max_bytes: int) -> UpstreamMalformed:
    """502 `upstream_too_large`: a non-stream answer past its budget (the upstream is closed)."""
    return UpstreamMalformed(
        f"The upstream's answer is larger than {max_bytes / 2**20:g} MiB, the most a non-stream "
        "answer may hold (server.max_answer_mb); ask with `stream: true` instead.",
        code="upstream_too_large",
    )


class _Text:
    """A string built from many pieces in linear time, holding about its own size."""

    __slots__ = ("_blocks", "_small")

    def __init__(self) -> None:
        self._blocks: list[str] = []
        self._small: list[str] = []

    def add(self, piece: str) -> None:
        # Tokens are a few characters each: a str object per token would cost ~15 times the text.
        if len(piece) >= 256:
            self._join_small()
            self._blocks.append(piece)
            return
        self._small.append(piece)
        if len(self._small) >= 256:
            self._join_small()

    def _join_small(self) -> None:
        if self._small:
            self._blocks.append("".join(self._small))
            self._small.clear()

    def value(self) -> str:
        self._join_small()
        return "".join(self._blocks)


def _weight(value: object) -> int:
    """About the bytes `value` holds (iterative: an upstream chooses the nesting)."""
    total = 0
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            total += _OVERHEAD + len(item)
        elif isinstance(item, dict):
            total += _OVERHEAD * (1 + len(item))
            stack += item.keys()
            stack += item.values()
        elif isinstance(item, list | tuple):
            total += _OVERHEAD + 8 * len(item)
            stack += item
        else:
            total += 32
    return total


def _merge(into: dict[str, Any], delta: Mapping[str, Any], depth: int = 0) -> int:
    """Merge one delta into `into`: text concatenated, objects merged, lists extended, other
    values replaced (openai-python's accumulation of a stream). Returns the bytes added."""
    added = 0
    for key, value in delta.items():
        current = into.get(key)
        if value is None:
            if key not in into:
                into[key] = None
                added += _OVERHEAD
        elif isinstance(value, str) and key not in _REPLACED:
            if not isinstance(current, _Text):
                current = into[key] = _Text()
                added += _OVERHEAD
            current.add(value)
            added += len(value)
        elif isinstance(value, dict) and depth < _MAX_DEPTH:
            if not isinstance(current, dict):
                current = into[key] = {}
                added += _OVERHEAD
            added += _merge(current, value, depth + 1)
        elif isinstance(value, list):
            if not isinstance(current, list):
                current = into[key] = []
            current += value
            added += _weight(value)
        else:
            added += _weight(value) if key not in into else 0
            into[key] = value
    return added


def _materialised(value: Any, depth: int = 0) -> Any:
    """`value` with its texts joined (what lies deeper than `_merge` went was kept whole)."""
    if isinstance(value, _Text):
        return value.value()
    if isinstance(value, dict) and depth <= _MAX_DEPTH:
        return {key: _materialised(item, depth + 1) for key, item in value.items()}
    return value


def _keep_latest(
    into: dict[str, Any], weights: dict[str, int], source: Mapping[str, Any], known: frozenset[str]
) -> int:
    """Fields the gateway does not read (top-level or per choice): the latest non-null value
    (null only while there is none). Returns the bytes added."""
    added = 0
    for key in source.keys() - known:  # most chunks have none: one set operation
        value = source[key]
        if value is None:
            if key not in into:
                into[key] = None
                added += _OVERHEAD
            continue
        # No comparison with the previous value: `==` recurses as deep as the upstream nests.
        weight = _weight(value)
        added += max(0, weight - weights.get(key, 0))
        into[key] = value
        weights[key] = weight
    return added


@dataclass(slots=True)
class _ChoiceFold:
    message: dict[str, Any] = field(default_factory=dict)
    tools: dict[int, dict[str, Any]] = field(default_factory=dict)
    logprobs: dict[str, list[Any]] | None = None
    finish: FinishReason | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    extra_weights: dict[str, int] = field(default_factory=dict)


class Fold:
    """A chunk stream merged, as it arrives, into the `chat.completion` a non-stream client expects.

    Everything the upstream put in a delta is kept (text concatenated, `tool_calls` and the legacy
    `function_call` rebuilt, `annotations` and logprobs extended, `audio` merged), and so are the
    choice and top-level fields the gateway does not read (`service_tier`, `system_fingerprint`…).
    What it holds is counted: past `max_bytes` it raises 502 `upstream_too_large`.
    """

    __slots__ = ("_choices", "_head", "_head_weights", "_max", "_meta", "_usage", "chunks", "size")

    def __init__(self, meta: StreamMeta, max_bytes: int = DEFAULT_MAX_ANSWER_BYTES) -> None:
        self._meta = meta
        self._max = max_bytes
        self._choices: dict[int, _ChoiceFold] = {}
        self._head: dict[str, Any] = {}
        self._head_weights: dict[str, int] = {}
        self._usage: Usage | None = None
        self.chunks = 0
        self.size = 0

    def add(self, chunks: Iterable[Chunk]) -> None:
        for item in chunks:
            self.chunks += 1
            if item.get("usage"):
                self._usage = item["usage"]
            added = _keep_latest(self._head, self._head_weights, item, _CHUNK_KEYS)
            for choice in item["choices"]:
                added += self._add_choice(choice)
            self.size += added
            if self.size > self._max:
                raise answer_too_large(self._max)

    def _add_choice(self, choice: ChunkChoice) -> int:
        added = 0
        state = self._choices.get(choice["index"])
        if state is None:
            state = self._choices[choice["index"]] = _ChoiceFold()
            added += _OVERHEAD * 4
        delta: Mapping[str, Any] = choice["delta"]
        calls = delta.get("tool_calls")
        if calls:
            added += _fold_tool_calls(state, calls)
        if calls or "role" in delta:
            # The role is always "assistant"; calls are folded above (null or [] merged as sent).
            delta = {
                key: value
                for key, value in delta.items()
                if key != "role" and not (calls and key == "tool_calls")
            }
        added += _merge(state.message, delta)
        logprobs = choice.get("logprobs")
        if logprobs:
            merged = state.logprobs if state.logprobs is not None else {}
            for key, items in logprobs.items():
                if isinstance(items, list):
                    merged.setdefault(key, []).extend(items)
                    added += _weight(items)
            state.logprobs = merged
        if choice["finish_reason"] is not None:
            state.finish = choice["finish_reason"]
        added += _keep_latest(state.extra, state.extra_weights, choice, _CHOICE_KEYS)
        return added

    def completion(self) -> Completion:
        choices = self._choices or {0: _ChoiceFold()}
        meta = self._meta
        completion: Completion = {
            "id": meta.id,
            "object": "chat.completion",
            "created": meta.created,
            "model": meta.model,
            "choices": [_to_choice(index, choices[index]) for index in sorted(choices)],
            "usage": self._usage,
        }
        extra: dict[str, Any] = completion  # type: ignore[assignment]
        for key, value in self._head.items():
            extra[key] = value
        return completion


def fold(
    chunks: Iterable[Chunk], meta: StreamMeta, *, max_bytes: int = DEFAULT_MAX_ANSWER_BYTES
) -> Completion:
    """Merge a chunk stream into the `chat.completion` a non-stream client expects."""
    folding = Fold(meta, max_bytes)
    folding.add(chunks)
    return folding.completion()


def _fold_tool_calls(state: _ChoiceFold, calls: list[ToolCallDelta]) -> int:
    added = 0
    for call in calls:
        index = call.get("index", 0)
        slot = state.tools.get(index)
        if slot is None:
            slot = state.tools[index] = {
                "id": "",
                "type": "function",
                "name": "",
                "arguments": _Text(),
            }
            added += _OVERHEAD * 6
        slot["id"] = call.get("id") or slot["id"]
        function = call.get("function") or {}
        slot["name"] = function.get("name") or slot["name"]
        arguments = function.get("arguments")
        if arguments:
            slot["arguments"].add(arguments)
            added += len(arguments)
    return added


# Besides tool calls and a refusal, what makes a message without text `content: null`, as OpenAI
# sends it.
_NOT_TEXT = ("function_call", "audio")


def _to_choice(index: int, state: _ChoiceFold) -> CompletionChoice:
    folded: dict[str, Any] = _materialised(state.message)
    content = folded.pop("content", None)
    refusal = folded.pop("refusal", None)
    if not content:
        content = (
            None if state.tools or any(folded.get(key) for key in _NOT_TEXT) or refusal else ""
        )
    if not folded.get("reasoning_content"):
        folded.pop("reasoning_content", None)
    message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": refusal or None}
    message.update(folded)
    if state.tools:
        message["tool_calls"] = [
            {
                "id": slot["id"],
                "type": "function",
                "function": {"name": slot["name"], "arguments": slot["arguments"].value()},
            }
            for _, slot in sorted(state.tools.items())
        ]
    choice: dict[str, Any] = {
        "index": index,
        "message": message,
        "logprobs": state.logprobs,
        "finish_reason": state.finish,
    }
    choice.update(state.extra)
    return choice  # type: ignore[return-value]
