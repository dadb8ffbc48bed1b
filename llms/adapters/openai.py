"""OpenAI-compatible upstreams (OpenAI, vLLM, llama.cpp, LM Studio, Groq, OpenRouter, DeepSeek…).

Near pass-through, normalised: the public model name and the gateway's id/created on every chunk,
`role` only in the first chunk of a choice, `delta` always an object, `finish_reason` within the
enum, tool-call id/type/name only in the first delta of a call, `reasoning` renamed to
`reasoning_content`, usage requested upstream and passed on only when the client asked.

A non-stream request is sent non-stream (`build_whole_request`): the answer arrives whole and
`WholeConverter` turns it into the chunks of the equivalent stream, which are then folded.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from multidict import istr

from llms.adapters.base import (
    Framing,
    StreamContext,
    UpstreamRequest,
    from_error_text,
    from_http_status,
    from_json_event,
)
from llms.adapters.usage import from_usage
from llms.chunks import finish_chunk, new_call_id, role_chunk, usage_chunk
from llms.config import ProviderConfig
from llms.errors import (
    UpstreamHTTPError,
    UpstreamIncomplete,
    UpstreamMalformed,
    UpstreamStreamError,
)
from llms.framing import SSEBytesEvent, SSEEvent
from llms.wire import FINISH_REASONS, ChatRequest, Chunk, FinishReason, Usage

# Events' data stays bytes: orjson parses UTF-8 bytes as they came, where a `str` would cost a
# decode and, for non-ASCII text, orjson's encoding of it back to UTF-8 (~5k instructions a chunk).
FRAMING: Framing = "sse_bytes"

_FINISH_ALIASES: dict[str, FinishReason] = {
    "eos": "stop",
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
    "safety": "content_filter",
}

# `istr` names: aiohttp keeps the headers sent for the whole answer (its request info), and a
# str name costs each of them one more lowercased copy (~0.3 KiB per open stream).
_CONTENT_TYPE = istr("Content-Type")
_ACCEPT = istr("Accept")
_AUTHORIZATION = istr("Authorization")


def build_request(
    request: ChatRequest, provider: ProviderConfig, upstream_model: str
) -> UpstreamRequest:
    """Forward the body mostly unchanged, streaming upstream."""
    return _request(request, provider, upstream_model, stream=True)


def build_whole_request(
    request: ChatRequest, provider: ProviderConfig, upstream_model: str
) -> UpstreamRequest:
    """For a non-stream client: the same body with `stream: false`; the answer comes whole."""
    return _request(request, provider, upstream_model, stream=False)


def _request(
    request: ChatRequest, provider: ProviderConfig, upstream_model: str, *, stream: bool
) -> UpstreamRequest:
    body: dict[str, Any] = dict(request)
    body["model"] = upstream_model
    body["stream"] = stream
    if stream and provider.include_usage:
        body["stream_options"] = {"include_usage": True}
    else:
        body.pop("stream_options", None)
    headers: dict[str, str] = {
        _CONTENT_TYPE: "application/json",
        _ACCEPT: "text/event-stream" if stream else "application/json",
    }
    if provider.api_key:
        headers[_AUTHORIZATION] = f"Bearer {provider.api_key}"
    headers.update(provider.headers)
    return UpstreamRequest(
        "POST", f"{provider.base_url}/chat/completions", headers, orjson.dumps(body)
    )


def from_error_response(status: int, headers: Mapping[str, str], body: bytes) -> UpstreamHTTPError:
    """Map an error body: OpenAI's, flat vLLM `{"object": "error"}`, FastAPI `{"detail"}`, text."""
    message, code, param = error_fields(body)
    return from_http_status(status, headers, message, code=code, param=param)


def error_fields(body: bytes) -> tuple[str | None, str | None, str | None]:
    """(message, code, param) from any of the error bodies OpenAI-compatible servers send."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return from_error_text(body), None, None
    if isinstance(data, dict):
        inner = data.get("error", data)
        if isinstance(inner, str):
            return inner, None, None
        if isinstance(inner, dict):
            message = inner.get("message") or inner.get("detail")
            code = inner.get("code")
            param = inner.get("param")
            return (
                message
                if isinstance(message, str)
                else (None if message is None else str(message)),
                code if isinstance(code, str) else None,
                param if isinstance(param, str) else None,
            )
    return None, None, None


def new_converter(context: StreamContext) -> Converter:
    return Converter(context)


# A plain text chunk's key in an upstream's bytes, before its text.
_CONTENT_KEY = b'"content":'
# How many plain chunks of a stream are looked at for a lane.
LANE_TRIES = 8
# How many chunks a lane makes before a chunk that misses it is looked at for a new one.
LANE_RENEW = 8
# A JSON string put where a lane's text goes, to prove that is the delta's text.
_PROBE = b'"\\u0001"'


class _Lane:
    """A stream's plain text chunk (`{"content": …}` alone, choice `index` neither new nor
    finished) as the bytes around its text (`prefix`, `suffix`) and as the chunk normalising
    it made (`chunk`, whose one choice is `choice`). An event with the same bytes around another
    JSON string is that chunk with that string: it is made so, without parsing or normalising
    the rest. Servers that write every chunk of a stream alike but for its text (the benchmark's
    upstream and, e.g., vLLM) take it for almost every chunk; a field that changes (a `created`
    that ticks each second, OpenAI's own `obfuscation`) sends those chunks the long way.
    """

    __slots__ = ("choice", "chunk", "index", "prefix", "served", "size", "suffix")

    def __init__(self, prefix: bytes, suffix: bytes, chunk: dict[str, Any]) -> None:
        self.prefix = prefix
        self.suffix = suffix
        self.size = len(prefix) + len(suffix) + 2  # the shortest event with a string between
        # Templates without what each made chunk gets of its own (its choices, the choice's
        # delta), their keys kept in place: an idle stream keeps its lane, and the chunk it was
        # learnt from, with its text, list and delta, was ~0.35 KiB of it.
        choice = chunk["choices"][0]
        self.chunk = dict(chunk, choices=None)
        self.choice: dict[str, Any] = dict(choice, delta=None)
        self.index: int = choice["index"]
        self.served = 0  # chunks made so: one that has served is learnt again when bytes change

    def text_of(self, data: bytes) -> str | None:
        """The text of `data` if it is this lane's chunk with another text, else None."""
        if len(data) < self.size or not (
            data.startswith(self.prefix) and data.endswith(self.suffix)
        ):
            return None
        try:
            text = orjson.loads(data[len(self.prefix) : len(data) - len(self.suffix)])
        except orjson.JSONDecodeError:
            return None
        return text if type(text) is str else None

    def make(self, text: str) -> Chunk:
        chunk = self.chunk.copy()
        choice = self.choice.copy()
        choice["delta"] = {"content": text}
        chunk["choices"] = [choice]
        return chunk  # type: ignore[return-value]


def _place(data: bytes, text: str) -> tuple[bytes, bytes] | None:
    """The bytes of `data` before and after `text`'s JSON, where `"content":` is once and
    orjson would write the text; None when not so (another key named so, spaces, another
    escaping)."""
    start = data.find(_CONTENT_KEY)
    if start < 0 or data.count(_CONTENT_KEY) != 1:
        return None
    start += len(_CONTENT_KEY)
    value = orjson.dumps(text)
    if not data.startswith(value, start):
        return None
    return data[:start], data[start + len(value) :]


def _proved(prefix: bytes, suffix: bytes, raw: dict[str, Any]) -> bool:
    """Whether a probe string between `prefix` and `suffix` parses as `raw` (the event's own
    parse) with only its delta's text changed: the place is that text's, for certain."""
    try:
        probe = orjson.loads(prefix + _PROBE + suffix)
        raw["choices"][0]["delta"]["content"] = "\x01"
    except (orjson.JSONDecodeError, LookupError, TypeError):
        return False
    return bool(probe == raw)


class Converter:
    """Normalises one OpenAI-compatible SSE stream in place."""

    __slots__ = (
        "_calls",
        "_ctx",
        "_finished",
        "_lane",
        "_roles",
        "_tools",
        "_tries",
        "done",
        "usage",
    )

    def __init__(self, context: StreamContext) -> None:
        self._ctx = context
        # Choice indexes as tuples, not sets: almost every stream has one choice, and an idle
        # stream keeps its converter (an empty set is 216 B, a tuple of one index 48 B).
        self._roles: tuple[int, ...] = ()
        self._finished: tuple[int, ...] = ()
        # choice index -> {upstream call key: gateway tool index}; the key is the upstream's
        # `index`, or ("id", id) / ("new", n) for servers that omit it
        self._tools: dict[int, dict[object, int]] = {}
        # choices that carry a legacy `function_call` (the `functions` request field)
        self._calls: tuple[int, ...] = ()
        self.done = False
        self.usage: Usage | None = None
        # A plain chunk's bytes, once found (see _Lane), and how many more plain chunks may be
        # looked at for a first one (none once one was probed: an upstream that escapes its
        # texts otherwise than orjson, or spaces its JSON, is not tried for ever). A lane that
        # has served is learnt again when it misses (feed_all), whatever this says.
        self._lane: _Lane | None = None
        self._tries = LANE_TRIES

    def feed(self, event: SSEEvent | SSEBytesEvent) -> list[Chunk]:
        out: list[Chunk] = []
        self.feed_all((event,), out)
        return out

    def feed_all(self, events: Sequence[SSEEvent | SSEBytesEvent], out: list[Chunk]) -> None:
        """`feed` for a read's events in one call: their chunks are added to `out` in order,
        until the stream is done (events after `[DONE]` are ignored, as `feed` ignores them).
        An error is raised with the chunks of the events before it already in `out`."""
        loads = orjson.loads
        normalise = self._normalise
        lane = self._lane
        for event in events:
            if self.done:
                return
            data = event.data
            if lane is not None and type(data) is bytes:
                text = lane.text_of(data)
                if text is not None:
                    if text:  # an empty text is noise, as normalising it says
                        out.append(lane.make(text))
                        lane.served += 1
                    continue
            try:
                obj = loads(data)
            except orjson.JSONDecodeError:
                # Read as text, as if decoded (invalid UTF-8 as U+FFFD): `[DONE]`, else the
                # text parsed (or refused) as any event's. Bytes and `str` give the same chunks.
                text = data if isinstance(data, str) else data.decode("utf-8", "replace")
                if text.startswith("[DONE]"):
                    out += self._finish()
                    return
                obj = from_json_event(text)
            else:
                if not isinstance(obj, dict):
                    raise UpstreamMalformed("The upstream sent an event that is not a JSON object.")
            if obj.get("error") or obj.get("object") == "error":
                raise _stream_error(obj)
            kept = len(out)
            normalise(obj, out)
            if lane is not None and lane.index in self._finished:
                lane = self._lane = None  # that choice ended: its chunks are no longer kept
            elif len(out) > kept and type(data) is bytes:
                if lane is None:
                    if self._tries > 0:
                        lane = self._lane = self._lane_for(data, obj)
                elif lane.served >= LANE_RENEW:
                    # A lane that served, missed: the stream's bytes changed (a `created` that
                    # ticks each second): learnt again from this chunk if it is a plain one.
                    lane.served = 0
                    lane = self._lane = self._lane_for(data, obj) or lane

    def _lane_for(self, data: bytes, chunk: dict[str, Any]) -> _Lane | None:
        """A lane from `chunk` (just normalised from `data`) if it is a plain text chunk."""
        choices = chunk["choices"]
        if len(choices) != 1:
            return None
        choice = choices[0]
        delta = choice["delta"]
        if (
            len(delta) != 1
            or type(delta.get("content")) is not str
            or choice["finish_reason"] is not None
            or choice.get("logprobs") is not None
            or type(choice["index"]) is not int
            or choice["index"] not in self._roles
            or choice["index"] in self._finished
        ):
            return None
        place = _place(data, delta["content"])
        self._tries -= 1
        if place is None:
            return None
        self._tries = 0  # proved or not, once
        raw = orjson.loads(data)
        if not isinstance(raw, dict) or raw.get("usage") or not _proved(*place, raw):
            return None
        return _Lane(*place, chunk)

    def close(self) -> list[Chunk]:
        if self.done:
            return []
        # Some servers omit [DONE]: the end of the body after every choice finished is a normal end.
        if self._roles and all(index in self._finished for index in self._roles):
            return self._finish()
        raise UpstreamIncomplete("The upstream ended the stream before it finished the answer.")

    def _normalise(self, obj: dict[str, Any], out: list[Chunk]) -> None:
        """`obj` normalised in place and added to `out`, unless none of its choices is kept."""
        ctx = self._ctx
        usage = obj.get("usage")
        if usage:
            self.usage = from_usage(usage) or self.usage
        choices = obj.get("choices") or []
        kept = []
        for choice in choices:
            index = choice.setdefault("index", 0)
            if index in self._finished:
                continue
            delta = choice.get("delta")
            if type(delta) is not dict:
                delta = choice["delta"] = {}
            finish = choice.get("finish_reason")
            if finish is None and len(delta) == 1 and "content" in delta and index in self._roles:
                # The common chunk, one more piece of text (`{"content": …}` alone after the
                # first): none of the rules below. Nothing but an empty or null text is noise.
                if delta["content"]:
                    choice["finish_reason"] = None
                    if "logprobs" not in choice:
                        choice["logprobs"] = None
                    kept.append(choice)
                continue
            plain = False
            if index not in self._roles:
                self._roles += (index,)
                delta["role"] = "assistant"
                if delta.get("content") is None:
                    delta["content"] = ""
            elif len(delta) == 1 and "content" in delta:
                plain = True
            elif "role" in delta:
                del delta["role"]
            if not plain:
                self._rare_fields(index, delta)
            if finish is not None:
                if finish not in FINISH_REASONS:
                    lowered = str(finish).lower()
                    finish = (
                        lowered
                        if lowered in FINISH_REASONS
                        else _FINISH_ALIASES.get(lowered, "stop")
                    )
                if finish == "stop" and self._tools.get(index):
                    finish = "tool_calls"
                elif finish == "stop" and index in self._calls:
                    finish = "function_call"
                choice["finish_reason"] = finish
                self._finished += (index,)
            elif not (delta["content"] if plain else any(delta.values())):
                # Nothing but nulls and empty strings: noise for the client.
                continue
            else:
                choice["finish_reason"] = None
            if "logprobs" not in choice:
                choice["logprobs"] = None
            kept.append(choice)
        if not kept:
            return
        meta = ctx.meta
        obj["choices"] = kept
        obj["id"] = meta.id
        obj["created"] = meta.created
        obj["model"] = meta.model
        obj["object"] = "chat.completion.chunk"
        if ctx.include_usage:
            obj["usage"] = None
        elif "usage" in obj:
            del obj["usage"]
        out.append(obj)  # type: ignore[arg-type]

    def _rare_fields(self, index: int, delta: dict[str, Any]) -> None:
        """`reasoning` renamed, a null `reasoning_content` dropped, tool and function calls."""
        if "reasoning" in delta:
            reasoning = delta.pop("reasoning")
            if reasoning and not delta.get("reasoning_content"):
                delta["reasoning_content"] = reasoning
        if "reasoning_content" in delta and delta["reasoning_content"] is None:
            del delta["reasoning_content"]
        if delta.get("tool_calls") is not None:  # null: no calls (LiteLLM sends it)
            self._tool_calls(index, delta)
        if delta.get("function_call") and index not in self._calls:
            self._calls += (index,)

    def _tool_calls(self, choice_index: int, delta: dict[str, Any]) -> None:
        seen = self._tools.setdefault(choice_index, {})
        calls = delta["tool_calls"]
        if not isinstance(calls, list):
            raise UpstreamMalformed("The upstream sent `tool_calls` that is not a list.")
        for call in calls:
            function = call.get("function")
            if not isinstance(function, dict):
                function = call["function"] = {}
            upstream_index: object = call.get("index")
            if upstream_index is None:
                upstream_index = self._key_without_index(seen, call, function)
            arguments = function.get("arguments")
            if arguments is None:
                function["arguments"] = ""
            elif not isinstance(arguments, str):
                function["arguments"] = orjson.dumps(arguments).decode()
            if upstream_index not in seen:
                seen[upstream_index] = len(seen)
                call["index"] = seen[upstream_index]
                call["id"] = call.get("id") or new_call_id()
                call["type"] = "function"
                function.setdefault("name", "")
            else:
                call["index"] = seen[upstream_index]
                # Repeating id/name makes openai-python's .stream() concatenate them.
                call.pop("id", None)
                call.pop("type", None)
                function.pop("name", None)

    @staticmethod
    def _key_without_index(
        seen: dict[object, int], call: dict[str, Any], function: dict[str, Any]
    ) -> object:
        """Which call a delta without `index` belongs to: by id, else a name starts a new one."""
        call_id = call.get("id")
        if call_id:
            return ("id", call_id)
        if function.get("name") or not seen:
            return ("new", len(seen))
        return next(reversed(seen))

    def _finish(self) -> list[Chunk]:
        self.done = True
        meta = self._ctx.meta
        out: list[Chunk] = []
        if not self._roles:
            self._roles = (0,)
            out.append(role_chunk(meta))
        for index in sorted(i for i in self._roles if i not in self._finished):
            reason: FinishReason = (
                "tool_calls"
                if self._tools.get(index)
                else "function_call"
                if index in self._calls
                else "stop"
            )
            out.append(finish_chunk(meta, reason, index))
            self._finished += (index,)
        if self._ctx.include_usage:
            for item in out:
                item["usage"] = None  # as on every chunk before the usage chunk
            if self.usage is not None:
                out.append(usage_chunk(meta, self.usage))
        return out


def new_whole_converter(context: StreamContext) -> WholeConverter:
    return WholeConverter(context)


class WholeConverter:
    """A non-stream `chat.completion` as the chunks of the equivalent stream.

    Each choice's message becomes one delta, normalised by the stream `Converter` (so both
    modes follow the same rules), then the stream's end: finish chunks and usage.
    """

    __slots__ = ("_inner", "done", "usage")

    def __init__(self, context: StreamContext) -> None:
        self._inner = Converter(context)
        self.done = False
        self.usage: Usage | None = None

    def feed(self, body: bytes) -> list[Chunk]:
        if self.done:
            return []
        try:
            obj = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise UpstreamMalformed(
                f"The upstream sent an answer that is not JSON: {body[:200]!r}"
            ) from None
        if not isinstance(obj, dict):
            raise UpstreamMalformed("The upstream sent an answer that is not a JSON object.")
        if obj.get("error") or obj.get("object") == "error":
            raise _stream_error(obj)
        choices = obj.get("choices")
        if not isinstance(choices, list) or not choices:
            raise UpstreamMalformed("The upstream sent an answer without choices.")
        deltas = []
        for choice in choices:
            if not isinstance(choice, dict):
                raise UpstreamMalformed("The upstream sent a choice that is not an object.")
            message = choice.get("message")
            # Fields the gateway does not read pass through (a choice's `message` is its delta).
            extra = {key: value for key, value in choice.items() if key != "message"}
            deltas.append(
                {
                    **extra,
                    "index": choice.get("index", 0),
                    "delta": message if isinstance(message, dict) else {},
                    "logprobs": choice.get("logprobs"),
                    # Some servers leave it out of a non-stream answer; the answer is complete.
                    "finish_reason": choice.get("finish_reason") or "stop",
                }
            )
        obj["choices"] = deltas
        inner = self._inner
        out: list[Chunk] = []
        inner._normalise(obj, out)
        out += inner._finish()
        self.usage = inner.usage
        self.done = True
        return out

    def close(self) -> list[Chunk]:
        if self.done:
            return []
        raise UpstreamIncomplete("The upstream ended its answer before sending it.")


def _stream_error(obj: dict[str, Any]) -> UpstreamStreamError:
    error = obj.get("error", obj)
    if isinstance(error, dict):
        message = error.get("message")
        code = error.get("code")
        return UpstreamStreamError(
            message if isinstance(message, str) and message else "The upstream reported an error.",
            code=code if isinstance(code, str) else None,
        )
    return UpstreamStreamError(str(error) if error else "The upstream reported an error.")
