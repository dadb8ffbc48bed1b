"""Google Vertex AI: the Gemini protocol (llms/adapters/gemini*.py) at Vertex's address.

`POST {base_url}/v1/projects/{project}/locations/{location}/publishers/google/models/{model}
:streamGenerateContent?alt=sse` with `Authorization: Bearer` and a token bought with the
service account's signed JWT (llms/credentials.py), instead of the Gemini API's
`x-goog-api-key`. The request, the stream and the errors (`{"error": {"code", "message",
"status"}}`, Vertex also wraps them in a list) are Gemini's.
"""

from __future__ import annotations

import dataclasses
from urllib.parse import quote

from llms.adapters.base import UpstreamRequest
from llms.adapters.gemini import FRAMING, from_error_response, new_converter
from llms.adapters.gemini import build_request as _gemini_request
from llms.config import ProviderConfig
from llms.wire import ChatRequest


def build_request(
    request: ChatRequest, provider: ProviderConfig, upstream_model: str
) -> UpstreamRequest:
    options = provider.options
    project = quote(str(options["project"]), safe="")
    location = quote(str(options["location"]), safe="")
    publisher = f"{provider.base_url}/v1/projects/{project}/locations/{location}/publishers/google"
    model = upstream_model.removeprefix("models/")
    at_vertex = dataclasses.replace(provider, base_url=publisher, api_key=None)
    return _gemini_request(request, at_vertex, f"models/{quote(model, safe='.-_@')}")


__all__ = ["FRAMING", "build_request", "from_error_response", "new_converter"]
