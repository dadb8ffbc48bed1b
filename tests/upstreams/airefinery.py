"""A fake AI Refinery (Accenture) endpoint: OpenAI's chat completions as its SDK calls them.

`POST /v1/chat/completions` at the host's root, `Authorization: Bearer` with the API key, or
with a token from `tokens` (an OAuth2 client-credentials IdP), and the SDK's `sdk_version`
header (requests without it are refused, as a server that reads it may). A bad credential is
401 in FastAPI's shape, `{"detail": …}`. Streams are OpenAI's SSE, by default without the
closing `data: [DONE]` (the SDK accepts the end of the body as the end); errors may come as an
`event: error` SSE event.
"""

from __future__ import annotations

from aiohttp import web

from tests.upstreams.oauth import FakeTokenEndpoint, bearer_problem, odd_pieces
from tests.upstreams.openai import FakeOpenAI, Script, text_script


def refinery_stream(pieces: list[str], *, done: bool = False) -> Script:
    script = text_script(pieces, done=done)
    return Script(writes=odd_pieces(list(script.writes)))


def error_event(message: str) -> Script:
    body = b'{"error": {"message": "' + message.encode() + b'", "code": "internal_error"}}'
    return Script(writes=[b"event: error\ndata: " + body + b"\n\n"])


class FakeRefinery(FakeOpenAI):
    def __init__(self, api_key: str | None = None, tokens: FakeTokenEndpoint | None = None) -> None:
        super().__init__()
        self.key = api_key
        self.tokens = tokens
        self.default = refinery_stream(["Hello", ", ", "world", "!"])

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        if self.tokens is not None:
            refused = bearer_problem(self.tokens, request) is not None
        else:
            refused = request.headers.get("Authorization") != f"Bearer {self.key}"
        if refused:
            return web.json_response({"detail": "Invalid authentication credentials"}, status=401)
        if not request.headers.get("sdk_version"):
            return web.json_response({"detail": "Missing sdk_version header"}, status=400)
        return await super()._chat(request)
