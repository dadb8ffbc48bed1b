"""Shared helpers for tests/test_api_messages_*.py (llms.api.messages*: Anthropic's Messages
API as pure functions — the request mapping, the stream events, the Message and the error shape).

Every event is validated with anthropic-python's own pydantic types, every stream is checked for
Anthropic's block discipline (one block open at a time, deltas only for it, thinking before text)
and run through the SDK itself (`messages.stream()` over an in-memory transport: its SSE decoder
and accumulator), whose final Message must equal the builder's and the non-stream fold
(docs: responses-and-messages.md §2, peers' bugs 13-23).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import orjson
import pydantic
import pytest
from anthropic.types import Message, RawMessageStreamEvent
from anthropic.types.shared import ErrorResponse

from llms.api.messages import (
    MessageBuilder,
    error_body,
    error_status,
    fold_message,
)
from llms.api.messages_input import THINKING_BLOCKS
from llms.api.messages_request import MessagesCall, from_request
from llms.api.messages_stream import MessagesEncoder
from llms.chunks import (
    StreamMeta,
    delta_chunk,
    make_usage,
    usage_chunk,
)
from llms.errors import (
    GatewayError,
    InvalidRequest,
)
from llms.wire import Chunk, Usage

TRANSCRIPTS = Path(__file__).parent / "transcripts"
EVENT = pydantic.TypeAdapter(RawMessageStreamEvent)
META = StreamMeta(id="chatcmpl-x", created=1700000000, model="m")
BODY = {"model": "claude-sonnet-4-5", "max_tokens": 1024}


# --- helpers --------------------------------------------------------------------------------------


def text(value: str) -> Chunk:
    return delta_chunk(META, {"content": value})


def reasoning(value: str) -> Chunk:
    return delta_chunk(META, {"reasoning_content": value})


def signature(value: str) -> Chunk:
    block = {"type": "thinking", "thinking": "", "signature": value}
    return delta_chunk(META, {THINKING_BLOCKS: [block]})  # type: ignore[misc]


def calls(*deltas: Any) -> Chunk:
    return delta_chunk(META, {"tool_calls": list(deltas)})


def usage(prompt: int = 10, completion: int = 5, **details: int) -> Chunk:
    value: Usage = make_usage(prompt, completion)
    prompt_details = {
        key: details[name]
        for name, key in (("cached", "cached_tokens"), ("write", "cache_write_tokens"))
        if name in details
    }
    if prompt_details:
        value["prompt_tokens_details"] = prompt_details
    if "reasoning" in details:
        value["completion_tokens_details"] = {"reasoning_tokens": details["reasoning"]}
    return usage_chunk(META, value)


def parse_sse(data: bytes) -> list[tuple[str, dict[str, Any]]]:
    """Exactly Anthropic's framing: `event: <type>\\ndata: <json>\\n\\n`, data.type = type."""
    assert data.endswith(b"\n\n")
    frames = []
    for frame in data[:-2].split(b"\n\n"):
        event_line, data_line = frame.split(b"\n")
        assert event_line.startswith(b"event: ") and data_line.startswith(b"data: ")
        name, payload = event_line[7:].decode(), orjson.loads(data_line[6:])
        assert payload["type"] == name
        frames.append((name, payload))
    return frames


def check_stream(payloads: list[dict[str, Any]], *, complete: bool = True) -> None:
    """Every event valid for anthropic-python; blocks strictly sequential (peers' bugs 14/15):
    one message_start first, each block started at the next index, deltas of its own kind
    for the open block only, a stop for each start, one signature at most; the end is
    message_delta + message_stop, or an error and nothing after it."""
    assert payloads[0]["type"] == "message_start"
    assert [p["type"] for p in payloads].count("message_start") == 1
    usage0 = payloads[0]["message"]["usage"]
    assert isinstance(usage0["input_tokens"], int) and isinstance(usage0["output_tokens"], int)
    open_: dict[str, Any] | None = None
    count = 0
    kinds = {
        "text": {"text_delta"},
        "thinking": {"thinking_delta", "signature_delta"},
        "tool_use": {"input_json_delta"},
        "redacted_thinking": set(),
    }
    signed: set[int] = set()
    for p in payloads:
        if p["type"] == "error":
            ErrorResponse.model_validate(p)
            assert p is payloads[-1] and not complete
            return
        EVENT.validate_python(p)
        if p["type"] == "content_block_start":
            assert open_ is None and p["index"] == count
            open_ = p["content_block"]
            count += 1
        elif p["type"] == "content_block_delta":
            assert open_ is not None and p["index"] == count - 1, p
            assert p["delta"]["type"] in kinds[open_["type"]], p
            if p["delta"]["type"] == "signature_delta":
                assert p["index"] not in signed
                signed.add(p["index"])
            elif p["index"] in signed:
                raise AssertionError("a delta after the signature")
        elif p["type"] == "content_block_stop":
            assert open_ is not None and p["index"] == count - 1
            open_ = None
        elif p["type"] == "message_delta":
            assert open_ is None
    assert complete
    assert [p["type"] for p in payloads[-2:]] == ["message_delta", "message_stop"]


def sdk_stream(data: bytes) -> tuple[list[Any], Any]:
    """The bytes through anthropic-python's own `messages.stream()`: (its events, the final
    Message its accumulator built)."""

    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=data)

    client = anthropic.Anthropic(
        api_key="k",
        base_url="http://gateway",
        http_client=httpx2.Client(transport=httpx2.MockTransport(handler)),
        max_retries=0,
    )
    with client.messages.stream(
        model="m", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        events = list(stream)
        return events, stream.get_final_message()


def run(
    chunks: list[Chunk],
    *,
    batch: int = 1,
    end: str = "finish",
    error: GatewayError | None = None,
    **options: Any,
) -> tuple[list[dict[str, Any]], dict[str, Any], bytes]:
    """`chunks` in batches through the encoder; every event and the Message validated, the
    stream through the SDK. Returns (event payloads, the Message, the bytes)."""
    builder = MessageBuilder("msg_1", "claude-sonnet-4-5", **options)
    encoder = MessagesEncoder(builder)
    data = b"".join(encoder.chunks(chunks[i : i + batch]) for i in range(0, len(chunks), batch))
    if end == "finish":
        data += encoder.done()
    else:
        assert error is not None
        data += encoder.failed(error)
    payloads = [payload for _, payload in parse_sse(data)]
    check_stream(payloads, complete=end == "finish")
    message = builder.message
    Message.model_validate(message)
    assert builder.terminal and builder.feed(chunks) == [] and builder.finish() == []
    if end == "finish" and whole_arguments(payloads, message):
        # (an upstream's broken JSON is relayed as sent; the SDK's own parse of it fails)
        _, final = sdk_stream(data)
        assert final.model_dump(exclude_none=True) == Message.model_validate(message).model_dump(
            exclude_none=True
        )
    if end == "finish":
        assert payloads[-2]["usage"] == message["usage"]
        assert payloads[-2]["delta"]["stop_reason"] == message["stop_reason"]
        folded = fold_message("msg_1", "claude-sonnet-4-5", chunks, **options)
        assert strip_ids(folded) == strip_ids(message)
    return payloads, message, data


def whole_arguments(payloads: list[dict[str, Any]], message: dict[str, Any]) -> bool:
    """Whether every tool_use block's streamed fragments make a JSON object, its `input`
    (else the Message's `input` is `{}`)."""
    whole = True
    for index, block in enumerate(message["content"]):
        if block["type"] != "tool_use":
            continue
        fragments = "".join(d["partial_json"] for d in deltas(payloads, index))
        try:
            assert json.loads(fragments) == block["input"]
        except json.JSONDecodeError:
            assert block["input"] == {}
            whole = False
    return whole


def strip_ids(message: dict[str, Any]) -> dict[str, Any]:
    """The Message without generated tool ids (the fold makes its own)."""
    content = [
        {**block, "id": "x"}
        if block["type"] == "tool_use" and block["id"].startswith("toolu_")
        else block
        for block in message["content"]
    ]
    return {**message, "content": content}


def types(payloads: list[dict[str, Any]]) -> list[str]:
    return [p["type"] for p in payloads]


def deltas(payloads: list[dict[str, Any]], index: int) -> list[dict[str, Any]]:
    return [
        p["delta"] for p in payloads if p["type"] == "content_block_delta" and p["index"] == index
    ]


# --- the request ----------------------------------------------------------------------------------


def request(**body: Any) -> MessagesCall:
    return from_request({**BODY, "messages": [{"role": "user", "content": "hi"}], **body})


def refused(param: str, **body: Any) -> InvalidRequest:
    """The 400 a body gets; its param is `param` and its message names it."""
    with pytest.raises(InvalidRequest) as caught:
        from_request({**BODY, "messages": [{"role": "user", "content": "hi"}], **body})
    error = caught.value
    assert error.param == param, (error.param, error.message)
    assert param.split(".")[0].split("[")[0] in error.message
    ErrorResponse.model_validate(error_body(error))
    assert error_status(error) == 400
    return error


def tool_turns(*results: dict[str, Any], extra: list[Any] | None = None) -> list[dict[str, Any]]:
    return [
        {"role": "user", "content": "weather in Paris and Rome?"},
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "Two calls.", "signature": "sig=="},
                {"type": "text", "text": "Checking."},
                {
                    "type": "tool_use",
                    "id": "toolu_a",
                    "name": "weather",
                    "input": {"city": "Paris"},
                },
                {"type": "tool_use", "id": "toolu_b", "name": "weather", "input": {"city": "Rome"}},
            ],
        },
        {"role": "user", "content": [*results, *(extra or [])]},
    ]
