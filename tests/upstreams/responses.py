"""The fake OpenAI server's `POST /v1/responses`: OpenAI's Responses API, as OpenAI, vLLM,
Ollama and LM Studio serve it.

It checks what the real API checks before it answers (`Authorization: Bearer <key>` when the
fake has a key, a JSON body with a string `model`), then plays the model's script from
`fake.response_scripts` (its default: `responses_script(["Hello", ", world!"])`): a stream of
`event: <type>` + `data: <json>` events, or, asked with `stream: false`, the Response of the
script's terminal event as one JSON document (a 500 when the script fails instead).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from tests.upstreams.openai import Received, Script

if TYPE_CHECKING:
    from tests.upstreams.openai import FakeOpenAI

UPSTREAM_MODEL = "up-model"
ENCRYPTED = "gAAAAB-opaque-reasoning-state"


def frame(obj: dict[str, Any]) -> bytes:
    return b"event: " + obj["type"].encode() + b"\ndata: " + orjson.dumps(obj) + b"\n\n"


def response_object(
    status: str, output: list[dict[str, Any]], usage: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "id": "resp_upstream",
        "object": "response",
        "created_at": 1700000000,
        "status": status,
        "error": None,
        "incomplete_details": None,
        "instructions": None,
        "model": UPSTREAM_MODEL,
        "output": output,
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "store": False,
        "background": False,
        "tools": [],
        "usage": usage,
    }


def responses_events(
    pieces: Sequence[str],
    *,
    reasoning: str | None = None,
    web_search: bool = False,
    end: str = "completed",
) -> list[dict[str, Any]]:
    """A Responses stream: created, in_progress, a reasoning item (with its summary and
    encrypted state), a `web_search_call`, a message of `pieces`, then `end`: `completed`,
    `incomplete` or nothing ("none")."""
    events: list[dict[str, Any]] = []
    output: list[dict[str, Any]] = []

    def add(kind: str, **fields: Any) -> None:
        events.append({"type": kind, **fields, "sequence_number": len(events)})

    add("response.created", response=response_object("in_progress", []))
    add("response.in_progress", response=response_object("in_progress", []))
    if reasoning is not None:
        item = {"id": "rs_1", "type": "reasoning", "summary": [], "encrypted_content": ENCRYPTED}
        add("response.output_item.added", output_index=len(output), item=dict(item, summary=[]))
        where = {"item_id": "rs_1", "output_index": len(output), "summary_index": 0}
        add(
            "response.reasoning_summary_part.added",
            **where,
            part={"type": "summary_text", "text": ""},
        )
        add("response.reasoning_summary_text.delta", **where, delta=reasoning)
        add("response.reasoning_summary_text.done", **where, text=reasoning)
        part = {"type": "summary_text", "text": reasoning}
        add("response.reasoning_summary_part.done", **where, part=part)
        item["summary"] = [part]
        add("response.output_item.done", output_index=len(output), item=item)
        output.append(item)
    if web_search:
        item = {"id": "ws_1", "type": "web_search_call", "status": "in_progress"}
        add("response.output_item.added", output_index=len(output), item=item)
        for step in ("in_progress", "searching", "completed"):
            add(f"response.web_search_call.{step}", output_index=len(output), item_id="ws_1")
        done = {**item, "status": "completed", "action": {"type": "search", "query": "news"}}
        add("response.output_item.done", output_index=len(output), item=done)
        output.append(done)
    text = "".join(pieces)
    message = {"id": "msg_1", "type": "message", "status": "in_progress", "role": "assistant"}
    where = {"item_id": "msg_1", "output_index": len(output), "content_index": 0}
    add("response.output_item.added", output_index=len(output), item={**message, "content": []})
    empty = {"type": "output_text", "text": "", "annotations": []}
    add("response.content_part.added", **where, part=empty)
    for piece in pieces:
        add("response.output_text.delta", **where, delta=piece, logprobs=[])
    add("response.output_text.done", **where, text=text, logprobs=[])
    add("response.content_part.done", **where, part={**empty, "text": text})
    done_message = {**message, "status": "completed", "content": [{**empty, "text": text}]}
    add("response.output_item.done", output_index=len(output), item=done_message)
    output.append(done_message)
    usage = {
        "input_tokens": 12,
        "input_tokens_details": {"cached_tokens": 4},
        "output_tokens": 7,
        "output_tokens_details": {"reasoning_tokens": 3},
        "total_tokens": 19,
    }
    if end in ("completed", "incomplete"):
        final = response_object(end, output, usage)
        if end == "incomplete":
            final["incomplete_details"] = {"reason": "max_output_tokens"}
        add(f"response.{end}", response=final)
    return events


def responses_script(pieces: Sequence[str], **kw: Any) -> Script:
    """`responses_events` as a script, one write per event; `Script` options (fault…) in kw."""
    options = {k: kw.pop(k) for k in list(kw) if k not in ("reasoning", "web_search", "end")}
    return Script(writes=[frame(e) for e in responses_events(pieces, **kw)], **options)


def whole_of(writes: Sequence[bytes]) -> dict[str, Any] | None:
    """The Response a script ends with (None if it ends otherwise)."""
    for raw in reversed(writes):
        for line in raw.split(b"\n"):
            if line.startswith(b"data: "):
                obj = orjson.loads(line[6:])
                if obj.get("type") in ("response.completed", "response.incomplete"):
                    response: dict[str, Any] = obj["response"]
                    return response
    return None


def _error(status: int, message: str, code: str | None, kind: str) -> web.Response:
    body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


async def openai_responses(fake: FakeOpenAI, request: web.Request) -> web.StreamResponse:
    if fake.api_key and request.headers.get("Authorization") != f"Bearer {fake.api_key}":
        return _error(
            401, "Incorrect API key provided.", "invalid_api_key", "invalid_request_error"
        )
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        return _error(400, "We could not parse the JSON body.", None, "invalid_request_error")
    if not isinstance(body, dict) or not isinstance(body.get("model"), str):
        return _error(
            400,
            "Missing required parameter: 'model'.",
            "missing_required_parameter",
            "invalid_request_error",
        )
    fake.received.append(Received(request.path, dict(request.headers), body, time.monotonic()))
    script = fake.response_scripts.get(body["model"]) or responses_script(["Hello", ", world!"])
    fake.active += 1
    try:
        if body.get("stream") is not True and script.status == 200:
            await asyncio.sleep(script.first_delay_s)
            answer = whole_of(script.writes)
            if answer is None or script.fault:
                return _error(500, "The server had an error.", "server_error", "server_error")
            return web.json_response(answer)
        return await fake._play(request, script)
    except (asyncio.CancelledError, ConnectionResetError):
        fake.gone.append(time.monotonic())
        raise
    finally:
        fake.active -= 1
