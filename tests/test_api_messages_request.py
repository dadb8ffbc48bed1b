"""llms.api.messages_request: a Messages request translated to a chat request — the system
prompt, user blocks, tool use and results, thinking, and the 400s for malformed messages.

Shared helpers: tests/messages_support.py.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from llms.api.messages_input import THINKING_BLOCKS
from tests.messages_support import (
    refused,
    request,
    tool_turns,
)

# --- the request: messages ------------------------------------------------------------------------


def test_a_minimal_request() -> None:
    call = request()
    assert call.chat == {
        "model": "claude-sonnet-4-5",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 1024,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    assert call.model == "claude-sonnet-4-5" and not call.stream and call.ignored == ()
    assert request(stream=True).stream


def test_sampling_stop_and_user_are_translated() -> None:
    call = request(
        temperature=0.2,
        top_p=0.9,
        top_k=40,
        stop_sequences=["###", "END"],
        metadata={"user_id": "user_abc_session_1", "other": "x"},
    )
    chat = call.chat
    assert (chat["temperature"], chat["top_p"], chat["top_k"]) == (0.2, 0.9, 40)
    assert chat["stop"] == ["###", "END"] and call.stop_sequences == ("###", "END")
    assert chat["user"] == "user_abc_session_1"


def test_the_system_prompt_string_or_blocks_cache_control_dropped() -> None:
    blocks = [
        {"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}},
        {"type": "text", "text": "Be brief."},
    ]
    assert request(system=blocks).chat["messages"][0] == {
        "role": "system",
        "content": "You are Claude Code.\nBe brief.",
    }
    assert request(system="S").chat["messages"][0] == {"role": "system", "content": "S"}
    assert request(system="").chat["messages"][0]["role"] == "user"
    refused("system[0].type", system=[{"type": "image"}])


def test_user_blocks_text_and_images() -> None:
    content = [
        {"type": "text", "text": "What is this?", "cache_control": {"type": "ephemeral"}},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBO"}},
        {"type": "image", "source": {"type": "url", "url": "https://x.test/a.jpg"}},
    ]
    call = request(messages=[{"role": "user", "content": content}])
    assert call.chat["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO"}},
                {"type": "image_url", "image_url": {"url": "https://x.test/a.jpg"}},
            ],
        }
    ]
    texts = [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]
    assert request(messages=[{"role": "user", "content": texts}]).chat["messages"] == [
        {"role": "user", "content": "a\nb"}
    ]


def test_documents_text_and_pdf() -> None:
    content = [
        {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "D"}},
        {
            "type": "document",
            "title": "r.pdf",
            "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBE"},
        },
    ]
    [message] = request(messages=[{"role": "user", "content": content}]).chat["messages"]
    assert message["content"] == [
        {"type": "text", "text": "D"},
        {
            "type": "file",
            "file": {"file_data": "data:application/pdf;base64,JVBE", "filename": "r.pdf"},
        },
    ]


@pytest.mark.parametrize(
    ("block", "param"),
    [
        (
            {"type": "image", "source": {"type": "file", "file_id": "f"}},
            "messages[0].content[0].source",
        ),
        (
            {"type": "image", "source": {"type": "base64", "media_type": "image/bmp", "data": "x"}},
            "messages[0].content[0].source.media_type",
        ),
        (
            {
                "type": "document",
                "source": {"type": "text", "media_type": "text/plain", "data": "D"},
                "citations": {"enabled": True},
            },
            "messages[0].content[0].citations",
        ),
        (
            {"type": "document", "source": {"type": "url", "url": "https://x"}},
            "messages[0].content[0].source",
        ),
        (
            {"type": "web_search_tool_result", "tool_use_id": "s", "content": []},
            "messages[0].content[0].type",
        ),
        ({"type": "container_upload", "file_id": "f"}, "messages[0].content[0].type"),
        ({"type": "video"}, "messages[0].content[0].type"),
        ({"type": "tool_use", "id": "t", "name": "f", "input": {}}, "messages[0].content[0].type"),
        ({"type": "text"}, "messages[0].content[0].text"),
    ],
)
def test_user_blocks_a_chat_model_cannot_honour_are_400s(block: dict[str, Any], param: str) -> None:
    refused(param, messages=[{"role": "user", "content": [block]}])


def test_tool_use_and_results_pair_in_call_order_before_the_user_text() -> None:
    """Results arrive in any order (and after text): each becomes a tool message right after
    the assistant message, in the order of its calls, then the rest of the user turn."""
    messages = tool_turns(
        {"type": "text", "text": "here you go"},
        {"type": "tool_result", "tool_use_id": "toolu_b", "content": "18C", "is_error": False},
        {
            "type": "tool_result",
            "tool_use_id": "toolu_a",
            "content": [{"type": "text", "text": "no"}, {"type": "text", "text": "network"}],
            "is_error": True,
            "cache_control": {"type": "ephemeral"},
        },
    )
    call = request(messages=messages)
    assert call.chat["messages"] == [
        {"role": "user", "content": "weather in Paris and Rome?"},
        {
            "role": "assistant",
            "content": "Checking.",
            "tool_calls": [
                {
                    "id": "toolu_a",
                    "type": "function",
                    "function": {"name": "weather", "arguments": '{"city":"Paris"}'},
                },
                {
                    "id": "toolu_b",
                    "type": "function",
                    "function": {"name": "weather", "arguments": '{"city":"Rome"}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "toolu_a", "content": "Error: no\nnetwork"},
        {"role": "tool", "tool_call_id": "toolu_b", "content": "18C"},
        {"role": "user", "content": "here you go"},
    ]
    assert call.origins == (
        "messages[0]",
        "messages[1]",
        "messages[2].content[2]",
        "messages[2].content[1]",
        "messages[2]",
    )


def test_thinking_is_never_text_and_its_signature_is_kept_aside() -> None:
    """Peers' bugs 18/23: thinking blocks are not replayed as text nor restructured; they are
    kept verbatim, in order, for an adapter that can replay them."""
    messages = tool_turns(
        {"type": "tool_result", "tool_use_id": "toolu_a", "content": "20C"},
        {"type": "tool_result", "tool_use_id": "toolu_b", "content": "18C"},
    )
    messages[1]["content"].insert(1, {"type": "redacted_thinking", "data": "enc=="})
    call = request(messages=messages)
    assistant = call.chat["messages"][1]
    assert "Two calls" not in orjson.dumps(call.chat).decode() and THINKING_BLOCKS not in assistant
    assert call.thinking == {
        1: [
            {"type": "thinking", "thinking": "Two calls.", "signature": "sig=="},
            {"type": "redacted_thinking", "data": "enc=="},
        ]
    }
    replay = call.chat_with_thinking()
    assert replay["messages"][1][THINKING_BLOCKS] == call.thinking[1]
    assert THINKING_BLOCKS not in call.chat["messages"][1]  # the routed request is untouched


def test_an_assistant_turn_of_thinking_alone_is_no_chat_message() -> None:
    messages = [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": [{"type": "thinking", "thinking": "t", "signature": "s"}]},
        {"role": "user", "content": "b"},
    ]
    assert [m["role"] for m in request(messages=messages).chat["messages"]] == ["user", "user"]


def test_an_assistant_string_is_its_text_and_a_prefill_may_end_the_conversation() -> None:
    messages = [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": "The answer is ("},
    ]
    assert request(messages=messages).chat["messages"][1] == {
        "role": "assistant",
        "content": "The answer is (",
    }


def test_a_tool_result_image_follows_the_tool_messages() -> None:
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AA"}}
    messages = tool_turns(
        {"type": "tool_result", "tool_use_id": "toolu_a", "content": [image]},
        {"type": "tool_result", "tool_use_id": "toolu_b"},
    )
    chat = request(messages=messages).chat["messages"]
    assert [m["role"] for m in chat[2:]] == ["tool", "tool", "user"]
    assert chat[2]["content"].startswith("(The tool's output is the attachment")
    assert chat[3]["content"] == ""
    assert chat[4]["content"][0]["image_url"]["url"] == "data:image/png;base64,AA"


@pytest.mark.parametrize(
    ("results", "param"),
    [
        (
            [
                {"type": "tool_result", "tool_use_id": "toolu_a", "content": "x"},
                {"type": "tool_result", "tool_use_id": "toolu_zz", "content": "x"},
            ],
            "messages[2].content[1].tool_use_id",
        ),
        (
            [{"type": "tool_result", "tool_use_id": "toolu_a", "content": "x"}],
            "messages[1].content[3]",
        ),
        (
            [
                {"type": "tool_result", "tool_use_id": "toolu_a", "content": "x"},
                {"type": "tool_result", "tool_use_id": "toolu_a", "content": "y"},
            ],
            "messages[2].content[1].tool_use_id",
        ),
        (
            [{"type": "tool_result", "tool_use_id": "toolu_a", "content": "x", "is_error": "yes"}],
            "messages[2].content[0].is_error",
        ),
    ],
)
def test_tool_results_that_do_not_pair_are_400s(results: list[Any], param: str) -> None:
    refused(param, messages=tool_turns(*results))


def test_calls_without_any_answer_are_400s() -> None:
    turns = tool_turns()[:2]
    refused("messages[1].content[2]", messages=turns)
    refused("messages[1].content[2]", messages=[*turns, {"role": "assistant", "content": "x"}])
    refused("messages[1].content[2]", messages=[*turns, {"role": "user", "content": "ignore"}])
    orphan = [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t"}]}]
    refused("messages[0].content[0].tool_use_id", messages=orphan)


@pytest.mark.parametrize(
    ("messages", "param"),
    [
        ([], "messages"),
        (None, "messages"),
        ([{"role": "system", "content": "x"}], "messages[0].role"),
        ([{"content": "x"}], "messages[0].role"),
        ([{"role": "user"}], "messages[0].content"),
        ([{"role": "user", "content": 5}], "messages[0].content"),
        (
            [
                {
                    "role": "assistant",
                    "content": [{"type": "tool_use", "id": "t", "name": "f", "input": "{}"}],
                }
            ],
            "messages[0].content[0].input",
        ),
        (
            [{"role": "assistant", "content": [{"type": "image", "source": {}}]}],
            "messages[0].content[0].type",
        ),
        (
            [
                {
                    "role": "assistant",
                    "content": [
                        {"type": "server_tool_use", "id": "s", "name": "web_search", "input": {}}
                    ],
                }
            ],
            "messages[0].content[0].type",
        ),
    ],
)
def test_malformed_messages_are_400s_naming_the_path(messages: Any, param: str) -> None:
    refused(param, messages=messages)
