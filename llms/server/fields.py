"""Checks of one field of a client's JSON body: its type and range, or a 400 naming it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from llms.errors import InvalidRequest


def fail(param: str, message: str, code: str = "invalid_value") -> InvalidRequest:
    return InvalidRequest(message, param=param, code=code)


def type_name(value: Any) -> str:
    return {
        type(None): "null",
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "an array",
        dict: "an object",
    }.get(type(value), type(value).__name__)


def wrong_type(param: str, expected: str, value: Any) -> InvalidRequest:
    return fail(
        param,
        f"Invalid type for '{param}': expected {expected}, got {type_name(value)}.",
        "invalid_type",
    )


def missing(param: str) -> InvalidRequest:
    return fail(param, f"Missing required parameter: '{param}'.", "missing_required_parameter")


def number(value: Any, param: str, low: float, high: float, *, integer: bool = False) -> None:
    """A number (an integer if `integer`) within [low, high]; None passes."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int if integer else int | float):
        raise wrong_type(param, "an integer" if integer else "a number", value)
    if not low <= value <= high:
        raise fail(param, f"Invalid '{param}': {value} is not within [{low:g}, {high:g}].")


def boolean(value: Any, param: str) -> None:
    if value is not None and not isinstance(value, bool):
        raise wrong_type(param, "a boolean", value)


def string(
    value: Any, param: str, *, required: bool = False, max_length: int | None = None
) -> None:
    """A string of at most `max_length` characters; None passes unless `required`."""
    if value is None:
        if required:
            raise missing(param)
        return
    if not isinstance(value, str):
        raise wrong_type(param, "a string", value)
    if max_length is not None and len(value) > max_length:
        raise fail(
            param,
            f"Invalid '{param}': string too long. Expected at most {max_length} characters, "
            f"got {len(value)}.",
            "string_above_max_length",
        )


def obj(value: Any, param: str, *, required: bool = False) -> Mapping[str, Any] | None:
    """The object, or None when absent (a 400 if `required`)."""
    if value is None:
        if required:
            raise missing(param)
        return None
    if not isinstance(value, dict):
        raise wrong_type(param, "an object", value)
    return value


def required_obj(value: Any, param: str) -> Mapping[str, Any]:
    """The object; a 400 when it is absent or no object."""
    if not isinstance(value, dict):
        raise missing(param) if value is None else wrong_type(param, "an object", value)
    return value


def array(value: Any, param: str, *, required: bool = False) -> list[Any] | None:
    """The array, or None when absent (a 400 if `required`)."""
    if value is None:
        if required:
            raise missing(param)
        return None
    if not isinstance(value, list):
        raise wrong_type(param, "an array", value)
    return value


def strings(value: Any, param: str) -> None:
    items = array(value, param)
    for i, item in enumerate(items or ()):
        string(item, f"{param}[{i}]", required=True)


def depth_within(value: Any, limit: int) -> bool:
    """Whether arrays and objects nest at most `limit` deep (iteratively: no recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        children = node.values() if isinstance(node, dict) else node
        for child in children:
            if isinstance(child, dict | list):
                if depth >= limit:
                    return False
                stack.append((child, depth + 1))
    return True


MAX_EVENT_ID = 2**63 - 1
EVENT_ID_DIGITS = len(str(MAX_EVENT_ID))


def event_id(raw: str, param: str = "Last-Event-ID") -> int:
    """A resume position: ASCII digits only (str.isdigit takes `²` and other scripts' digits),
    0 <= n < 2**63 (a Redis stream id's part); else a 400 naming `param`."""
    text = raw.strip()
    if (
        not text
        or not text.isascii()
        or not text.isdigit()
        or len(text.lstrip("0")) > EVENT_ID_DIGITS
        or int(text) > MAX_EVENT_ID
    ):
        raise fail(
            param,
            f"{param} must be the number of the last event received (0 to {MAX_EVENT_ID}).",
        )
    return int(text)


# OpenAI's caps on chat and legacy completions alike.
MAX_STOP = 4
MAX_LOGIT_BIAS = 1024


def stop(value: Any) -> None:
    """`stop`: a string or at most MAX_STOP strings."""
    if value is None or isinstance(value, str):
        return
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise wrong_type("stop", "a string or an array of strings", value)
    if len(value) > MAX_STOP:
        raise fail(
            "stop",
            f"Invalid 'stop': array too long. Expected at most {MAX_STOP} items, got {len(value)}.",
        )


def logit_bias(value: Any) -> None:
    """`logit_bias`: at most MAX_LOGIT_BIAS token ids (digits) -> weights in [-100, 100]."""
    bias = obj(value, "logit_bias")
    if bias is None:
        return
    if len(bias) > MAX_LOGIT_BIAS:
        raise fail("logit_bias", f"Invalid 'logit_bias': at most {MAX_LOGIT_BIAS} tokens.")
    for token, weight in bias.items():
        if not (token.isascii() and token.isdigit()):
            raise fail("logit_bias", "Invalid 'logit_bias': keys are token ids (digits).")
        number(weight, "logit_bias", -100, 100)
