"""OpenAI's Embeddings API (`POST /v1/embeddings`): the request checked, and the answer built.

`from_request` validates the client's body (400s name `param`, in OpenAI's words) into an
`EmbeddingRequest`; `to_answer` turns the upstream's vectors into OpenAI's `list` of
`embedding` objects in the client's `encoding_format`: numbers, or base64 of little-endian
float32 (what the openai SDKs ask for by default, and decode). A vector the upstream sent in
the other form is converted; one already in the asked form passes as it came.
"""

from __future__ import annotations

import base64
import binascii
import sys
from array import array
from typing import Any, Literal, cast

from llms.adapters.embeddings import Embedded, EmbeddingRequest, Vector
from llms.errors import UpstreamMalformed
from llms.server import fields

# OpenAI's limits: 2048 inputs a request; a token is an id of the model's vocabulary.
MAX_INPUTS = 2048
MAX_TOKEN_ID = 2**31 - 1
FORMATS = ("float", "base64")

_INPUT_TYPES = (
    "a string, an array of strings, an array of integers or an array of arrays of integers"
)


def from_request(body: dict[str, Any]) -> EmbeddingRequest:
    """The client's body checked; 400 `invalid_request_error` naming the field otherwise."""
    fields.string(body.get("model"), "model", required=True)
    inputs, tokens = _inputs(body.get("input"))
    encoding = body.get("encoding_format")
    if encoding is not None and encoding not in FORMATS:
        if not isinstance(encoding, str):
            raise fields.wrong_type("encoding_format", "a string", encoding)
        raise fields.fail(
            "encoding_format",
            f"Invalid value for 'encoding_format': {encoding!r}. Supported values are: "
            "'float' and 'base64'.",
        )
    dimensions = body.get("dimensions")
    fields.number(dimensions, "dimensions", 1, 65536, integer=True)
    fields.string(body.get("user"), "user")
    return EmbeddingRequest(
        inputs=inputs,
        tokens=tokens,
        encoding_format=cast(Literal["float", "base64"], encoding or "float"),
        dimensions=dimensions,
        body=body,
    )


def _inputs(value: Any) -> tuple[list[str] | list[list[int]], bool]:
    """`input` as a list of strings, or of token arrays (then True)."""
    if value is None:
        raise fields.missing("input")
    if isinstance(value, str):
        return [_text(value, "input")], False
    if not isinstance(value, list):
        raise fields.wrong_type("input", _INPUT_TYPES, value)
    if not value:
        raise fields.fail("input", "'input' must not be empty.")
    if len(value) > MAX_INPUTS:
        raise fields.fail(
            "input", f"'input' holds {len(value)} items; at most {MAX_INPUTS} are allowed."
        )
    first = value[0]
    if isinstance(first, str):
        return [_text(item, f"input[{i}]") for i, item in enumerate(value)], False
    if isinstance(first, int) and not isinstance(first, bool):
        return [_tokens(value, "input")], True
    if isinstance(first, list):
        return [_tokens(item, f"input[{i}]") for i, item in enumerate(value)], True
    raise fields.wrong_type("input[0]", "a string, an integer or an array of integers", first)


def _text(value: Any, param: str) -> str:
    if not isinstance(value, str):
        raise fields.wrong_type(param, "a string", value)
    if not value:
        raise fields.fail(param, f"'{param}' must not be an empty string.")
    return value


def _tokens(value: Any, param: str) -> list[int]:
    if not isinstance(value, list):
        raise fields.wrong_type(param, "an array of integers", value)
    if not value:
        raise fields.fail(param, f"'{param}' must not be an empty array.")
    for i, token in enumerate(value):
        if type(token) is not int or not 0 <= token <= MAX_TOKEN_ID:
            raise fields.fail(
                f"{param}[{i}]", f"'{param}[{i}]' must be a token id (an integer >= 0)."
            )
    return value


def to_answer(request: EmbeddingRequest, embedded: Embedded, model: str) -> dict[str, Any]:
    """OpenAI's answer: `{"object": "list", "data": [...], "model", "usage"}`."""
    convert = _to_base64 if request.encoding_format == "base64" else _to_floats
    data = [
        {"object": "embedding", "index": i, "embedding": convert(vector)}
        for i, vector in enumerate(embedded.vectors)
    ]
    tokens = embedded.prompt_tokens or 0
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


def _to_base64(vector: Vector) -> str:
    if isinstance(vector, str):
        return vector
    try:
        packed = array("f", vector)
    except (TypeError, OverflowError):
        raise UpstreamMalformed("The upstream sent an embedding that is not all numbers.") from None
    if sys.byteorder == "big":
        packed.byteswap()
    return base64.b64encode(packed.tobytes()).decode("ascii")


def _to_floats(vector: Vector) -> list[float]:
    if not isinstance(vector, str):
        try:
            array("d", vector)  # all numbers (checked in C), sent as they came
        except (TypeError, OverflowError):
            raise UpstreamMalformed(
                "The upstream sent an embedding that is not all numbers."
            ) from None
        return vector
    try:
        raw = base64.b64decode(vector, validate=True)
    except (binascii.Error, ValueError):
        raise UpstreamMalformed("The upstream sent an embedding that is not base64.") from None
    if len(raw) % 4:
        raise UpstreamMalformed("The upstream's base64 embedding is not float32 values.")
    values = array("f")
    values.frombytes(raw)
    if sys.byteorder == "big":
        values.byteswap()
    return values.tolist()
