"""A fake Ollama server: `POST /api/chat` answers in NDJSON, `GET /api/tags` lists models.

It speaks Ollama's native protocol as the real server does (protocol.md §3.2): the chat answer
is `application/x-ndjson`, one JSON object per line, ending with a `"done": true` line; errors
are `{"error": "<message>"}` with an HTTP status. Scripts (playback, delays and faults) are the
ones of the fake OpenAI provider; transcripts live in tests/transcripts/ollama/.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import orjson
from aiohttp import web

from tests.upstreams.openai import TRANSCRIPTS, FakeOpenAI, Received, Script

NDJSON = "application/x-ndjson"
OLLAMA_TRANSCRIPTS = TRANSCRIPTS / "ollama"
CREATED_AT = "2025-06-01T10:00:00.000000000Z"


def ndjson(*objects: Any, **kw: Any) -> Script:
    """Each object as one `<json>\\n` write (bytes are sent as they are)."""
    writes = [obj if isinstance(obj, bytes) else orjson.dumps(obj) + b"\n" for obj in objects]
    return Script(writes=writes, content_type=NDJSON, **kw)


def line(
    content: str = "", *, model: str = "llama3.2", thinking: str | None = None, **message: Any
) -> dict[str, Any]:
    """A `done: false` line carrying one message delta."""
    body: dict[str, Any] = {"role": "assistant", "content": content, **message}
    if thinking is not None:
        body["thinking"] = thinking
    return {"model": model, "created_at": CREATED_AT, "message": body, "done": False}


def done(
    reason: str | None = "stop", *, prompt: int | None = 26, completion: int | None = 3
) -> dict[str, Any]:
    """The final line: `done: true`, the reason, durations in ns and the token counts."""
    out: dict[str, Any] = {
        "model": "llama3.2",
        "created_at": CREATED_AT,
        "message": {"role": "assistant", "content": ""},
        "done": True,
        "total_duration": 4883583458,
        "load_duration": 1334875,
        "prompt_eval_duration": 342546000,
        "eval_duration": 4535599000,
    }
    if reason is not None:
        out["done_reason"] = reason
    if prompt is not None:
        out["prompt_eval_count"] = prompt
    if completion is not None:
        out["eval_count"] = completion
    return out


def text_script(pieces: Sequence[str], **kw: Any) -> Script:
    return ndjson(*(line(p) for p in pieces), done(completion=len(pieces)), **kw)


def transcript(name: str, *, piece: int | None = None, **kw: Any) -> Script:
    """A recorded stream: one write per line, or `piece`-byte writes that cut lines anywhere."""
    raw = (OLLAMA_TRANSCRIPTS / name).read_bytes()
    if piece is None:
        writes = raw.splitlines(keepends=True)
    else:
        writes = [raw[i : i + piece] for i in range(0, len(raw), piece)]
    return Script(writes=writes, content_type=NDJSON, **kw)


def error_script(status: int, message: str, headers: dict[str, str] | None = None) -> Script:
    """Ollama's HTTP error: the status and `{"error": "<message>"}`."""
    body = orjson.dumps({"error": message})
    return Script(
        writes=[body], status=status, headers=headers or {}, content_type="application/json"
    )


def tag(name: str) -> dict[str, Any]:
    """One `/api/tags` entry as Ollama lists it."""
    return {
        "name": name,
        "model": name,
        "modified_at": "2025-05-30T09:12:44.123456789Z",
        "size": 2019393189,
        "digest": "a80c4f17acd55265feec403c7aef86be0c25983ab279d83f3bcd3abbcb5b8b72",
        "details": {
            "parent_model": "",
            "format": "gguf",
            "family": "llama",
            "families": ["llama"],
            "parameter_size": "3.2B",
            "quantization_level": "Q4_K_M",
        },
    }


class FakeOllama(FakeOpenAI):
    """Serves `POST /api/chat` from scripts chosen by model name, and `GET /api/tags`.

    `tags` is the model list `/api/tags` returns; `tags_script`, when set, replaces that answer
    (an error status, a malformed body). Chat requests are recorded in `received`, model list
    requests in `tag_requests`.
    """

    def __init__(self) -> None:
        super().__init__()
        self.default = text_script(["Hello", ", ", "world", "!"])
        self.tags: list[str] = ["llama3.2:latest"]
        self.tags_script: Script | None = None
        self.tag_requests: list[Received] = []
        # The OpenAI routes are not Ollama's: serve only the native API.
        self.app = web.Application(client_max_size=64 * 1024 * 1024)
        self.app.router.add_post("/api/chat", self._chat)
        self.app.router.add_get("/api/tags", self._tags)
        self.app.router.add_post("/api/embed", self._embed)
        self.app.router.add_post("/api/show", self._show)

    async def _show(self, request: web.Request) -> web.StreamResponse:
        from tests.upstreams.embeddings import ollama_show

        return await ollama_show(self, request)

    async def _embed(self, request: web.Request) -> web.StreamResponse:
        from tests.upstreams.embeddings import ollama_embed

        return await ollama_embed(self, request)

    async def _tags(self, request: web.Request) -> web.StreamResponse:
        self.tag_requests.append(
            Received(request.path, dict(request.headers), {}, time.monotonic())
        )
        if self.tags_script is not None:
            return await self._play(request, self.tags_script)
        return web.json_response({"models": [tag(name) for name in self.tags]})
