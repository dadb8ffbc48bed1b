"""`POST /v1/completions`: OpenAI's legacy text completions, stream and non-stream.

Routed as chat is (retries, fallback before the first output, circuits, deadlines, the key's
models and limits, the request record), through the same drivers: the relay (default mode),
the pump (resumable mode, `X-Stream-Resumable: true`) and `routes.complete_any` (non-stream).
An upstream that serves `/completions` is asked natively (llms/api/completions_native.py) and
its chunks are relayed as they came; every other provider is asked through chat
(llms/api/completions_request.py) and its chunks become `text_completion` ones
(llms/api/completions.py). Errors are OpenAI's shape; a failure after output ends the stream
with an error event, then `[DONE]`, as chat's.
"""

from __future__ import annotations

from aiohttp import web

from llms.api.completions import COMPLETIONS, COMPLETIONS_LOG, from_completion, new_completion_id
from llms.api.completions_native import CompletionsRoute
from llms.api.completions_request import CompletionsCall, chat_param, from_request
from llms.chunks import StreamMeta
from llms.errors import GatewayError
from llms.routing import Router
from llms.server import keys
from llms.server.relay import relay, relay_log
from llms.server.requests import read_json_request
from llms.server.routes import Tracked, chosen_stream_id, complete_any, json_response


async def create_completion(request: web.Request) -> web.StreamResponse:
    """POST /v1/completions: a stream of `text_completion` chunks, or one."""
    app = request.app
    async with Tracked(request) as tracked:
        record = tracked.record
        server = app[keys.CONFIG].server
        call = from_request(await read_json_request(request))
        router = tracked.admit(call.model)
        route = CompletionsRoute(call)
        meta = StreamMeta(id=new_completion_id(), model=call.model)
        record.stream_id = meta.id
        try:
            if not call.stream:
                completion, answer, provider = await complete_any(
                    app, router, call.chat, meta, record, route
                )
                if answer is None:
                    assert completion is not None
                    answer = from_completion(completion)
                return json_response(answer, headers={"X-Provider": provider})
            record.stream = True
            app[keys.METRICS].stream_started()
            if request.headers.get("X-Stream-Resumable", "").lower() == "true":
                return await _resumable(request, tracked, router, call, meta)
            return await relay(
                request,
                router,
                call.chat,
                meta,
                include_usage=call.include_usage,
                heartbeat_s=server.heartbeat_s,
                shutting_down=app[keys.SHUTTING_DOWN],
                record=record,
                encoder=COMPLETIONS,
                native=route,
            )
        except GatewayError as error:
            # An adapter's 400 about the chat request's messages is about the prompt.
            error.param = chat_param(error.param)
            raise


async def _resumable(
    request: web.Request, tracked: Tracked, router: Router, call: CompletionsCall, meta: StreamMeta
) -> web.StreamResponse:
    """Resumable mode: the pump logs the stream (GET /v1/streams/{id} resumes it)."""
    app = request.app
    record = tracked.record
    record.resumable = True
    chosen = chosen_stream_id(request, meta, record)
    stream = await app[keys.STREAMS].start(
        router,
        call.chat,
        meta,
        include_usage=call.include_usage,
        record=record,
        on_done=app[keys.TELEMETRY].finish,
        chosen_id=chosen is not None,
        encoder=COMPLETIONS_LOG,
        native=CompletionsRoute(call),
    )
    tracked.hand_over(stream)
    return await relay_log(request, stream, 0, heartbeat_s=app[keys.CONFIG].server.heartbeat_s)


def install(app: web.Application) -> None:
    app.router.add_post("/v1/completions", create_completion)
