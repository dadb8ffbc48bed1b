"""llms.adapters.openai for a non-stream answer: the request without streaming and the whole
answer turned into the chunks of the stream it stands for. No server, no I/O."""

from __future__ import annotations

import json
from typing import Any

import pytest

from llms.adapters import openai as adapter
from llms.adapters.base import StreamContext
from llms.chunks import StreamMeta, fold
from llms.errors import UpstreamIncomplete, UpstreamMalformed, UpstreamStreamError
from llms.wire import ChatRequest, Chunk
from tests.test_adapter_openai import META_CREATED, META_ID, choices
from tests.test_adapter_openai_request import provider

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
