"""A fake Azure OpenAI resource: a real aiohttp server on 127.0.0.1.

`POST /openai/deployments/{deployment}/chat/completions?api-version=…` with the key in the
`api-key` header, or an Entra ID bearer token from `tokens`. As Azure does: a missing
`api-version` is 404 "Resource not found", an unknown one 400 `BadRequest`, a wrong key 401
`{"error": {"code": "401", "message": "Access denied…"}}`, an unknown deployment 404
`DeploymentNotFound`. A stream starts with a chunk without choices that carries
`prompt_filter_results`, and each content chunk carries `content_filter_results`; a non-stream
answer carries both. Scripts are chosen by deployment name (the body's `model` is ignored, as
Azure ignores it).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
from aiohttp import web

from tests.upstreams.oauth import FakeTokenEndpoint, bearer_problem, odd_pieces
from tests.upstreams.openai import FakeOpenAI, Received, Script, completion_of, sse

API_VERSIONS = frozenset(("2024-06-01", "2024-10-21", "2025-01-01-preview"))
SAFE = {"filtered": False, "severity": "safe"}
FILTERS = {"hate": SAFE, "self_harm": SAFE, "sexual": SAFE, "violence": SAFE}
PROMPT_FILTERS = [{"prompt_index": 0, "content_filter_results": FILTERS}]


def azure_chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    choice: dict[str, Any] = {"index": 0, "delta": delta, "finish_reason": finish}
    choice["content_filter_results"] = FILTERS if delta.get("content") else {}
    return {
        "id": "chatcmpl-azure",
        "object": "chat.completion.chunk",
        "created": 1733000000,
        "model": "gpt-4o-2024-08-06",
        "system_fingerprint": "fp_azure",
        "choices": [choice],
    }


def azure_stream(
    pieces: list[str], *, finish: str = "stop", usage: bool = True, split: bool = True
) -> Script:
    """Azure's stream: prompt filter results first, text chunks, finish, usage, [DONE]."""
    objects: list[Any] = [
        {
            "id": "",
            "object": "",
            "created": 0,
            "model": "",
            "choices": [],
            "prompt_filter_results": PROMPT_FILTERS,
        },
        azure_chunk({"role": "assistant", "content": ""}),
    ]
    objects += [azure_chunk({"content": piece}) for piece in pieces]
    objects.append(azure_chunk({}, finish))
    if usage:
        objects.append(
            {
                **azure_chunk({}),
                "choices": [],
                "usage": {
                    "prompt_tokens": 9,
                    "completion_tokens": len(pieces),
                    "total_tokens": 9 + len(pieces),
                },
            }
        )
    objects.append("[DONE]")
    writes = sse(*objects)
    return Script(writes=odd_pieces(writes) if split else writes)


def azure_error(
    status: int, error: dict[str, Any], headers: dict[str, str] | None = None
) -> Script:
    return Script(
        writes=[orjson.dumps({"error": error})],
        status=status,
        headers=headers or {},
        content_type="application/json",
    )


def content_filter_error() -> Script:
    """Azure's 400 for a prompt its filter refuses."""
    return azure_error(
        400,
        {
            "message": "The response was filtered due to the prompt triggering Azure OpenAI's "
            "content management policy. Please modify your prompt and retry.",
            "type": None,
            "param": "prompt",
            "code": "content_filter",
            "status": 400,
            "innererror": {
                "code": "ResponsibleAIPolicyViolation",
                "content_filter_result": {
                    **FILTERS,
                    "violence": {"filtered": True, "severity": "high"},
                    "jailbreak": {"filtered": False, "detected": False},
                },
            },
        },
    )


class FakeAzure(FakeOpenAI):
    def __init__(
        self, api_key: str = "azure-key-0123456789", tokens: FakeTokenEndpoint | None = None
    ) -> None:
        super().__init__()
        self.api_key = api_key
        self.tokens = tokens
        self.deployments: set[str] = {"gpt4o-prod"}
        self.default = azure_stream(["Hello", ", ", "world", "!"])
        self.app = web.Application()
        self.app.router.add_post(
            "/openai/deployments/{deployment}/chat/completions", self._deployment
        )

    async def _deployment(self, request: web.Request) -> web.StreamResponse:
        body = orjson.loads(await request.read())
        self.received.append(
            Received(request.path_qs, dict(request.headers), body, time.monotonic())
        )
        version = request.query.get("api-version")
        if version is None:
            return _error(404, {"code": "404", "message": "Resource not found"})
        if version not in API_VERSIONS:
            return _error(400, {"code": "BadRequest", "message": "API version not supported"})
        if self.tokens is not None:
            if bearer_problem(self.tokens, request) is not None:
                return _error(
                    401,
                    {
                        "code": "PermissionDenied",
                        "message": "Principal does not have access to API/Operation.",
                    },
                )
        elif request.headers.get("api-key") != self.api_key:
            return _error(
                401,
                {
                    "code": "401",
                    "message": "Access denied due to invalid subscription key or wrong API "
                    "endpoint. Make sure to provide a valid key for an active subscription and "
                    "use a correct regional API endpoint for your resource.",
                },
            )
        deployment = request.match_info["deployment"]
        if deployment not in self.deployments:
            return _error(
                404,
                {
                    "code": "DeploymentNotFound",
                    "message": "The API deployment for this resource does not exist. If you "
                    "created the deployment within the last 5 minutes, please wait a moment "
                    "and try again.",
                },
            )
        script = self.script_for(deployment)
        if body.get("stream") is False and script.status == 200:
            return _whole(script)
        self.active += 1
        try:
            return await self._play(request, script)
        except (asyncio.CancelledError, ConnectionResetError):
            self.gone.append(time.monotonic())
            raise
        finally:
            self.active -= 1


def _whole(script: Script) -> web.Response:
    """A non-stream answer, with Azure's filter results at the top and on the choice."""
    answer = completion_of(script.writes)
    assert answer is not None
    answer["prompt_filter_results"] = PROMPT_FILTERS
    for choice in answer["choices"]:
        choice["content_filter_results"] = FILTERS
    return web.json_response(answer)


def _error(status: int, error: dict[str, Any]) -> web.Response:
    return web.json_response({"error": error}, status=status)
