"""A Bedrock provider's AWS keys in config.json: `region`, `access_key_id`, `secret_access_key`
and `session_token` (only temporary credentials have one: a `"$AWS_SESSION_TOKEN"` whose
variable is unset is no token, not a provider to skip). Read into `ProviderConfig.options`;
every mistake names the JSON path, as in config.py (whose reader is passed in).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from llms.config_checks import value_problem

if TYPE_CHECKING:
    from llms.config import _Reader

# us-east-1, eu-central-2, us-gov-west-1, ap-southeast-5…: it becomes part of a host name.
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d{1,2}$")


def region_of(r: _Reader, obj: dict[str, Any], path: str) -> str:
    """The `region`, checked (the default base URL and every signature hold it)."""
    region = r.string(obj.get("region"), f"{path}.region")
    if not _REGION.match(region):
        raise r.fail(f"{path}.region", f"expected an AWS region such as us-east-1, got {region!r}")
    return region


def aws_options(r: _Reader, obj: dict[str, Any], path: str) -> dict[str, Any]:
    """`region` and the credentials that sign each request (SigV4); none with a Bedrock API
    key (`api_key`, sent as a bearer token instead)."""
    from llms.config import _MissingEnv

    options: dict[str, Any] = {"region": region_of(r, obj, path)}
    keys = "access_key_id" in obj or "secret_access_key" in obj
    if "api_key" in obj:
        if keys:
            raise r.fail(f"{path}.api_key", "give either api_key or the access keys, not both")
        return options
    for key in ("access_key_id", "secret_access_key", "session_token"):
        value = obj.get(key)
        if value is None and key == "session_token":
            continue
        try:
            text = r.string(value, f"{path}.{key}")
        except _MissingEnv:
            if key == "session_token":
                continue
            raise
        if problem := value_problem(text):
            raise r.fail(f"{path}.{key}", problem)
        options[key] = text
    return options
