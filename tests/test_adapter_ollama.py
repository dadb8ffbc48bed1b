"""llms.adapters.ollama as pure functions: the `/api/chat` request it builds, the chunks it makes
of the NDJSON lines, the errors it maps, the model list it reads (protocol.md §3.2, §3.5, §5
items 55-59). No server, no I/O."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest

from llms.adapters import ollama as adapter
from llms.adapters.base import StreamContext
from llms.chunks import StreamMeta, fold
from llms.config import ProviderConfig, Timeouts
from llms.errors import (
    InvalidRequest,
    UpstreamIncomplete,
    UpstreamMalformed,
    UpstreamStreamError,
)
from llms.framing import NDJSONDecoder
from llms.wire import ChatRequest, Chunk
from tests.upstreams.ollama import OLLAMA_TRANSCRIPTS, done, line

META = StreamMeta(id="chatcmpl-gateway", created=1234567890, model="llama")
# A 1x1 PNG.
IMAGE = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9"
    + "awAAAABJRU5ErkJggg=="
)


def provider(**fields: Any) -> ProviderConfig:
    base: dict[str, Any] = {
        "name": "ollama",
        "type": "ollama",
        "base_url": "http://127.0.0.1:11434",
        "models": {"llama": "llama3.2"},
        "timeouts": Timeouts(),
    }
    return ProviderConfig(**{**base, **fields})


def build(prov: ProviderConfig | None = None, **fields: Any) -> tuple[Any, dict[str, Any]]:
    body: dict[str, Any] = {"model": "llama", "messages": [{"role": "user", "content": "hi"}]}
    body.update(fields)
    req = adapter.build_request(body, prov or provider(), "llama3.2")  # type: ignore[arg-type]
    return req, orjson.loads(req.body)


def refused(**fields: Any) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as info:
        build(**fields)
    assert info.value.status == 400
    return info.value


def new(include_usage: bool = False) -> adapter.Converter:
    return adapter.new_converter(StreamContext(META, include_usage=include_usage))


def feed(conv: adapter.Converter, *objects: Any) -> list[Chunk]:
    out: list[Chunk] = []
    for obj in objects:
        out += conv.feed(obj if isinstance(obj, bytes) else orjson.dumps(obj))
    return out


def deltas(chunks: list[Chunk]) -> list[dict[str, Any]]:
    return [dict(choice["delta"]) for item in chunks for choice in item["choices"]]


def finishes(chunks: list[Chunk]) -> list[str | None]:
    return [choice["finish_reason"] for item in chunks for choice in item["choices"]]


def calls(chunks: list[Chunk]) -> list[dict[str, Any]]:
    return [dict(call) for d in deltas(chunks) for call in d.get("tool_calls") or ()]


# --- the request ----------------------------------------------------------------------------------


def test_request_line_headers_and_body() -> None:
    req, body = build()
    assert (req.method, req.url) == ("POST", "http://127.0.0.1:11434/api/chat")
    assert req.headers["Content-Type"] == "application/json"
    assert req.headers["Accept"] == "application/x-ndjson"
    assert "Authorization" not in req.headers
    assert body == {
        "model": "llama3.2",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
    }


@pytest.mark.parametrize("stream", [False, True, None])
def test_upstream_always_streams(stream: bool | None) -> None:
    _, body = build(stream=stream, stream_options={"include_usage": True})
    assert body["stream"] is True
    assert "stream_options" not in body


def test_api_key_is_a_bearer_token_and_provider_headers_win() -> None:
    req, _ = build(provider(api_key="sk-ollama"))
    assert req.headers["Authorization"] == "Bearer sk-ollama"
    req, _ = build(provider(api_key="sk-ollama", headers={"Authorization": "Basic x", "X-T": "1"}))
    assert req.headers["Authorization"] == "Basic x"
    assert req.headers["X-T"] == "1"


def test_system_and_developer_stay_system_messages_with_parts_joined() -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {
            "role": "developer",
            "content": [{"type": "text", "text": "A"}, {"type": "text", "text": "B"}],
        },
        {"role": "user", "content": [{"type": "text", "text": "hi"}]},
    ]
    _, body = build(messages=messages)
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "system", "content": "A\nB"},
        {"role": "user", "content": "hi"},
    ]


def test_data_url_images_become_raw_base64() -> None:
    parts = [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{IMAGE}"}},
        {
            "type": "image_url",
            "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQ", "detail": "low"},
        },
    ]
    _, body = build(messages=[{"role": "user", "content": parts}])
    assert body["messages"] == [
        {"role": "user", "content": "What is this?", "images": [IMAGE, "/9j/4AAQ"]}
    ]


def test_image_only_message_has_empty_content() -> None:
    part = {"type": "image_url", "image_url": {"url": f"data:;base64,{IMAGE}"}}
    _, body = build(messages=[{"role": "user", "content": [part]}])
    assert body["messages"] == [{"role": "user", "content": "", "images": [IMAGE]}]


@pytest.mark.parametrize("url", ["https://example.com/cat.png", "http://example.com/cat.png"])
def test_http_image_urls_are_refused_naming_the_field(url: str) -> None:
    parts = [{"type": "text", "text": "see"}, {"type": "image_url", "image_url": {"url": url}}]
    error = refused(
        messages=[{"role": "system", "content": "s"}, {"role": "user", "content": parts}]
    )
    assert error.param == "messages[1].content[1].image_url"
    assert error.code == "unsupported_parameter"
    assert "base64" in error.message


@pytest.mark.parametrize(
    "url", ["data:image/png,rawbytes", "data:text/plain;base64,aGk=", "file:///x.png", "data:"]
)
def test_other_image_urls_are_invalid(url: str) -> None:
    part = {"type": "image_url", "image_url": {"url": url}}
    error = refused(messages=[{"role": "user", "content": [part]}])
    assert error.param == "messages[0].content[0].image_url"
    assert error.code == "invalid_value"


@pytest.mark.parametrize(
    ("role", "part"),
    [
        ("user", {"type": "input_audio", "input_audio": {"data": "AAA", "format": "wav"}}),
        ("user", {"type": "file", "file": {"file_id": "f"}}),
        ("system", {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{IMAGE}"}}),
    ],
)
def test_unsupported_parts_are_refused(role: str, part: dict[str, Any]) -> None:
    error = refused(messages=[{"role": role, "content": [{"type": "text", "text": "x"}, part]}])
    assert error.param == "messages[0].content[1].type"


TOOL_TURN: list[dict[str, Any]] = [
    {"role": "user", "content": "Weather in Paris and Oslo?"},
    {
        "role": "assistant",
        "content": None,
        "reasoning_content": "Two calls.",
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
            },
            {
                "id": "call_2",
                "type": "function",
                "function": {"name": "get_weather", "arguments": ""},
            },
        ],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
    {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "9C"}]},
]


def test_tool_round_trip() -> None:
    _, body = build(messages=TOOL_TURN)
    assert body["messages"][1:] == [
        {
            "role": "assistant",
            "content": "",
            "thinking": "Two calls.",
            "tool_calls": [
                {
                    "id": "call_1",
                    "function": {"index": 0, "name": "get_weather", "arguments": {"city": "Paris"}},
                },
                {"id": "call_2", "function": {"index": 1, "name": "get_weather", "arguments": {}}},
            ],
        },
        {"role": "tool", "content": "18C", "tool_call_id": "call_1", "tool_name": "get_weather"},
        {"role": "tool", "content": "9C", "tool_call_id": "call_2", "tool_name": "get_weather"},
    ]


def test_tool_name_comes_from_the_latest_call_with_that_id() -> None:
    def call(name: str) -> dict[str, Any]:
        return {"id": "dup", "type": "function", "function": {"name": name, "arguments": "{}"}}

    messages = [
        {"role": "assistant", "content": None, "tool_calls": [call("old")]},
        {"role": "tool", "tool_call_id": "dup", "content": "a"},
        {"role": "assistant", "content": None, "tool_calls": [call("new")]},
        {"role": "tool", "tool_call_id": "dup", "content": "b"},
        {"role": "tool", "tool_call_id": "unknown", "content": "c"},
        {"role": "function", "name": "legacy", "content": "d"},
    ]
    _, body = build(messages=messages)
    tools = [m for m in body["messages"] if m["role"] == "tool"]
    assert [m.get("tool_name") for m in tools] == ["old", "new", None, "legacy"]


@pytest.mark.parametrize(
    ("arguments", "code"),
    [("{not json", "invalid_value"), ("[1, 2]", "invalid_value"), ('"text"', "invalid_value")],
)
def test_bad_tool_call_arguments_are_refused_naming_the_field(arguments: str, code: str) -> None:
    messages = [dict(m) for m in TOOL_TURN]
    messages[1] = {
        **messages[1],
        "tool_calls": [
            TOOL_TURN[1]["tool_calls"][0],
            {"id": "c", "type": "function", "function": {"name": "f", "arguments": arguments}},
        ],
    }
    error = refused(messages=messages)
    assert error.param == "messages[1].tool_calls[1].function.arguments"
    assert error.code == code


def test_options_from_sampling_fields() -> None:
    _, body = build(
        max_tokens=50,
        stop="\n\n",
        temperature=0.2,
        top_p=0.9,
        seed=7,
        frequency_penalty=0.5,
        presence_penalty=-0.5,
    )
    assert body["options"] == {
        "num_predict": 50,
        "stop": ["\n\n"],
        "temperature": 0.2,
        "top_p": 0.9,
        "seed": 7,
        "frequency_penalty": 0.5,
        "presence_penalty": -0.5,
    }


def test_max_completion_tokens_wins_and_stop_lists_pass() -> None:
    _, body = build(max_tokens=50, max_completion_tokens=80, stop=["END", "###"])
    assert body["options"] == {"num_predict": 80, "stop": ["END", "###"]}


def test_no_options_when_none_given() -> None:
    _, body = build(temperature=None, stop=None, user="u-1", store=True, metadata={"a": "b"})
    assert set(body) == {"model", "messages", "stream"}


@pytest.mark.parametrize(
    ("response_format", "expected"),
    [
        ({"type": "json_object"}, "json"),
        (
            {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}},
            {"type": "object"},
        ),
        ({"type": "json_schema", "json_schema": {"name": "x"}}, "json"),
    ],
)
def test_response_format_becomes_format(response_format: Any, expected: Any) -> None:
    _, body = build(response_format=response_format)
    assert body["format"] == expected


def test_text_response_format_adds_nothing_and_unknown_is_refused() -> None:
    assert "format" not in build(response_format={"type": "text"})[1]
    assert refused(response_format={"type": "grammar"}).param == "response_format.type"
    bad = {"type": "json_schema", "json_schema": {"name": "x", "schema": "object"}}
    assert refused(response_format=bad).param == "response_format.json_schema.schema"


@pytest.mark.parametrize(
    ("effort", "think"),
    [
        ("none", False),
        ("minimal", "low"),
        ("low", "low"),
        ("medium", "medium"),
        ("high", "high"),
        ("xhigh", "max"),
        ("max", "max"),
    ],
)
def test_reasoning_effort_becomes_think(effort: str, think: Any) -> None:
    _, body = build(reasoning_effort=effort)
    assert body["think"] == think


def test_no_reasoning_effort_leaves_think_to_the_model() -> None:
    assert "think" not in build()[1]
    assert refused(reasoning_effort="extreme").param == "reasoning_effort"
    assert refused(reasoning_effort=["high"]).param == "reasoning_effort"


TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather of a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            "strict": True,
        },
    }
]


@pytest.mark.parametrize("choice", [None, "auto"])
def test_tools_pass_through_in_openai_shape(choice: str | None) -> None:
    _, body = build(tools=TOOLS, tool_choice=choice, parallel_tool_calls=True)
    assert body["tools"] == TOOLS
    assert "tool_choice" not in body
    assert "parallel_tool_calls" not in body


def test_tool_choice_none_offers_no_tools() -> None:
    assert "tools" not in build(tools=TOOLS, tool_choice="none")[1]


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"n": 2}, "n"),
        ({"tools": TOOLS, "tool_choice": "required"}, "tool_choice"),
        (
            {
                "tools": TOOLS,
                "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
            },
            "tool_choice",
        ),
        ({"tools": TOOLS, "parallel_tool_calls": False}, "parallel_tool_calls"),
        ({"tools": [{"type": "custom", "custom": {"name": "x"}}]}, "tools[0].type"),
        ({"logit_bias": {"50256": -100}}, "logit_bias"),
        ({"modalities": ["text", "audio"], "audio": {"voice": "alloy"}}, "modalities"),
        ({"functions": [{"name": "f"}]}, "functions"),
        ({"web_search_options": {}}, "web_search_options"),
    ],
)
def test_unsupported_parameters_are_refused_naming_them(fields: dict[str, Any], param: str) -> None:
    error = refused(**fields)
    assert error.param == param
    assert error.code == "unsupported_parameter"


def test_allowed_defaults_of_unsupported_parameters_pass() -> None:
    _, body = build(n=1, parallel_tool_calls=False, logit_bias={}, modalities=["text"])
    assert set(body) == {"model", "messages", "stream"}


def test_logprobs_are_requested() -> None:
    _, body = build(logprobs=True, top_logprobs=3)
    assert (body["logprobs"], body["top_logprobs"]) == (True, 3)
    assert "logprobs" not in build(logprobs=False)[1]


# --- the stream -----------------------------------------------------------------------------------


def test_text_stream() -> None:
    conv = new(include_usage=True)
    chunks = feed(conv, line("Hel"), line("lo"), done(prompt=26, completion=2))
    assert deltas(chunks) == [
        {"role": "assistant", "content": ""},
        {"content": "Hel"},
        {"content": "lo"},
        {},
    ]
    assert finishes(chunks) == [None, None, None, "stop"]
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {"prompt_tokens": 26, "completion_tokens": 2, "total_tokens": 28}
    # As OpenAI does with include_usage: every chunk before the usage chunk says null.
    assert all(item["usage"] is None for item in chunks[:-1])
    assert conv.done
    for item in chunks:
        assert (item["id"], item["created"], item["model"]) == (META.id, META.created, "llama")
        assert item["object"] == "chat.completion.chunk"
        for choice in item["choices"]:
            assert choice["index"] == 0
            assert choice["logprobs"] is None


def test_usage_is_kept_without_the_usage_chunk() -> None:
    conv = new()
    chunks = feed(conv, line("x"), done(prompt=3, completion=1))
    assert all(item["choices"] for item in chunks)
    assert conv.usage == {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}


def test_missing_counts_are_zero_and_ollama_reports_no_details() -> None:
    conv = new(include_usage=True)
    chunks = feed(conv, done(prompt=None, completion=None))
    assert chunks[-1]["usage"] == {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}


def test_empty_lines_after_the_first_make_no_chunks() -> None:
    conv = new()
    assert len(feed(conv, line(""))) == 1
    assert feed(conv, line(""), {"model": "llama3.2", "status": "x"}) == []


def test_thinking_becomes_reasoning_content_before_content() -> None:
    chunks = feed(new(), line("", thinking="Hmm"), line("Answer", thinking=" so"), done())
    assert deltas(chunks)[1:3] == [{"reasoning_content": "Hmm"}, {"reasoning_content": " so"}]
    assert deltas(chunks)[3] == {"content": "Answer"}
    assert "content" not in deltas(chunks)[1]


def test_content_on_the_done_line_comes_before_the_finish() -> None:
    final = done()
    final["message"]["content"] = "tail"
    chunks = feed(new(), line("a"), final)
    assert deltas(chunks)[-2:] == [{"content": "tail"}, {}]
    assert finishes(chunks)[-1] == "stop"


WEATHER = {"function": {"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}}


def test_tool_call_without_id_gets_a_synthesized_one() -> None:
    chunks = feed(new(), line("", tool_calls=[WEATHER]), done())
    [call] = calls(chunks)
    assert call["id"].startswith("call_") and len(call["id"]) > 8
    assert call == {
        "index": 0,
        "id": call["id"],
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city":"Paris","unit":"celsius"}'},
    }
    assert finishes(chunks)[-1] == "tool_calls"
    assert json.loads(call["function"]["arguments"]) == WEATHER["function"]["arguments"]


def test_parallel_calls_get_contiguous_indexes_and_unique_ids() -> None:
    time_call = {"function": {"name": "get_time", "arguments": {"tz": "UTC"}}}
    conv = new()
    chunks = feed(conv, line("", tool_calls=[WEATHER, time_call]))
    chunks += feed(conv, line("", tool_calls=[{**time_call, "id": "call_given"}]), done())
    found = calls(chunks)
    assert [c["index"] for c in found] == [0, 1, 2]
    assert [c["function"]["name"] for c in found] == ["get_weather", "get_time", "get_time"]
    assert found[2]["id"] == "call_given"
    assert len({c["id"] for c in found}) == 3
    # One full chunk per call: every call opens and completes in one delta.
    assert all(len(d.get("tool_calls", [1])) == 1 for d in deltas(chunks))


def test_provider_ids_kept_but_never_repeated() -> None:
    call = {"id": "call_same", **WEATHER}
    found = calls(feed(new(), line("", tool_calls=[call, call]), done()))
    assert found[0]["id"] == "call_same"
    assert found[1]["id"].startswith("call_") and found[1]["id"] != "call_same"


@pytest.mark.parametrize(("arguments", "text"), [(None, "{}"), ('{"a":1}', '{"a":1}'), ({}, "{}")])
def test_tool_arguments_are_always_a_json_string(arguments: Any, text: str) -> None:
    call = {"function": {"name": "f", "arguments": arguments}}
    [found] = calls(feed(new(), line("", tool_calls=[call])))
    assert found["function"]["arguments"] == text


@pytest.mark.parametrize(
    ("reason", "with_calls", "expected"),
    [
        ("stop", False, "stop"),
        ("stop", True, "tool_calls"),
        ("length", False, "length"),
        ("length", True, "length"),
        (None, False, "stop"),
        (None, True, "tool_calls"),
        ("load", False, "stop"),
        ("unload", False, "stop"),
    ],
)
def test_finish_reasons(reason: str | None, with_calls: bool, expected: str) -> None:
    first = line("", tool_calls=[WEATHER]) if with_calls else line("x")
    chunks = feed(new(), first, done(reason))
    assert [f for f in finishes(chunks) if f] == [expected]


def test_logprobs_become_openai_logprobs() -> None:
    obj = line("Hi")
    obj["logprobs"] = [
        {
            "token": "Hi",
            "logprob": -0.1,
            "bytes": [72, 105],
            "top_logprobs": [{"token": "Hi", "logprob": -0.1}],
        }
    ]
    chunks = feed(new(), obj)
    assert chunks[-1]["choices"][0]["logprobs"] == {
        "content": [
            {
                "token": "Hi",
                "logprob": -0.1,
                "bytes": [72, 105],
                "top_logprobs": [{"token": "Hi", "logprob": -0.1, "bytes": None}],
            }
        ],
        "refusal": None,
    }


@pytest.mark.parametrize(
    "error",
    [
        {"error": "an error was encountered while running the model"},
        {"error": {"message": "an error was encountered while running the model"}},
    ],
)
def test_in_stream_error_line(error: dict[str, Any]) -> None:
    conv = new()
    feed(conv, line("par"))
    with pytest.raises(UpstreamStreamError) as info:
        feed(conv, error)
    assert info.value.message == "an error was encountered while running the model"
    assert not conv.done


def test_lines_after_done_are_ignored() -> None:
    conv = new()
    feed(conv, line("a"), done())
    assert feed(conv, line("late"), {"error": "late"}, b"not json") == []
    assert conv.close() == []


@pytest.mark.parametrize(
    "raw",
    [
        b"{not json",
        b"[1, 2]",
        b'{"message": "text", "done": false}',
        b'{"message": {"role": "assistant", "content": 5}, "done": false}',
        b'{"message": {"role": "assistant", "content": "", "tool_calls": {"a": 1}}, "done": false}',
        b'{"message": {"role": "assistant", "content": "", "tool_calls": [{"function": {}}]}}',
    ],
)
def test_malformed_lines(raw: bytes) -> None:
    with pytest.raises(UpstreamMalformed):
        new().feed(raw)


@pytest.mark.parametrize("lines", [[], [line("cut")], [line("a"), line("b", thinking="c")]])
def test_end_without_done_line_is_incomplete(lines: list[Any]) -> None:
    conv = new(include_usage=True)
    feed(conv, *lines)
    with pytest.raises(UpstreamIncomplete):
        conv.close()
    assert not conv.done


# --- whole transcripts, through the NDJSON decoder ------------------------------------------------


def converted(name: str, piece: int | None) -> list[Chunk]:
    raw = (OLLAMA_TRANSCRIPTS / name).read_bytes()
    pieces = [raw] if piece is None else [raw[i : i + piece] for i in range(0, len(raw), piece)]
    decoder = NDJSONDecoder()
    conv = new(include_usage=True)
    out: list[Chunk] = []
    for data in pieces:
        for event in decoder.feed(data):
            out += conv.feed(event)
    for event in decoder.flush():
        out += conv.feed(event)
    out += conv.close()
    assert conv.done
    return out


EXPECTED = {
    "text.ndjson": ("The capital of France is Paris — café ✓.", "", "stop", (31, 11)),
    "thinking.ndjson": ("9.9 is larger.", "Compare 9.11 and 9.9: 0.90 > 0.11.", "stop", (17, 42)),
    "tool_call.ndjson": (None, "", "tool_calls", (180, 23)),
    "parallel_tools.ndjson": (None, "Two lookups: weather and time.", "tool_calls", (212, 58)),
    "length.ndjson": ("Once upon a time,", "", "length", (12, 5)),
}


def test_every_transcript_has_an_expectation() -> None:
    assert sorted(p.name for p in OLLAMA_TRANSCRIPTS.iterdir()) == sorted(EXPECTED)


@pytest.mark.parametrize("piece", [None, 1, 7])
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_transcripts_fold_to_the_expected_answer(name: str, piece: int | None) -> None:
    content, reasoning, finish, usage = EXPECTED[name]
    completion = fold(converted(name, piece), META)
    choice = completion["choices"][0]
    assert choice["message"]["content"] == content
    assert choice["message"].get("reasoning_content", "") == reasoning
    assert choice["finish_reason"] == finish
    assert completion["usage"] is not None
    assert (completion["usage"]["prompt_tokens"], completion["usage"]["completion_tokens"]) == usage


def test_parallel_transcript_keeps_the_servers_ids() -> None:
    completion = fold(converted("parallel_tools.ndjson", None), META)
    tools = completion["choices"][0]["message"]["tool_calls"]
    assert [(t["id"], t["function"]["name"], t["function"]["arguments"]) for t in tools] == [
        ("call_k2m9x7qa", "get_weather", '{"city":"Paris"}'),
        ("call_p4w8n1zd", "get_time", '{"tz":"Europe/London"}'),
    ]


# --- errors and models ----------------------------------------------------------------------------


def test_model_not_found() -> None:
    body = b'{"error":"model \\"llama3.2\\" not found, try pulling it first"}'
    error = adapter.from_error_response(404, {}, body)
    assert (error.status, error.code, error.param) == (404, "model_not_found", "model")
    assert error.message == 'model "llama3.2" not found, try pulling it first'


@pytest.mark.parametrize(
    ("status", "client_status", "error_type"),
    [
        (400, 400, "invalid_request_error"),
        (429, 429, "rate_limit_error"),
        (500, 502, "server_error"),
        (502, 502, "server_error"),
        (503, 503, "server_error"),
    ],
)
def test_error_statuses_keep_ollamas_message(
    status: int, client_status: int, error_type: str
) -> None:
    body = orjson.dumps({"error": "registry.ollama.ai/library/llama3.2 does not support tools"})
    error = adapter.from_error_response(status, {"Retry-After": "3", "Server": "x"}, body)
    assert (error.status, error.type) == (client_status, error_type)
    assert error.message == "registry.ollama.ai/library/llama3.2 does not support tools"
    if status in (429, 503):
        assert error.headers == {"Retry-After": "3"}


def test_error_bodies_that_are_text_or_empty() -> None:
    assert adapter.from_error_response(502, {}, b"Bad Gateway\n").message == "Bad Gateway"
    assert adapter.from_error_response(500, {}, b"").message == "The upstream failed (HTTP 500)."
    assert adapter.from_error_response(500, {}, b'{"detail": 1}').message.startswith("The upstream")


def test_rejected_credentials_hide_the_body() -> None:
    error = adapter.from_error_response(401, {}, b'{"error":"unauthorized: key sk-abc"}')
    assert error.status == 502
    assert "sk-abc" not in error.message


def test_models_request() -> None:
    req = adapter.models_request(provider(api_key="k", headers={"X-T": "1"}))
    assert (req.method, req.url, req.body) == ("GET", "http://127.0.0.1:11434/api/tags", b"")
    assert req.headers["Authorization"] == "Bearer k"
    assert req.headers["X-T"] == "1"
    assert "Content-Type" not in req.headers


def test_from_models_response() -> None:
    body = orjson.dumps(
        {
            "models": [
                {"name": "llama3.2:latest", "model": "llama3.2:latest", "size": 1},
                {"model": "qwen3:8b"},
                {"name": "llama3.2:latest"},
            ]
        }
    )
    assert adapter.from_models_response(body) == ["llama3.2:latest", "qwen3:8b"]
    assert adapter.from_models_response(b'{"models":[]}') == []
    assert adapter.from_models_response(b'{"models":null}') == []


@pytest.mark.parametrize(
    "body",
    [
        b"<html>",
        b"[]",
        b"{}",
        b'{"models": {"a": 1}}',
        b'{"models": [{"size": 1}]}',
        b'{"models": ["x"]}',
    ],
)
def test_malformed_model_lists(body: bytes) -> None:
    with pytest.raises(UpstreamMalformed):
        adapter.from_models_response(body)


def test_request_type_is_chat_request() -> None:
    req: ChatRequest = {"model": "llama", "messages": [{"role": "user", "content": "x"}]}
    assert orjson.loads(adapter.build_request(req, provider(), "m").body)["model"] == "m"
