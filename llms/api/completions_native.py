"""Legacy text completions passed through to upstreams that serve `POST /completions`
themselves (llama.cpp, the bundled model, vLLM, OpenAI): see llms/native.py.

Which do: every `local` provider, and `openai` providers unless they set
`"completions": false` (then they are asked through chat, as every other type is). The request
goes as the client wrote it, with the upstream's model, `max_tokens` 16 when the client gave
none (OpenAI's default, whatever the server's) and usage asked of the upstream (it is relayed
only when the client asked for it). Each upstream chunk is relayed as it came, with the
gateway's id, `created` and the client's model name: `echo`, `suffix`, `logprobs`, batches
and token-id prompts keep their meaning. Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from llms.adapters import openai
from llms.adapters.base import UpstreamRequest, from_json_event
from llms.adapters.usage import from_usage
from llms.api.completions_request import CompletionsCall
from llms.chunks import StreamMeta
from llms.config import ProviderConfig
from llms.errors import (
    GatewayError,
    UpstreamHTTPError,
    UpstreamIncomplete,
    UpstreamMalformed,
    UpstreamStreamError,
)
from llms.framing import SSEEvent
from llms.native import NativeEvent, native_chunk
from llms.wire import FINISH_REASONS, Chunk, ChunkChoice, FinishReason, Usage

# The provider types whose servers may serve /completions (an `openai` one can say it does not).
_SERVING = ("openai", "local")
_DONE: NativeEvent = ("done", b"[DONE]")


def serves(provider: ProviderConfig) -> bool:
    """Whether `provider` is asked for legacy completions natively."""
    return provider.type in _SERVING and bool(provider.options.get("completions", True))


class CompletionsRoute:
    """One `POST /v1/completions` for the providers that serve it (a `NativeRoute`)."""

    __slots__ = ("_body", "_include_usage", "refusal")

    def __init__(self, call: CompletionsCall) -> None:
        self._body = call.body
        self._include_usage = call.include_usage
        self.refusal: GatewayError | None = call.refusal

    def serves(self, provider: ProviderConfig) -> bool:
        return serves(provider)

    def build_request(
        self, provider: ProviderConfig, upstream_model: str, *, whole: bool
    ) -> UpstreamRequest:
        body = dict(self._body)
        body["model"] = upstream_model
        body["stream"] = not whole
        if whole:
            body.pop("stream_options", None)
        elif provider.include_usage:
            body["stream_options"] = {"include_usage": True}
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json" if whole else "text/event-stream",
        }
        if provider.api_key:
            headers["Authorization"] = f"Bearer {provider.api_key}"
        headers.update(provider.headers)
        return UpstreamRequest(
            "POST", f"{provider.base_url}/completions", headers, orjson.dumps(body)
        )

    def from_error_response(
        self, status: int, headers: Mapping[str, str], body: bytes
    ) -> UpstreamHTTPError:
        error = openai.from_error_response(status, headers, body)
        if status in (404, 405):
            # The model may be unknown, or the server may not serve this path at all.
            error.message = (
                f"The upstream answered HTTP {status} to POST /completions ({error.message}). "
                'If it does not serve legacy completions, set `"completions": false` on its '
                "provider, and they are asked through chat."
            )
        return error

    def new_converter(self, meta: StreamMeta, *, whole: bool) -> CompletionsPassing:
        return CompletionsPassing(meta, self._include_usage)


def _stream_error(obj: dict[str, Any]) -> UpstreamStreamError:
    error = obj.get("error", obj)
    message = error.get("message") if isinstance(error, dict) else error
    code = error.get("code") if isinstance(error, dict) else None
    return UpstreamStreamError(
        message if isinstance(message, str) and message else "The upstream reported an error.",
        code=code if isinstance(code, str) else None,
    )


class CompletionsPassing:
    """The upstream's `text_completion` chunks -> native chunks (a `NativeConverter`) whose
    events are unnamed, as OpenAI's stream is (`data:` alone; see `NativeStream`)."""

    log_prefix = ""
    unnamed = True

    __slots__ = ("_answer", "_finished", "_include_usage", "_meta", "_seen", "done", "usage")

    def __init__(self, meta: StreamMeta, include_usage: bool) -> None:
        self._meta = meta
        self._include_usage = include_usage
        self._seen: set[int] = set()
        self._finished: set[int] = set()
        self._answer: dict[str, Any] | None = None
        self.done = False
        self.usage: Usage | None = None

    def feed(self, event: SSEEvent | bytes) -> list[Chunk]:
        if isinstance(event, bytes):
            return self._feed_whole(event)
        if self.done:
            return []
        if event.data[:6] == "[DONE]":
            self.done = True
            return []
        obj = from_json_event(event.data)
        if obj.get("error") or obj.get("object") == "error":
            raise _stream_error(obj)
        choices = self._choices(obj, whole=False)
        meta = self._meta
        usage = self.usage if obj.get("usage") else None
        obj.update(id=meta.id, object="text_completion", created=meta.created, model=meta.model)
        if self._include_usage:
            obj["usage"] = obj.get("usage") or None
        else:
            obj.pop("usage", None)
        relayed = bool(obj.get("choices")) or obj.get("usage") is not None
        carried = native_chunk(meta, ("chunk", orjson.dumps(obj)) if relayed else None, usage=usage)
        carried["choices"] = choices
        return [carried]

    def _choices(self, obj: dict[str, Any], *, whole: bool) -> list[ChunkChoice]:
        """The summary of a chunk's (or answer's) choices, for the record and the commit."""
        usage = obj.get("usage")
        if usage:
            self.usage = from_usage(usage) or self.usage
        choices = obj.get("choices")
        if choices is None and not whole:
            return []
        if not isinstance(choices, list) or (whole and not choices):
            raise UpstreamMalformed("The upstream sent a text completion without choices.")
        out: list[ChunkChoice] = []
        for choice in choices:
            if not isinstance(choice, dict):
                raise UpstreamMalformed("The upstream sent a choice that is not an object.")
            index = choice.get("index", 0)
            text = choice.get("text")
            if type(index) is not int or not isinstance(text, str | None):
                raise UpstreamMalformed("The upstream sent a choice without an index or text.")
            given = choice.get("finish_reason")
            if given is None and whole:
                given = "stop"
            finish: FinishReason | None = None
            if given is not None:
                finish = given if given in FINISH_REASONS else "stop"
                self._finished.add(index)
            self._seen.add(index)
            out.append(
                {
                    "index": index,
                    "delta": {"content": text or ""},
                    "logprobs": None,
                    "finish_reason": finish,
                }
            )
        return out

    def close(self) -> list[Chunk]:
        # Some servers omit [DONE]: the end of the body after every choice finished is an end.
        if self.done or (self._seen and self._seen <= self._finished):
            self.done = True
            return []
        raise UpstreamIncomplete("The upstream ended the stream before it finished the answer.")

    def _feed_whole(self, body: bytes) -> list[Chunk]:
        """A non-stream answer: the whole `text_completion`, kept for `answer()`."""
        obj = from_json_event(body.decode("utf-8", "replace"))
        if obj.get("error") or obj.get("object") == "error":
            raise _stream_error(obj)
        choices = self._choices(obj, whole=True)
        meta = self._meta
        obj.update(id=meta.id, object="text_completion", created=meta.created, model=meta.model)
        self._answer = obj
        self.done = True
        carried = native_chunk(meta, None, usage=self.usage)
        carried["choices"] = choices
        return [carried]

    def committed(self) -> None:
        """Nothing is kept of a text completion."""

    def end_events(self) -> list[NativeEvent]:
        return [_DONE]

    def fail_events(self, error: GatewayError) -> list[NativeEvent]:
        return [("error", orjson.dumps(error.to_body())), _DONE]

    def cancel_events(self, reason: GatewayError) -> list[NativeEvent]:
        return self.fail_events(reason)

    def answer(self) -> dict[str, Any]:
        assert self._answer is not None
        return self._answer
