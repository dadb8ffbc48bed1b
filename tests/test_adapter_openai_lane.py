"""The OpenAI converter's lane (adapters/openai.py `_Lane`): an event whose bytes repeat a plain
text chunk's around another JSON string is made from that chunk, not parsed and normalised.
It must give exactly what parsing and normalising every event gives (a converter whose lane is
off), whatever the upstream sends: random streams of every shape, fed in random reads."""

from __future__ import annotations

import json
import random
from typing import Any

import orjson
import pytest

from llms.adapters import openai as adapter
from llms.adapters.base import StreamContext
from llms.chunks import StreamMeta
from llms.framing import SSEBytesEvent
from llms.wire import Chunk

TEXTS = ["Hi", " there", "", " caf\u00e9", "\U0001f642", 'a "quote"', "back\\slash", "\n", "x" * 40]
TEXTS += ['"content":"no"', "\u2028", "\x01", "</s>", " 12", "tab\there"]


def converter(lane: bool, include_usage: bool) -> adapter.Converter:
    meta = StreamMeta(id="chatcmpl-lane", model="gw-model", created=1)
    conv = adapter.new_converter(StreamContext(meta, include_usage))
    if not lane:
        conv._tries = 0
    return conv


def encode(obj: Any, spaced: bool) -> bytes:
    return json.dumps(obj).encode() if spaced else orjson.dumps(obj)


def stream(rng: random.Random) -> list[bytes]:
    """One upstream stream: a fixed template for its chunks (as a server has one), texts
    between, and now and then what breaks the pattern."""
    spaced = rng.random() < 0.15  # json.dumps' spaces: the lane cannot find its place
    ascii_only = rng.random() < 0.5
    top: dict[str, Any] = {"id": "up-1", "object": "chat.completion.chunk", "created": 7}
    if rng.random() < 0.5:
        top["model"] = "up-model"
    if rng.random() < 0.3:
        top["system_fingerprint"] = "fp_1"
    usage_null = rng.random() < 0.4
    obfuscated = rng.random() < 0.2
    with_index = rng.random() < 0.9
    logprobs_null = rng.random() < 0.6
    ticking = rng.random() < 0.3  # a `created` that moves now and then (a clock's second)

    def choice(delta: dict[str, Any], finish: Any = None, index: Any = 0) -> dict[str, Any]:
        c: dict[str, Any] = {}
        if with_index or index != 0:
            c["index"] = index
        c["delta"] = delta
        if logprobs_null:
            c["logprobs"] = None
        c["finish_reason"] = finish
        return c

    def chunk(*choices: dict[str, Any], **extra: Any) -> bytes:
        if ticking and rng.random() < 0.1:
            top["created"] += 1
        obj = dict(top)
        obj["choices"] = list(choices)
        if usage_null:
            obj["usage"] = None
        if obfuscated:
            obj["obfuscation"] = "o" * rng.randint(1, 9)
        obj.update(extra)
        if ascii_only:
            return encode(obj, spaced)
        return json.dumps(obj, ensure_ascii=True).encode()  # \u escapes

    events: list[bytes] = []
    if rng.random() < 0.8:
        events.append(chunk(choice({"role": "assistant", "content": ""})))
    for _ in range(rng.randint(0, 30)):
        roll = rng.random()
        text = rng.choice(TEXTS)
        if roll < 0.7:
            events.append(chunk(choice({"content": text})))
        elif roll < 0.74:
            events.append(chunk(choice({"content": text, "role": None})))
        elif roll < 0.78:
            events.append(chunk(choice({"reasoning_content": text})))
        elif roll < 0.81:
            call = {"index": 0, "id": "c1", "function": {"name": "f", "arguments": "{}"}}
            events.append(chunk(choice({"tool_calls": [call]})))
        elif roll < 0.84:
            events.append(chunk(choice({"content": text}, index=1)))
        elif roll < 0.86:
            events.append(chunk(choice({"content": text}), choice({"content": text}, index=1)))
        elif roll < 0.88:
            lp = {"content": [{"token": "a", "logprob": -0.1, "top_logprobs": []}]}
            events.append(chunk({**choice({"content": text}), "logprobs": lp}))
        elif roll < 0.9:
            events.append(chunk(choice({"content": text}), usage={"prompt_tokens": 1}))
        elif roll < 0.92:
            events.append(chunk(choice({}, "stop")))
        elif roll < 0.93:
            events.append(chunk(choice({"content": text}, "length")))
        elif roll < 0.94:
            events.append(chunk(choice({"content": text}, index="0")))
        elif roll < 0.95:
            events.append(chunk(choice({"content": 5})))
        elif roll < 0.96:
            events.append(b'{"error":{"message":"gone"}}')
        elif roll < 0.97:
            # the same bytes around something that is not one string
            events.append(
                chunk(choice({"content": text})).replace(b'"content":', b'"content":1,"x":')
            )
        else:
            events.append(chunk(choice({"content": text}), extra={"n": rng.randint(0, 3)}))
    if rng.random() < 0.7:
        events.append(chunk(choice({}, "stop")))
    if rng.random() < 0.3:
        events.append(chunk(choice({"content": "after the end"})))
    if rng.random() < 0.8:
        events.append(b"[DONE]")
    return events


def run(
    conv: adapter.Converter, events: list[bytes], cuts: list[int], served: list[int] | None = None
) -> object:
    """What the converter makes of the events fed in reads cut at `cuts`; `served` gets how
    many chunks lanes made."""
    out: list[Chunk] = []
    try:
        start = 0
        for end in [*cuts, len(events)]:
            read = [SSEBytesEvent("message", data, "") for data in events[start:end]]
            conv.feed_all(read, out)
            if served is not None and conv._lane is not None and conv._lane.served:
                served.append(conv._lane.served)
            start = end
        tail = conv.close()
    except Exception as exc:  # the error itself is compared
        return (orjson.dumps(out), type(exc), str(exc))
    return (orjson.dumps(out), orjson.dumps(tail), conv.done, conv.usage)


@pytest.mark.parametrize("seed", range(12))
def test_the_lane_gives_what_parsing_every_event_gives(seed: int) -> None:
    rng = random.Random(seed)
    served: list[int] = []
    for _ in range(150):
        events = stream(rng)
        cuts = sorted(rng.sample(range(len(events) + 1), rng.randint(0, min(4, len(events)))))
        include_usage = rng.random() < 0.5
        fast = converter(True, include_usage)
        assert run(fast, events, cuts, served) == run(converter(False, include_usage), events, cuts)
    assert len(served) > 20  # lanes made chunks, they were not only refused


def test_a_server_repeating_its_bytes_gets_a_lane_and_the_same_chunks() -> None:
    def up(delta: dict[str, Any], finish: str | None = None) -> bytes:
        return orjson.dumps(
            {
                "id": "x",
                "object": "chat.completion.chunk",
                "created": 1,
                "model": "m",
                "choices": [
                    {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
                ],
            }
        )

    events = [up({"role": "assistant", "content": ""}), *(up({"content": t}) for t in TEXTS)]
    events += [up({}, "stop"), up({"content": "late"}), b"[DONE]"]
    fast, slow = converter(True, True), converter(False, True)
    served: list[int] = []
    cuts = [2, len(events) - 3]  # the role and first text; every other text; the end
    assert run(fast, events, cuts, served) == run(slow, events, cuts)
    # The first plain chunk made the lane; it made every later non-empty text's chunk.
    assert served == [sum(1 for text in TEXTS[1:] if text)]
    assert fast._lane is None  # the choice finished: its lane is gone


def test_an_idle_stream_keeps_no_chunk_in_its_lane() -> None:
    """The lane keeps templates, not the chunk it was learnt from: an idle stream keeps its
    converter, and that chunk's choices, delta and text were ~0.35 KiB of it. Made chunks are
    each their own and in the template's key order."""
    role = b'{"id":"x","choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}'
    plain = b'{"id":"x","choices":[{"index":0,"delta":{"content":"%s"}}],"extra":1}'
    conv = converter(True, False)
    out: list[Chunk] = []
    conv.feed_all([SSEBytesEvent("message", d, "") for d in (role, plain % b"a")], out)
    lane = conv._lane
    assert lane is not None
    assert lane.chunk["choices"] is None and lane.choice["delta"] is None
    assert all(part is not out[-1] for part in (lane.chunk, lane.choice))
    conv.feed_all([SSEBytesEvent("message", plain % t, "") for t in (b"b", b"c")], out)
    assert lane.served == 2 and out[-1] is not out[-2]
    assert [c["choices"][0]["delta"] for c in out[1:]] == [{"content": t} for t in "abc"]
    assert orjson.dumps(out[-1]) == orjson.dumps(out[1]).replace(b'"a"', b'"c"')
    assert lane.chunk["choices"] is None and lane.choice["delta"] is None


def test_a_place_that_only_looks_right_is_refused() -> None:
    """The delta's key spelled with an escape, and another `"content":` whose value is the
    text's bytes: the probe parses otherwise, so no lane."""
    data = (
        b'{"choices":[{"index":0,"delta":{"\\u0063ontent":"hi"},"logprobs":null,'
        b'"finish_reason":null}],"x":{"content":"hi"}}'
    )
    first = b'{"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}'
    conv = converter(True, False)
    conv.feed_all([SSEBytesEvent("message", d, "") for d in (first, data)], [])
    assert conv._lane is None and conv._tries == 0


def test_a_clock_in_the_chunks_is_learnt_again() -> None:
    """A server that writes the current second into every chunk: when it ticks, the lane that
    served is learnt again from the next plain chunk, and the chunks are still the same."""

    def up(text: str, second: int) -> bytes:
        choice = {"index": 0, "delta": {"content": text}, "finish_reason": None}
        return orjson.dumps({"id": "x", "created": second, "choices": [choice]})

    first = b'{"id":"x","created":1,"choices":[{"index":0,"delta":{"role":"assistant"}}]}'
    events = [first, *(up(f"a{i}", 1) for i in range(12)), *(up(f"b{i}", 2) for i in range(12))]
    fast = converter(True, False)
    out: list[Chunk] = []
    fast.feed_all([SSEBytesEvent("message", data, "") for data in events[:13]], out)
    before = fast._lane
    assert before is not None and before.served == 11
    fast.feed_all([SSEBytesEvent("message", data, "") for data in events[13:]], out)
    assert fast._lane is not None and fast._lane is not before and fast._lane.served == 11
    slow: list[Chunk] = []
    converter(False, False).feed_all([SSEBytesEvent("message", d, "") for d in events], slow)
    assert orjson.dumps(out) == orjson.dumps(slow)
