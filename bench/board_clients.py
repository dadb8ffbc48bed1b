"""Non-streamed Responses and Messages load clients, for the board's added p99 at one client.

Each answer is checked whole: the object's type, the model asked for, the text exactly the
upstream's content, the stop status and a usage object. Requests otherwise match the streamed
clients' (bench.responses_load, bench.messages_load) with ``stream: false``.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson

from bench.load import Failure, LoadClient, LoadSpec
from bench.messages_load import messages_body
from bench.responses_load import responses_body


async def _json(resp: aiohttp.ClientResponse) -> tuple[Any, int]:
    """The answer's JSON object and its size; Failure if it is not a JSON object."""
    if resp.content_type != "application/json":
        raise Failure("content_type", f"Content-Type {resp.content_type!r}")
    body = await resp.read()
    try:
        answer = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise Failure("bad_json", f"{exc}: {body[:120]!r}") from exc
    if not isinstance(answer, dict):
        raise Failure("bad_json", f"not an object: {body[:120]!r}")
    return answer, len(body)


def _unstreamed(body: bytes) -> bytes:
    """A streamed request body with ``stream: false``."""
    payload = orjson.loads(body)
    payload["stream"] = False
    return orjson.dumps(payload)


class ResponsesWholeClient(LoadClient):
    """``POST /v1/responses`` with ``stream: false``: one whole Response per request."""

    def __init__(self, spec: LoadSpec, expected: tuple[str, ...]) -> None:
        super().__init__(spec, expected)
        self._body = _unstreamed(responses_body(spec.model, background=False))

    async def read_whole(self, resp: aiohttp.ClientResponse) -> int:
        """Check one Response: completed, the model, one message whose text is the content."""
        answer, size = await _json(resp)
        if answer.get("object") != "response" or answer.get("model") != self.spec.model:
            raise Failure(
                "wrong_object", f"object={answer.get('object')!r} model={answer.get('model')!r}"
            )
        if answer.get("status") != "completed":
            raise Failure("shape", f"status={answer.get('status')!r}")
        texts = [
            part.get("text")
            for item in answer.get("output") or []
            if isinstance(item, dict) and item.get("type") == "message"
            for part in item.get("content") or []
            if isinstance(part, dict) and part.get("type") == "output_text"
        ]
        if texts != ["".join(self.expected)]:
            raise Failure("content", f"output texts differ: {str(texts)[:120]}")
        if not isinstance(answer.get("usage"), dict):
            raise Failure("missing_usage", "response without usage")
        return size


class MessagesWholeClient(LoadClient):
    """``POST /v1/messages`` with ``stream: false``: one whole Message per request."""

    def __init__(self, spec: LoadSpec, expected: tuple[str, ...]) -> None:
        super().__init__(spec, expected)
        self._body = _unstreamed(messages_body(spec.model))

    async def read_whole(self, resp: aiohttp.ClientResponse) -> int:
        """Check one Message: assistant, the model, one text block, ``end_turn``, usage."""
        answer, size = await _json(resp)
        if answer.get("type") != "message" or answer.get("model") != self.spec.model:
            raise Failure(
                "wrong_object", f"type={answer.get('type')!r} model={answer.get('model')!r}"
            )
        blocks = answer.get("content")
        text = "".join(self.expected)
        if answer.get("role") != "assistant" or blocks != [{"type": "text", "text": text}]:
            raise Failure("content", f"content differs: {str(blocks)[:120]}")
        if answer.get("stop_reason") != "end_turn":
            raise Failure("shape", f"stop_reason={answer.get('stop_reason')!r}")
        if not isinstance(answer.get("usage"), dict):
            raise Failure("missing_usage", "message without usage")
        return size
