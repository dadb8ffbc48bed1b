"""The admin API (`server.admin_key`): managed keys, created, listed, changed and revoked.

POST /admin/keys answers the new key's secret once; nothing else ever shows it (the store keeps
its SHA-256). Only the admin key opens /admin: no key or a wrong one is 401, a gateway API key
(from config.json or managed) is 403.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
from typing import Any

import orjson
from aiohttp import web

from llms.config import ApiKey
from llms.errors import AuthenticationFailed, Conflict, InvalidRequest, NotFound, PermissionDenied
from llms.managed import history, model
from llms.managed.gate import MANAGED, ManagedKeys
from llms.server.auth import authenticate, presented_key
from llms.server.routes import json_response

PREFIX = "/admin"


def install(app: web.Application) -> None:
    app.router.add_post("/admin/keys", create_key)
    app.router.add_get("/admin/keys", list_keys)
    app.router.add_get("/admin/keys/{id}", get_key)
    app.router.add_patch("/admin/keys/{id}", update_key)
    app.router.add_delete("/admin/keys/{id}", delete_key)
    app.router.add_get("/admin/keys/{id}/spend", key_spend)


def is_admin_path(path: str) -> bool:
    return path == PREFIX or path.startswith(PREFIX + "/")


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).digest()


async def check_admin(request: web.Request, admin_key: str, api_keys: tuple[ApiKey, ...]) -> None:
    """Raises 401 (no key, an unknown key) or 403 (a gateway API key) unless the admin key."""
    given = presented_key(request)
    if given is None:
        raise AuthenticationFailed(
            "Missing admin key. Send it as `Authorization: Bearer <key>` or `x-api-key`."
        )
    if hmac.compare_digest(_digest(given), _digest(admin_key)):
        return
    is_api_key = False
    if api_keys:
        with contextlib.suppress(AuthenticationFailed):
            is_api_key = authenticate(api_keys, request) is not None
    managed = request.app.get(MANAGED)
    if not is_api_key and managed is not None and model.looks_managed(given):
        is_api_key = await managed.store.admit(model.digest(given), count=False) is not None
    if is_api_key:
        raise PermissionDenied(
            "This API key may not use the admin API: send the admin key (server.admin_key).",
            code="admin_key_required",
        )
    raise AuthenticationFailed("Incorrect admin key provided.", code="invalid_api_key")


def _managed(request: web.Request) -> ManagedKeys:
    return request.app[MANAGED]


async def _body(request: web.Request) -> Any:
    raw = await request.read()
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:  # its message says where, never what
        raise InvalidRequest(f"The body is not valid JSON: {exc}.", code="invalid_json") from None


def _check_name(managed: ManagedKeys, fields: dict[str, Any]) -> None:
    name = fields.get("name")
    if name is not None and name in managed.config_names:
        raise Conflict(
            f"A key named {name!r} is configured in config.json.", param="name", code="name_taken"
        )


def _not_found(key_id: str) -> NotFound:
    shown = model.shorten(key_id)
    return NotFound(f"No key with id {shown!r}.", param="id", code="key_not_found")


async def create_key(request: web.Request) -> web.Response:
    managed = _managed(request)
    fields = model.check_fields(await _body(request), create=True)
    _check_name(managed, fields)
    view, secret = await managed.store.create(fields)
    # The only time the secret is shown: the store keeps its hash.
    return json_response({**view, "secret": secret}, status=201)


async def list_keys(request: web.Request) -> web.Response:
    data = await _managed(request).store.list()
    return json_response({"object": "list", "data": data})


async def get_key(request: web.Request) -> web.Response:
    key_id = request.match_info["id"]
    view = await _managed(request).store.get(key_id)
    if view is None:
        raise _not_found(key_id)
    return json_response(view)


async def update_key(request: web.Request) -> web.Response:
    managed = _managed(request)
    key_id = request.match_info["id"]
    fields = model.check_fields(await _body(request), create=False)
    _check_name(managed, fields)
    view = await managed.store.update(key_id, fields)
    if view is None:
        raise _not_found(key_id)
    return json_response(view)


async def delete_key(request: web.Request) -> web.Response:
    key_id = request.match_info["id"]
    if not await _managed(request).store.delete(key_id):
        raise _not_found(key_id)
    return json_response({"id": key_id, "object": "api_key", "deleted": True})


async def key_spend(request: web.Request) -> web.Response:
    """`?days=N` (default 30, at most 400) UTC days of the key's spend, with its budget line."""
    key_id = request.match_info["id"]
    days = history.parse_days(request.query)
    store = _managed(request).store
    view = await store.get(key_id)
    if view is None:
        raise _not_found(key_id)
    now = model.now_s()
    first, last = history.hours_needed(view, days, now)
    hours = await store.spend_hours(key_id, first, last)
    return json_response(history.series(view, hours, days, now))
