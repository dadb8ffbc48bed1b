"""A fake AWS Bedrock runtime: a real aiohttp server on 127.0.0.1 speaking the Converse API.

`POST /model/{modelId}/converse-stream` answers `application/vnd.amazon.eventstream` messages
(prelude, headers, payload, both CRC32s), written in odd-sized pieces that cut messages
anywhere; `POST /model/{modelId}/converse` answers the same turn as one JSON document. Every
request's SigV4 signature is recomputed as AWS does (the path as received, encoded once more;
the headers the client says it signed, as received; the body's SHA-256; the scope's date, region
and service) and a wrong one gets AWS's 403 `InvalidSignatureException` (an unknown key
`UnrecognizedClientException`); a Bedrock API key is checked when configured. Scripts (chosen by
model id) can inject AWS's exception messages mid-stream and its HTTP errors
(`x-amzn-ErrorType`, `{"message"}`). The encoder here is written from AWS's description of the
format, independently of llms/framing.py's decoder.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import struct
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import orjson
from aiohttp import web

from tests.upstreams.openai import Received

ACCESS_KEY = "AKIAFAKEBEDROCK00001"
SECRET_KEY = "fake/Secret+Key/0123456789abcdefghijklmn"
REGION = "us-east-1"


# --- the event stream encoding ----------------------------------------------------------------


def _header(name: str, value: str) -> bytes:
    raw = value.encode()
    return bytes([len(name)]) + name.encode() + b"\x07" + struct.pack(">H", len(raw)) + raw


def message(headers: dict[str, str], payload: bytes) -> bytes:
    """One event-stream message: the prelude and its CRC, headers, payload, the message CRC."""
    head = b"".join(_header(k, v) for k, v in headers.items())
    total = 12 + len(head) + len(payload) + 4
    prelude = struct.pack(">II", total, len(head))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    body = prelude + head + payload
    return body + struct.pack(">I", zlib.crc32(body))


def event(kind: str, payload: dict[str, Any]) -> bytes:
    """An `event` message, as Bedrock sends them (with its `p` padding field)."""
    data = {**payload, "p": "abcdefghijklmnopqrstuvwxyzABCDEF"[: 7 + len(kind) % 20]}
    return message(
        {":event-type": kind, ":content-type": "application/json", ":message-type": "event"},
        orjson.dumps(data),
    )


def exception(kind: str, text: str) -> bytes:
    """An `exception` message (`throttlingException`…), `{"message": …}` its payload."""
    return message(
        {
            ":exception-type": kind,
            ":content-type": "application/json",
            ":message-type": "exception",
        },
        orjson.dumps({"message": text}),
    )


def pieces(data: bytes, sizes: Sequence[int] = (1, 7, 3, 64, 13, 2, 29)) -> list[bytes]:
    """`data` cut in odd-sized pieces, cycling through `sizes`."""
    out: list[bytes] = []
    at = 0
    i = 0
    while at < len(data):
        size = sizes[i % len(sizes)]
        out.append(data[at : at + size])
        at += size
        i += 1
    return out


# --- scripts ----------------------------------------------------------------------------------


@dataclass
class Turn:
    """One answer as Converse content blocks, played as a stream or sent whole."""

    blocks: list[dict[str, Any]]
    stop: str = "end_turn"
    usage: dict[str, int] = field(
        default_factory=lambda: {"inputTokens": 11, "outputTokens": 7, "totalTokens": 18}
    )
    # A stream: this exception message after `fail_after` events (None: no failure).
    fail: tuple[str, str] | None = None
    fail_after: int = 0
    # An HTTP error instead: (status, error type, message).
    http_error: tuple[int, str, str] | None = None
    # Stop the stream after this many events, without messageStop (None: play all).
    cut_after: int | None = None
    # Corrupt the message CRC of this event (None: none).
    bad_crc_at: int | None = None
    # Split text deltas in pieces of this many characters.
    text_step: int = 4

    def events(self) -> list[bytes]:
        out = [event("messageStart", {"role": "assistant"})]
        for index, block in enumerate(self.blocks):
            at = {"contentBlockIndex": index}
            if "toolUse" in block:
                use = block["toolUse"]
                start = {"toolUse": {"toolUseId": use["toolUseId"], "name": use["name"]}}
                out.append(event("contentBlockStart", {**at, "start": start}))
                args = orjson.dumps(use["input"]).decode()
                for i in range(0, len(args), 9):
                    delta = {"toolUse": {"input": args[i : i + 9]}}
                    out.append(event("contentBlockDelta", {**at, "delta": delta}))
            elif "reasoningContent" in block:
                text = block["reasoningContent"]["reasoningText"]
                for i in range(0, len(text["text"]), self.text_step):
                    delta = {"reasoningContent": {"text": text["text"][i : i + self.text_step]}}
                    out.append(event("contentBlockDelta", {**at, "delta": delta}))
                signature = {"reasoningContent": {"signature": text["signature"]}}
                out.append(event("contentBlockDelta", {**at, "delta": signature}))
            else:
                text = block["text"]
                for i in range(0, len(text), self.text_step):
                    delta = {"text": text[i : i + self.text_step]}
                    out.append(event("contentBlockDelta", {**at, "delta": delta}))
            out.append(event("contentBlockStop", at))
        out.append(event("messageStop", {"stopReason": self.stop}))
        metrics = {"latencyMs": 321}
        out.append(event("metadata", {"usage": self.usage, "metrics": metrics}))
        if self.cut_after is not None:
            out = out[: self.cut_after]
        if self.fail is not None:
            out = [*out[: self.fail_after], exception(*self.fail)]
        if self.bad_crc_at is not None:
            bad = bytearray(out[self.bad_crc_at])
            bad[-1] ^= 0xFF
            out[self.bad_crc_at] = bytes(bad)
        return out

    def whole(self) -> dict[str, Any]:
        message = {"role": "assistant", "content": self.blocks}
        return {
            "output": {"message": message},
            "stopReason": self.stop,
            "usage": self.usage,
            "metrics": {"latencyMs": 321},
        }


def text_turn(text: str, **kw: Any) -> Turn:
    return Turn([{"text": text}], **kw)


# --- the server -------------------------------------------------------------------------------

_AUTH = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<day>\d{8})/(?P<region>[^/]+)/"
    r"(?P<service>[^/]+)/aws4_request, SignedHeaders=(?P<signed>[a-z0-9;-]+), "
    r"Signature=(?P<signature>[0-9a-f]{64})$"
)
_STATUSES = {
    "throttlingException": 429,
    "serviceUnavailableException": 503,
    "validationException": 400,
    "modelStreamErrorException": 424,
    "internalServerException": 500,
}
_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~/")


def _encode_path(path: str) -> str:
    return "".join(chr(b) if b in _UNRESERVED else f"%{b:02X}" for b in path.encode())


def aws_error(status: int, kind: str, text: str) -> web.Response:
    """AWS's JSON error: the type in `x-amzn-ErrorType`, `{"message"}` in the body."""
    return web.Response(
        status=status,
        body=orjson.dumps({"message": text}),
        content_type="application/json",
        headers={
            "x-amzn-ErrorType": f"{kind}:http://internal.amazon.com/coral/com.amazon.bedrock/",
            "x-amzn-RequestId": "5f3c9a1e-0000-4000-8000-000000000000",
        },
    )


class FakeBedrock:
    """Serves converse and converse-stream; `turns` maps a model id to its Turn (or a list)."""

    def __init__(
        self,
        *,
        access_key: str = ACCESS_KEY,
        secret_key: str = SECRET_KEY,
        session_token: str | None = None,
        api_key: str | None = None,
        region: str = REGION,
    ) -> None:
        self.access_key = access_key
        self.secret_key = secret_key
        self.session_token = session_token
        self.api_key = api_key
        self.region = region
        self.turns: dict[str, Turn | list[Turn]] = {}
        self.default = text_turn("Hello from Bedrock!")
        self.received: list[Received] = []
        self.raw_paths: list[str] = []
        self.signatures: list[str] = []
        self.app = web.Application(client_max_size=64 * 1024 * 1024)
        self.app.router.add_post("/model/{model}/{action}", self._handle)

    def turn_for(self, model: str) -> Turn:
        turn = self.turns.get(model, self.default)
        if isinstance(turn, list):
            return turn.pop(0) if len(turn) > 1 else turn[0]
        return turn

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.raw_paths.append(request.raw_path)
        problem = self._auth_problem(request, body)
        if problem is not None:
            return problem
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError:
            return aws_error(400, "SerializationException", "Could not parse the request body.")
        headers = dict(request.headers)
        self.received.append(Received(request.path, headers, parsed, time.monotonic()))
        action = request.match_info["action"]
        if action not in ("converse", "converse-stream"):
            return aws_error(404, "UnknownOperationException", "Unknown operation")
        if not parsed.get("messages"):
            return aws_error(400, "ValidationException", "The messages field is required.")
        turn = self.turn_for(request.match_info["model"])
        if turn.http_error is not None:
            return aws_error(*turn.http_error)
        if action == "converse":
            if turn.fail is not None:  # what a stream's exception is as a whole answer's error
                kind, text = turn.fail
                name = kind[0].upper() + kind[1:]
                return aws_error(_STATUSES.get(kind, 500), name, text)
            return web.json_response(turn.whole())
        response = web.StreamResponse(
            headers={"Content-Type": "application/vnd.amazon.eventstream"}
        )
        await response.prepare(request)
        for piece in pieces(b"".join(turn.events())):
            await response.write(piece)
            await asyncio.sleep(0)
        await response.write_eof()
        return response

    def _auth_problem(self, request: web.Request, body: bytes) -> web.Response | None:
        if self.api_key is not None:
            if request.headers.get("Authorization") != f"Bearer {self.api_key}":
                return aws_error(403, "AccessDeniedException", "Invalid API Key format")
            return None
        header = request.headers.get("Authorization", "")
        match = _AUTH.match(header)
        if match is None:
            return aws_error(
                403,
                "MissingAuthenticationTokenException",
                "Missing Authentication Token",
            )
        if match["key"] != self.access_key:
            return aws_error(
                403,
                "UnrecognizedClientException",
                "The security token included in the request is invalid.",
            )
        amz_date = request.headers.get("X-Amz-Date", "")
        signed = match["signed"].split(";")
        if "host" not in signed or "x-amz-date" not in signed:
            return aws_error(403, "InvalidSignatureException", "host and x-amz-date must be signed")
        token = request.headers.get("X-Amz-Security-Token")
        if self.session_token is not None and (
            token != self.session_token or "x-amz-security-token" not in signed
        ):
            return aws_error(
                403,
                "UnrecognizedClientException",
                "The security token included in the request is invalid.",
            )
        try:
            sent_at = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        except ValueError:
            return aws_error(400, "IncompleteSignatureException", "X-Amz-Date is missing")
        if abs((datetime.now(UTC) - sent_at).total_seconds()) > 300:
            return aws_error(403, "InvalidSignatureException", "Signature expired")
        if match["region"] != self.region or match["service"] != "bedrock":
            return aws_error(
                403,
                "InvalidSignatureException",
                "Credential should be scoped to a valid region and to service 'bedrock'.",
            )
        lines = [f"{name}:{' '.join(request.headers.get(name, '').split())}\n" for name in signed]
        path, _, query = request.raw_path.partition("?")
        canonical = "\n".join(
            (
                request.method,
                _encode_path(path),
                query,
                "".join(lines),
                ";".join(signed),
                hashlib.sha256(body).hexdigest(),
            )
        )
        scope = f"{match['day']}/{self.region}/bedrock/aws4_request"
        to_sign = "\n".join(
            ("AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest())
        )
        key = hmac.new(f"AWS4{self.secret_key}".encode(), match["day"].encode(), "sha256").digest()
        for part in (self.region, "bedrock", "aws4_request"):
            key = hmac.new(key, part.encode(), "sha256").digest()
        expected = hmac.new(key, to_sign.encode(), "sha256").hexdigest()
        if not hmac.compare_digest(expected, match["signature"]) or amz_date[:8] != match["day"]:
            return aws_error(
                403,
                "InvalidSignatureException",
                "The request signature we calculated does not match the signature you provided. "
                "Check your AWS Secret Access Key and signing method. Consult the service "
                "documentation for details.",
            )
        self.signatures.append(match["signature"])
        return None


def model_path(model: str, action: str) -> str:
    return f"/model/{quote(model, safe='')}/{action}"
