"""Bedrock's per-request authoriser: each request signed with AWS Signature Version 4.

The signature covers the final URL, headers and body and holds the time, so it is computed just
before the request is sent (`UpstreamCall.open` asks the provider's authoriser, llms/upstream.py);
llms/sigv4.py is the pure signing. No I/O: the
keys are static (config.json); a refused signature is not retried, another would be refused too.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

import aiohttp

from llms.adapters.base import UpstreamRequest
from llms.config import ProviderConfig
from llms.sigv4 import Credentials, sign

SERVICE = "bedrock"  # Bedrock's runtime signs as `bedrock`, not `bedrock-runtime`


def credentials_of(provider: ProviderConfig) -> Credentials:
    options = provider.options
    return Credentials(
        options["access_key_id"], options["secret_access_key"], options.get("session_token")
    )


class SigV4Signer:
    """Signs each request to one Bedrock provider with its access keys, at the current time."""

    __slots__ = ("_credentials", "_region")

    def __init__(self, provider: ProviderConfig) -> None:
        self._credentials = credentials_of(provider)
        self._region: str = provider.options["region"]

    async def authorise(
        self, session: aiohttp.ClientSession, request: UpstreamRequest
    ) -> Mapping[str, str]:
        return sign(
            request.method,
            request.url,
            request.headers,
            request.body,
            credentials=self._credentials,
            region=self._region,
            service=SERVICE,
            now=datetime.now(UTC),
        )

    def rejected(self, sent: Mapping[str, str]) -> bool:
        return False


def signer_for(provider: ProviderConfig) -> SigV4Signer | None:
    """A Bedrock provider's signer; None with a Bedrock API key (a bearer token) instead."""
    if provider.type == "bedrock" and "access_key_id" in provider.options:
        return SigV4Signer(provider)
    return None
