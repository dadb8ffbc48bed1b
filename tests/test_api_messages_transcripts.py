"""llms.api.messages*: property tests over any chunk sequence, and every recorded upstream
transcript through its adapter into a valid Messages stream and Message.

Shared helpers: tests/messages_support.py.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from anthropic.types import Message
from hypothesis import given, settings
from hypothesis import strategies as st

from llms.adapters import anthropic as anthropic_adapter
from llms.adapters import gemini as gemini_adapter
from llms.adapters import ollama as ollama_adapter
from llms.adapters import openai as openai_adapter
from llms.adapters.base import StreamContext
from llms.api.messages import (
    MessageBuilder,
    fold_message,
)
from llms.api.messages_stream import MessagesEncoder
from llms.chunks import (
    Fold,
    delta_chunk,
    finish_chunk,
    from_completion,
    tool_call_delta,
)
from llms.errors import (
    GatewayError,
    UpstreamMalformed,
)
from llms.framing import NDJSONDecoder, SSEDecoder
from llms.wire import Chunk
from tests.messages_support import (
    META,
    TRANSCRIPTS,
    calls,
    check_stream,
    deltas,
    parse_sse,
    reasoning,
    run,
    signature,
    strip_ids,
    text,
    usage,
)

# --- any chunk sequence ---------------------------------------------------------------------------


PIECES = st.one_of(
    st.builds(text, st.sampled_from(["a", "b c", "\n", " ", "\n\n", "é"])),
    st.builds(reasoning, st.sampled_from(["r", " ", "think"])),
    st.builds(signature, st.sampled_from(["s1", "s2"])),
    st.builds(lambda value: delta_chunk(META, {"refusal": value}), st.just("no")),
    st.builds(
        lambda index, args: calls(
            tool_call_delta(index, id=f"call_{index}", name=f"f{index}", arguments=args)
        ),
        st.integers(0, 2),
        st.sampled_from(["", "{", '{"a": 1}']),
    ),
    st.builds(
        lambda index, args: calls(tool_call_delta(index, arguments=args)),
        st.integers(0, 2),
        st.sampled_from(['"x": 2}', "}", ""]),
    ),
    st.builds(lambda: usage(7, 3)),
)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(PIECES, max_size=12),
    st.sampled_from([None, "stop", "length", "tool_calls", "content_filter"]),
    st.sampled_from([1, 2, 50]),
)
def test_any_chunk_sequence_is_a_valid_sequential_stream(
    chunks: list[Chunk], finish: Any, batch: int
) -> None:
    """Peers' bugs 14/15 as a property: whatever order deltas come in, blocks never overlap,
    no delta lands outside its block, and the SDK accumulates what the fold builds — or the
    stream ends with an error event when the upstream continued a call it had left."""
    chunks = chunks + ([finish_chunk(META, finish)] if finish else [])
    builder = MessageBuilder("msg_1", "m")
    encoder = MessagesEncoder(builder)
    data = b"".join(encoder.chunks(chunks[i : i + batch]) for i in range(0, len(chunks), batch))
    if builder.failure is not None:
        payloads = [payload for _, payload in parse_sse(data)]
        check_stream(payloads, complete=False)
        with pytest.raises(UpstreamMalformed):
            fold_message("msg_1", "m", chunks)
        return
    run(chunks, batch=batch)


# --- recorded upstreams ---------------------------------------------------------------------------


ADAPTERS = {"anthropic": anthropic_adapter, "gemini": gemini_adapter, "ollama": ollama_adapter}
TRANSCRIPT_NAMES = sorted(
    str(path.relative_to(TRANSCRIPTS))
    for path in TRANSCRIPTS.rglob("*")
    if path.suffix in (".sse", ".ndjson")
)


def transcript_chunks(name: str) -> tuple[list[Chunk], GatewayError | None]:
    """A recorded upstream stream through the real decoder and its adapter."""
    folder, _, _ = name.rpartition("/")
    adapter: Any = ADAPTERS.get(folder, openai_adapter)
    converter = adapter.new_converter(StreamContext(META, include_usage=True))
    decoder: Any = NDJSONDecoder() if name.endswith(".ndjson") else SSEDecoder()
    chunks: list[Chunk] = []
    try:
        events = list(decoder.feed((TRANSCRIPTS / name).read_bytes()))
        events += list(decoder.flush()) if hasattr(decoder, "flush") else []
        for event in events:
            if getattr(event, "data", None) == "[DONE]":
                continue
            chunks += converter.feed(event)
        chunks += converter.close()
    except GatewayError as error:
        return chunks, error
    return chunks, None


@pytest.mark.parametrize("batch", [1, 3, 100])
@pytest.mark.parametrize("name", TRANSCRIPT_NAMES)
def test_recorded_upstreams_become_valid_messages_streams(name: str, batch: int) -> None:
    """Every recorded upstream (OpenAI-compatible, Anthropic, Gemini, Ollama) through its
    adapter: valid, sequential events the SDK accumulates into the builder's Message, which
    the non-stream fold equals; an adapter's error is an error event."""
    chunks, error = transcript_chunks(name)
    if error is not None:
        payloads, _, _ = run(chunks, batch=batch, end="fail", error=error)
        assert payloads[-1]["type"] == "error" and payloads[-1]["error"]["message"]
        return
    payloads, message, _ = run(chunks, batch=batch)
    for index, block in enumerate(message["content"]):
        if block["type"] == "tool_use":
            fragments = "".join(d["partial_json"] for d in deltas(payloads, index))
            assert json.loads(fragments) == block["input"]
        if block["type"] == "text":
            assert block["text"].strip()
    if any(block["type"] == "tool_use" for block in message["content"]):
        assert message["stop_reason"] in ("tool_use", "max_tokens")


def test_the_anthropic_tool_transcript_round_trips_its_calls() -> None:
    chunks, error = transcript_chunks("anthropic/tool_use.sse")
    assert error is None
    _, message, _ = run(chunks)
    tools = [block for block in message["content"] if block["type"] == "tool_use"]
    assert tools and all(block["input"] for block in tools)
    assert message["stop_reason"] == "tool_use"


def test_the_thinking_transcripts_put_thinking_first() -> None:
    for name in ("anthropic/thinking.sse", "gemini/thinking.sse", "ollama/thinking.ndjson"):
        chunks, error = transcript_chunks(name)
        assert error is None
        _, message, _ = run(chunks)
        assert message["content"][0]["type"] == "thinking", name


def test_the_cached_usage_transcript_keeps_its_cache_counts() -> None:
    chunks, _ = transcript_chunks("anthropic/cached_usage.sse")
    _, message, _ = run(chunks)
    usage_ = message["usage"]
    assert usage_["cache_read_input_tokens"] or usage_["cache_creation_input_tokens"]


@pytest.mark.parametrize("name", TRANSCRIPT_NAMES)
def test_a_whole_completion_folds_to_the_same_message(name: str) -> None:
    """The non-stream path gets a `chat.completion` (a non-stream upstream, or the fold of a
    stream): as one chunk (chunks.from_completion) it makes the same Message."""
    chunks, error = transcript_chunks(name)
    if error is not None:
        return
    fold = Fold(META)
    fold.add(chunks)
    whole = fold_message("msg_1", "m", [from_completion(fold.completion())])
    assert strip_ids(whole) == strip_ids(fold_message("msg_1", "m", chunks))
    Message.model_validate(whole)
