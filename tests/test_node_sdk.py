"""openai-node (6.x) as a client: streaming, finalChatCompletion() with tools, errors."""

from __future__ import annotations

from typing import Any

from tests.node_client import needs_node, run_node
from tests.upstreams.openai import FakeOpenAI, Script, chunk, sse, text_script

pytestmark = needs_node

TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
]


def tool_stream(calls: list[tuple[str, str, list[str]]]) -> Script:
    """Parallel calls as OpenAI streams them: the first delta with id/name, then argument pieces."""
    objects: list[Any] = [chunk({"role": "assistant", "content": None})]
    for index, (call_id, name, pieces) in enumerate(calls):
        objects.append(
            chunk(
                {
                    "tool_calls": [
                        {
                            "index": index,
                            "id": call_id,
                            "type": "function",
                            "function": {"name": name, "arguments": ""},
                        }
                    ]
                }
            )
        )
        objects += [
            chunk({"tool_calls": [{"index": index, "function": {"arguments": p}}]}) for p in pieces
        ]
    objects += [chunk({}, "tool_calls"), "[DONE]"]
    return Script(writes=sse(*objects))


async def test_stream_and_plain(gateway: str, fake_openai: FakeOpenAI) -> None:
    fake_openai.scripts["up-model"] = text_script(["Hi", " node"])
    result = await run_node(gateway, "test-model", "stream")
    assert result["ok"], result
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in result["chunks"])
    assert text == "Hi node"
    assert {c["model"] for c in result["chunks"]} == {"test-model"}
    result = await run_node(gateway, "test-model", "plain")
    assert result["ok"], result
    assert (
        result["completion"]["choices"][0]["message"]["content"] == "Hi node"
    )  # an object, not a string


async def test_final_chat_completion_with_parallel_tool_calls(
    gateway: str, fake_openai: FakeOpenAI
) -> None:
    fake_openai.scripts["up-model"] = tool_stream(
        [
            ("call_a", "get_weather", ['{"city":', '"Paris"}']),
            ("call_b", "get_weather", ['{"city":"Oslo"}']),
        ]
    )
    result = await run_node(gateway, "test-model", "final", TOOLS)
    assert result["ok"], result
    message = result["completion"]["choices"][0]["message"]
    calls = message["tool_calls"]
    assert [(c["id"], c["type"], c["function"]["name"]) for c in calls] == [
        ("call_a", "function", "get_weather"),
        ("call_b", "function", "get_weather"),
    ]
    assert [c["function"]["arguments"] for c in calls] == ['{"city":"Paris"}', '{"city":"Oslo"}']
    assert result["completion"]["choices"][0]["finish_reason"] == "tool_calls"


async def test_errors(gateway: str, fake_openai: FakeOpenAI) -> None:
    result = await run_node(gateway, "missing-model", "stream")
    assert (result["ok"], result["name"], result["status"]) == (False, "NotFoundError", 404)
    fake_openai.scripts["up-model"] = Script(
        writes=sse(
            chunk({"content": "partial"}),
            {"error": {"message": "boom", "type": "server_error", "code": "x"}},
        ),
        delay_s=0.05,
    )
    result = await run_node(gateway, "test-model", "stream")
    assert (result["ok"], result["name"], result["status"]) == (False, "APIError", None)
    assert "boom" in result["message"]
