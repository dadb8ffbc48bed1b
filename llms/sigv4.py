"""AWS Signature Version 4 (header form), as a pure function: no clock, no I/O.

`sign()` returns the headers that authenticate one request (`X-Amz-Date`, `Authorization`, and
`X-Amz-Security-Token` with temporary credentials); the caller passes the time. The canonical
request follows AWS's rules for every service but S3: the URI path *as sent* is URI-encoded once
more (a Bedrock model id's `:` goes on the wire as `%3A`, is signed as `%253A`), no path
normalisation, the query sorted by encoded name then value, header values trimmed with inner
runs of spaces collapsed, duplicate header names joined with commas. Checked against AWS's
published SigV4 test suite (tests/test_sigv4.py).

The path signed is the one aiohttp will send: yarl decodes percent-escapes of characters a path
may hold as they are (`%3A` goes out as `:`), and AWS signs what it receives.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import unquote

from yarl import URL

__all__ = [
    "Credentials",
    "canonical_query",
    "canonical_request",
    "canonical_uri",
    "sign",
    "signature",
    "uri_encode",
]

ALGORITHM = "AWS4-HMAC-SHA256"
_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~")
# Hop-by-hop or rewritten on the way (proxies, the HTTP client): never signed, as AWS's SDKs do.
_UNSIGNED = frozenset(("user-agent", "expect", "x-amzn-trace-id", "connection", "content-length"))


@dataclass(frozen=True, slots=True)
class Credentials:
    """An access key pair, and the session token that temporary credentials come with."""

    access_key_id: str
    secret_access_key: str
    session_token: str | None = None

    def __repr__(self) -> str:  # never the secret, should one be logged
        return f"Credentials(access_key_id={self.access_key_id!r}, ...)"


def uri_encode(value: str, *, keep_slash: bool = False) -> str:
    """AWS's UriEncode: every byte of the UTF-8 form but A-Z a-z 0-9 - _ . ~ as %XX (upper case)."""
    out: list[str] = []
    for byte in value.encode():
        if byte in _UNRESERVED or (keep_slash and byte == 0x2F):
            out.append(chr(byte))
        else:
            out.append(f"%{byte:02X}")
    return "".join(out)


def canonical_uri(path: str) -> str:
    """The path as sent, encoded once more (non-S3 services), slashes kept; "/" when empty."""
    return uri_encode(path, keep_slash=True) if path else "/"


def canonical_query(query: str) -> str:
    """`a=1&b=2` with each name and value decoded, then encoded, sorted by name then value."""
    pairs: list[tuple[str, str]] = []
    for item in query.split("&"):
        if not item:
            continue
        name, _, value = item.partition("=")
        pairs.append((uri_encode(unquote(name)), uri_encode(unquote(value))))
    return "&".join(f"{name}={value}" for name, value in sorted(pairs))


def _header_items(
    headers: Mapping[str, str] | Iterable[tuple[str, str]],
) -> Iterable[tuple[str, str]]:
    return headers.items() if isinstance(headers, Mapping) else headers


def canonical_headers(
    headers: Mapping[str, str] | Iterable[tuple[str, str]],
) -> tuple[str, str]:
    """(the canonical headers block, the signed header names joined by `;`)."""
    values: dict[str, list[str]] = {}
    for name, value in _header_items(headers):
        values.setdefault(name.lower(), []).append(" ".join(value.split()))
    names = sorted(values)
    block = "".join(f"{name}:{','.join(values[name])}\n" for name in names)
    return block, ";".join(names)


def canonical_request(
    method: str,
    path: str,
    query: str,
    headers: Mapping[str, str] | Iterable[tuple[str, str]],
    payload_hash: str,
) -> str:
    """The canonical request of one request (every header given is signed)."""
    block, signed = canonical_headers(headers)
    return "\n".join(
        (method.upper(), canonical_uri(path), canonical_query(query), block, signed, payload_hash)
    )


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def signature(
    secret_access_key: str, amz_date: str, region: str, service: str, canonical: str
) -> str:
    """The hex signature of a canonical request, at `amz_date` (`YYYYMMDDTHHMMSSZ`)."""
    day = amz_date[:8]
    scope = f"{day}/{region}/{service}/aws4_request"
    to_sign = "\n".join(
        (ALGORITHM, amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest())
    )
    key = _hmac(f"AWS4{secret_access_key}".encode(), day)
    for part in (region, service, "aws4_request"):
        key = _hmac(key, part)
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


def host_of(url: URL) -> str:
    """The Host header aiohttp sends for `url`: the host, and the port unless the default."""
    host = url.raw_host or ""
    if ":" in host:  # an IPv6 address
        host = f"[{host}]"
    if url.explicit_port is not None and not url.is_default_port():
        host += f":{url.explicit_port}"
    return host


def sign(
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    credentials: Credentials,
    region: str,
    service: str,
    now: datetime,
) -> dict[str, str]:
    """The headers to add to the request so that AWS accepts it at `now`.

    Signed: `host`, the request's own headers (but hop-by-hop ones), `x-amz-date` and
    `x-amz-security-token`. The body's SHA-256 is part of the signature.
    """
    amz_date = now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    parsed = URL(url)
    added = {"X-Amz-Date": amz_date}
    if credentials.session_token:
        added["X-Amz-Security-Token"] = credentials.session_token
    signed = [("host", host_of(parsed))]
    signed += [(k, v) for k, v in headers.items() if k.lower() not in _UNSIGNED | {"host"}]
    signed += added.items()
    canonical = canonical_request(
        method, parsed.raw_path, parsed.raw_query_string, signed, hashlib.sha256(body).hexdigest()
    )
    _, names = canonical_headers(signed)
    scope = f"{amz_date[:8]}/{region}/{service}/aws4_request"
    value = signature(credentials.secret_access_key, amz_date, region, service, canonical)
    added["Authorization"] = (
        f"{ALGORITHM} Credential={credentials.access_key_id}/{scope}, "
        f"SignedHeaders={names}, Signature={value}"
    )
    return added
