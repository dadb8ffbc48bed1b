"""llms.adapters.openai as pure functions: the request it builds, the chunks it normalises, the
errors it maps (protocol.md §1.4, §1.7, §1.8, §3.1, §3.5). No server, no I/O."""

from __future__ import annotations

import json
from typing import Any

import pytest

from llms.adapters import openai as adapter
from llms.adapters.base import StreamContext
from llms.chunks import StreamMeta, fold
from llms.config import ProviderConfig, Timeouts
from llms.errors import UpstreamIncomplete, UpstreamMalformed, UpstreamStreamError
from llms.framing import SSEEvent
from llms.wire import ChatRequest, Chunk

META_ID = "chatcmpl-gateway"
META_CREATED = 1234567890


def new(include_usage: bool = False) -> adapter.Converter:
    meta = StreamMeta(id=META_ID, created=META_CREATED, model="pub")
    return adapter.new_converter(StreamContext(meta, include_usage=include_usage))


def event(data: Any) -> SSEEvent:
    return SSEEvent("message", data if isinstance(data, str) else json.dumps(data), "")


def up(
    delta: dict[str, Any] | None, finish: str | None = None, *, index: int = 0, **extra: Any
) -> dict[str, Any]:
    """An upstream chunk, as a vendor would send it (no logprobs key, its own id and model)."""
    return {
        "id": "upstream-id",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "/models/file.gguf",
        "choices": [{"index": index, "delta": delta, "finish_reason": finish}],
        **extra,
    }


def feed(conv: adapter.Converter, *items: Any) -> list[Chunk]:
    out: list[Chunk] = []
    for item in items:
        out += conv.feed(event(item))
    return out


def choices(chunks: list[Chunk]) -> list[dict[str, Any]]:
    return [dict(choice) for item in chunks for choice in item["choices"]]


def tool_deltas(chunks: list[Chunk]) -> list[dict[str, Any]]:
    return [dict(call) for c in choices(chunks) for call in c["delta"].get("tool_calls") or ()]


ROLE = up({"role": "assistant", "content": ""})


# --- chunk shape ----------------------------------------------------------------------------------


def test_every_chunk_gets_the_gateway_id_created_model_and_object() -> None:
    conv = new()
    chunks = feed(conv, up({"role": "assistant", "content": None}), up({"content": "x"}))
    chunks += feed(conv, {**up({}, "stop"), "object": "something.else"})
    assert len(chunks) == 3
    for item in chunks:
        assert item["id"] == META_ID
        assert item["created"] == META_CREATED
        assert item["model"] == "pub"
        assert item["object"] == "chat.completion.chunk"
        assert "usage" not in item
        for choice in item["choices"]:
            assert choice["logprobs"] is None
            assert isinstance(choice["delta"], dict)


def test_role_only_in_the_first_chunk_and_content_null_becomes_empty() -> None:
    conv = new()
    chunks = feed(
        conv,
        up({"role": "assistant", "content": None}),
        up({"role": "assistant", "content": "a"}),
        up({"role": "assistant", "content": "b"}, "stop"),
    )
    deltas = [c["delta"] for c in choices(chunks)]
    assert deltas == [{"role": "assistant", "content": ""}, {"content": "a"}, {"content": "b"}]


def test_first_chunk_without_role_gets_one() -> None:
    chunks = feed(new(), up({"content": "Hi"}))
    assert choices(chunks)[0]["delta"] == {"role": "assistant", "content": "Hi"}


def test_each_choice_gets_its_own_role() -> None:
    conv = new()
    chunks = feed(conv, up({"content": "a"}, index=0), up({"content": "b"}, index=1))
    chunks += feed(conv, up({"content": "c"}, index=1))
    assert [c["delta"].get("role") for c in choices(chunks)] == ["assistant", "assistant", None]


@pytest.mark.parametrize("delta", [{}, None])
def test_empty_delta_chunks_are_dropped(delta: dict[str, Any] | None) -> None:
    conv = new()
    assert len(feed(conv, ROLE)) == 1
    assert feed(conv, up(delta)) == []
    assert feed(conv, {**up(None), "choices": []}) == []


def test_first_chunk_with_empty_delta_still_opens_the_choice() -> None:
    chunks = feed(new(), up({}))
    assert choices(chunks)[0]["delta"] == {"role": "assistant", "content": ""}


def test_chunks_after_a_choice_finished_are_dropped() -> None:
    conv = new()
    feed(conv, ROLE, up({"content": "a"}, index=1), up({"content": "x"}, "stop"))
    assert feed(conv, up({"content": "late"})) == []
    assert feed(conv, up({}, "length")) == []
    # The other choice goes on.
    later = feed(conv, up({"content": "b"}, index=1))
    assert [c["delta"] for c in choices(later)] == [{"content": "b"}]


# --- finish_reason --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("stop", "stop"),
        ("length", "length"),
        ("content_filter", "content_filter"),
        ("eos", "stop"),
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("MAX_TOKENS", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        ("safety", "content_filter"),
        ("something_new", "stop"),
        ("abort", "stop"),
    ],
)
def test_finish_reason_normalised(given: str, expected: str) -> None:
    chunks = feed(new(), ROLE, up({}, given))
    assert choices(chunks)[-1]["finish_reason"] == expected


def test_finish_reason_canonical_values_in_upper_case() -> None:
    chunks = feed(new(), ROLE, up({}, "LENGTH"))
    assert choices(chunks)[-1]["finish_reason"] == "length"


CALL = {
    "index": 0,
    "id": "call_abc",
    "type": "function",
    "function": {"name": "f", "arguments": "{}"},
}


@pytest.mark.parametrize("given", ["stop", "eos", "end_turn"])
def test_stop_after_tool_calls_becomes_tool_calls(given: str) -> None:
    chunks = feed(new(), up({"role": "assistant", "tool_calls": [CALL]}), up({}, given))
    assert choices(chunks)[-1]["finish_reason"] == "tool_calls"


def test_length_after_tool_calls_stays_length() -> None:
    chunks = feed(new(), up({"tool_calls": [CALL]}), up({}, "length"))
    assert choices(chunks)[-1]["finish_reason"] == "length"


def test_tool_calls_of_one_choice_do_not_change_another() -> None:
    conv = new()
    chunks = feed(conv, up({"tool_calls": [CALL]}, index=0), up({"content": "x"}, "stop", index=1))
    assert choices(chunks)[-1] == {**choices(chunks)[-1], "index": 1, "finish_reason": "stop"}


# --- tool calls -----------------------------------------------------------------------------------


def test_first_delta_of_a_call_has_id_type_name_later_only_arguments() -> None:
    conv = new()
    first = {"index": 0, "id": "call_1", "function": {"name": "f", "arguments": '{"a"'}}
    again = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "f"}}
    chunks = feed(conv, up({"tool_calls": [first]}), up({"tool_calls": [again]}))
    chunks += feed(conv, up({"tool_calls": [{"index": 0, "function": {"arguments": ":1}"}}]}))
    assert tool_deltas(chunks) == [
        {
            "index": 0,
            "id": "call_1",
            "type": "function",
            "function": {"name": "f", "arguments": '{"a"'},
        },
        {"index": 0, "function": {"arguments": ""}},
        {"index": 0, "function": {"arguments": ":1}"}},
    ]


def test_tool_indexes_are_the_gateways_own_counter() -> None:
    """Upstream indexes 3 and 7 (say, content-block numbers) become 0 and 1."""
    conv = new()
    a = {"index": 3, "id": "call_a", "type": "function", "function": {"name": "a", "arguments": ""}}
    b = {"index": 7, "id": "call_b", "type": "function", "function": {"name": "b", "arguments": ""}}
    chunks = feed(conv, up({"tool_calls": [a]}), up({"tool_calls": [b]}))
    chunks += feed(conv, up({"tool_calls": [{"index": 3, "function": {"arguments": "{}"}}]}))
    assert [(d["index"], d.get("id")) for d in tool_deltas(chunks)] == [
        (0, "call_a"),
        (1, "call_b"),
        (0, None),
    ]


def test_missing_index_whole_calls_each_with_an_id() -> None:
    conv = new()
    a = {"id": "call_a", "type": "function", "function": {"name": "a", "arguments": '{"x":1}'}}
    b = {"id": "call_b", "type": "function", "function": {"name": "b", "arguments": '{"y":2}'}}
    chunks = feed(conv, up({"tool_calls": [a, b]}), up({}, "stop"))
    calls = tool_deltas(chunks)
    assert [(c["index"], c["id"], c["function"]["name"]) for c in calls] == [
        (0, "call_a", "a"),
        (1, "call_b", "b"),
    ]
    assert choices(chunks)[-1]["finish_reason"] == "tool_calls"


def test_missing_index_fragment_without_id_continues_the_last_call() -> None:
    conv = new()
    a = {"id": "call_a", "function": {"name": "a", "arguments": '{"x"'}}
    chunks = feed(conv, up({"tool_calls": [a]}))
    chunks += feed(conv, up({"tool_calls": [{"function": {"arguments": ":1}"}}]}))
    assert tool_deltas(chunks) == [
        {
            "index": 0,
            "id": "call_a",
            "type": "function",
            "function": {"name": "a", "arguments": '{"x"'},
        },
        {"index": 0, "function": {"arguments": ":1}"}},
    ]


def test_missing_index_and_id_first_call_gets_index_zero_and_an_id() -> None:
    chunks = feed(new(), up({"tool_calls": [{"function": {"name": "a", "arguments": "{}"}}]}))
    (call,) = tool_deltas(chunks)
    assert call["index"] == 0
    assert call["id"].startswith("call_")
    assert call["type"] == "function"


def test_missing_index_and_id_two_named_calls_stay_two() -> None:
    calls = [
        {"function": {"name": "a", "arguments": '{"x":1}'}},
        {"function": {"name": "b", "arguments": '{"y":2}'}},
    ]
    deltas = tool_deltas(feed(new(), up({"tool_calls": calls})))
    assert [d["index"] for d in deltas] == [0, 1]
    assert [d["function"].get("name") for d in deltas] == ["a", "b"]


def test_missing_index_repeated_id_stays_one_call() -> None:
    conv = new()
    chunks: list[Chunk] = []
    for fragment in ['{"x"', ":1}"]:
        call = {
            "id": "call_a",
            "type": "function",
            "function": {"name": "a", "arguments": fragment},
        }
        chunks += feed(conv, up({"tool_calls": [call]}))
    assert [d["index"] for d in tool_deltas(chunks)] == [0, 0]
    assert [d.get("id") for d in tool_deltas(chunks)] == ["call_a", None]


def test_object_arguments_become_a_json_string() -> None:
    call = {"index": 0, "id": "call_o", "function": {"name": "f", "arguments": {"city": "Zürich"}}}
    (delta,) = tool_deltas(feed(new(), up({"tool_calls": [call]})))
    arguments = delta["function"]["arguments"]
    assert isinstance(arguments, str)
    assert json.loads(arguments) == {"city": "Zürich"}


def test_missing_arguments_and_function_become_strings() -> None:
    conv = new()
    chunks = feed(
        conv, up({"tool_calls": [{"index": 0, "id": "call_n", "function": {"name": "f"}}]})
    )
    chunks += feed(conv, up({"tool_calls": [{"index": 0}]}))
    first, second = tool_deltas(chunks)
    assert first["function"] == {"name": "f", "arguments": ""}
    assert second == {"index": 0, "function": {"arguments": ""}}


def test_missing_id_is_synthesized_once_per_call() -> None:
    conv = new()
    a = {"index": 0, "function": {"name": "a", "arguments": ""}}
    b = {"index": 1, "function": {"name": "b", "arguments": ""}}
    chunks = feed(conv, up({"tool_calls": [a]}), up({"tool_calls": [b]}))
    chunks += feed(conv, up({"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]}))
    first, second, third = tool_deltas(chunks)
    assert first["id"].startswith("call_")
    assert second["id"].startswith("call_")
    assert first["id"] != second["id"]
    assert first["type"] == second["type"] == "function"
    assert "id" not in third


def test_tool_calls_that_are_not_a_list_are_malformed() -> None:
    with pytest.raises(UpstreamMalformed):
        feed(new(), up({"tool_calls": {"index": 0}}))


# --- reasoning ------------------------------------------------------------------------------------


def test_reasoning_is_renamed_to_reasoning_content() -> None:
    conv = new()
    chunks = feed(conv, up({"role": "assistant", "reasoning": "think"}), up({"reasoning": "more"}))
    deltas = [c["delta"] for c in choices(chunks)]
    assert deltas == [
        {"role": "assistant", "content": "", "reasoning_content": "think"},
        {"reasoning_content": "more"},
    ]


def test_reasoning_content_passes_and_wins_over_reasoning() -> None:
    conv = new()
    feed(conv, ROLE)
    chunks = feed(conv, up({"reasoning_content": "a", "reasoning": "a"}))
    assert choices(chunks)[0]["delta"] == {"reasoning_content": "a"}


def test_empty_reasoning_alone_is_an_empty_delta() -> None:
    conv = new()
    feed(conv, ROLE)
    assert feed(conv, up({"reasoning": ""})) == []
    assert feed(conv, up({"reasoning": None})) == []


def test_reasoning_kept_when_reasoning_content_is_null() -> None:
    conv = new()
    feed(conv, ROLE)
    chunks = feed(conv, up({"content": None, "reasoning_content": None, "reasoning": "r"}))
    assert choices(chunks)[0]["delta"].get("reasoning_content") == "r"


# --- usage ----------------------------------------------------------------------------------------

USAGE = {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}


def usage_only() -> dict[str, Any]:
    return {**up(None), "choices": [], "usage": USAGE, "timings": {"predicted_n": 3}}


def test_usage_chunk_held_until_the_end_when_the_client_asked() -> None:
    conv = new(include_usage=True)
    body = feed(conv, ROLE, up({"content": "x"}), up({}, "stop"), usage_only())
    assert len(body) == 3
    assert all(item["usage"] is None for item in body)
    end = feed(conv, "[DONE]")
    assert len(end) == 1
    assert end[0]["choices"] == []
    assert end[0]["usage"] == USAGE
    assert end[0]["id"] == META_ID
    assert end[0]["model"] == "pub"
    assert "timings" not in end[0]
    assert conv.done


def test_usage_never_sent_when_the_client_did_not_ask() -> None:
    conv = new(include_usage=False)
    chunks = feed(conv, ROLE, up({}, "stop", usage=USAGE), usage_only(), "[DONE]")
    assert all(item["choices"] for item in chunks)
    assert all("usage" not in item for item in chunks)
    # The non-stream path reads it from here.
    assert conv.usage == USAGE


def test_usage_attached_to_the_finish_chunk_moves_to_its_own_chunk() -> None:
    conv = new(include_usage=True)
    chunks = feed(conv, ROLE, up({"content": "!"}, "stop", usage=USAGE), "[DONE]")
    assert [item["usage"] for item in chunks[:-1]] == [None, None]
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == USAGE


def test_usage_on_a_chunk_of_a_finished_choice_is_kept() -> None:
    """OpenRouter's usage chunk carries an empty delta for the choice that already finished."""
    conv = new(include_usage=True)
    late = up({"role": "assistant", "content": ""}, usage=USAGE)
    chunks = feed(conv, ROLE, up({}, "stop"), late)
    assert len(chunks) == 2
    assert feed(conv, "[DONE]")[0]["usage"] == USAGE


# --- the end of the stream ------------------------------------------------------------------------


def test_close_after_finish_is_a_normal_end() -> None:
    conv = new(include_usage=True)
    feed(conv, ROLE, up({"content": "x"}, "stop"), usage_only())
    end = conv.close()
    assert conv.done
    assert [item["usage"] for item in end] == [USAGE]
    assert end[0]["choices"] == []


def test_close_after_finish_without_usage_ends_with_nothing_more() -> None:
    conv = new()
    feed(conv, ROLE, up({}, "length"))
    assert conv.close() == []
    assert conv.done


@pytest.mark.parametrize(
    "items",
    [
        [],
        [ROLE],
        [ROLE, up({"content": "half"})],
        [up({"content": "a"}, "stop", index=0), up({"content": "b"}, index=1)],
    ],
)
def test_close_before_finish_is_incomplete(items: list[Any]) -> None:
    conv = new(include_usage=True)
    feed(conv, *items)
    with pytest.raises(UpstreamIncomplete):
        conv.close()
    assert not conv.done


def test_done_without_finish_finishes_with_stop() -> None:
    conv = new()
    chunks = feed(conv, ROLE, up({"content": "x"}), "[DONE]")
    last = choices(chunks)[-1]
    assert last["finish_reason"] == "stop"
    assert last["delta"] == {}
    assert chunks[-1]["id"] == META_ID
    assert conv.done


def test_done_without_finish_after_tool_calls_finishes_with_tool_calls() -> None:
    chunks = feed(new(), up({"tool_calls": [CALL]}), "[DONE]")
    assert choices(chunks)[-1]["finish_reason"] == "tool_calls"


def test_done_finishes_every_open_choice_once() -> None:
    conv = new()
    chunks = feed(conv, up({"content": "a"}, "stop"), up({"content": "b"}, index=1), "[DONE]")
    finishes = [(c["index"], c["finish_reason"]) for c in choices(chunks) if c["finish_reason"]]
    assert finishes == [(0, "stop"), (1, "stop")]


def test_done_after_finish_adds_no_second_finish() -> None:
    conv = new()
    chunks = feed(conv, ROLE, up({}, "stop"), "[DONE]")
    assert [c["finish_reason"] for c in choices(chunks)] == [None, "stop"]


def test_done_alone_is_an_empty_answer() -> None:
    chunks = feed(new(), "[DONE]")
    assert [c["delta"] for c in choices(chunks)] == [{"role": "assistant", "content": ""}, {}]
    assert choices(chunks)[-1]["finish_reason"] == "stop"


def test_events_after_done_are_ignored() -> None:
    conv = new()
    feed(conv, ROLE, "[DONE]")
    assert feed(conv, up({"content": "late"})) == []
    assert conv.close() == []


def test_second_done_is_ignored() -> None:
    conv = new(include_usage=True)
    first = feed(conv, ROLE, up({}, "stop", usage=USAGE), "[DONE]")
    assert first[-1]["usage"] == USAGE
    assert feed(conv, "[DONE]") == []


# --- errors inside the stream ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message", "code"),
    [
        ({"error": {"message": "boom", "type": "server_error", "code": "x"}}, "boom", "x"),
        ({"error": {"message": "m", "code": 500}}, "m", None),
        (
            {"object": "error", "message": "flat", "type": "BadRequestError", "code": 400},
            "flat",
            None,
        ),
        ({"error": "plain text"}, "plain text", None),
        ({"error": {"type": "server_error"}}, "The upstream reported an error.", None),
    ],
)
def test_error_event_raises(body: dict[str, Any], message: str, code: str | None) -> None:
    conv = new()
    feed(conv, ROLE, up({"content": "a"}))
    with pytest.raises(UpstreamStreamError) as info:
        feed(conv, body)
    assert info.value.message == message
    assert info.value.code == (code or "upstream_error")
    assert info.value.status == 502


@pytest.mark.parametrize("data", ["hello", "{", "[1, 2]", '"text"'])
def test_non_object_events_are_malformed(data: str) -> None:
    with pytest.raises(UpstreamMalformed):
        feed(new(), data)


# --- error responses (protocol.md §3.5) -----------------------------------------------------------


def err(status: int, body: Any, headers: dict[str, str] | None = None) -> Any:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return adapter.from_error_response(status, headers or {}, raw)


def test_openai_error_body_keeps_message_code_param() -> None:
    body = {
        "error": {
            "message": "This model's maximum context length is 8192 tokens.",
            "type": "invalid_request_error",
            "param": "messages",
            "code": "context_length_exceeded",
        }
    }
    error = err(400, body)
    assert error.status == 400
    assert error.type == "invalid_request_error"
    assert error.message == body["error"]["message"]
    assert error.code == "context_length_exceeded"
    assert error.param == "messages"
    assert not error.retryable


@pytest.mark.parametrize(
    ("status", "body", "message", "client_status"),
    [
        (
            404,
            {
                "object": "error",
                "message": "The model `x` does not exist.",
                "type": "NotFoundError",
                "code": 404,
            },
            "The model `x` does not exist.",
            404,
        ),
        (
            400,
            {"object": "error", "message": "bad top_k", "type": "BadRequestError"},
            "bad top_k",
            400,
        ),
        (422, {"detail": "Field required: messages"}, "Field required: messages", 400),
        (
            422,
            {"detail": [{"loc": ["body", "messages"], "msg": "Field required", "type": "missing"}]},
            "Field required",
            400,
        ),
        (500, b"oops, upstream crashed", "oops, upstream crashed", 502),
        (502, b"<html>Bad Gateway</html>", "<html>Bad Gateway</html>", 502),
        (400, {"error": "plain message"}, "plain message", 400),
    ],
)
def test_flat_error_bodies_keep_the_message(
    status: int, body: Any, message: str, client_status: int
) -> None:
    error = err(status, body)
    assert error.status == client_status
    assert message in error.message
    assert error.to_body()["error"]["message"] == error.message


def test_404_is_model_not_found() -> None:
    error = err(404, {"error": {"message": "nope"}})
    assert (error.status, error.code, error.type) == (
        404,
        "model_not_found",
        "invalid_request_error",
    )


@pytest.mark.parametrize("status", [401, 403])
def test_upstream_auth_failure_is_502_without_upstream_text(status: int) -> None:
    secret = "sk-proj-abcd1234SECRET"
    body = {
        "error": {"message": f"Incorrect API key provided: {secret}", "code": "invalid_api_key"}
    }
    error = err(status, body, {"www-authenticate": f"Bearer {secret}"})
    assert error.status == 502
    assert error.code != "invalid_api_key"
    rendered = json.dumps(error.to_body()) + json.dumps(error.headers)
    assert "SECRET" not in rendered
    assert "abcd" not in rendered
    assert "Incorrect API key" not in rendered


def test_429_passes_retry_and_rate_limit_headers_only() -> None:
    headers = {
        "Retry-After": "7",
        "retry-after-ms": "7000",
        "x-ratelimit-remaining-requests": "0",
        "X-RateLimit-Reset-Tokens": "6m0s",
        "Content-Type": "application/json",
        "Set-Cookie": "session=1",
        "openai-organization": "org-secret",
    }
    error = err(429, {"error": {"message": "Rate limit reached", "type": "requests"}}, headers)
    assert error.status == 429
    assert error.type == "rate_limit_error"
    assert error.code == "rate_limit_exceeded"
    assert error.message == "Rate limit reached"
    assert error.retryable
    passed = {k.lower(): v for k, v in error.headers.items()}
    assert passed == {
        "retry-after": "7",
        "retry-after-ms": "7000",
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-reset-tokens": "6m0s",
    }


def test_429_insufficient_quota_keeps_its_code() -> None:
    error = err(429, {"error": {"message": "quota", "code": "insufficient_quota"}})
    assert error.code == "insufficient_quota"


@pytest.mark.parametrize(
    ("status", "client_status"), [(503, 503), (529, 503), (500, 502), (504, 504)]
)
def test_5xx_mapping(status: int, client_status: int) -> None:
    error = err(status, {"error": {"message": "Overloaded"}}, {"Retry-After": "3"})
    assert error.status == client_status
    assert error.type == "server_error"
    assert error.message == "Overloaded"
    assert error.retryable
    assert error.headers == {"Retry-After": "3"}


def test_422_becomes_400() -> None:
    error = err(422, {"error": {"message": "invalid", "param": "tools"}})
    assert error.status == 400
    assert error.type == "invalid_request_error"
    assert error.param == "tools"


def test_empty_error_body_still_has_a_message() -> None:
    error = err(500, b"")
    assert error.status == 502
    assert error.message


# --- build_request --------------------------------------------------------------------------------


def provider(**kw: Any) -> ProviderConfig:
    fields: dict[str, Any] = {
        "name": "up",
        "type": "openai",
        "base_url": "http://127.0.0.1:9/v1",
        "models": {"pub": "vendor/model-x"},
        "timeouts": Timeouts(),
        "api_key": "sk-provider",
        **kw,
    }
    return ProviderConfig(**fields)


def request(**kw: Any) -> ChatRequest:
    body: dict[str, Any] = {"model": "pub", "messages": [{"role": "user", "content": "hi"}], **kw}
    return body  # type: ignore[return-value]


def build(req: ChatRequest, prov: ProviderConfig | None = None) -> tuple[Any, dict[str, Any]]:
    out = adapter.build_request(req, prov or provider(), "vendor/model-x")
    return out, json.loads(out.body)


def test_build_request_streams_rewrites_model_and_authorizes() -> None:
    out, body = build(request())
    assert out.method == "POST"
    assert out.url == "http://127.0.0.1:9/v1/chat/completions"
    assert out.headers["Authorization"] == "Bearer sk-provider"
    assert out.headers["Content-Type"] == "application/json"
    assert body["model"] == "vendor/model-x"
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert body["messages"] == [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize("stream", [False, True, None])
def test_build_request_always_streams(stream: bool | None) -> None:
    req = request() if stream is None else request(stream=stream)
    assert build(req)[1]["stream"] is True


def test_build_request_asks_for_usage_even_when_the_client_did_not() -> None:
    _, body = build(request(stream=True, stream_options={"include_usage": False}))
    assert body["stream_options"] == {"include_usage": True}


def test_build_request_without_provider_usage_drops_stream_options() -> None:
    _, body = build(
        request(stream=True, stream_options={"include_usage": True}),
        provider(include_usage=False),
    )
    assert "stream_options" not in body


def test_build_request_keeps_unknown_fields() -> None:
    extras = {
        "temperature": 0.2,
        "tools": [{"type": "function", "function": {"name": "f"}}],
        "reasoning_effort": "low",
        "top_k": 40,
        "vendor_extension": {"nested": [1, None, "x"]},
    }
    _, body = build(request(**extras))
    for key, value in extras.items():
        assert body[key] == value


def test_build_request_without_key_sends_no_authorization() -> None:
    out, _ = build(request(), provider(api_key=None))
    assert "Authorization" not in out.headers


def test_build_request_provider_headers_are_added() -> None:
    out, _ = build(request(), provider(headers={"HTTP-Referer": "https://example.org"}))
    assert out.headers["HTTP-Referer"] == "https://example.org"
    assert out.headers["Authorization"] == "Bearer sk-provider"


def test_build_request_does_not_change_the_clients_request() -> None:
    req = request(stream=False, stream_options={"include_usage": False})
    snapshot = json.loads(json.dumps(req))
    build(req)
    build(req, provider(include_usage=False))
    assert req == snapshot


# --- non-stream answers, sent whole -----------------------------------------------------------


def whole(answer: Any, include_usage: bool = True) -> tuple[adapter.WholeConverter, list[Chunk]]:
    meta = StreamMeta(id=META_ID, created=META_CREATED, model="pub")
    conv = adapter.new_whole_converter(StreamContext(meta, include_usage=include_usage))
    body = answer if isinstance(answer, bytes) else json.dumps(answer).encode()
    return conv, conv.feed(body) + conv.close()


def completion(message: dict[str, Any], finish: str | None = "stop", **extra: Any) -> Any:
    return {
        "id": "upstream-id",
        "object": "chat.completion",
        "created": 1,
        "model": "/models/file.gguf",
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        **extra,
    }


def test_whole_request_asks_non_stream_without_stream_options() -> None:
    chat: ChatRequest = {
        "model": "pub",
        "messages": [{"role": "user", "content": "hi"}],
        "stream_options": {"include_usage": True},
    }
    request = adapter.build_whole_request(chat, provider(), "up")
    body = json.loads(request.body)
    assert (body["model"], body["stream"]) == ("up", False)
    assert "stream_options" not in body
    assert request.headers["Accept"] == "application/json"
    assert request.url.endswith("/chat/completions")


def test_whole_answer_folds_like_the_stream_it_stands_for() -> None:
    usage = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
    conv, chunks = whole(
        completion(
            {"role": "assistant", "content": "Hi!", "reasoning": "think"},
            usage=usage,
            system_fingerprint="fp",
        )
    )
    assert conv.done and conv.usage == usage
    assert all(item["id"] == META_ID and item["model"] == "pub" for item in chunks)
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == usage
    folded = fold(chunks, StreamMeta(id=META_ID, created=META_CREATED, model="pub"))
    message = folded["choices"][0]["message"]
    assert (message["content"], message.get("reasoning_content")) == ("Hi!", "think")
    assert folded["choices"][0]["finish_reason"] == "stop"
    assert folded["usage"] == usage


def test_whole_answer_tool_calls_without_index_keep_ids_and_arguments() -> None:
    calls = [
        {"id": "call_a", "type": "function", "function": {"name": "f", "arguments": '{"x":1}'}},
        {"id": "call_b", "type": "function", "function": {"name": "g", "arguments": "{}"}},
    ]
    _, chunks = whole(completion({"role": "assistant", "content": None, "tool_calls": calls}))
    folded = fold(chunks, StreamMeta(id=META_ID, created=META_CREATED, model="pub"))
    message = folded["choices"][0]["message"]
    assert message["content"] is None
    assert [
        (c["id"], c["function"]["name"], c["function"]["arguments"]) for c in message["tool_calls"]
    ] == [("call_a", "f", '{"x":1}'), ("call_b", "g", "{}")]
    assert folded["choices"][0]["finish_reason"] == "tool_calls"


def test_whole_answer_without_finish_reason_is_complete() -> None:
    _, chunks = whole(completion({"role": "assistant", "content": "ok"}, finish=None))
    assert [c["finish_reason"] for c in choices(chunks)][-1] == "stop"


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"data: {}", UpstreamMalformed),
        (b"[1, 2]", UpstreamMalformed),
        (json.dumps({"object": "chat.completion", "choices": []}).encode(), UpstreamMalformed),
        (json.dumps({"error": {"message": "boom", "code": "x"}}).encode(), UpstreamStreamError),
    ],
    ids=["not-json", "not-an-object", "no-choices", "error-object"],
)
def test_whole_answer_that_is_not_one_is_an_error(body: bytes, error: type[Exception]) -> None:
    meta = StreamMeta(id=META_ID, created=META_CREATED, model="pub")
    conv = adapter.new_whole_converter(StreamContext(meta, include_usage=True))
    with pytest.raises(error):
        conv.feed(body)


def test_whole_answer_that_never_came_is_incomplete() -> None:
    meta = StreamMeta(id=META_ID, created=META_CREATED, model="pub")
    conv = adapter.new_whole_converter(StreamContext(meta, include_usage=True))
    with pytest.raises(UpstreamIncomplete):
        conv.close()
