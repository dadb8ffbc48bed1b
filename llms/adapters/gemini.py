"""Google Gemini's native API: `POST {base}/models/{model}:streamGenerateContent?alt=sse`.

`build_request` turns an OpenAI chat request into a `GenerateContentRequest` (protocol.md §3.4);
the `Converter` turns its `data: <GenerateContentResponse>` events into OpenAI chunks. Gemini has
no `[DONE]`: a stream is complete when every candidate seen carried a `finishReason` (or the
prompt was blocked) and the body then ends. Finish chunks go out when the reason arrives; the
usage chunk waits for the end of the body, since `usageMetadata` may come in a later event.
`thoughtSignature` values are dropped: OpenAI's format has no place for them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import orjson

from llms.adapters.base import Framing, StreamContext, UpstreamRequest, from_http_status
from llms.chunks import (
    delta_chunk,
    finish_chunk,
    make_usage,
    new_call_id,
    role_chunk,
    tool_call_delta,
    usage_chunk,
)
from llms.config import ProviderConfig
from llms.errors import (
    InvalidRequest,
    UpstreamHTTPError,
    UpstreamIncomplete,
    UpstreamMalformed,
    UpstreamStreamError,
)
from llms.framing import SSEEvent
from llms.wire import ChatRequest, Chunk, FinishReason, Message, Usage

FRAMING: Framing = "sse"

_FILTERED = frozenset(("SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII"))
_FILTERED |= {"IMAGE_SAFETY", "IMAGE_PROHIBITED_CONTENT", "IMAGE_RECITATION"}
# Google's own OpenAI layer maps effort to these budgets (2.x) and levels (3.x and later).
_BUDGETS = dict(minimal=1024, low=1024, medium=8192, high=24576, xhigh=24576, max=24576)
_LEVELS = dict(minimal="minimal", low="low", medium="medium", high="high", xhigh="high", max="high")

# Google's documented stand-in for a signature the client could not keep (OpenAI's format has
# no field for it); Gemini 3 rejects replayed function calls that carry none.
_SIGNATURE_SENTINEL = "skip_thought_signature_validator"

_AUDIO_TYPES = {"wav": "audio/wav", "mp3": "audio/mp3"}
_IMAGE_TYPES = dict(png="image/png", jpg="image/jpeg", jpeg="image/jpeg", webp="image/webp")
_IMAGE_TYPES |= dict(gif="image/gif", heic="image/heic", heif="image/heif")
_FILES_API = "https://generativelanguage.googleapis.com/"


def _unsupported(param: str, message: str) -> InvalidRequest:
    return InvalidRequest(message, param=param, code="unsupported_parameter")


def _bad_value(param: str, message: str) -> InvalidRequest:
    return InvalidRequest(message, param=param, code="unsupported_value")


# --- the request ------------------------------------------------------------------------------


def build_request(
    request: ChatRequest, provider: ProviderConfig, upstream_model: str
) -> UpstreamRequest:
    """The `streamGenerateContent?alt=sse` request; the key goes in a header, never the URL."""
    _refuse_unsupported(request)
    thinking_levels = _is_level_family(upstream_model)
    system, contents = _contents(request.get("messages") or [], thinking_levels)
    if not contents:
        raise InvalidRequest(
            "Gemini needs at least one user, assistant or tool message besides system messages.",
            param="messages",
            code="invalid_value",
        )
    body: dict[str, Any] = {"contents": contents}
    if system:
        body["systemInstruction"] = {"parts": system}
    tools, tool_config = _tools(request)
    if tools:
        body["tools"] = [{"functionDeclarations": tools}]
    if tool_config:
        body["toolConfig"] = {"functionCallingConfig": tool_config}
    config = _generation_config(request, thinking_levels)
    if config:
        body["generationConfig"] = config
    path = upstream_model if "/" in upstream_model else f"models/{upstream_model}"
    headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
    if provider.api_key:
        headers["x-goog-api-key"] = provider.api_key
    headers.update(provider.headers)
    return UpstreamRequest(
        "POST",
        f"{provider.base_url}/{path}:streamGenerateContent?alt=sse",
        headers,
        orjson.dumps(body),
    )


def _is_level_family(model: str) -> bool:
    """Gemini 3 and later take `thinkingLevel` and validate thought signatures; 1.x/2.x do not."""
    name = model.rsplit("/", 1)[-1]
    return name.startswith("gemini-") and not name.startswith(("gemini-1", "gemini-2"))


def _refuse_unsupported(request: ChatRequest) -> None:
    """400 for what Gemini cannot honour. `user`, `store`, `metadata`, `service_tier`,
    `prediction` and the like are ignored: leaving them out changes no answer."""
    body: Mapping[str, Any] = request
    if body.get("logprobs"):
        raise _unsupported("logprobs", "Gemini streams do not return log probabilities here.")
    if body.get("logit_bias"):
        raise _unsupported("logit_bias", "Gemini has no logit bias.")
    for name in ("functions", "function_call"):
        if body.get(name) is not None:
            raise _unsupported(name, f"'{name}' is deprecated; use 'tools' with Gemini.")
    if body.get("audio") is not None:
        raise _unsupported("audio", "Audio output is not available through this gateway.")
    modalities = body.get("modalities")
    if modalities and any(m != "text" for m in modalities):
        raise _unsupported("modalities", "Only text output is available from Gemini here.")
    tools_used = body.get("tools") and body.get("tool_choice") != "none"
    if body.get("parallel_tool_calls") is False and tools_used:
        raise _unsupported(
            "parallel_tool_calls", "Gemini cannot be told to call at most one tool per turn."
        )


def _contents(
    messages: list[Message], signatures: bool
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(systemInstruction parts, contents); consecutive tool results form one user turn."""
    system: list[dict[str, Any]] = []
    contents: list[dict[str, Any]] = []
    names: dict[str, str] = {}  # tool_call_id -> function name, from earlier assistant turns
    after_tool = False
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        role = message.get("role")
        if role in ("system", "developer"):
            system += _text_parts(message.get("content"), where)
        elif role == "user":
            parts = _user_parts(message.get("content"), where)
            if parts:
                contents.append({"role": "user", "parts": parts})
        elif role == "assistant":
            parts = _assistant_parts(message, where, names, signatures)
            if parts:
                contents.append({"role": "model", "parts": parts})
        elif role in ("tool", "function"):
            part = _function_response(message, where, names)
            if after_tool:
                contents[-1]["parts"].append(part)
            else:
                contents.append({"role": "user", "parts": [part]})
            after_tool = True
            continue
        after_tool = False
    return system, contents


def _text_of(content: Any, where: str, kinds: tuple[str, ...] = ("text",)) -> list[str]:
    if content is None:
        return []
    if isinstance(content, str):
        return [content] if content else []
    texts = []
    for j, part in enumerate(content):
        if part.get("type") not in kinds:
            raise _bad_value(
                f"{where}.content[{j}]",
                f"Content parts of type {part.get('type')!r} are not accepted in this message.",
            )
        text = part.get(part["type"])
        if not isinstance(text, str):
            raise InvalidRequest(
                f"Missing text in '{where}.content[{j}]'.",
                param=f"{where}.content[{j}]",
                code="invalid_value",
            )
        if text:
            texts.append(text)
    return texts


def _text_parts(content: Any, where: str) -> list[dict[str, Any]]:
    return [{"text": text} for text in _text_of(content, where)]


def _user_parts(content: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(content, list):
        return _text_parts(content, where)
    parts: list[dict[str, Any]] = []
    for j, part in enumerate(content):
        at = f"{where}.content[{j}]"
        kind = part.get("type")
        if kind == "text":
            if not isinstance(part.get("text"), str):
                raise InvalidRequest(f"Missing text in '{at}'.", param=at, code="invalid_value")
            if part["text"]:
                parts.append({"text": part["text"]})
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            parts.append(_media_part(url, f"{at}.image_url"))
        elif kind == "input_audio":
            audio = part.get("input_audio") or {}
            mime = _AUDIO_TYPES.get(audio.get("format", ""))
            if mime is None or not isinstance(audio.get("data"), str):
                raise _bad_value(f"{at}.input_audio", "Expected base64 `data` and wav or mp3.")
            parts.append({"inlineData": {"mimeType": mime, "data": audio["data"]}})
        elif kind == "file":
            data = (part.get("file") or {}).get("file_data")
            if not isinstance(data, str) or not data.startswith("data:"):
                raise _bad_value(
                    f"{at}.file", "Only inline files (`file_data` data URLs) reach Gemini."
                )
            parts.append(_media_part(data, f"{at}.file.file_data"))
        else:
            raise _bad_value(at, f"Content parts of type {kind!r} are not supported by Gemini.")
    return parts


def _media_part(url: Any, param: str) -> dict[str, Any]:
    """A data URL -> inlineData; a gs:// or Files API URI -> fileData; other URLs -> 400."""
    if not isinstance(url, str) or not url:
        raise InvalidRequest(f"Missing URL in '{param}'.", param=param, code="invalid_value")
    if url.startswith("data:"):
        header, sep, data = url[5:].partition(",")
        mime, _, encoding = header.partition(";")
        if not sep or not mime or encoding != "base64":
            raise _bad_value(param, "Expected a base64 data URL: data:<type>;base64,<data>.")
        return {"inlineData": {"mimeType": mime, "data": data}}
    if url.startswith("gs://") or (url.startswith(_FILES_API) and "/files/" in url):
        extension = url.rsplit(".", 1)[-1].lower() if "." in url.rsplit("/", 1)[-1] else ""
        file_data = {"fileUri": url}
        if extension in _IMAGE_TYPES:
            file_data["mimeType"] = _IMAGE_TYPES[extension]
        return {"fileData": file_data}
    raise _bad_value(
        param,
        "Gemini cannot fetch http(s) URLs: send the image as a base64 data URL "
        "(or a gs:// / Gemini Files API URI).",
    )


def _assistant_parts(
    message: Message, where: str, names: dict[str, str], signatures: bool
) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = [
        {"text": text} for text in _text_of(message.get("content"), where, ("text", "refusal"))
    ]
    for k, call in enumerate(message.get("tool_calls") or ()):
        at = f"{where}.tool_calls[{k}]"
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise InvalidRequest(
                f"Missing '{at}.function.name'.", param=at, code="missing_required_parameter"
            )
        try:
            args = orjson.loads(function.get("arguments") or "{}")
        except (orjson.JSONDecodeError, TypeError):
            args = None
        if not isinstance(args, dict):
            raise InvalidRequest(
                f"'{at}.function.arguments' must be a JSON object encoded as a string.",
                param=f"{at}.function.arguments",
                code="invalid_value",
            )
        if isinstance(call.get("id"), str):
            names[call["id"]] = function["name"]
        part: dict[str, Any] = {"functionCall": {"name": function["name"], "args": args}}
        if signatures and k == 0:
            # Only the first call of a step carries a signature (parallel calls share it).
            part["thoughtSignature"] = _SIGNATURE_SENTINEL
        parts.append(part)
    return parts


def _function_response(message: Message, where: str, names: dict[str, str]) -> dict[str, Any]:
    call_id = message.get("tool_call_id")
    name = names.get(call_id) if isinstance(call_id, str) else None
    name = name or message.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidRequest(
            f"'{where}.tool_call_id' matches no tool call of an earlier assistant message; "
            "Gemini needs the function's name.",
            param=f"{where}.tool_call_id",
            code="invalid_value",
        )
    text = "".join(_text_of(message.get("content"), where))
    response: Any = None
    if text.lstrip()[:1] == "{":
        try:
            response = orjson.loads(text)
        except orjson.JSONDecodeError:
            response = None
    if not isinstance(response, dict):
        response = {"result": text}
    return {"functionResponse": {"name": name, "response": response}}


def _tools(request: ChatRequest) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    declarations: list[dict[str, Any]] = []
    for i, tool in enumerate(request.get("tools") or ()):
        if tool.get("type") != "function":
            raise _bad_value(f"tools[{i}]", "Gemini takes only tools of type 'function'.")
        function = tool["function"]
        declaration: dict[str, Any] = {"name": function["name"]}
        if function.get("description"):
            declaration["description"] = function["description"]
        if function.get("parameters") is not None:
            # The JSON-Schema field: `parameters` would reject `additionalProperties`, `$ref`...
            declaration["parametersJsonSchema"] = function["parameters"]
        declarations.append(declaration)
    choice = request.get("tool_choice")
    if choice is None or (choice in ("auto", "none") and not declarations):
        return declarations, None
    if not declarations:
        raise _bad_value("tool_choice", "'tool_choice' requires 'tools'.")
    if choice in ("auto", "none", "required"):
        return declarations, {"mode": {"auto": "AUTO", "none": "NONE"}.get(choice, "ANY")}
    if not isinstance(choice, dict):
        raise _bad_value("tool_choice", f"Unknown tool_choice {choice!r}.")
    declared = {d["name"] for d in declarations}
    if choice.get("type") == "function":
        name = (choice.get("function") or {}).get("name")
        if name not in declared:
            raise _bad_value("tool_choice", f"tool_choice names {name!r}, which is not in tools.")
        return declarations, {"mode": "ANY", "allowedFunctionNames": [name]}
    if choice.get("type") == "allowed_tools":
        allowed = choice.get("allowed_tools") or {}
        chosen = [(t.get("function") or {}).get("name") for t in allowed.get("tools") or ()]
        kept = [d for d in declarations if d["name"] in chosen]
        if not kept:
            raise _bad_value("tool_choice", "allowed_tools names none of the declared tools.")
        # Offering only the allowed functions is what allowed_tools means.
        mode = "ANY" if allowed.get("mode") == "required" else "AUTO"
        return kept, {"mode": mode}
    raise _bad_value("tool_choice", f"tool_choice of type {choice.get('type')!r} is not supported.")


def _generation_config(request: ChatRequest, levels: bool) -> dict[str, Any]:
    body: Mapping[str, Any] = request
    config: dict[str, Any] = {}
    for name, key in (
        ("temperature", "temperature"),
        ("top_p", "topP"),
        ("top_k", "topK"),
        ("seed", "seed"),
        ("presence_penalty", "presencePenalty"),
        ("frequency_penalty", "frequencyPenalty"),
    ):
        if body.get(name) is not None:
            config[key] = body[name]
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    if limit:
        config["maxOutputTokens"] = limit
    stop = body.get("stop")
    if stop:
        config["stopSequences"] = [stop] if isinstance(stop, str) else list(stop)
    if body.get("n") not in (None, 1):
        config["candidateCount"] = body["n"]
    fmt = body.get("response_format")
    if fmt is not None and fmt.get("type") != "text":
        if fmt["type"] not in ("json_object", "json_schema"):
            raise _bad_value("response_format.type", f"Unknown response_format {fmt['type']!r}.")
        config["responseMimeType"] = "application/json"
        schema = (fmt.get("json_schema") or {}).get("schema")
        if fmt["type"] == "json_schema" and schema is not None:
            config["responseJsonSchema"] = schema
    effort = body.get("reasoning_effort")
    if effort is not None:
        config["thinkingConfig"] = _thinking(effort, levels)
    return config


def _thinking(effort: Any, levels: bool) -> dict[str, Any]:
    if effort == "none":
        # Gemini 3 cannot switch thinking off; "minimal" is the least it offers.
        return {"thinkingLevel": "minimal"} if levels else {"thinkingBudget": 0}
    if effort not in _BUDGETS:
        raise _bad_value("reasoning_effort", f"Unknown reasoning_effort {effort!r}.")
    if levels:
        return {"thinkingLevel": _LEVELS[effort], "includeThoughts": True}
    return {"thinkingBudget": _BUDGETS[effort], "includeThoughts": True}


# --- errors -----------------------------------------------------------------------------------


def from_error_response(status: int, headers: Mapping[str, str], body: bytes) -> UpstreamHTTPError:
    """Gemini's `{"error": {"code", "message", "status", "details"}}` (also wrapped in a list)."""
    error = _error_object(body)
    if error is None:
        text = body.decode("utf-8", "replace").strip()[:500]
        return from_http_status(status, headers, text or None)
    message = error.get("message")
    code = error.get("status")
    details = error.get("details")
    details = details if isinstance(details, list) else []
    headers = dict(headers)
    if any(isinstance(d, dict) and d.get("reason") == "API_KEY_INVALID" for d in details):
        # Gemini says 400 for a bad key; the client's request was fine, the gateway's key was not.
        status = 401
    if status == 429:
        code = None  # OpenAI clients look for rate_limit_exceeded
        if not any(k.lower() in ("retry-after", "retry-after-ms") for k in headers):
            delay = _retry_delay(details)
            if delay is not None:
                headers["Retry-After"] = str(delay)
    return from_http_status(
        status,
        headers,
        message if isinstance(message, str) else None,
        code=code.lower() if isinstance(code, str) else None,
    )


def _error_object(body: bytes) -> dict[str, Any] | None:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if isinstance(data, list) and data:
        data = data[0]
    error = data.get("error") if isinstance(data, dict) else None
    return error if isinstance(error, dict) else None


def _retry_delay(details: list[Any]) -> int | None:
    """Whole seconds from a google.rpc.RetryInfo detail (`"retryDelay": "37.5s"`)."""
    for detail in details:
        if isinstance(detail, dict) and str(detail.get("@type", "")).endswith("RetryInfo"):
            delay = detail.get("retryDelay")
            if isinstance(delay, str) and delay.endswith("s"):
                try:
                    return max(0, math.ceil(float(delay[:-1])))
                except ValueError:
                    return None
    return None


def _stream_error(error: Any) -> UpstreamStreamError:
    if not isinstance(error, dict):
        return UpstreamStreamError(str(error) or "The upstream reported an error.")
    message = error.get("message")
    status = error.get("status")
    return UpstreamStreamError(
        message if isinstance(message, str) and message else "The upstream reported an error.",
        code=status.lower() if isinstance(status, str) else None,
    )


# --- the stream -------------------------------------------------------------------------------


def from_usage_metadata(metadata: Mapping[str, Any]) -> Usage:
    """OpenAI usage from `usageMetadata`: thoughts count as completion tokens."""
    prompt = metadata.get("promptTokenCount") or 0
    thoughts = metadata.get("thoughtsTokenCount") or 0
    completion = (metadata.get("candidatesTokenCount") or 0) + thoughts
    usage = make_usage(prompt, completion, metadata.get("totalTokenCount") or prompt + completion)
    usage["prompt_tokens_details"] = {"cached_tokens": metadata.get("cachedContentTokenCount") or 0}
    usage["completion_tokens_details"] = {"reasoning_tokens": thoughts}
    return usage


def new_converter(context: StreamContext) -> Converter:
    return Converter(context)


class Converter:
    """One Gemini stream -> OpenAI chunks; candidates become choices by their `index`."""

    __slots__ = ("_ctx", "_finished", "_tools", "done", "usage")

    def __init__(self, context: StreamContext) -> None:
        self._ctx = context
        # candidate index -> tool calls emitted so far; a key means its role chunk went out
        self._tools: dict[int, int] = {}
        self._finished: set[int] = set()
        self.done = False
        self.usage: Usage | None = None

    def feed(self, event: SSEEvent) -> list[Chunk]:
        if event.event != "message" or self.done:
            return []
        try:
            obj = orjson.loads(event.data)
        except orjson.JSONDecodeError:
            raise UpstreamMalformed(
                f"The upstream sent an event that is not JSON: {event.data[:200]!r}"
            ) from None
        if not isinstance(obj, dict):
            raise UpstreamMalformed("The upstream sent an event that is not a JSON object.")
        if "error" in obj:
            raise _stream_error(obj["error"])
        metadata = obj.get("usageMetadata")
        if isinstance(metadata, dict):
            self.usage = from_usage_metadata(metadata)
        out: list[Chunk] = []
        candidates = obj.get("candidates")
        if candidates:
            for candidate in candidates:
                if not isinstance(candidate, dict):
                    raise UpstreamMalformed("The upstream sent a candidate that is not an object.")
                self._candidate(candidate, out)
        elif not self._tools:
            feedback = obj.get("promptFeedback")
            if isinstance(feedback, dict) and feedback.get("blockReason"):
                self._start(0, out)
                self._finish(0, "content_filter", out)
        if out and self._ctx.include_usage:
            for item in out:
                item["usage"] = None
        return out

    def close(self) -> list[Chunk]:
        """The body ended: complete only if every candidate seen has finished."""
        if self.done:
            return []
        if not self._tools or len(self._finished) < len(self._tools):
            raise UpstreamIncomplete("The upstream ended the stream before it finished the answer.")
        self.done = True
        if self._ctx.include_usage and self.usage is not None:
            return [usage_chunk(self._ctx.meta, self.usage)]
        return []

    def _start(self, index: int, out: list[Chunk]) -> None:
        if index not in self._tools:
            self._tools[index] = 0
            out.append(role_chunk(self._ctx.meta, index))

    def _finish(self, index: int, reason: FinishReason, out: list[Chunk]) -> None:
        self._finished.add(index)
        out.append(finish_chunk(self._ctx.meta, reason, index))

    def _candidate(self, candidate: dict[str, Any], out: list[Chunk]) -> None:
        index = candidate.get("index") or 0
        if index in self._finished:
            return
        self._start(index, out)
        meta = self._ctx.meta
        content = candidate.get("content")
        parts = content.get("parts") if isinstance(content, dict) else None
        for part in parts or ():
            text = part.get("text")
            if text:
                if part.get("thought"):
                    out.append(delta_chunk(meta, {"reasoning_content": text}, index=index))
                else:
                    out.append(delta_chunk(meta, {"content": text}, index=index))
            call = part.get("functionCall")
            if isinstance(call, dict):
                args = call.get("args")
                delta = tool_call_delta(
                    self._tools[index],
                    id=call.get("id") or new_call_id(),
                    name=call.get("name") or "",
                    arguments=orjson.dumps({} if args is None else args).decode(),
                )
                self._tools[index] += 1
                out.append(delta_chunk(meta, {"tool_calls": [delta]}, index=index))
        reason = candidate.get("finishReason")
        if reason:
            self._finish(index, self._finish_reason(reason, index), out)

    def _finish_reason(self, reason: str, index: int) -> FinishReason:
        if reason == "MAX_TOKENS":
            return "length"
        if reason in _FILTERED:
            return "content_filter"
        # STOP, and the rest (OTHER, LANGUAGE, MALFORMED_FUNCTION_CALL...) as a normal end.
        return "tool_calls" if self._tools[index] else "stop"
