"""Issue 11, items 3, 4, 13 and 19: usage an upstream reports cannot break the answer, the
telemetry, or the request log; the usage API answers honestly about its window and its log.

The gateway is the real app in front of real loopback fakes; the request log a real SQLite file.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp.test_utils import TestServer

from llms.adapters import anthropic, gemini, ollama, openai
from llms.adapters.base import StreamContext
from llms.chunks import StreamMeta
from llms.framing import SSEEvent
from llms.server import keys
from llms.telemetry.record import RequestRecord, Sinks
from llms.telemetry.usage import RequestLog
from tests.conftest import gateway_config
from tests.telemetry_app import chat, provider, running, samples, scrape, until, value
from tests.upstreams import anthropic as fake_anthropic
from tests.upstreams import gemini as fake_gemini
from tests.upstreams import ollama as fake_ollama
from tests.upstreams.openai import FakeOpenAI, Script, chunk, sse

AUTH = {"Authorization": "Bearer sk-hardening-usage"}
HUGE = 2**63


def config(fake: FakeOpenAI, db: Path, **key: Any) -> Any:
    return gateway_config(
        {"fake": provider(fake, {"m": "up"}, price_in=1, price_out=2)},
        server={"api_keys": [{"key": "sk-hardening-usage", "name": "team", **key}]},
        routing={"max_attempts": 1},
        state={"request_log": f"sqlite:{db}"},
    )


def answer(usage: Any) -> Script:
    """A complete text answer whose usage chunk carries `usage` as it is."""
    objects: list[Any] = [
        chunk({"role": "assistant", "content": ""}),
        chunk({"content": "Hello"}),
        chunk({}, "stop"),
        {"id": "x", "object": "chat.completion.chunk", "created": 1, "model": "up", "choices": []}
        | {"usage": usage},
        "[DONE]",
    ]
    return Script(writes=sse(*objects))


def rows(path: Path) -> list[dict[str, Any]]:
    with sqlite3.connect(path) as db:
        db.row_factory = sqlite3.Row
        return [dict(row) for row in db.execute("SELECT * FROM requests ORDER BY id")]


async def flushed(gw: Any) -> RequestLog:
    """The request log once every queued row is written (a dead writer fails the test)."""
    request_log = gw.app[keys.REQUEST_LOG]
    assert request_log is not None
    await asyncio.wait_for(request_log.flush(), 5)
    return request_log  # type: ignore[no-any-return]


async def usage_report(session: aiohttp.ClientSession, root: str) -> dict[str, Any]:
    async with session.get(f"{root}/api/usage") as resp:
        body = await resp.json()
        assert resp.status == 200, body
        return dict(body)


# --- item 3: one huge count never stops the request log --------------------------------------


async def test_a_huge_usage_count_does_not_stop_the_request_log(
    fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    huge = {"prompt_tokens": HUGE, "completion_tokens": 1, "total_tokens": HUGE + 1}
    fake_openai.scripts["up"] = [answer(huge), answer(huge), answer(None)]
    db = tmp_path / "u.db"
    async with running(config(fake_openai, db)) as gw, aiohttp.ClientSession(headers=AUTH) as s:
        status, streamed = await chat(s, gw.base, "m", stream=True)
        assert status == 200 and streamed.endswith(b"data: [DONE]\n\n")
        await flushed(gw)  # before the fix the writer died on this row: this timed out
        status, whole = await chat(s, gw.base, "m")
        assert status == 200, whole
        assert (await chat(s, gw.base, "m", stream=True))[0] == 200
        request_log = await flushed(gw)
        report = await usage_report(s, gw.root)
    assert orjson.loads(whole)["usage"] is None  # dropped, not passed on
    assert request_log.dropped == 0
    assert [(r["prompt_tokens"], r["completion_tokens"]) for r in rows(db)] == [(None, None)] * 3
    assert report["totals"]["requests"] == 3


async def test_a_failing_batch_is_dropped_counted_and_the_writer_goes_on(
    fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    db = tmp_path / "u.db"
    async with running(config(fake_openai, db)) as gw, aiohttp.ClientSession(headers=AUTH) as s:
        request_log = gw.app[keys.REQUEST_LOG]
        assert request_log is not None
        # A row SQLite cannot bind (whatever put it there): its batch fails as a whole.
        bad = list(request_log.row_of(RequestRecord("bad", "m", False, 0.0, time.time())))
        bad[9] = HUGE
        request_log.queue.put_nowait(tuple(bad))
        await flushed(gw)
        assert (await chat(s, gw.base, "m"))[0] == 200
        await flushed(gw)

        async def counted() -> bool:
            found = samples(await scrape(s, gw.root))
            return value(found, "llms_request_log_dropped_total") == 1

        await until(counted)
    assert request_log.dropped == 1
    assert [r["model"] for r in rows(db)] == ["m"]


# --- item 4: usage is normalised where it is parsed; sinks never break an answer --------------


@pytest.mark.parametrize(
    "usage",
    [
        {"prompt_tokens": -5, "completion_tokens": 1, "total_tokens": -4},
        {"prompt_tokens": "12", "completion_tokens": 3, "total_tokens": 15},
        {"prompt_tokens": 2, "completion_tokens": 3.5, "total_tokens": 5.5},
        {"prompt_tokens": 2, "completion_tokens": True, "total_tokens": 3},
        {"prompt_tokens": 5},
        "lots",
        [7],
    ],
    ids=["negative", "string", "fraction", "bool", "partial", "text", "list"],
)
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_bad_usage_never_breaks_the_answer_or_its_record(
    fake_openai: FakeOpenAI, tmp_path: Path, usage: Any, stream: bool
) -> None:
    fake_openai.scripts["up"] = answer(usage)
    db = tmp_path / "u.db"
    limited = config(fake_openai, db, tpm=1000)
    async with running(limited) as gw, aiohttp.ClientSession(headers=AUTH) as s:
        for _ in range(2):
            status, body = await chat(s, gw.base, "m", stream=stream)
            assert status == 200, body
            if not stream:
                completion = orjson.loads(body)
                assert completion["choices"][0]["message"]["content"] == "Hello"
                kept = completion["usage"]
                assert kept is None or all(
                    type(kept[k]) is int and kept[k] >= 0
                    for k in ("prompt_tokens", "completion_tokens", "total_tokens")
                )
        await flushed(gw)
        found = samples(await scrape(s, gw.root))
    assert value(found, "llms_requests_total", status="200") == 2
    logged = rows(db)
    assert [r["status"] for r in logged] == [200, 200]
    for r in logged:
        assert r["prompt_tokens"] is None or (type(r["prompt_tokens"]) is int)


async def test_a_partial_usage_is_completed_and_the_access_log_line_is_written(
    fake_openai: FakeOpenAI, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fake_openai.scripts["up"] = answer({"prompt_tokens": 5, "completion_tokens": 2})
    db = tmp_path / "u.db"
    caplog.set_level(logging.DEBUG, logger="llms.access")
    async with running(config(fake_openai, db)) as gw, aiohttp.ClientSession(headers=AUTH) as s:
        status, body = await chat(s, gw.base, "m")
        assert status == 200
        assert orjson.loads(body)["usage"] == {
            "prompt_tokens": 5,
            "completion_tokens": 2,
            "total_tokens": 7,
        }
        await flushed(gw)
    assert any("tokens=2" in r.getMessage() for r in caplog.records if r.name == "llms.access")
    assert rows(db)[-1]["prompt_tokens"] == 5


def ollama_answer(bad: Any) -> tuple[FakeOpenAI, dict[str, Any], str]:
    fake = fake_ollama.FakeOllama()
    fake.default = fake_ollama.ndjson(
        fake_ollama.line("Hello"), fake_ollama.done(prompt=bad, completion=1)
    )
    return fake, {"type": "ollama", "models": ["m"]}, "/"


def anthropic_answer(bad: Any) -> tuple[FakeOpenAI, dict[str, Any], str]:
    fake = fake_anthropic.FakeAnthropic()
    objects = [
        fake_anthropic.message_start(input_tokens=bad),
        fake_anthropic.text_start(),
        fake_anthropic.text_delta("Hello"),
        fake_anthropic.block_stop(),
        fake_anthropic.message_delta("end_turn", output_tokens=bad),
        fake_anthropic.MESSAGE_STOP,
    ]
    fake.default = Script(writes=fake_anthropic.events(*objects))
    provider = {"type": "anthropic", "api_key": fake_anthropic.API_KEY, "models": ["m"]}
    return fake, provider, "/"


def gemini_answer(bad: Any) -> tuple[FakeOpenAI, dict[str, Any], str]:
    fake = fake_gemini.FakeGemini()
    candidate = {
        "index": 0,
        "content": {"role": "model", "parts": [{"text": "Hello"}]},
        "finishReason": "STOP",
    }
    metadata = {"promptTokenCount": bad, "candidatesTokenCount": 1, "totalTokenCount": 2}
    fake.default = Script(
        writes=fake_gemini.events({"candidates": [candidate], "usageMetadata": metadata})
    )
    return fake, {"type": "gemini", "api_key": fake.api_key, "models": ["m"]}, "/v1beta"


@pytest.fixture(params=[ollama_answer, anthropic_answer, gemini_answer])
async def native(request: pytest.FixtureRequest) -> AsyncIterator[tuple[dict[str, Any], Any]]:
    """A fake Ollama, Anthropic or Gemini whose every answer reports usage `bad`; its provider."""
    fake, entry, root = request.param(-3)
    server = TestServer(fake.app, host="127.0.0.1")
    await server.start_server()
    entry["base_url"] = str(server.make_url(root)).rstrip("/")
    yield entry, fake
    await server.close()


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_native_protocols_with_bad_usage_answer_and_log(
    native: tuple[dict[str, Any], Any], tmp_path: Path, stream: bool
) -> None:
    entry, _ = native
    db = tmp_path / "u.db"
    settings = gateway_config(
        {"p": {**entry, "timeouts": {"idle_s": 5, "first_token_s": 5}}},
        routing={"max_attempts": 1},
        state={"request_log": f"sqlite:{db}"},
    )
    async with running(settings) as gw, aiohttp.ClientSession() as s:
        options = {"stream_options": {"include_usage": True}} if stream else {}
        status, body = await chat(s, gw.base, "m", stream=stream, **options)
        assert status == 200, body
        assert b"Hello" in body
        # No count of -3 anywhere (as a JSON value: `:-3`; a random id may contain "-3").
        assert b":-3" not in body
        await flushed(gw)
        found = samples(await scrape(s, gw.root))
    assert value(found, "llms_requests_total", status="200") == 1
    assert [(r["status"], r["prompt_tokens"]) for r in rows(db)] == [(200, None)]


class Broken:
    """A sink that fails: the others must still see the record, the client its answer."""

    def __init__(self) -> None:
        self.calls = 0

    def finish(self, record: RequestRecord) -> None:
        self.calls += 1
        raise RuntimeError("this sink is broken")


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_a_raising_sink_breaks_neither_the_answer_nor_the_other_sinks(
    fake_openai: FakeOpenAI, tmp_path: Path, caplog: pytest.LogCaptureFixture, stream: bool
) -> None:
    db = tmp_path / "u.db"
    broken = Broken()
    async with running(config(fake_openai, db)) as gw, aiohttp.ClientSession(headers=AUTH) as s:
        gw.app[keys.TELEMETRY].sinks.insert(0, broken)
        status, body = await chat(s, gw.base, "m", stream=stream)
        assert status == 200, body
        await flushed(gw)
        found = samples(await scrape(s, gw.root))
    assert broken.calls == 1
    assert value(found, "llms_requests_total", status="200") == 1
    assert len(rows(db)) == 1
    assert any("this sink is broken" in r.getMessage() or r.exc_info for r in caplog.records)


def test_sinks_are_isolated_from_each_other() -> None:
    seen: list[str] = []

    class Seeing:
        def finish(self, record: RequestRecord) -> None:
            seen.append(record.request_id)

    Sinks([Broken(), Seeing(), Broken(), Seeing()]).finish(
        RequestRecord("r1", "m", False, 0.0, 0.0)
    )
    assert seen == ["r1", "r1"]


META = StreamMeta(model="m")


def event(obj: Any) -> SSEEvent:
    return SSEEvent("message", orjson.dumps(obj).decode(), "")


def ctx() -> StreamContext:
    return StreamContext(META, include_usage=True)


BAD_COUNTS = [HUGE, -1, "7", 2.5, True, None, [1], {"n": 1}]


@pytest.mark.parametrize("bad", BAD_COUNTS[:-3] + BAD_COUNTS[-2:])
def test_openai_usage_is_normalised(bad: Any) -> None:
    conv = openai.new_converter(ctx())
    usage = {"prompt_tokens": bad, "completion_tokens": 3, "total_tokens": 9}
    data = {"id": "x", "object": "chat.completion.chunk", "choices": [], "usage": usage}
    conv.feed(event(data))
    out = conv.feed(SSEEvent("message", "[DONE]", ""))
    assert conv.usage is None
    assert all(item.get("usage") is None for item in out)


def test_openai_whole_answer_usage_is_normalised() -> None:
    conv = openai.new_whole_converter(ctx())
    body = {
        "id": "x",
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}}],
        "usage": {"prompt_tokens": 4, "completion_tokens": HUGE, "total_tokens": 1},
    }
    conv.feed(orjson.dumps(body))
    assert conv.usage is None


@pytest.mark.parametrize("bad", BAD_COUNTS[:5] + BAD_COUNTS[6:])
def test_ollama_usage_is_normalised(bad: Any) -> None:
    conv = ollama.new_converter(ctx())
    line = {"message": {"role": "assistant", "content": "hi"}, "done": False}
    conv.feed(orjson.dumps(line))
    last = {"done": True, "done_reason": "stop", "prompt_eval_count": bad, "eval_count": 2}
    out = conv.feed(orjson.dumps(last))
    assert conv.usage is None
    assert all("usage" not in item or item["usage"] is None for item in out)


def test_ollama_missing_counts_are_zero() -> None:
    conv = ollama.new_converter(ctx())
    conv.feed(orjson.dumps({"done": True, "done_reason": "stop", "eval_count": 2}))
    assert conv.usage == {"prompt_tokens": 0, "completion_tokens": 2, "total_tokens": 2}


def anthropic_events(**usage: Any) -> list[SSEEvent]:
    start = {
        "type": "message_start",
        "message": {"id": "msg", "usage": {"input_tokens": 10, "output_tokens": 1}},
    }
    delta = {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": usage}
    return [
        SSEEvent(obj["type"], orjson.dumps(obj).decode(), "")
        for obj in (start, delta, {"type": "message_stop"})
    ]


@pytest.mark.parametrize("bad", BAD_COUNTS[:5] + BAD_COUNTS[6:])
@pytest.mark.parametrize("field", ["output_tokens", "input_tokens", "cache_read_input_tokens"])
def test_anthropic_usage_is_normalised(bad: Any, field: str) -> None:
    conv = anthropic.new_converter(ctx())
    out = []
    for event in anthropic_events(**{"output_tokens": 3, field: bad}):
        out += conv.feed(event)
    assert conv.done
    assert conv.usage is None
    assert all(item.get("usage") is None for item in out)


def test_anthropic_prompt_parts_that_overflow_together_are_dropped() -> None:
    conv = anthropic.new_converter(ctx())
    half = HUGE // 2
    for event in anthropic_events(input_tokens=half, cache_read_input_tokens=half, output_tokens=1):
        conv.feed(event)
    assert conv.usage is None


@pytest.mark.parametrize("bad", BAD_COUNTS[:5] + BAD_COUNTS[6:])
@pytest.mark.parametrize("field", ["promptTokenCount", "candidatesTokenCount", "totalTokenCount"])
def test_gemini_usage_is_normalised(bad: Any, field: str) -> None:
    conv = gemini.new_converter(ctx())
    metadata = {"promptTokenCount": 4, "candidatesTokenCount": 2, "totalTokenCount": 6}
    metadata[field] = bad
    obj = {
        "candidates": [
            {"index": 0, "content": {"parts": [{"text": "hi"}]}, "finishReason": "STOP"}
        ],
        "usageMetadata": metadata,
    }
    conv.feed(event(obj))
    out = conv.close()
    if field == "totalTokenCount":  # the total is recomputed from its parts
        assert conv.usage is not None and conv.usage["total_tokens"] == 6
    else:
        assert conv.usage is None and out == []


# --- item 13: the derived window is validated too ---------------------------------------------


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ({"to": "0001-01-01T00:00:00"}, "to"),
        ({"to": "0001-01-01T23:59:59"}, "to"),
        ({"to": "-62135596800"}, "to"),
        ({"from": "0001-01-01T00:00:00", "to": "0001-01-01T00:00:00"}, None),
    ],
)
async def test_a_window_out_of_range_is_400_naming_the_param(
    fake_openai: FakeOpenAI, tmp_path: Path, query: dict[str, str], param: str | None
) -> None:
    async with (
        running(config(fake_openai, tmp_path / "u.db")) as gw,
        aiohttp.ClientSession(headers=AUTH) as s,
        s.get(f"{gw.root}/api/usage", params=query) as resp,
    ):
        body = await resp.json()
    if param is None:  # from given: the window is in range
        assert resp.status == 200, body
        return
    assert resp.status == 400, body
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["param"] == param
    assert body["error"]["type"] == "invalid_request_error"


# --- item 19: a request log that could not be opened is a 503, not an empty report ------------


async def test_usage_is_503_when_the_request_log_could_not_be_opened(
    fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    async with (
        running(config(fake_openai, blocker / "requests.db")) as gw,
        aiohttp.ClientSession(headers=AUTH) as s,
        s.get(f"{gw.root}/api/usage") as resp,
    ):
        body = await resp.json()
    assert resp.status == 503, body
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["code"] == "request_log_unavailable"
    assert "could not be opened" in body["error"]["message"]
    assert str(tmp_path) not in body["error"]["message"]
