"""A fake Google Gemini API: a real aiohttp server on 127.0.0.1 replaying recorded streams.

`POST /v1beta/models/{model}:streamGenerateContent?alt=sse` with the key in `x-goog-api-key`
(and `:countTokens`, answering `{"totalTokens": N}` by the fake's own tokenizer, `count_of`).
Like the real service it answers `data: <GenerateContentResponse>\\r\\n\\r\\n` events with no
`[DONE]` (the end of the body is the end), a JSON array when `alt=sse` is missing, 403 without
a key, 400 `API_KEY_INVALID` for a wrong key, and 400 `INVALID_ARGUMENT` for fields the API
does not know. Errors are pretty-printed JSON, as Google sends them. Playback, fault injection
(`Script.fault`, delays) and the `received` / `gone` / `finished` records come from the fake
OpenAI provider.
"""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from tests.upstreams.openai import FakeOpenAI, Received, Script

TRANSCRIPTS = Path(__file__).parent.parent / "transcripts" / "gemini"

_REQUEST_FIELDS = {
    "contents",
    "systemInstruction",
    "tools",
    "toolConfig",
    "generationConfig",
    "safetySettings",
    "cachedContent",
}
_GENERATION_FIELDS = {
    "temperature",
    "topP",
    "topK",
    "candidateCount",
    "maxOutputTokens",
    "stopSequences",
    "seed",
    "presencePenalty",
    "frequencyPenalty",
    "responseMimeType",
    "responseSchema",
    "responseJsonSchema",
    "responseLogprobs",
    "logprobs",
    "thinkingConfig",
    "responseModalities",
}
_PART_DATA = {"text", "inlineData", "fileData", "functionCall", "functionResponse"}
_PART_FIELDS = _PART_DATA | {"thought", "thoughtSignature"}


def events(*objects: Any) -> list[bytes]:
    """Each object as one `data: <json>\\r\\n\\r\\n` write, the way Gemini frames its events."""
    return [b"data: " + orjson.dumps(obj) + b"\r\n\r\n" for obj in objects]


def transcript(name: str, **kw: Any) -> Script:
    """A stored stream from tests/transcripts/gemini/, one write per event."""
    raw = (TRANSCRIPTS / name).read_bytes()
    writes = [part + b"\r\n\r\n" for part in raw.split(b"\r\n\r\n") if part.strip()]
    return Script(writes=writes, **kw)


def error_body(code: int, status: str, message: str, details: list[Any] | None = None) -> bytes:
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details is not None:
        error["details"] = details
    return orjson.dumps({"error": error}, option=orjson.OPT_INDENT_2) + b"\n"


def error_script(
    code: int,
    status: str,
    message: str,
    *,
    details: list[Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Script:
    return Script(
        writes=[error_body(code, status, message, details)],
        status=code,
        headers=headers or {},
        content_type="application/json",
    )


def _problem(body: Any) -> str | None:
    """What the real API would reject in a request body, in its words; None when it is fine."""
    if not isinstance(body, dict):
        return "Invalid JSON payload received. Expected an object."
    for key in body:
        if key not in _REQUEST_FIELDS:
            return f'Invalid JSON payload received. Unknown name "{key}": Cannot find field.'
    for key in body.get("generationConfig") or {}:
        if key not in _GENERATION_FIELDS:
            return (
                f'Invalid JSON payload received. Unknown name "{key}" at '
                "'generation_config': Cannot find field."
            )
    contents = body.get("contents")
    if not contents:
        return "* GenerateContentRequest.contents: contents is not specified"
    for i, content in enumerate(contents):
        if content.get("role") not in ("user", "model"):
            return f"Please use a valid role: user, model. (contents[{i}])"
        parts = content.get("parts")
        if not parts:
            return (
                f"* GenerateContentRequest.contents[{i}].parts: contents.parts must not be empty."
            )
        for part in parts:
            if set(part) - _PART_FIELDS or len(set(part) & _PART_DATA) != 1:
                return f"* GenerateContentRequest.contents[{i}].parts: invalid part {part}"
    return None


SIGNATURE_SENTINEL = "skip_thought_signature_validator"  # Google's documented stand-in


def signature_problem(model: str, body: dict[str, Any], signed: set[bytes]) -> str | None:
    """Gemini 3 and later: in the current turn (the contents after the last user text), the
    first functionCall part of each model step must carry a thoughtSignature the API gave out
    (or Google's stand-in); 1.x and 2.x models do not check."""
    if not model.startswith("gemini-") or model.startswith(("gemini-1", "gemini-2")):
        return None
    contents = body.get("contents") or []
    start = 0
    for i, content in enumerate(contents):
        parts = content.get("parts") or []
        if content.get("role") == "user" and any("text" in part for part in parts):
            start = i + 1
    for i in range(start, len(contents)):
        parts = contents[i].get("parts") or []
        calls = [(j, part) for j, part in enumerate(parts) if "functionCall" in part]
        if contents[i].get("role") != "model" or not calls:
            continue
        j, first = calls[0]
        signature = first.get("thoughtSignature")
        if signature is None:
            name = first["functionCall"].get("name")
            return (
                "Function call is missing a thought_signature in functionCall parts. This is "
                "required for tools to work correctly, and missing thought_signature may lead "
                f"to degraded model performance. Additional data, function call `{name}` , "
                f"position {j + 1}. Please refer to "
                "https://ai.google.dev/gemini-api/docs/thought-signatures for more details."
            )
        if signature != SIGNATURE_SENTINEL and signature.encode() not in signed:
            return f"Corrupted thought signature. (contents[{i}].parts[{j}])"
    return None


class FakeGemini(FakeOpenAI):
    """Serves `:streamGenerateContent`; scripts are chosen by the model in the path."""

    def __init__(self, api_key: str = "gm-test-key") -> None:
        super().__init__()
        self.api_key = api_key
        self.default = transcript("text.sse")
        # The thought signatures the fake gave out (Gemini 3 checks the ones it gets back).
        self.signed: set[bytes] = set()
        self.app = web.Application(client_max_size=64 * 1024 * 1024)
        self.app.router.add_post("/v1beta/models/{target}", self._generate)
        self.app.router.add_get("/v1beta/models/{target}", self._model)

    async def _model(self, request: web.Request) -> web.Response:
        """`GET models/{m}` (what the model supports), behind the key."""
        from tests.upstreams.embeddings import gemini_model

        return self._key_problem(request) or gemini_model(request.match_info["target"])

    async def _generate(self, request: web.Request) -> web.StreamResponse:
        model, _, method = request.match_info["target"].rpartition(":")
        embeds = method in ("embedContent", "batchEmbedContents")
        if method not in ("streamGenerateContent", "countTokens") and not embeds:
            return _error(404, "NOT_FOUND", f"Method {method!r} is not served by this fake.")
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return _error(400, "INVALID_ARGUMENT", "Invalid JSON payload received.")
        self.received.append(
            Received(request.path_qs, dict(request.headers), body, time.monotonic())
        )
        problem = self._key_problem(request)
        if problem is not None:
            return problem
        if method == "countTokens":
            return await self._count_tokens(request, model, body)
        if embeds:
            from tests.upstreams.embeddings import gemini_embed

            return await gemini_embed(self, request, model, method, body)
        refused = _problem(body) or signature_problem(model, body, self.signed)
        if refused is not None:
            return _error(400, "INVALID_ARGUMENT", refused)
        script = self.script_for(model)
        self.signed.update(re.findall(rb'"thoughtSignature": ?"([^"]+)"', b"".join(script.writes)))
        if request.query.get("alt") != "sse" and script.status == 200:
            script = _as_json_array(script)
        self.active += 1
        try:
            return await self._play(request, script)
        except (asyncio.CancelledError, ConnectionResetError):
            self.gone.append(time.monotonic())
            raise
        finally:
            self.active -= 1

    def _key_problem(self, request: web.Request) -> web.Response | None:
        key = request.headers.get("x-goog-api-key") or request.query.get("key")
        if not key:
            return _error(
                403,
                "PERMISSION_DENIED",
                "Method doesn't allow unregistered callers (callers without established "
                "identity). Please use API Key or other form of API consumer identity to call "
                "this API.",
            )
        if key != self.api_key:
            return _error(
                400,
                "INVALID_ARGUMENT",
                "API key not valid. Please pass a valid API key.",
                [
                    {
                        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                        "reason": "API_KEY_INVALID",
                    }
                ],
            )
        return None

    async def _count_tokens(
        self, request: web.Request, model: str, body: dict[str, Any]
    ) -> web.StreamResponse:
        """`countTokens`: `contents`, or a whole `generateContentRequest` (with its `model`),
        never both; `{"totalTokens": N}` (`count_of`). A model whose script is an error
        answers that error instead."""
        if not isinstance(body, dict) or set(body) - {"contents", "generateContentRequest"}:
            return _error(400, "INVALID_ARGUMENT", "Invalid JSON payload received.")
        generate = body.get("generateContentRequest")
        if generate is not None:
            if "contents" in body:
                return _error(400, "INVALID_ARGUMENT", "contents and generateContentRequest")
            if not isinstance(generate, dict) or generate.get("model") != f"models/{model}":
                return _error(400, "INVALID_ARGUMENT", "generateContentRequest.model is invalid")
            problem = _problem({k: v for k, v in generate.items() if k != "model"})
        else:
            problem = _problem({"contents": body.get("contents")})
        if problem is not None:
            return _error(400, "INVALID_ARGUMENT", problem)
        script = self.script_for(model)
        if script.status != 200:
            return await self._play(request, script)
        return web.json_response({"totalTokens": count_of(generate or body)})


def count_of(request: dict[str, Any]) -> int:
    """The fake's tokenizer: a word or punctuation mark of the prompt's JSON is a token."""
    counted = {key: request.get(key) for key in ("contents", "systemInstruction", "tools")}
    return len(re.findall(r"\w+|[^\w\s]", orjson.dumps(counted).decode()))


def _error(code: int, status: str, message: str, details: list[Any] | None = None) -> web.Response:
    return web.Response(
        body=error_body(code, status, message, details),
        status=code,
        content_type="application/json",
        charset="UTF-8",
    )


def _as_json_array(script: Script) -> Script:
    """Without `alt=sse` Gemini streams one JSON array, `[{…},\\r\\n{…}]`."""
    items = [w.removeprefix(b"data: ").rstrip(b"\r\n") for w in script.writes]
    writes = [(b"[" if i == 0 else b",\r\n") + item for i, item in enumerate(items)]
    return Script(writes=[*writes, b"]"], content_type="application/json")
