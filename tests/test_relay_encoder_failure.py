"""Default (non-resumable) mode: a chunk the Responses or Messages API cannot translate ends the
client's stream with that API's failure event and closes the upstream at once, as resumable mode
does, though the upstream would go on streaming (and billing) for ever."""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson
import pytest

from tests.conftest import gateway_config
from tests.test_disconnect import wait_gone
from tests.upstreams.openai import FakeOpenAI, Script, chunk, sse

CALL = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
# A tool call, text after it (which closes the call), then more of the closed call: neither
# API can express it. The upstream then keeps streaming text (20 s of it) and never ends.
WRITES = sse(
    chunk({"role": "assistant", "content": None, "tool_calls": [{"index": 0, **CALL}]}),
    chunk({"content": "and then"}),
    chunk({"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]}),
    *(chunk({"content": f" more {i}"}) for i in range(400)),
)
FAILURES = {"responses": b"event: response.failed", "messages": b"event: error"}
REQUESTS: Any = {
    "responses": {"model": "m", "input": "hi", "stream": True},
    "messages": {
        "model": "m",
        "max_tokens": 64,
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
    },
}


def events(body: bytes) -> list[tuple[str, dict[str, Any]]]:
    """The `event:` name and JSON data of each SSE event (pings and comments left out)."""
    out = []
    for frame in body.split(b"\n\n"):
        lines = dict(line.split(b": ", 1) for line in frame.split(b"\n") if b": " in line)
        if b"event" in lines and lines[b"event"] != b"ping":
            out.append((lines[b"event"].decode(), orjson.loads(lines[b"data"])))
    return out


@pytest.mark.parametrize("api", ["responses", "messages"])
async def test_an_untranslatable_chunk_closes_the_upstream(
    fake_openai: FakeOpenAI, make_gateway: Any, api: str
) -> None:
    fake_openai.scripts["up-model"] = Script(writes=WRITES, delay_s=0.05, fault="stall")
    config = gateway_config(
        {
            "fake": {
                "type": "openai",
                "base_url": fake_openai.base_url,  # type: ignore[attr-defined]
                "models": {"m": "up-model"},
                # Far longer than wait_gone's limit: no timeout may close the upstream in its stead.
                "timeouts": {"idle_s": 60, "first_token_s": 60},
            }
        },
        routing={"max_attempts": 1},
    )
    base = await make_gateway(config)
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{base}/{api}", json=REQUESTS[api]) as resp,
    ):
        assert resp.status == 200
        body = b""
        while FAILURES[api] not in body:
            body += await resp.content.readuntil(b"\n\n")
        # The client is still connected and the upstream still streaming: only the gateway
        # closing it on its own makes it go.
        await wait_gone(fake_openai)
        body += await resp.read()  # then the stream ends, with nothing more
    assert not fake_openai.finished  # the upstream never got to its end
    names = [name for name, _ in events(body)]
    last_name, last = events(body)[-1]
    if api == "responses":
        assert last_name == "response.failed" and names.count("response.failed") == 1
        assert last["response"]["error"]["code"] == "server_error"
        assert "continued a tool call" in last["response"]["error"]["message"]
    else:
        assert last_name == "error" and names.count("error") == 1
        assert last["error"]["type"] == "api_error"
        assert "continued a tool call" in last["error"]["message"]
    assert b" more " not in body  # nothing after the failure reached the client
