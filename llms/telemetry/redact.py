"""Credentials out of text: what the config holds that no client or log line may ever show."""

from __future__ import annotations

from urllib.parse import urlsplit

from llms.config import Config
from llms.config_auth import secrets_of_auth
from llms.errors import GatewayError

# Header names whose values are credentials (others, like `anthropic-version`, are not secret).
_SECRET_HEADER_WORDS = ("authorization", "key", "token", "secret", "cookie", "password")
# Shorter strings are not treated as secrets: replacing them would mangle ordinary text.
MIN_SECRET_LEN = 6
REDACTED = "[redacted]"


def secrets_of(config: Config) -> tuple[str, ...]:
    """Gateway keys, upstream keys, credential headers and URL passwords, longest first."""
    found: set[str] = {key.key for key in config.server.api_keys}
    for provider in config.providers:
        if provider.api_key:
            found.add(provider.api_key)
        for name, value in provider.headers.items():
            if any(word in name.lower() for word in _SECRET_HEADER_WORDS):
                found.add(value)
                scheme, _, token = value.partition(" ")
                if token and scheme.lower() in ("bearer", "basic", "token"):
                    found.add(token)
        found.update(secrets_of_auth(provider.auth))
        # A Bedrock provider's AWS secret key and session token (the access key id is no secret).
        found.update(provider.options.get(k) or "" for k in ("secret_access_key", "session_token"))
        password = urlsplit(provider.base_url).password if provider.base_url else None
        if password:
            found.add(password)
    usable = (s for s in found if len(s) >= MIN_SECRET_LEN)
    return tuple(sorted(usable, key=len, reverse=True))


def redact(text: str, secrets: tuple[str, ...]) -> str:
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def redact_error(error: GatewayError, secrets: tuple[str, ...]) -> None:
    """Scrub an error in place before it is logged or shown (its text may quote the upstream)."""
    if not secrets:
        return
    error.message = redact(error.message, secrets)
    error.args = (error.message,)
    if error.param is not None:
        error.param = redact(error.param, secrets)
    if error.code is not None:
        error.code = redact(error.code, secrets)
    # Rate-limit and Retry-After headers are passed on from the upstream: it may echo a key.
    for name, value in error.headers.items():
        error.headers[name] = redact(value, secrets)
