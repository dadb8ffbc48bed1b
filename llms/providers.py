"""The live state of each provider: where it is, which models it serves now, and its health.

Config says what providers exist; this registry adds what changes at run time: the bundled
model's address (known once its child process listens), models discovered from an Ollama
server, and a circuit breaker per provider. The routing table is rebuilt when models change.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from llms.config import CircuitConfig, Config, ProviderConfig
from llms.credentials import authoriser_for
from llms.errors import ServiceUnavailable
from llms.upstream import Authoriser


class BaseURLSource(Protocol):
    """Where a provider with a dynamic address (the local model) is reachable now."""

    @property
    def base_url(self) -> str | None: ...


class CircuitBreaker:
    """Closed -> open after `failures` consecutive failures -> one probe after `cooldown_s`.

    Pure: the caller passes the current (monotonic) time.
    """

    __slots__ = ("_config", "failures", "opened_at", "probing")

    def __init__(self, config: CircuitConfig) -> None:
        self._config = config
        self.failures = 0
        self.opened_at: float | None = None
        self.probing = False

    def state(self, now: float) -> str:
        if self.opened_at is None:
            return "closed"
        if self.probing or now - self.opened_at >= self._config.cooldown_s:
            return "half_open"
        return "open"

    def allow(self, now: float) -> bool:
        """May a request go to this provider now? In half-open state only one probe may."""
        if self.opened_at is None:
            return True
        if self.probing or now - self.opened_at < self._config.cooldown_s:
            return False
        self.probing = True
        return True

    def retry_after(self, now: float) -> float:
        if self.opened_at is None:
            return 0.0
        return max(0.0, self._config.cooldown_s - (now - self.opened_at))

    def succeeded(self) -> None:
        self.failures = 0
        self.opened_at = None
        self.probing = False

    def failed(self, now: float) -> None:
        self.failures += 1
        if self.probing or self.failures >= self._config.failures:
            self.opened_at = now
        self.probing = False


class Providers:
    """Config providers plus their run-time state; `routes` maps public models to providers."""

    def __init__(
        self,
        config: Config,
        sources: Mapping[str, BaseURLSource] | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.config = config
        self._clock = clock or time.monotonic
        self._sources = dict(sources or {})
        self._current: dict[str, ProviderConfig] = {p.name: p for p in config.providers}
        self.breakers = {p.name: CircuitBreaker(config.routing.circuit) for p in config.providers}
        # Per-request authentication (a cached token, a signature): llms/credentials.py.
        self.authorisers: dict[str, Authoriser] = {
            p.name: authoriser for p in config.providers if (authoriser := authoriser_for(p))
        }
        # Provider name -> "starting" | "ok" | "unavailable" | "unreachable", where it varies.
        self.states: dict[str, str] = {}
        self.routes: dict[str, tuple[ProviderConfig, ...]] = {}
        self._rebuild()

    def now(self) -> float:
        return self._clock()

    def _rebuild(self) -> None:
        table: dict[str, list[ProviderConfig]] = {}
        for provider in self.config.providers:
            current = self._current[provider.name]
            for public in current.models:
                table.setdefault(public, []).append(current)
        self.routes = {model: tuple(providers) for model, providers in table.items()}

    def set_models(self, name: str, models: Mapping[str, str]) -> bool:
        """Replace a provider's models (discovery); True if they changed."""
        current = self._current[name]
        if dict(current.models) == dict(models):
            return False
        self._current[name] = dataclasses.replace(current, models=dict(models))
        self._rebuild()
        return True

    def add_source(self, name: str, source: BaseURLSource) -> None:
        self._sources[name] = source

    def resolve(self, provider: ProviderConfig) -> ProviderConfig:
        """The provider with its current address; 503 if a dynamic one is not up."""
        source = self._sources.get(provider.name)
        if source is None:
            return provider
        url = source.base_url
        if url is None:
            raise ServiceUnavailable(
                f"Provider {provider.name!r} (the bundled model) is not ready yet.",
                headers={"Retry-After": "2"},
            )
        return dataclasses.replace(provider, base_url=url)

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """What /ready and `llms check` show for each provider."""
        now = self.now()
        out: dict[str, dict[str, Any]] = {}
        for provider in self.config.providers:
            current = self._current[provider.name]
            breaker = self.breakers[provider.name]
            out[provider.name] = {
                "type": provider.type,
                "models": sorted(current.models),
                "state": self.states.get(provider.name, "ok"),
                "circuit": breaker.state(now),
                "consecutive_failures": breaker.failures,
            }
        return out
