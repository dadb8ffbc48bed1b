"""A fake OpenAI-compatible provider: a real aiohttp server on 127.0.0.1 replaying scripts.

A `Script` is the exact bytes to send (each item one network write), an optional pause before
and between writes, and a fault to inject afterwards: reset the connection, or stall forever.
Scripts are chosen by the upstream model name in the request. Every request is recorded, and so
is the moment the server saw its client (the gateway) go away.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

TRANSCRIPTS = Path(__file__).parent.parent / "transcripts"


@dataclass
class Script:
    writes: Sequence[bytes] = ()
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "text/event-stream"
    first_delay_s: float = 0.0
    delay_s: float = 0.0
    # None | "reset" (abort the TCP connection after the writes) | "stall" (never finish)
    fault: str | None = None
    # Pause before sending the status line, headers included.
    header_delay_s: float = 0.0


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    at: float


def sse(*objects: Any) -> list[bytes]:
    """Each object as one `data: <json>\\n\\n` write; strings are sent as they are."""
    out = []
    for obj in objects:
        data = obj.encode() if isinstance(obj, str) else orjson.dumps(obj)
        out.append(b"data: " + data + b"\n\n")
    return out


def chunk(
    delta: dict[str, Any], finish: str | None = None, *, model: str = "up-model", index: int = 0
) -> dict[str, Any]:
    return {
        "id": "chatcmpl-upstream",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": model,
        "system_fingerprint": "fp_test",
        "choices": [{"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }


def usage_chunk(prompt: int = 5, completion: int = 7) -> dict[str, Any]:
    return {
        "id": "chatcmpl-upstream",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "up-model",
        "choices": [],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        },
    }


def text_script(
    pieces: Sequence[str], *, usage: bool = True, done: bool = True, finish: str = "stop", **kw: Any
) -> Script:
    """A normal text answer: role chunk, one chunk per piece, finish, usage, [DONE]."""
    objects: list[Any] = [chunk({"role": "assistant", "content": ""})]
    objects += [chunk({"content": piece}) for piece in pieces]
    objects.append(chunk({}, finish))
    if usage:
        objects.append(usage_chunk(completion=len(pieces)))
    if done:
        objects.append("[DONE]")
    return Script(writes=sse(*objects), **kw)


def transcript(name: str, **kw: Any) -> Script:
    """A recorded stream from tests/transcripts/, one write per SSE event."""
    raw = (TRANSCRIPTS / name).read_bytes()
    events = [part + b"\n\n" for part in raw.split(b"\n\n") if part.strip()]
    return Script(writes=events, **kw)


def error_script(status: int, body: Any, headers: dict[str, str] | None = None) -> Script:
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    return Script(
        writes=[data], status=status, headers=headers or {}, content_type="application/json"
    )


class FakeOpenAI:
    """Serves POST /v1/chat/completions and GET /v1/models from scripts chosen by model name.

    With `llama_cpp`, also llama.cpp's server's own `POST /apply-template` (the chat request
    rendered by a ChatML template, `{"prompt"}`) and `POST /tokenize` (`{"tokens": [...]}`, by
    `tokens_of`), behind `Authorization: Bearer <api_key>` when `api_key` is set.
    """

    def __init__(self, *, llama_cpp: bool = False, api_key: str | None = None) -> None:
        self.scripts: dict[str, Script | list[Script]] = {}
        self.default = text_script(["Hello", ", ", "world", "!"])
        self.received: list[Received] = []
        self.gone: list[float] = []  # loop-independent monotonic times when a client left
        self.finished: list[float] = []
        self.active = 0
        self.app = web.Application(client_max_size=64 * 1024 * 1024)
        self.app.router.add_post("/v1/chat/completions", self._chat)
        self.app.router.add_get("/v1/models", self._models)
        self.app.router.add_post("/v1/embeddings", self._embeddings)
        # The Responses API (tests/upstreams/responses.py): scripts by model.
        self.app.router.add_post("/v1/responses", self._responses)
        self.response_scripts: dict[str, Script] = {}
        # Legacy completions (tests/upstreams/completions.py): scripts by model, or made up.
        self.app.router.add_post("/v1/completions", self._completions)
        self.completion_scripts: dict[str, Script] = {}
        self.serves_completions = True
        self.api_key = api_key
        if llama_cpp:
            self.app.router.add_post("/apply-template", self._apply_template)
            self.app.router.add_post("/tokenize", self._tokenize)

    async def _llama_cpp_body(self, request: web.Request) -> dict[str, Any] | web.Response:
        """The body, recorded; or llama.cpp's error for a bad key or a body that is not JSON."""
        if self.api_key and request.headers.get("Authorization") != f"Bearer {self.api_key}":
            error = {"code": 401, "message": "Invalid API Key", "type": "authentication_error"}
            return web.json_response({"error": error}, status=401)
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            error = {"code": 500, "message": "parse error", "type": "server_error"}
            return web.json_response({"error": error}, status=500)
        self.received.append(Received(request.path, dict(request.headers), body, time.monotonic()))
        return body if isinstance(body, dict) else {}

    async def _apply_template(self, request: web.Request) -> web.Response:
        body = await self._llama_cpp_body(request)
        if isinstance(body, web.Response):
            return body
        messages = body.get("messages")
        if not isinstance(messages, list):
            error = {"code": 400, "message": "Expected 'messages' to be an array"}
            return web.json_response(
                {"error": {**error, "type": "invalid_request_error"}}, status=400
            )
        return web.json_response({"prompt": prompt_of(messages, body.get("tools"))})

    async def _tokenize(self, request: web.Request) -> web.Response:
        body = await self._llama_cpp_body(request)
        if isinstance(body, web.Response):
            return body
        content = body.get("content")
        if not isinstance(content, str):
            error = {"code": 400, "message": '"content" must be provided'}
            return web.json_response(
                {"error": {**error, "type": "invalid_request_error"}}, status=400
            )
        return web.json_response({"tokens": tokens_of(content, bool(body.get("add_special")))})

    async def _embeddings(self, request: web.Request) -> web.StreamResponse:
        from tests.upstreams.embeddings import openai_embeddings

        return await openai_embeddings(self, request)

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        from tests.upstreams.completions import openai_completions

        return await openai_completions(self, request)

    async def _responses(self, request: web.Request) -> web.StreamResponse:
        from tests.upstreams.responses import openai_responses

        return await openai_responses(self, request)

    def script_for(self, model: str) -> Script:
        """A model's script; a list plays its scripts in turn, the last one for ever after."""
        script = self.scripts.get(model, self.default)
        if isinstance(script, list):
            return script.pop(0) if len(script) > 1 else script[0]
        return script

    async def _models(self, request: web.Request) -> web.Response:
        data = [
            {"id": m, "object": "model", "created": 0, "owned_by": "fake"} for m in self.scripts
        ]
        return web.json_response({"object": "list", "data": data})

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = orjson.loads(await request.read())
        self.received.append(Received(request.path, dict(request.headers), body, time.monotonic()))
        script = self.script_for(body.get("model", ""))
        self.active += 1
        try:
            return await self._play(request, script, whole=body.get("stream") is False)
        except (asyncio.CancelledError, ConnectionResetError):
            self.gone.append(time.monotonic())
            raise
        finally:
            self.active -= 1

    async def _play(
        self, request: web.Request, script: Script, *, whole: bool = False
    ) -> web.StreamResponse:
        if whole and script.status == 200:
            return await self._play_whole(request, script)
        if script.header_delay_s:
            await asyncio.sleep(script.header_delay_s)
        if script.fault == "reset" and not script.writes:
            assert request.transport is not None
            request.transport.abort()
            raise ConnectionResetError("reset by script")
        if script.status != 200:
            return web.Response(
                body=b"".join(script.writes),
                status=script.status,
                headers=script.headers,
                content_type=script.content_type,
            )
        response = web.StreamResponse(
            headers={"Content-Type": script.content_type, **script.headers}
        )
        await response.prepare(request)
        if script.first_delay_s:
            await asyncio.sleep(script.first_delay_s)
        for i, data in enumerate(script.writes):
            if i and script.delay_s:
                await asyncio.sleep(script.delay_s)
            await response.write(data)
        if script.fault == "reset":
            assert request.transport is not None
            request.transport.abort()
            raise ConnectionResetError("reset by script")
        if script.fault == "stall":
            await asyncio.sleep(3600)
        await response.write_eof()
        self.finished.append(time.monotonic())
        return response

    async def _play_whole(self, request: web.Request, script: Script) -> web.StreamResponse:
        """A non-stream request: the script's answer as one `chat.completion`, sent whole.

        The generation time (first delay and every gap) passes before anything is sent, as with
        a real server. A reset sends half of the body first; a stall sends nothing. A script
        that is not a well-formed stream is sent as its raw bytes.
        """
        await asyncio.sleep(
            script.header_delay_s
            + script.first_delay_s
            + script.delay_s * max(len(script.writes) - 1, 0)
        )
        if script.fault == "stall":
            await asyncio.sleep(3600)
        if script.fault == "reset" and not script.writes:
            assert request.transport is not None
            request.transport.abort()
            raise ConnectionResetError("reset by script")
        failure = error_of(script.writes)
        if failure is not None:
            # What a server does when generation fails before a non-stream answer: a 500.
            return web.json_response(failure, status=500)
        answer = completion_of(script.writes)
        body = orjson.dumps(answer) if answer is not None else b"".join(script.writes)
        content_type = "application/json" if answer is not None else script.content_type
        if script.fault == "reset":
            response = web.StreamResponse(headers={"Content-Type": content_type})
            response.content_length = len(body)
            await response.prepare(request)
            await response.write(body[: len(body) // 2])
            assert request.transport is not None
            request.transport.abort()
            raise ConnectionResetError("reset by script")
        self.finished.append(time.monotonic())
        return web.Response(body=body, content_type=content_type, headers=script.headers)


def prompt_of(messages: list[Any], tools: Any = None) -> str:
    """The fake llama.cpp's chat template: ChatML, tools as JSON in a system turn first."""
    turns = [("system", orjson.dumps(tools).decode())] if tools else []
    for message in messages:
        content = message.get("content")
        if isinstance(content, list):
            content = "".join(part.get("text", "") for part in content if isinstance(part, dict))
        turns.append((message.get("role", ""), content or ""))
    rendered = "".join(f"<|im_start|>{role}\n{text}<|im_end|>\n" for role, text in turns)
    return rendered + "<|im_start|>assistant\n"


def tokens_of(content: str, add_special: bool) -> list[int]:
    """The fake llama.cpp's tokenizer: a special token, a word or a punctuation mark is one
    token; `add_special` adds a BOS (id 1)."""
    pieces = re.findall(r"<\|\w+\|>|\w+|[^\w\s]", content)
    return [1] * add_special + [len(piece) for piece in pieces]


def _events(writes: Sequence[bytes]) -> list[bytes]:
    """The data of each SSE event in `writes` (a simple split: the fakes write whole events)."""
    raw = b"".join(writes).replace(b"\r\n", b"\n")
    out = []
    for block in raw.split(b"\n\n"):
        lines = [line for line in block.split(b"\n") if line.startswith(b"data:")]
        if lines:
            out.append(b"\n".join(line[5:].strip() for line in lines))
    return out


def error_of(writes: Sequence[bytes]) -> dict[str, Any] | None:
    """The first in-stream error object in `writes`, if there is one."""
    for data in _events(writes):
        with contextlib.suppress(orjson.JSONDecodeError):
            obj = orjson.loads(data)
            if isinstance(obj, dict) and "error" in obj:
                return obj
    return None


def completion_of(writes: Sequence[bytes]) -> dict[str, Any] | None:
    """What a server answers non-stream for the stream in `writes`; None if it is not one.

    A simple fold of its own (the gateway's is what the tests check): text, reasoning and tool
    calls concatenated, the last finish reason and usage.
    """
    message: dict[str, Any] = {"role": "assistant", "content": None}
    texts: dict[str, list[str]] = {"content": [], "reasoning_content": [], "reasoning": []}
    calls: dict[int, dict[str, Any]] = {}
    finish: str | None = None
    usage: Any = None
    head: dict[str, Any] = {}
    for data in _events(writes):
        if data == b"[DONE]":
            break
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(obj, dict) or "error" in obj:
            return None
        head = head or obj
        usage = obj.get("usage") or usage
        for choice in obj.get("choices") or []:
            delta = choice.get("delta") or {}
            for key, parts in texts.items():
                if isinstance(delta.get(key), str):
                    parts.append(delta[key])
            for position, call in enumerate(delta.get("tool_calls") or []):
                slot = calls.setdefault(
                    call.get("index", position),
                    {"id": None, "type": "function", "function": {"name": "", "arguments": ""}},
                )
                slot["id"] = call.get("id") or slot["id"]
                function = call.get("function") or {}
                slot["function"]["name"] += function.get("name") or ""
                slot["function"]["arguments"] += function.get("arguments") or ""
            finish = choice.get("finish_reason") or finish
    if not head:
        return None
    if texts["content"] or not calls:
        message["content"] = "".join(texts["content"])
    for key in ("reasoning_content", "reasoning"):
        if texts[key]:
            message[key] = "".join(texts[key])
    if calls:
        message["tool_calls"] = [calls[index] for index in sorted(calls)]
    return {
        "id": head.get("id", "chatcmpl-upstream"),
        "object": "chat.completion",
        "created": head.get("created", 0),
        "model": head.get("model", "up-model"),
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
        "usage": usage,
    }
