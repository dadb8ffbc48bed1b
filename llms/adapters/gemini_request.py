"""The Gemini `streamGenerateContent` request for an OpenAI chat request (protocol.md §3.4).

System/developer messages become `systemInstruction`; user turns become text, `inlineData` or
`fileData` parts; assistant tool calls become `functionCall` parts and tool results
`functionResponse` parts named after the call they answer; sampling, stop, `n`,
`response_format` and `reasoning_effort` move into `generationConfig`. What Gemini cannot honour
is refused with a 400 naming it. A step's first `functionCall` gets back its `thoughtSignature`:
from the call's `extra_content.google.thought_signature` (Google's OpenAI layer), else from the
message's `thinking_blocks` (what the gateway gave the client), else Google's documented
stand-in for Gemini 3, which refuses a call without one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from llms.adapters.base import UpstreamRequest
from llms.adapters.messages import (
    from_data_url,
    invalid,
    thinking_blocks,
    tool_name,
    unsupported,
    unsupported_value,
)
from llms.config import ProviderConfig
from llms.errors import InvalidRequest
from llms.wire import ChatRequest, Message

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


def build_request(
    request: ChatRequest, provider: ProviderConfig, upstream_model: str
) -> UpstreamRequest:
    """The `streamGenerateContent?alt=sse` request; the key goes in a header, never the URL."""
    _refuseunsupported(request)
    thinking_levels = _is_level_family(upstream_model)
    system, contents = _contents(request.get("messages") or [], thinking_levels)
    if not contents:
        raise invalid(
            "messages",
            "Gemini needs at least one user, assistant or tool message besides system messages.",
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


def _refuseunsupported(request: ChatRequest) -> None:
    """400 for what Gemini cannot honour. `user`, `store`, `metadata`, `service_tier`,
    `prediction` and the like are ignored: leaving them out changes no answer."""
    body: Mapping[str, Any] = request
    if body.get("logprobs"):
        raise unsupported("logprobs", "Gemini streams do not return log probabilities here.")
    if body.get("logit_bias"):
        raise unsupported("logit_bias", "Gemini has no logit bias.")
    for name in ("functions", "function_call"):
        if body.get(name) is not None:
            raise unsupported(name, f"'{name}' is deprecated; use 'tools' with Gemini.")
    if body.get("audio") is not None:
        raise unsupported("audio", "Audio output is not available through this gateway.")
    modalities = body.get("modalities")
    if modalities and any(m != "text" for m in modalities):
        raise unsupported("modalities", "Only text output is available from Gemini here.")
    tools_used = body.get("tools") and body.get("tool_choice") != "none"
    if body.get("parallel_tool_calls") is False and tools_used:
        raise unsupported(
            "parallel_tool_calls", "Gemini cannot be told to call at most one tool per turn."
        )


def _contents(
    messages: list[Message], signatures: bool
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(systemInstruction parts, contents); consecutive tool results form one user turn."""
    system: list[dict[str, Any]] = []
    contents: list[dict[str, Any]] = []
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
            parts = _assistant_parts(message, where, signatures)
            if parts:
                contents.append({"role": "model", "parts": parts})
        elif role in ("tool", "function"):
            call_id = message.get("tool_call_id")
            part = _function_response(message, where, tool_name(messages, i, call_id))
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
            raise unsupported_value(
                f"{where}.content[{j}]",
                f"Content parts of type {part.get('type')!r} are not accepted in this message.",
            )
        text = part.get(part["type"])
        if not isinstance(text, str):
            raise invalid(f"{where}.content[{j}]", f"Missing text in '{where}.content[{j}]'.")
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
                raise invalid(at, f"Missing text in '{at}'.")
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
                raise unsupported_value(
                    f"{at}.input_audio", "Expected base64 `data` and wav or mp3."
                )
            parts.append({"inlineData": {"mimeType": mime, "data": audio["data"]}})
        elif kind == "file":
            data = (part.get("file") or {}).get("file_data")
            if not isinstance(data, str) or not data.startswith("data:"):
                raise unsupported_value(
                    f"{at}.file", "Only inline files (`file_data` data URLs) reach Gemini."
                )
            parts.append(_media_part(data, f"{at}.file.file_data"))
        else:
            raise unsupported_value(
                at, f"Content parts of type {kind!r} are not supported by Gemini."
            )
    return parts


def _media_part(url: Any, param: str) -> dict[str, Any]:
    """A data URL -> inlineData; a gs:// or Files API URI -> fileData; other URLs -> 400."""
    if not isinstance(url, str) or not url:
        raise invalid(param, f"Missing URL in '{param}'.")
    if url.startswith("data:"):
        parsed = from_data_url(url)
        # `mimeType` takes a bare media type: parameters before `;base64` are refused.
        if parsed is None or not parsed[0] or ";" in parsed[0]:
            raise unsupported_value(param, "Expected a base64 data URL: data:<type>;base64,<data>.")
        mime, data = parsed
        return {"inlineData": {"mimeType": mime, "data": data}}
    if url.startswith("gs://") or (url.startswith(_FILES_API) and "/files/" in url):
        extension = url.rsplit(".", 1)[-1].lower() if "." in url.rsplit("/", 1)[-1] else ""
        file_data = {"fileUri": url}
        if extension in _IMAGE_TYPES:
            file_data["mimeType"] = _IMAGE_TYPES[extension]
        return {"fileData": file_data}
    raise unsupported_value(
        param,
        "Gemini cannot fetch http(s) URLs: send the image as a base64 data URL "
        "(or a gs:// / Gemini Files API URI).",
    )


def _assistant_parts(message: Message, where: str, signatures: bool) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = [
        {"text": text} for text in _text_of(message.get("content"), where, ("text", "refusal"))
    ]
    # The thought signature the gateway gave the client with the step's first call.
    signed = [
        block["signature"]
        for block in thinking_blocks(message, where)
        if block["type"] == "thinking" and block["signature"]
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
            raise invalid(
                f"{at}.function.arguments",
                f"'{at}.function.arguments' must be a JSON object encoded as a string.",
            )
        part: dict[str, Any] = {"functionCall": {"name": function["name"], "args": args}}
        signature = _signature_of(call) or (signed[-1] if signed and k == 0 else None)
        if signature is None and signatures and k == 0:
            # Only the first call of a step carries a signature (parallel calls share it).
            signature = _SIGNATURE_SENTINEL
        if signature is not None:
            part["thoughtSignature"] = signature
        parts.append(part)
    return parts


def _signature_of(call: Mapping[str, Any]) -> str | None:
    """The signature on a tool call in Google's own OpenAI layer's shape:
    `extra_content.google.thought_signature`."""
    extra = call.get("extra_content")
    google = extra.get("google") if isinstance(extra, dict) else None
    signature = google.get("thought_signature") if isinstance(google, dict) else None
    return signature if isinstance(signature, str) and signature else None


def _function_response(message: Message, where: str, called: str | None) -> dict[str, Any]:
    """The `functionResponse` part; `called` is the function of the call it answers, if known."""
    name = called or message.get("name")
    if not isinstance(name, str) or not name:
        raise invalid(
            f"{where}.tool_call_id",
            f"'{where}.tool_call_id' matches no tool call of an earlier assistant message; "
            "Gemini needs the function's name.",
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
            raise unsupported_value(f"tools[{i}]", "Gemini takes only tools of type 'function'.")
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
        raise unsupported_value("tool_choice", "'tool_choice' requires 'tools'.")
    if choice in ("auto", "none", "required"):
        return declarations, {"mode": {"auto": "AUTO", "none": "NONE"}.get(choice, "ANY")}
    if not isinstance(choice, dict):
        raise unsupported_value("tool_choice", f"Unknown tool_choice {choice!r}.")
    declared = {d["name"] for d in declarations}
    if choice.get("type") == "function":
        name = (choice.get("function") or {}).get("name")
        if name not in declared:
            raise unsupported_value(
                "tool_choice", f"tool_choice names {name!r}, which is not in tools."
            )
        return declarations, {"mode": "ANY", "allowedFunctionNames": [name]}
    if choice.get("type") == "allowed_tools":
        allowed = choice.get("allowed_tools") or {}
        chosen = [(t.get("function") or {}).get("name") for t in allowed.get("tools") or ()]
        kept = [d for d in declarations if d["name"] in chosen]
        if not kept:
            raise unsupported_value(
                "tool_choice", "allowed_tools names none of the declared tools."
            )
        # Offering only the allowed functions is what allowed_tools means.
        mode = "ANY" if allowed.get("mode") == "required" else "AUTO"
        return kept, {"mode": mode}
    raise unsupported_value(
        "tool_choice", f"tool_choice of type {choice.get('type')!r} is not supported."
    )


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
            raise unsupported_value(
                "response_format.type", f"Unknown response_format {fmt['type']!r}."
            )
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
        raise unsupported_value("reasoning_effort", f"Unknown reasoning_effort {effort!r}.")
    if levels:
        return {"thinkingLevel": _LEVELS[effort], "includeThoughts": True}
    return {"thinkingBudget": _BUDGETS[effort], "includeThoughts": True}
