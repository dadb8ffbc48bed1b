"""A fake Anthropic Messages API: a real aiohttp server on 127.0.0.1 replaying scripts.

It speaks the real protocol (protocol.md §3.3): `POST /v1/messages` with `x-api-key` and
`anthropic-version` headers, `max_tokens` required, answers as SSE with named events
(`event: <type>\\ndata: <json>\\n\\n`), errors as `{"type": "error", "error": {...}}`. Playback,
faults and recording come from the fake OpenAI server (`Script`, `Received`).
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import orjson
from aiohttp import web

from tests.upstreams.openai import FakeOpenAI, Received, Script, transcript

API_KEY = "sk-ant-test"
VERSION = "2023-06-01"
# The API versions the fake takes: the adapter's, and the one anthropic-python 2.x sends (a
# passthrough forwards the client's `anthropic-version`).
VERSIONS = frozenset((VERSION, "2026-10-21"))
MODEL = "claude-sonnet-4-5"
TRANSCRIPTS = (
    "text",
    "tool_use",
    "parallel_tools",
    "thinking",
    "refusal",
    "max_tokens",
    "stop_sequence",
    "cached_usage",
    "server_tools",
)


def event(obj: dict[str, Any]) -> bytes:
    """One SSE event named after the object's `type`, as Anthropic frames it."""
    return b"event: " + obj["type"].encode() + b"\ndata: " + orjson.dumps(obj) + b"\n\n"


def events(*objects: dict[str, Any]) -> list[bytes]:
    return [event(obj) for obj in objects]


def message_start(input_tokens: int = 10, **usage: int) -> dict[str, Any]:
    return {
        "type": "message_start",
        "message": {
            "id": "msg_fake",
            "type": "message",
            "role": "assistant",
            "content": [],
            "model": MODEL,
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": input_tokens, "output_tokens": 1, **usage},
        },
    }


def text_start(index: int = 0) -> dict[str, Any]:
    return {
        "type": "content_block_start",
        "index": index,
        "content_block": {"type": "text", "text": ""},
    }


def text_delta(text: str, index: int = 0) -> dict[str, Any]:
    return {
        "type": "content_block_delta",
        "index": index,
        "delta": {"type": "text_delta", "text": text},
    }


def block_stop(index: int = 0) -> dict[str, Any]:
    return {"type": "content_block_stop", "index": index}


def message_delta(stop_reason: str | None = "end_turn", output_tokens: int = 5) -> dict[str, Any]:
    return {
        "type": "message_delta",
        "delta": {"stop_reason": stop_reason, "stop_sequence": None},
        "usage": {"output_tokens": output_tokens},
    }


MESSAGE_STOP = {"type": "message_stop"}


def error_event(kind: str = "overloaded_error", message: str = "Overloaded") -> dict[str, Any]:
    return {"type": "error", "error": {"type": kind, "message": message}}


def error_body(kind: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_fake"}


def text_script(
    pieces: list[str], *, stop: bool = True, stop_reason: str = "end_turn", **kw: Any
) -> Script:
    """A text answer, one write per event; without `stop` it ends after the last piece."""
    objects = [message_start(), text_start(), *(text_delta(p) for p in pieces)]
    if stop:
        objects += [block_stop(), message_delta(stop_reason, len(pieces)), MESSAGE_STOP]
    return Script(writes=events(*objects), **kw)


def recorded(name: str, **kw: Any) -> Script:
    """A transcript from tests/transcripts/anthropic/, one write per event."""
    return transcript(f"anthropic/{name}.sse", **kw)


def error_script(
    status: int, kind: str, message: str, headers: dict[str, str] | None = None
) -> Script:
    return Script(
        writes=[orjson.dumps(error_body(kind, message))],
        status=status,
        headers=headers or {},
        content_type="application/json",
    )


class FakeAnthropic(FakeOpenAI):
    """Serves POST /v1/messages from scripts chosen by the upstream model name."""

    def __init__(self) -> None:
        super().__init__()
        self.default = recorded("text")
        # The thinking the fake signed (signature -> text), and the tool_use ids of answers
        # that thought first, from the answers it sent.
        self.signed: dict[str, str] = {}
        self.thought: set[str] = set()
        self.app = web.Application(client_max_size=64 * 1024 * 1024)
        self.app.router.add_post("/v1/messages", self._messages)
        self.app.router.add_post("/v1/messages/count_tokens", self._count_tokens)

    def _learn(self, writes: Any) -> None:
        try:
            message = message_of(writes) or {}
        except (ValueError, KeyError, IndexError, TypeError):
            return  # a script of faults or garbage signs nothing
        content = message.get("content", ())
        signed = {
            block["signature"]: block.get("thinking", "")
            for block in content
            if block.get("type") == "thinking" and block.get("signature")
        }
        self.signed.update(signed)
        if signed or any(block.get("type") == "redacted_thinking" for block in content):
            self.thought.update(b["id"] for b in content if b.get("type") == "tool_use")

    async def _count_tokens(self, request: web.Request) -> web.Response:
        """`count_tokens`: the same checks, then `{"input_tokens": N}` (`count_of`); a model
        whose script is an error answers that error instead."""
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return _error(400, "invalid_request_error", "There was an issue with the JSON body.")
        self.received.append(Received(request.path, dict(request.headers), body, time.monotonic()))
        if request.headers.get("x-api-key") != API_KEY:
            return _error(401, "authentication_error", "invalid x-api-key")
        if request.headers.get("anthropic-version") not in VERSIONS:
            return _error(400, "invalid_request_error", "anthropic-version: header is required")
        if not isinstance(body.get("messages"), list):
            return _error(400, "invalid_request_error", "messages: Field required")
        script = self.script_for(body.get("model", ""))
        if script.status != 200:
            return await self._play(request, script)
        return web.json_response({"input_tokens": count_of(body)})

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return _error(400, "invalid_request_error", "There was an issue with the JSON body.")
        self.received.append(Received(request.path, dict(request.headers), body, time.monotonic()))
        # The checks the real API makes before it streams anything.
        if request.headers.get("x-api-key") != API_KEY:
            return _error(401, "authentication_error", "invalid x-api-key")
        if request.headers.get("anthropic-version") not in VERSIONS:
            return _error(400, "invalid_request_error", "anthropic-version: header is required")
        if not isinstance(body.get("max_tokens"), int):
            return _error(400, "invalid_request_error", "max_tokens: Field required")
        messages = body.get("messages")
        if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
            return _error(400, "invalid_request_error", "messages: Input should be a valid list")
        if any(m.get("role") not in ("user", "assistant") for m in messages):
            return _error(400, "invalid_request_error", "messages: Unexpected role")
        problem = thinking_problem(body, self.signed, self.thought)
        if problem is not None:
            return _error(400, "invalid_request_error", problem)
        script = self.script_for(body.get("model", ""))
        self._learn(script.writes)
        self.active += 1
        try:
            if body.get("stream") is not True and script.status == 200 and not script.fault:
                # Asked non-stream: the Message the script's events make, sent whole.
                message = message_of(script.writes)
                if message is None:
                    return _error(529, "overloaded_error", "Overloaded")
                return web.json_response(message)
            return await self._play(request, script)
        except (asyncio.CancelledError, ConnectionResetError):
            self.gone.append(time.monotonic())
            raise
        finally:
            self.active -= 1


def message_of(writes: Any) -> dict[str, Any] | None:
    """The Message a stream of events makes (what Anthropic answers non-stream); None if the
    stream holds an `error` event."""
    message: dict[str, Any] = {}
    partial: dict[int, str] = {}
    for raw in writes:
        for part in raw.split(b"\n\n"):
            data = next(
                (line[6:] for line in part.split(b"\n") if line.startswith(b"data: ")), None
            )
            if data is None:
                continue
            obj = orjson.loads(data)
            kind = obj.get("type")
            if kind == "error":
                return None
            if kind == "message_start":
                message = dict(obj["message"], content=[])
            elif kind == "content_block_start":
                message["content"].append(dict(obj["content_block"]))
            elif kind == "content_block_delta":
                block, delta = message["content"][obj["index"]], obj["delta"]
                if delta["type"] == "text_delta":
                    block["text"] += delta["text"]
                elif delta["type"] == "thinking_delta":
                    block["thinking"] += delta["thinking"]
                elif delta["type"] == "signature_delta":
                    block["signature"] = delta["signature"]
                elif delta["type"] == "citations_delta":
                    block.setdefault("citations", []).append(delta["citation"])
                elif delta["type"] == "input_json_delta":
                    partial[obj["index"]] = partial.get(obj["index"], "") + delta["partial_json"]
            elif kind == "message_delta":
                message.update(obj["delta"])
                message["usage"] = {**message.get("usage", {}), **obj.get("usage", {})}
    for index, text in partial.items():
        message["content"][index]["input"] = orjson.loads(text) if text else {}
    return message


def thinking_problem(body: dict[str, Any], signed: dict[str, str], thought: set[str]) -> str | None:
    """What the real API says when thinking is on and the assistant turn whose tool_use the
    last user message answers does not start with its thinking block, or the block's signature
    is not one it made over that text; None when the request is fine. The real API always
    thinks first with thinking on, the fake only when its script does: a turn is held to the
    rule when the fake's answer with its tool_use (`thought`) started with thinking."""
    thinking = body.get("thinking")
    messages = body.get("messages") or []
    if not isinstance(thinking, dict) or thinking.get("type") != "enabled" or len(messages) < 2:
        return None
    *_, assistant, last = messages
    content, results = assistant.get("content"), last.get("content")
    if assistant.get("role") != "assistant" or not isinstance(content, list) or not content:
        return None
    if not isinstance(results, list) or not any(b.get("type") == "tool_result" for b in results):
        return None
    if not any(b.get("type") == "tool_use" and b.get("id") in thought for b in content):
        return None
    at = f"messages.{len(messages) - 2}.content"
    first = content[0]
    if first.get("type") not in ("thinking", "redacted_thinking"):
        return (
            f"{at}.0.type: Expected `thinking` or `redacted_thinking`, but found "
            f"`{first.get('type')}`. When `thinking` is enabled, a final `assistant` message "
            "must start with a thinking block (preceeding the lastmost set of `tool_use` and "
            "`tool_result` blocks). We recommend you include thinking blocks from previous "
            "turns. To avoid this requirement, disable `thinking`."
        )
    for j, block in enumerate(content):
        if block.get("type") == "thinking" and (
            signed.get(block.get("signature") or "") != block.get("thinking")
        ):
            return f"{at}.{j}: Invalid `signature` in `thinking` block"
    return None


def count_of(body: dict[str, Any]) -> int:
    """The fake's tokenizer: a word or a punctuation mark of the request's JSON is a token."""
    counted = {key: body.get(key) for key in ("system", "messages", "tools")}
    return len(re.findall(r"\w+|[^\w\s]", orjson.dumps(counted).decode()))


def _error(status: int, kind: str, message: str) -> web.Response:
    return web.Response(
        body=orjson.dumps(error_body(kind, message)),
        status=status,
        content_type="application/json",
    )
