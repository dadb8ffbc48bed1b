"""A fake Google Vertex AI: the fake Gemini API at Vertex's paths, behind OAuth2 bearer tokens.

`POST /v1/projects/{project}/locations/{location}/publishers/google/models/{model}
:streamGenerateContent?alt=sse` with `Authorization: Bearer <token>` from a service account's
JWT-bearer grant (tests/upstreams/oauth.py verifies the JWT). As Vertex does: no token is 401
`UNAUTHENTICATED`, a token it did not issue 401 too, another project 403 `PERMISSION_DENIED`,
and an API key is not how Vertex is called (`x-goog-api-key` is refused). Request checks, the
stream format and the error shapes (`{"error": {"code", "message", "status"}}`, also wrapped
in a list) are the fake Gemini's.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from tests.upstreams.gemini import FakeGemini, _error
from tests.upstreams.oauth import FakeTokenEndpoint, bearer_problem


class FakeVertex(FakeGemini):
    def __init__(self, tokens: FakeTokenEndpoint, project: str, location: str) -> None:
        super().__init__()
        self.tokens = tokens
        self.project = project
        self.location = location
        self.app = web.Application()
        self.app.router.add_post(
            "/v1/projects/{project}/locations/{location}/publishers/google/models/{target}",
            self._vertex,
        )

    async def _vertex(self, request: web.Request) -> web.StreamResponse:
        return await self._generate(request)

    def _key_problem(self, request: web.Request) -> web.Response | None:
        if "x-goog-api-key" in request.headers:
            return _error(
                401,
                "UNAUTHENTICATED",
                "API keys are not supported by this API. Expected OAuth2 access token or other "
                "authentication credentials that assert a principal.",
            )
        problem = bearer_problem(self.tokens, request)
        if problem == "missing":
            return _error(
                401,
                "UNAUTHENTICATED",
                "Request is missing required authentication credential. Expected OAuth 2 "
                "access token, login cookie or other valid authentication credential.",
            )
        if problem is not None:
            return _error(
                401,
                "UNAUTHENTICATED",
                "Request had invalid authentication credentials. Expected OAuth 2 access "
                "token, login cookie or other valid authentication credential.",
            )
        info = request.match_info
        if info["project"] != self.project or info["location"] != self.location:
            return _error(
                403,
                "PERMISSION_DENIED",
                f"Permission 'aiplatform.endpoints.predict' denied on resource "
                f"'//aiplatform.googleapis.com/projects/{info['project']}/locations/"
                f"{info['location']}/publishers/google/models/{info['target']}'.",
            )
        return None


def vertex_list_error(code: int, status: str, message: str) -> Any:
    """Vertex's streaming error: Google's error object inside a JSON array."""
    return [{"error": {"code": code, "message": message, "status": status}}]
