"""How a provider authenticates beyond a static key: config.json -> frozen dataclasses.

`auth: {"type": "oauth2_client_credentials", ...}` on an OpenAI-protocol provider (OpenAI,
AI Refinery, Azure OpenAI), and Vertex AI's service-account key file (`credentials_file`). What
is read here is data; llms/credentials.py turns it into the per-request authoriser.
Every mistake names the JSON path, as in config.py (whose reader is passed in).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from llms.config_aws import aws_options
from llms.config_checks import value_problem

if TYPE_CHECKING:
    from llms.config import _Reader

AUTH_TYPES = ("oauth2_client_credentials",)
CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
# Azure OpenAI's GA data-plane version, the default of `api_version`.
AZURE_API_VERSION = "2024-10-21"
_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
_HOST_LABEL = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?$")
_FIELDS = re.compile(r"\{([a-z_]+)\}")


@dataclass(frozen=True, slots=True)
class ClientCredentials:
    """OAuth2's client-credentials grant: a bearer token from `token_url` (RFC 6749 §4.4)."""

    token_url: str
    client_id: str
    client_secret: str
    scope: str | None = None


@dataclass(frozen=True, slots=True)
class ServiceAccount:
    """A Google service-account key: a JWT signed with `private_key` buys a bearer token at
    `token_uri` (RFC 7523, the jwt-bearer grant)."""

    client_email: str
    private_key: str
    token_uri: str
    private_key_id: str | None = None
    scope: str = CLOUD_PLATFORM


ProviderAuth = ClientCredentials | ServiceAccount


def client_credentials(r: _Reader, value: Any, path: str) -> ClientCredentials:
    """The `auth` block."""
    keys = ("type", "token_url", "client_id", "client_secret", "scope")
    obj = r.obj(value, path, keys)
    kind = obj.get("type")
    if kind not in AUTH_TYPES:
        raise r.fail(f"{path}.type", f"expected one of {', '.join(AUTH_TYPES)}, got {kind!r}")
    client_id = r.string(obj.get("client_id"), f"{path}.client_id")
    secret = r.string(obj.get("client_secret"), f"{path}.client_secret")
    for key, text in (("client_id", client_id), ("client_secret", secret)):
        if problem := value_problem(text):
            raise r.fail(f"{path}.{key}", problem)
    scope = obj.get("scope")
    return ClientCredentials(
        token_url=r.url(obj.get("token_url"), f"{path}.token_url"),
        client_id=client_id,
        client_secret=secret,
        scope=None if scope is None else r.string(scope, f"{path}.scope"),
    )


def service_account(r: _Reader, value: Any, path: str) -> ServiceAccount:
    """A service-account key file (`credentials_file`), read and checked at start-up."""
    name = r.string(value, path)
    try:
        data = orjson.loads(Path(name).read_bytes())
    except OSError as exc:
        raise r.fail(path, f"cannot read the key file: {exc.strerror or exc}") from None
    except orjson.JSONDecodeError:
        raise r.fail(path, "the key file is not JSON (a service-account key is)") from None
    if not isinstance(data, dict) or data.get("type") != "service_account":
        raise r.fail(path, 'expected a service-account key file ("type": "service_account")')
    fields: dict[str, str] = {}
    for key in ("client_email", "private_key", "token_uri"):
        text = data.get(key)
        if not isinstance(text, str) or not text:
            raise r.fail(path, f"the key file has no {key!r}")
        fields[key] = text
    if "PRIVATE KEY-----" not in fields["private_key"]:
        raise r.fail(path, "the key file's private_key is not a PEM key")
    r.url(fields["token_uri"], f"{path} (its token_uri)")
    key_id = data.get("private_key_id")
    return ServiceAccount(
        client_email=fields["client_email"],
        private_key=fields["private_key"],
        token_uri=fields["token_uri"],
        private_key_id=key_id if isinstance(key_id, str) and key_id else None,
    )


def secrets_of_auth(auth: ProviderAuth | None) -> tuple[str, ...]:
    """What must never reach a client or a log."""
    if isinstance(auth, ClientCredentials):
        return (auth.client_secret,)
    if isinstance(auth, ServiceAccount):
        return (auth.private_key,)
    return ()


def cloud_options(
    r: _Reader, kind: str, obj: dict[str, Any], path: str
) -> tuple[ProviderAuth | None, dict[str, Any]]:
    """The `auth` block (wherever the type accepts it) and the clouds' own keys, as options."""
    auth: ProviderAuth | None = None
    options: dict[str, Any] = {}
    if obj.get("auth") is not None:
        auth = client_credentials(r, obj["auth"], f"{path}.auth")
    if kind == "azure":
        version = r.string(obj.get("api_version", AZURE_API_VERSION), f"{path}.api_version")
        if not _LABEL.match(version):
            raise r.fail(
                f"{path}.api_version", f"expected a version like 2024-10-21, got {version!r}"
            )
        options["api_version"] = version
    elif kind == "vertex":
        for key in ("project", "location"):
            text = r.string(obj.get(key), f"{path}.{key}")
            if not _LABEL.match(text):
                raise r.fail(f"{path}.{key}", "expected letters, digits, '-', '_' and '.'")
            options[key] = text
        auth = service_account(r, obj.get("credentials_file"), f"{path}.credentials_file")
    elif kind == "bedrock":
        options.update(aws_options(r, obj, path))
    return auth, options


def default_base_url(
    r: _Reader, template: str | None, obj: dict[str, Any], path: str
) -> str | None:
    """A type's default base URL, its `{key}`s filled from the provider's keys (`{location}`,
    `{region}`): each must be a plain label, since it becomes part of a host name."""
    if template is None or "{" not in template:
        return template
    values: dict[str, str] = {}
    for key in _FIELDS.findall(template):
        text = r.string(obj.get(key), f"{path}.{key}")
        if not _HOST_LABEL.match(text):
            raise r.fail(f"{path}.{key}", "expected letters, digits and '-' (it names a host)")
        values[key] = text
    if values.get("location") == "global":
        return template.replace("{location}-", "")  # Vertex's global endpoint has no region
    return template.format_map(values)
