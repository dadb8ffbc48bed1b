"""POST /v1/completions as raw HTTP: the exact bytes of a relayed stream and answer, the end of
a stream whose upstream fails after output (an error event, then `[DONE]`, never a normal
end), failures before output (fallback, an OpenAI-shaped HTTP error), the 400s naming their
field, and resumable mode (`X-Stream-Resumable`), passthrough and translated."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import orjson
import pytest

from tests.completions_support import (
    Fakes,
    chunks_of,
    completions_config,
    events,
    post,
    running_fakes,
    text_of,
)
from tests.telemetry_app import samples, scrape, until, value
from tests.upstreams.completions import CONTINUATION, stream_writes
from tests.upstreams.ollama import text_script as ollama_text
from tests.upstreams.openai import Script, error_script


@pytest.fixture
async def fakes() -> AsyncIterator[Fakes]:
    async with running_fakes() as made:
        yield made


@pytest.fixture
async def gateway(fakes: Fakes, make_gateway: Callable[..., Awaitable[str]]) -> str:
    return await make_gateway(completions_config(fakes))


def _rewritten(write: bytes, stream_id: str, created: int, usage: bool) -> bytes:
    """A fake's event as the gateway relays it: its id, `created` and the public model name."""
    obj = orjson.loads(write[6:])
    obj.update(id=stream_id, created=created, model="davinci")
    if not usage:
        obj.pop("usage", None)
        if not obj["choices"]:
            return b""
    return b"data: " + orjson.dumps(obj) + b"\n\n"


@pytest.mark.parametrize("usage", [False, True])
async def test_passthrough_stream_is_the_upstreams_bytes_rewritten(
    gateway: str, usage: bool
) -> None:
    body: dict[str, Any] = {"model": "davinci", "prompt": "Go", "max_tokens": 4, "stream": True}
    if usage:
        body["stream_options"] = {"include_usage": True}
    status, headers, raw = await post(gateway, body)
    assert status == 200
    assert headers["Content-Type"] == "text/event-stream"
    assert headers["X-Provider"] == "oa"
    stream_id = headers["X-Stream-Id"]
    assert stream_id.startswith("cmpl-")
    created = orjson.loads(events(raw)[0])["created"]
    upstream = {**body, "model": "up-instruct", "stream_options": {"include_usage": True}}
    expected = b"".join(
        _rewritten(write, stream_id, created, usage) for write in stream_writes(upstream)[:-1]
    )
    assert raw == expected + b"data: [DONE]\n\n"


async def test_passthrough_answer(gateway: str) -> None:
    status, headers, raw = await post(gateway, {"model": "davinci", "prompt": "Go", "n": 2})
    assert status == 200
    assert headers["X-Provider"] == "oa"
    answer = orjson.loads(raw)
    assert answer["id"].startswith("cmpl-")
    assert answer["object"] == "text_completion"
    assert answer["model"] == "davinci"
    assert answer["system_fingerprint"] == "fp_test"  # the upstream's own fields stay
    assert [c["text"] for c in answer["choices"]] == ["Once upon a time,", "Once upon a time, #1"]
    assert answer["usage"] == {"prompt_tokens": 1, "completion_tokens": 10, "total_tokens": 11}


async def test_translated_stream_bytes(gateway: str) -> None:
    body = {"model": "llama", "prompt": "Hi", "stream": True}
    status, headers, raw = await post(gateway, body)
    assert status == 200 and headers["X-Provider"] == "ol"
    chunks = chunks_of(raw)
    for chunk in chunks:
        assert list(chunk) == ["id", "object", "created", "model", "choices"]
        assert chunk["id"] == headers["X-Stream-Id"] and chunk["object"] == "text_completion"
        assert chunk["model"] == "llama"
        for choice in chunk["choices"]:
            assert list(choice) == ["text", "index", "logprobs", "finish_reason"]
    assert text_of(chunks) == "Hello, world!"
    assert [c["choices"][0]["finish_reason"] for c in chunks][-1] == "stop"
    # No empty chunk (the chat stream's role chunk has no text).
    assert all(c["choices"][0]["text"] or c["choices"][0]["finish_reason"] for c in chunks)


async def test_translated_answer(gateway: str) -> None:
    status, _, raw = await post(gateway, {"model": "llama", "prompt": "Hi"})
    assert status == 200
    answer = orjson.loads(raw)
    assert list(answer) == ["id", "object", "created", "model", "choices", "usage"]
    assert answer["choices"] == [
        {"text": "Hello, world!", "index": 0, "logprobs": None, "finish_reason": "stop"}
    ]


def _cut(model: str) -> Script:
    first = {"text": "Once", "index": 0, "logprobs": None, "finish_reason": None}
    obj = {"id": "u", "object": "text_completion", "created": 1, "model": model}
    return Script(writes=[b"data: " + orjson.dumps({**obj, "choices": [first]}) + b"\n\n"])


@pytest.mark.parametrize("fault", ["reset", None])
async def test_passthrough_failing_after_output_ends_with_an_error(
    gateway: str, fakes: Fakes, fault: str | None
) -> None:
    script = _cut("up-instruct")
    script.fault = fault  # a reset, or a body that ends without a finish or [DONE]
    fakes.openai.completion_scripts["up-instruct"] = script
    status, _, raw = await post(gateway, {"model": "davinci", "prompt": "Go", "stream": True})
    assert status == 200
    data = events(raw)
    assert orjson.loads(data[0])["choices"][0]["text"] == "Once"
    error = orjson.loads(data[1])["error"]
    assert error["type"] == "server_error" and error["code"]
    assert data[2:] == [b"[DONE]"]


async def test_translated_failing_after_output_ends_with_an_error(
    gateway: str, fakes: Fakes
) -> None:
    script = ollama_text(["Hello", " there"])
    fakes.ollama.scripts["llama3.2"] = Script(writes=script.writes[:2], fault="reset")
    status, _, raw = await post(gateway, {"model": "llama", "prompt": "Hi", "stream": True})
    assert status == 200
    data = events(raw)
    assert orjson.loads(data[0])["choices"][0]["text"] == "Hello"
    assert "error" in orjson.loads(data[-2])
    assert data[-1] == b"[DONE]"
    assert not any(b'"finish_reason":"stop"' in item for item in data)


async def test_fallback_before_output(gateway: str, fakes: Fakes) -> None:
    fakes.openai.completion_scripts["oa-fb"] = error_script(503, {"error": {"message": "busy"}})
    for stream in (False, True):
        status, headers, raw = await post(
            gateway, {"model": "fb", "prompt": "Hi", "stream": stream}
        )
        assert status == 200
        assert headers["X-Provider"] == "ol"
        text = text_of(chunks_of(raw)) if stream else orjson.loads(raw)["choices"][0]["text"]
        assert text == "Hello, world!"


async def test_an_upstream_without_completions_is_a_clear_error(gateway: str) -> None:
    for stream in (False, True):
        status, headers, raw = await post(
            gateway, {"model": "bare", "prompt": "Hi", "stream": stream}
        )
        assert status == 404
        assert headers["Content-Type"].startswith("application/json")
        error = orjson.loads(raw)["error"]
        assert "POST /completions" in error["message"]
        assert '"completions": false' in error["message"]


async def test_upstream_errors_before_output_are_openai_errors(gateway: str, fakes: Fakes) -> None:
    fakes.openai.completion_scripts["up-instruct"] = error_script(
        400,
        {"error": {"message": "bad prompt", "type": "invalid_request_error", "param": "prompt"}},
    )
    status, _, raw = await post(gateway, {"model": "davinci", "prompt": "Hi", "stream": True})
    assert status == 400
    assert orjson.loads(raw)["error"] == {
        "message": "bad prompt",
        "type": "invalid_request_error",
        "param": "prompt",
        "code": None,
    }


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "davinci"}, "prompt"),
        ({"prompt": "Hi"}, "model"),
        ({"model": "davinci", "prompt": 5}, "prompt"),
        ({"model": "davinci", "prompt": []}, "prompt"),
        ({"model": "davinci", "prompt": [[1], "a"]}, "prompt"),
        ({"model": "davinci", "prompt": "Hi", "stream_options": {"include_usage": True}}, None),
        ({"model": "davinci", "prompt": "Hi", "logprobs": 6}, "logprobs"),
        ({"model": "davinci", "prompt": "Hi", "max_tokens": -1}, "max_tokens"),
        ({"model": "davinci", "prompt": "Hi", "n": 3, "best_of": 2}, "best_of"),
        ({"model": "davinci", "prompt": "Hi", "best_of": 2, "stream": True}, "best_of"),
        ({"model": "davinci", "prompt": "Hi", "echo": "yes"}, "echo"),
        ({"model": "davinci", "prompt": "Hi", "stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"model": "davinci", "prompt": "Hi", "logit_bias": {"x": 1}}, "logit_bias"),
        ({"model": "davinci", "prompt": "Hi", "temperature": 3}, "temperature"),
    ],
)
async def test_bad_requests_are_400s_naming_the_field(
    gateway: str, fakes: Fakes, body: dict[str, Any], param: str | None
) -> None:
    asked = len(fakes.openai.received)
    status, _, raw = await post(gateway, body)
    assert status == 400
    error = orjson.loads(raw)["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == (param or "stream_options")
    assert len(fakes.openai.received) == asked


async def test_unknown_model_and_bad_json(gateway: str) -> None:
    status, _, raw = await post(gateway, {"model": "nope", "prompt": "Hi"})
    assert status == 404 and orjson.loads(raw)["error"]["code"] == "model_not_found"
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{gateway}/completions", data=b"{not json") as resp,
    ):
        assert resp.status == 400
        assert (await resp.json())["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize("model", ["davinci", "llama"])
async def test_resumable_mode_replays_the_same_stream(gateway: str, model: str) -> None:
    body = {"model": model, "prompt": "Hi", "stream": True}
    status, headers, raw = await post(gateway, body, {"X-Stream-Resumable": "true"})
    assert status == 200
    assert raw.startswith(b"id: 1\ndata: ")
    chunks = chunks_of(raw)
    assert {c["object"] for c in chunks} == {"text_completion"}
    expected = "".join(CONTINUATION) if model == "davinci" else "Hello, world!"
    assert text_of(chunks) == expected
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            f"{gateway}/streams/{headers['X-Stream-Id']}", headers={"Last-Event-ID": "0"}
        ) as resp,
    ):
        assert resp.status == 200
        assert await resp.read() == raw


async def test_resumable_passthrough_failing_after_output(gateway: str, fakes: Fakes) -> None:
    script = _cut("up-instruct")
    script.fault = "reset"
    fakes.openai.completion_scripts["up-instruct"] = script
    body = {"model": "davinci", "prompt": "Go", "stream": True}
    status, _, raw = await post(gateway, body, {"X-Stream-Resumable": "true"})
    assert status == 200
    data = events(raw)
    assert orjson.loads(data[0])["choices"][0]["text"] == "Once"
    assert "error" in orjson.loads(data[1])
    assert data[2:] == [b"[DONE]"]


async def test_a_chat_error_about_the_messages_names_the_prompt(gateway: str, fakes: Fakes) -> None:
    # llama.cpp's 500 for input the model cannot take is a 400 naming the chat messages.
    unsupported = {"error": {"code": 500, "message": "image input is not supported"}}
    fakes.openai.scripts["up-chat"] = error_script(500, unsupported)
    status, _, raw = await post(gateway, {"model": "chatty", "prompt": "Hi"})
    assert status == 400
    error = orjson.loads(raw)["error"]
    assert (error["param"], error["code"]) == ("prompt", "unsupported_value")


@pytest.mark.parametrize("resumable", [False, True])
async def test_a_client_that_leaves_stops_the_passthrough_upstream(
    gateway: str, fakes: Fakes, resumable: bool
) -> None:
    script = _cut("up-instruct")
    script.fault = "stall"  # one chunk, then silence for an hour
    fakes.openai.completion_scripts["up-instruct"] = script
    body = {"model": "davinci", "prompt": "Go", "stream": True}
    # Resumable mode keeps generating for the grace period: cancel it explicitly instead.
    headers = {"X-Stream-Resumable": "true"} if resumable else {}
    async with aiohttp.ClientSession() as session:
        resp = await session.post(f"{gateway}/completions", json=body, headers=headers)
        assert b'"text":"Once"' in await resp.content.readuntil(b"\n\n")
        stream_id = resp.headers["X-Stream-Id"]
        resp.close()
        if resumable:
            async with session.post(f"{gateway}/streams/{stream_id}/cancel") as cancel:
                assert (await cancel.json())["status"] == "cancelled"
    for _ in range(500):
        if fakes.openai.gone:
            break
        await asyncio.sleep(0.01)
    assert fakes.openai.gone, "the upstream never saw the gateway leave"


async def test_usage_is_recorded_even_when_the_client_did_not_ask(gateway: str) -> None:
    """Passthrough asks the upstream for usage and keeps it for the metrics (and the request
    log), without sending it to a client that did not ask; translated answers too."""
    root = gateway.removesuffix("/v1")
    for model in ("davinci", "llama"):
        _, _, raw = await post(gateway, {"model": model, "prompt": "Go", "stream": True})
        assert all("usage" not in chunk for chunk in chunks_of(raw))
    found: dict[Any, float] = {}

    async def counted() -> float:
        # The record is finished as the handler returns, just after the body's last byte.
        nonlocal found
        async with aiohttp.ClientSession() as session:
            found = samples(await scrape(session, root))
        return value(found, "llms_requests_total", model="llama")

    await until(counted)
    # The fake continues with 5 tokens; Ollama's fake reports some for "Hello, world!".
    assert value(found, "llms_tokens_total", model="davinci", kind="completion") == 5
    assert value(found, "llms_tokens_total", model="davinci", kind="prompt") == 1
    assert value(found, "llms_tokens_total", model="llama", kind="completion") > 0
