"""llms.api.messages*: failures as error events and HTTP errors in Anthropic's shape, the
non-stream Message the SDK returns, and the resumable log encoder.

Shared helpers: tests/messages_support.py.
"""

from __future__ import annotations

import anthropic
import httpx2
import orjson
import pytest
from anthropic.types.shared import ErrorResponse

from llms.api.messages import (
    PING,
    MessageBuilder,
    error_body,
    error_status,
    error_type,
    fold_message,
    new_message_id,
)
from llms.api.messages_stream import LOG_PREFIX, MessagesEncoder, MessagesLog
from llms.chunks import (
    finish_chunk,
    tool_call_delta,
)
from llms.errors import (
    AuthenticationFailed,
    GatewayError,
    InvalidRequest,
    ModelNotFound,
    PayloadTooLarge,
    PermissionDenied,
    RateLimited,
    ServiceUnavailable,
    UpstreamDisconnected,
    UpstreamHTTPError,
    UpstreamMalformed,
    UpstreamTimeout,
)
from tests.messages_support import (
    EVENT,
    META,
    calls,
    check_stream,
    parse_sse,
    reasoning,
    run,
    sdk_stream,
    text,
    usage,
)

# --- failures -------------------------------------------------------------------------------------


def test_a_failure_after_output_is_an_error_event_and_no_message_stop() -> None:
    error = UpstreamDisconnected("The upstream closed the connection.")
    payloads, _, data = run([text("partial")], end="fail", error=error)
    assert payloads[-1] == {
        "type": "error",
        "error": {"type": "api_error", "message": "The upstream closed the connection."},
    }
    assert b"message_stop" not in data and data.endswith(b"\n\n")
    with pytest.raises(anthropic.APIStatusError) as caught:
        sdk_stream(data)
    assert "The upstream closed the connection." in str(caught.value)


def test_a_failure_before_any_output_is_an_error_event_the_sdk_raises() -> None:
    """After a heartbeat started the response but before the first output."""
    builder = MessageBuilder("msg_1", "m")
    encoder = MessagesEncoder(builder)
    data = PING + encoder.failed(UpstreamTimeout("No first token in 120 s."))
    assert parse_sse(data)[1] == (
        "error",
        {
            "type": "error",
            "error": {"type": "timeout_error", "message": "No first token in 120 s."},
        },
    )
    with pytest.raises(anthropic.APIStatusError, match="No first token"):
        sdk_stream(data)
    assert encoder.done() == b"" and encoder.chunks([text("late")]) == b""


def test_an_overloaded_upstream_mid_stream_is_overloaded_error() -> None:
    error = UpstreamHTTPError("Overloaded", status=503, type="server_error")
    payloads, _, _ = run([text("x")], end="fail", error=error)
    assert payloads[-1]["error"]["type"] == "overloaded_error"


def test_a_call_continued_after_other_output_ends_the_stream_with_an_error() -> None:
    chunks = [
        calls(tool_call_delta(0, id="call_a", name="f", arguments="{")),
        text("interleaved"),
        calls(tool_call_delta(0, arguments="}")),
        text("more"),
    ]
    builder = MessageBuilder("msg_1", "m")
    data = MessagesEncoder(builder).chunks(chunks)
    payloads = [payload for _, payload in parse_sse(data)]
    check_stream(payloads, complete=False)
    assert payloads[-1]["type"] == "error" and isinstance(builder.failure, UpstreamMalformed)
    assert builder.feed([text("after")]) == []
    with pytest.raises(UpstreamMalformed):
        fold_message("msg_1", "m", chunks)


@pytest.mark.parametrize(
    ("error", "status", "kind"),
    [
        (InvalidRequest("bad", param="x"), 400, "invalid_request_error"),
        (AuthenticationFailed("no key"), 401, "authentication_error"),
        (PermissionDenied("not yours"), 403, "permission_error"),
        (ModelNotFound("nope"), 404, "not_found_error"),
        (PayloadTooLarge("big"), 413, "request_too_large"),
        (RateLimited("slow down"), 429, "rate_limit_error"),
        (GatewayError("boom"), 500, "api_error"),
        (UpstreamDisconnected("gone"), 502, "api_error"),
        (ServiceUnavailable("busy"), 529, "overloaded_error"),
        (UpstreamTimeout("late"), 504, "timeout_error"),
        (UpstreamHTTPError("teapot", status=418, type="x"), 418, "invalid_request_error"),
        (UpstreamHTTPError("odd", status=507, type="x"), 507, "api_error"),
    ],
)
def test_errors_take_anthropics_shape_and_status(
    error: GatewayError, status: int, kind: str
) -> None:
    body = error_body(error, request_id="req_1")
    assert body == {
        "type": "error",
        "error": {"type": kind, "message": error.message},
        "request_id": "req_1",
    }
    assert error_status(error) == status and error_type(error) == kind
    if kind != "request_too_large":  # documented by Anthropic, missing from the SDK's union
        ErrorResponse.model_validate(body)
    assert "request_id" not in error_body(error)


def test_the_sdk_raises_the_right_class_for_each_http_error() -> None:
    def answer(error: GatewayError) -> Exception:
        def handler(request: httpx2.Request) -> httpx2.Response:
            return httpx2.Response(error_status(error), json=error_body(error))

        client = anthropic.Anthropic(
            api_key="k",
            base_url="http://gateway",
            http_client=httpx2.Client(transport=httpx2.MockTransport(handler)),
            max_retries=0,
        )
        with pytest.raises(anthropic.APIStatusError) as caught:
            client.messages.create(
                model="m", max_tokens=5, messages=[{"role": "user", "content": "x"}]
            )
        return caught.value

    assert isinstance(answer(ServiceUnavailable("busy")), anthropic.OverloadedError)
    assert isinstance(answer(RateLimited("slow")), anthropic.RateLimitError)
    assert isinstance(answer(ModelNotFound("m")), anthropic.NotFoundError)
    bad = answer(InvalidRequest("messages[0].role: expected 'user' or 'assistant'."))
    assert isinstance(bad, anthropic.BadRequestError)
    assert bad.body["error"]["message"].startswith("messages[0].role")  # type: ignore[index]


# --- the non-stream Message and the SDK -----------------------------------------------------------


def test_the_non_stream_message_is_what_messages_create_returns() -> None:
    chunks = [
        reasoning("r"),
        text("Hi"),
        calls(tool_call_delta(0, id="toolu_1", name="f", arguments='{"a": [1, 2]}')),
        finish_chunk(META, "tool_calls"),
        usage(20, 4, cached=5),
    ]
    message = fold_message("msg_1", "claude-x", chunks)

    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, content=orjson.dumps(message))

    client = anthropic.Anthropic(
        api_key="k",
        base_url="http://gateway",
        http_client=httpx2.Client(transport=httpx2.MockTransport(handler)),
        max_retries=0,
    )
    got = client.messages.create(
        model="m", max_tokens=5, messages=[{"role": "user", "content": "x"}]
    )
    assert got.stop_reason == "tool_use" and got.usage.cache_read_input_tokens == 5
    assert [block.type for block in got.content] == ["thinking", "text", "tool_use"]
    assert got.content[2].input == {"a": [1, 2]}  # type: ignore[union-attr]
    assert got.content[0].signature == ""  # type: ignore[union-attr]


def test_the_sdk_skips_a_ping_anywhere_even_before_message_start() -> None:
    builder = MessageBuilder("msg_1", "m")
    encoder = MessagesEncoder(builder)
    assert encoder.heartbeat == PING
    assert parse_sse(PING) == [("ping", {"type": "ping"})]
    data = PING + encoder.chunks([text("a")]) + PING + encoder.chunks([text("b")]) + encoder.done()
    events, final = sdk_stream(data)
    assert final.content[0].text == "ab"
    assert [event.type for event in events][-1] == "message_stop"


def test_message_ids_look_like_anthropics() -> None:
    ids = {new_message_id() for _ in range(50)}
    assert len(ids) == 50
    assert all(i.startswith("msg_") and i[4:].isalnum() for i in ids)


# --- the resumable log ----------------------------------------------------------------------------


def test_the_log_encoder_names_each_event_and_ends_like_the_stream() -> None:
    log = MessagesLog(MessageBuilder("msg_1", "m"))
    assert log.opening() == [] and log.status({"status": "retrying"}) == []
    items, failure = log.chunks([text("hi")])
    assert failure is None
    items += log.done()
    assert [kind for kind, _ in items] == [
        LOG_PREFIX + name
        for name in (
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop",
        )
    ]
    for kind, data in items:
        EVENT.validate_json(data)
        assert orjson.loads(data)["type"] == kind.removeprefix(LOG_PREFIX)


def test_the_log_encoder_fails_cancels_and_refuses_in_anthropics_shape() -> None:
    log = MessagesLog(MessageBuilder("msg_1", "m"))
    log.chunks([text("hi")])
    [(kind, data)] = log.cancelled(GatewayError("Stopped.", code="cancelled"))
    assert kind == LOG_PREFIX + "error"
    ErrorResponse.model_validate_json(data)
    refused = MessagesLog(MessageBuilder("msg_2", "m")).refused(
        ServiceUnavailable("busy", headers={"Retry-After": "3"})
    )
    [(kind, data)] = refused
    assert kind == "fail"
    assert orjson.loads(data) == {
        "status": 529,
        "headers": {"Retry-After": "3"},
        "body": {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}},
    }


def test_the_log_encoder_reports_an_untranslatable_batch() -> None:
    log = MessagesLog(MessageBuilder("msg_1", "m"))
    chunks = [calls(tool_call_delta(0, id="c", name="f")), text("x"), calls(tool_call_delta(0))]
    items, failure = log.chunks(chunks)
    assert isinstance(failure, UpstreamMalformed) and items[-1][0] == LOG_PREFIX + "error"
