"""What config.json may hold that the HTTP client would refuse, or garble, on every request.

Each check answers what is wrong in plain words, or None; config.py names the JSON path. They
exist because such a value used to be accepted at start and then turn every request to that
provider into an error (aiohttp raises ValueError for a control character in a header, for a
URL password next to an Authorization header, for a host name it cannot encode).
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

# RFC 9110 token characters: anything else in a header name makes the upstream answer 400.
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
# Control characters other than tab: aiohttp refuses them in a header name or value.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
# The gateway frames the body itself; a configured value would contradict it.
_FRAMING_HEADERS = frozenset({"content-length", "transfer-encoding", "content-encoding"})
REDIS_SCHEMES = ("redis", "rediss", "unix")


def url_problem(text: str, schemes: tuple[str, ...] = ("http", "https")) -> str | None:
    """Why `text` cannot be an upstream's base URL (the gateway appends API paths to it)."""
    if _CONTROL.search(text) or " " in text or "\t" in text:
        return "the URL contains a space, a line break or another control character"
    if "\\" in text:
        return "the URL contains a backslash"
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        return "not a valid URL (check the brackets around an IPv6 address and the port number)"
    if parts.scheme not in schemes or not (parts.hostname or parts.scheme == "unix"):
        wanted = " or ".join(f"{scheme}://" for scheme in schemes)
        return f"expected a URL starting {wanted}, got scheme {parts.scheme or '(none)'!r}"
    if port == 0:
        return "port 0 cannot be connected to; expected a port 1-65535"
    if schemes == REDIS_SCHEMES:
        return None
    if parts.query or parts.fragment:
        return "expected no query (?...) or fragment (#...): the gateway appends API paths"
    try:
        (parts.hostname or "").encode("idna")
    except UnicodeError:
        return "the host name is not valid (empty, or a part longer than 63 characters)"
    return None


def header_problem(name: str, value: str) -> str | None:
    """Why a configured upstream header cannot be sent. Never quotes the value (a credential)."""
    if not _TOKEN.match(name):
        return "a header name may use only letters, digits and !#$%&'*+-.^_`|~"
    if name.lower() in _FRAMING_HEADERS:
        return "the gateway sets this header itself (it frames the request body)"
    return value_problem(value)


def value_problem(value: str) -> str | None:
    """Why a string sent as a header value (a key, a header) cannot be sent."""
    if _CONTROL.search(value):
        return (
            "the value contains a line break or another control character "
            "(a trailing newline in the environment variable?)"
        )
    return None


def url_credentials_clash(base_url: str, sends_authorization: bool) -> str | None:
    """`user:pass@` in the URL is sent as an Authorization header: aiohttp refuses a second one."""
    parts = urlsplit(base_url)
    if sends_authorization and (parts.username is not None or parts.password is not None):
        return (
            "credentials in the URL (user:pass@) cannot be combined with api_key or an "
            "Authorization header: both set the Authorization header; keep one"
        )
    return None
