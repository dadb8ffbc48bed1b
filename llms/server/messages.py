"""Anthropic's Messages API as a client-facing API: `POST /v1/messages` on every model.

A request is translated onto chat completions (llms/api/messages_request.py), routed like any
chat request (retries, fallback, circuits, deadlines), and its chunks become Anthropic's stream
events or Message (llms/api/messages.py) through the same relay; heartbeats are `event: ping`.
Errors are Anthropic's shape and statuses (server/middleware.py renders them by path).
"""

from __future__ import annotations

from typing import Any, cast

from aiohttp import web

from llms.api.messages import MessageBuilder, fold_message
from llms.api.messages_native import MessagesRoute, serves
from llms.api.messages_object import new_message_id
from llms.api.messages_request import MessagesCall, from_request
from llms.api.messages_stream import MessagesEncoder
from llms.chunks import StreamMeta, from_completion
from llms.errors import GatewayError, InvalidRequest
from llms.native import passed_through
from llms.server import count_tokens, keys
from llms.server.relay import relay
from llms.server.requests import read_json_request
from llms.server.routes import Tracked, complete_any, json_response
from llms.wire import ChatRequest


async def create_message(request: web.Request) -> web.StreamResponse:
    """POST /v1/messages: a stream of Anthropic's events, or one Message."""
    app = request.app
    async with Tracked(request) as tracked:
        record = tracked.record
        server = app[keys.CONFIG].server
        body = await read_json_request(request)
        route = _native_route(app, body, request)
        try:
            call = from_request(body)
        except InvalidRequest as error:
            if route is None:
                raise
            # What only Anthropic can honour (a server tool, citations…): passed through to
            # Anthropic providers; the others are not tried and would have said this.
            route.refusal = error
            call = MessagesCall(
                model=body["model"],
                chat={"model": body["model"], "messages": []},  # never sent: only Anthropic is
                stream=body.get("stream") is True,
            )
        router = tracked.admit(call.model)
        chat = cast(ChatRequest, call.chat_with_thinking())
        message_id = new_message_id()
        # The upstream's chunks are named by the message (their ids never reach the client),
        # and so is the request's log row.
        meta = StreamMeta(id=message_id, model=call.model, chat_json=False)
        record.stream_id = message_id
        try:
            if not call.stream:
                completion, native, provider = await complete_any(
                    app, router, chat, meta, record, route
                )
                if completion is None:
                    return json_response(native, headers={"X-Provider": provider})
                message = fold_message(
                    message_id,
                    call.model,
                    [from_completion(completion)],
                    stop_sequences=call.stop_sequences,
                )
                return json_response(message, headers={"X-Provider": provider})
            record.stream = True
            app[keys.METRICS].stream_started()
            builder = MessageBuilder(message_id, call.model, stop_sequences=call.stop_sequences)
            return await relay(
                request,
                router,
                chat,
                meta,
                include_usage=True,
                heartbeat_s=server.heartbeat_s,
                shutting_down=app[keys.SHUTTING_DOWN],
                record=record,
                encoder=MessagesEncoder(builder),
                native=route,
            )
        except GatewayError as error:
            # An adapter's 400 names a chat field: name the Messages field it came from.
            if not passed_through(route, router.providers_for(call.model), record.provider):
                error.param = call.messages_param(error.param)
            raise


def _native_route(
    app: web.Application, body: dict[str, Any], request: web.Request
) -> MessagesRoute | None:
    """The request as Anthropic providers are sent it (passthrough, api/messages_native.py),
    when one serves its model; None otherwise."""
    model = body.get("model")
    if not isinstance(model, str):
        return None
    if not any(serves(p) for p in app[keys.ROUTER].routes.get(model, ())):
        return None
    messages = body.get("messages")
    if isinstance(messages, list) and any(
        not isinstance(m, dict) or m.get("role") not in ("user", "assistant") for m in messages
    ):
        # Claude Code sends a `role: "system"` message after the user's turn to models it does
        # not know by name; Anthropic refuses it, the translation places it: translated.
        return None
    return MessagesRoute(body, request.headers)


def install(app: web.Application) -> None:
    app.router.add_post("/v1/messages", create_message)
    # Exact from the upstream where it can count, else an estimate (server/count_tokens.py).
    count_tokens.install(app)
    app.router.add_post("/v1/messages/count_tokens", count_tokens.count_tokens)
