"""A process's door to the managed keys: authentication, the lease a model request holds, and
the writes its end makes (tokens, spend), which run off the answer's path.

Config keys never come here: a presented key is looked up in the store only when it has a
managed key's shape (`sk-llms-…`) and matches no config key, so a gateway whose clients use
config keys pays no I/O per request for this.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

from aiohttp import web

from llms.config import ApiKey, Config
from llms.errors import AuthenticationFailed
from llms.managed import model
from llms.managed.model import Admitted, Prices
from llms.server.auth import presented_key
from llms.server.limits import Lease
from llms.telemetry.record import RequestRecord
from llms.wire import Usage

log = logging.getLogger("llms.keys")

# The requests that count against a key's limits and budget (the others only authenticate).
MODEL_PATHS = frozenset(
    (
        "/v1/chat/completions",
        "/v1/responses",
        "/v1/messages",
        "/v1/embeddings",
        "/v1/completions",
        "/v1/messages/count_tokens",
    )
)
STOP_TIMEOUT_S = 5.0


class KeyStore(Protocol):
    async def start(self) -> None: ...
    async def close(self) -> None: ...
    async def create(self, fields: dict[str, Any]) -> tuple[dict[str, Any], str]: ...
    async def list(self) -> list[dict[str, Any]]: ...
    async def get(self, key_id: str) -> dict[str, Any] | None: ...
    async def update(self, key_id: str, fields: dict[str, Any]) -> dict[str, Any] | None: ...
    async def delete(self, key_id: str) -> bool: ...
    async def spend_hours(self, key_id: str, first: int, last: int) -> dict[int, float]: ...
    async def admit(self, secret_hash: str, *, count: bool) -> Admitted | None: ...
    async def release(self, admitted: Admitted, tokens: int, cost: float) -> None: ...


class ManagedLease(Lease):
    """The lease of one model request of a managed key: `release` frees its stream slot and
    adds its tokens and cost (by the record's provider and usage) to the store, in a task."""

    __slots__ = ("_admitted", "_keys", "adopted", "record")

    def __init__(self, keys: ManagedKeys, admitted: Admitted) -> None:
        super().__init__(None, None)
        self._keys = keys
        self._admitted = admitted
        self.adopted = False
        self.record: RequestRecord | None = None

    def adopt(self, record: RequestRecord) -> None:
        """The request's handler holds this lease now: it releases it with the record's usage."""
        self.adopted = True
        self.record = record

    def release(self, usage: Usage | None = None) -> None:
        if self.released:
            return
        self.released = True
        provider = self.record.provider if self.record is not None else None
        cost = model.cost_usd(self._keys.prices, provider, usage)
        self._keys.write(self._admitted, model.tokens_of(usage), cost)


class ManagedKeys:
    def __init__(self, store: KeyStore, prices: Prices, config_names: frozenset[str]) -> None:
        self.store = store
        self.prices = prices
        self.config_names = config_names  # a managed key may not take one of these names
        self._pending: set[asyncio.Task[None]] = set()

    @classmethod
    def from_config(cls, config: Config) -> ManagedKeys:
        state = config.state
        store: KeyStore
        if state.redis_url:
            from llms.managed.redis import RedisKeys

            store = RedisKeys(state.redis_url)
        else:
            from llms.managed.sqlite import SqliteKeys
            from llms.telemetry.usage import path_of

            store = SqliteKeys(path_of(state.keys_store))
        prices = {p.name: (p.price_in, p.price_out) for p in config.providers}
        names = frozenset(key.name for key in config.server.api_keys)
        return cls(store, prices, names)

    async def lifecycle(self, app: web.Application) -> AsyncIterator[None]:
        await self.store.start()
        yield
        if self._pending:  # the last releases reach the store before it closes
            await asyncio.wait(set(self._pending), timeout=STOP_TIMEOUT_S)
        await self.store.close()

    async def authenticate(self, request: web.Request, secret: str) -> ApiKey | None:
        """The managed key with this secret (None: none), counted when this is a model request
        (its lease then waits in `request[LEASE]` for the handler)."""
        count = request.method == "POST" and request.path in MODEL_PATHS
        admitted = await self.store.admit(model.digest(secret), count=count)
        if admitted is None:
            return None
        if admitted.lease is not None:
            request[LEASE] = ManagedLease(self, admitted)
        return ApiKey(key="", name=admitted.name, models=admitted.models, id=admitted.id)

    def write(self, admitted: Admitted, tokens: int, cost: float) -> None:
        task = asyncio.get_running_loop().create_task(self._write(admitted, tokens, cost))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _write(self, admitted: Admitted, tokens: int, cost: float) -> None:
        try:
            await self.store.release(admitted, tokens, cost)
        except Exception:
            # Bookkeeping must never break an answer; the slot ages out (an hour) at worst.
            log.exception(
                "managed keys: could not record the end of a request of %r", admitted.name
            )


LEASE = web.RequestKey("managed_lease", ManagedLease)
MANAGED = web.AppKey("managed_keys", ManagedKeys)


async def authenticate(
    request: web.Request, config_check: Callable[[], ApiKey | None]
) -> ApiKey | None:
    """Config keys first (no I/O); then, for a secret of a managed key's shape, the store."""
    managed = request.app.get(MANAGED)
    secret = presented_key(request)
    if managed is not None and secret is not None and model.looks_managed(secret):
        if request.app[_CONFIG_KEYS]:  # a config key may have that shape too
            with contextlib.suppress(AuthenticationFailed):
                return config_check()
        key = await managed.authenticate(request, secret)
        if key is not None:
            return key
        raise AuthenticationFailed("Incorrect API key provided.", code="invalid_api_key")
    if not request.app[_CONFIG_KEYS]:
        if secret is None:
            raise AuthenticationFailed(
                "Missing API key. Send it as `Authorization: Bearer <key>` or `x-api-key`."
            )
        raise AuthenticationFailed("Incorrect API key provided.", code="invalid_api_key")
    return config_check()


_CONFIG_KEYS = web.AppKey("config_keys_present", bool)


def install(app: web.Application, config: Config) -> ManagedKeys:
    managed = ManagedKeys.from_config(config)
    app[MANAGED] = managed
    app[_CONFIG_KEYS] = bool(config.server.api_keys)
    app.cleanup_ctx.append(managed.lifecycle)
    return managed


def release_unadopted(request: web.Request) -> None:
    """After the handler: a lease no handler took (a 404, a 405) is freed, counting nothing."""
    lease = request.get(LEASE)
    if lease is not None and not lease.adopted:
        lease.release(None)
