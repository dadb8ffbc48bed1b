"""A generation longer than aiohttp's default 5-minute total timeout streams to the end."""

from __future__ import annotations

import openai
import pytest

from tests.upstreams.openai import FakeOpenAI, text_script

MINUTES = 6.3


@pytest.mark.timeout(MINUTES * 60 + 120)
async def test_a_six_minute_stream_is_not_cut(
    client: openai.AsyncOpenAI, fake_openai: FakeOpenAI
) -> None:
    # A chunk every second keeps each gap under the (test's 1.5 s) idle timeout, and the whole
    # answer lasts longer than 300 s, aiohttp's default total timeout for a ClientSession.
    pieces = [f"{i} " for i in range(int(MINUTES * 60))]
    fake_openai.scripts["up-model"] = text_script(pieces, delay_s=1.0)
    stream = await client.chat.completions.create(
        model="test-model", messages=[{"role": "user", "content": "long"}], stream=True, timeout=600
    )
    text = []
    finish = None
    async for chunk in stream:
        text.append(chunk.choices[0].delta.content or "")
        finish = chunk.choices[0].finish_reason or finish
    assert "".join(text) == "".join(pieces)
    assert finish == "stop"
