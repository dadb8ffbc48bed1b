"""config.json -> frozen dataclasses.

Every mistake raises `ConfigError` with a message naming the JSON path and what was expected.
A string that is exactly `"$VAR"` or `"${VAR}"` is read from the environment; a provider that
needs an unset variable is skipped (one line in `Config.notes`), and so is an API key.
The gateway never writes the file.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson

from llms.config_auth import ProviderAuth, cloud_options, default_base_url
from llms.config_checks import (
    REDIS_SCHEMES,
    header_problem,
    url_credentials_clash,
    url_problem,
    value_problem,
)
from llms.errors import ConfigError
from llms.protocols import PROTOCOLS

LOCAL_MODELS = ("smollm2-135m",)
_ENV_REF = re.compile(r"^\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))$")
_NAME = re.compile(r"^[A-Za-z0-9_.\-]+$")


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds. `first_token_s` runs until the first content chunk; `idle_s` between chunks.

    `answer_s` bounds a non-stream answer that the upstream sends whole (see
    `protocols.UpstreamProtocol.answers_whole`): nothing arrives before the whole answer is ready.
    """

    connect_s: float = 10.0
    first_token_s: float = 120.0
    idle_s: float = 60.0
    total_s: float | None = None
    answer_s: float = 600.0


@dataclass(frozen=True, slots=True)
class ApiKey:
    key: str
    name: str
    models: frozenset[str] | None = None
    rpm: int | None = None
    tpm: int | None = None
    max_streams: int | None = None
    # A managed key's id (llms/managed); None for a key from config.json.
    id: str | None = None

    @property
    def owner(self) -> str:
        """Who owns what requests with this key leave behind (stored responses, resumable
        streams): a config key's name, a managed key's id, since a revoked managed key's name
        may be given to a new key that must not see the old one's."""
        return self.name if self.id is None else f"key_{self.id}"


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """`open_metrics`: "loopback" (no key needed from a loopback peer), True or False.

    `request_timeout_s` bounds the arrival of a request's headers and of its body;
    a client whose unread output stays over `client_buffer_kb` for `slow_client_s` is cut off.
    `max_answer_mb` bounds one non-stream answer (what the gateway holds while it folds it).
    """

    api_keys: tuple[ApiKey, ...] = ()
    cors_origins: tuple[str, ...] = ()
    max_body_mb: float = 32.0
    heartbeat_s: float = 15.0
    drain_s: float = 10.0
    open_metrics: bool | str = "loopback"
    max_header_kb: float = 8.0
    request_timeout_s: float = 30.0
    slow_client_s: float = 30.0
    client_buffer_kb: float = 1024.0
    # Request bodies held by the requests in flight, together (past it: 429 server_busy), and
    # the JSON values (keys included) one request body may hold (past it: 400).
    max_bodies_in_flight_mb: float = 256.0
    max_json_nodes: int = 500_000
    max_answer_mb: float = 16.0
    # Enables the admin API (/admin/keys: managed keys); None: no admin API, no managed keys.
    admin_key: str | None = None


@dataclass(frozen=True, slots=True)
class ResponsesConfig:
    """Stored responses (`previous_response_id`, `GET /v1/responses/{id}`): a SQLite file, or
    Redis when `state.redis_url` is set; `store: null` keeps none."""

    store: str | None = "sqlite:~/.llms/responses.db"
    retention_days: float = 30.0
    max_record_mb: float = 16.0
    max_total_mb: float = 1024.0


@dataclass(frozen=True, slots=True)
class StateConfig:
    redis_url: str | None = None
    resume_grace_s: float = 30.0
    request_log: str | None = "sqlite:~/.llms/requests.db"
    stream_ttl_s: float = 600.0
    stream_max_mb: float = 4.0
    # The events of finished streams, all together; past it the oldest finished stream goes.
    finished_streams_mb: float = 256.0
    # Rows older than this are pruned (None: kept for ever); rows waiting for the writer beyond
    # `request_log_queue` are dropped and counted; the messages and answers only if `log_content`.
    request_log_retention_days: float | None = 30.0
    request_log_queue: int = 10_000
    log_content: bool = False
    responses: ResponsesConfig = field(default_factory=ResponsesConfig)
    # Managed keys, their counters and spend (with `server.admin_key`; Redis when redis_url).
    keys_store: str = "sqlite:~/.llms/keys.db"


@dataclass(frozen=True, slots=True)
class CircuitConfig:
    """After `failures` consecutive failures a provider is skipped for `cooldown_s`."""

    failures: int = 5
    cooldown_s: float = 30.0


@dataclass(frozen=True, slots=True)
class RoutingConfig:
    """`timeouts.first_token_s` also bounds every attempt together, before the first byte."""

    max_attempts: int = 3
    timeouts: Timeouts = field(default_factory=Timeouts)
    circuit: CircuitConfig = field(default_factory=CircuitConfig)


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    """One upstream. `models` maps the public model id to the upstream's id."""

    name: str
    type: str
    base_url: str
    models: Mapping[str, str]
    timeouts: Timeouts
    api_key: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    include_usage: bool = True
    options: Mapping[str, Any] = field(default_factory=dict)
    # USD per million prompt / completion tokens (for the usage API's cost); None: not priced.
    price_in: float | None = None
    price_out: float | None = None
    # A credential fetched or computed per request (llms/credentials.py): the `auth` block,
    # a service-account key.
    auth: ProviderAuth | None = None


@dataclass(frozen=True, slots=True)
class Config:
    providers: tuple[ProviderConfig, ...]
    server: ServerConfig = field(default_factory=ServerConfig)
    state: StateConfig = field(default_factory=StateConfig)
    routing: RoutingConfig = field(default_factory=RoutingConfig)
    notes: tuple[str, ...] = ()
    source: str = "config"

    def routes(self) -> dict[str, tuple[ProviderConfig, ...]]:
        """Public model id -> the providers serving it, in priority order."""
        table: dict[str, list[ProviderConfig]] = {}
        for provider in self.providers:
            for public in provider.models:
                table.setdefault(public, []).append(provider)
        return {model: tuple(providers) for model, providers in table.items()}


class _MissingEnv(Exception):
    def __init__(self, var: str, path: str) -> None:
        super().__init__(var)
        self.var = var
        self.path = path


class _Reader:
    """Typed access to the parsed JSON, raising ConfigError with the path on any mistake."""

    def __init__(self, source: str, env: Mapping[str, str]) -> None:
        self.source = source
        self.env = env

    def fail(self, path: str, message: str) -> ConfigError:
        return ConfigError(f"{self.source}: {path or '(top level)'}: {message}")

    def obj(self, value: Any, path: str, keys: tuple[str, ...]) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(path, f"expected an object, got {_show(value)}")
        for key in value:
            if key not in keys:
                raise self.fail(_join(path, key), f"unknown key; expected one of {', '.join(keys)}")
        return value

    def string(self, value: Any, path: str, *, env: bool = True) -> str:
        if not isinstance(value, str) or not value:
            raise self.fail(path, f"expected a non-empty string, got {_show(value)}")
        match = _ENV_REF.match(value) if env else None
        if match:
            var = match.group(1) or match.group(2)
            resolved = self.env.get(var)
            if not resolved:
                raise _MissingEnv(var, path)
            return resolved
        return value

    def number(self, value: Any, path: str, *, low: float = 0.0, nullable: bool = False) -> Any:
        if value is None and nullable:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= low:
            raise self.fail(path, f"expected a number greater than {low:g}, got {_show(value)}")
        return float(value)

    def integer(self, value: Any, path: str, *, nullable: bool = False) -> Any:
        if value is None and nullable:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise self.fail(path, f"expected a positive integer, got {_show(value)}")
        return value

    def boolean(self, value: Any, path: str) -> bool:
        if not isinstance(value, bool):
            raise self.fail(path, f"expected true or false, got {_show(value)}")
        return value

    def url(self, value: Any, path: str, schemes: tuple[str, ...] = ("http", "https")) -> str:
        text = self.string(value, path)
        problem = url_problem(text, schemes)
        if problem:
            # The URL itself is not shown: it may hold a password.
            raise self.fail(path, problem)
        return text.rstrip("/")

    def strings(self, value: Any, path: str) -> list[str]:
        if not isinstance(value, list):
            raise self.fail(path, f"expected a list of strings, got {_show(value)}")
        return [self.string(item, f"{path}[{i}]", env=False) for i, item in enumerate(value)]


def _show(value: Any) -> str:
    text = orjson.dumps(value).decode() if _jsonable(value) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _jsonable(value: Any) -> bool:
    try:
        orjson.dumps(value)
    except TypeError:
        return False
    return True


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def load_config(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> Config:
    """Read and validate a config file."""
    source = str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read the file: {exc.strerror or exc}") from None
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ConfigError(f"{source}: not valid JSON: {exc}") from None
    return parse_config(data, source=source, env=os.environ if env is None else env)


def parse_config(data: Any, *, source: str = "config", env: Mapping[str, str]) -> Config:
    """Validate parsed JSON into a Config."""
    r = _Reader(source, env)
    top = r.obj(data, "", ("server", "state", "routing", "providers"))
    notes: list[str] = []
    server = _server(r, top.get("server", {}), notes)
    state = _state(r, top.get("state", {}))
    routing = _routing(r, top.get("routing", {}))
    declared, providers = _providers(r, top.get("providers"), routing.timeouts, notes)
    for i, key in enumerate(server.api_keys):
        for model in sorted(key.models or ()):
            if model not in declared and not any(p.options.get("discover") for p in providers):
                raise r.fail(
                    f"server.api_keys[{i}].models", f"model {model!r} is served by no provider"
                )
    return Config(
        providers=tuple(providers),
        server=server,
        state=state,
        routing=routing,
        notes=tuple(notes),
        source=source,
    )


def _server(r: _Reader, value: Any, notes: list[str]) -> ServerConfig:
    keys = (
        "api_keys",
        "cors_origins",
        "max_body_mb",
        "heartbeat_s",
        "drain_s",
        "open_metrics",
        "max_header_kb",
        "request_timeout_s",
        "slow_client_s",
        "client_buffer_kb",
        "max_bodies_in_flight_mb",
        "max_json_nodes",
        "max_answer_mb",
        "admin_key",
    )
    obj = r.obj(value, "server", keys)
    api_keys: list[ApiKey] = []
    raw_keys = obj.get("api_keys", [])
    if not isinstance(raw_keys, list):
        raise r.fail("server.api_keys", f"expected a list, got {_show(raw_keys)}")
    for i, item in enumerate(raw_keys):
        path = f"server.api_keys[{i}]"
        try:
            api_keys.append(_api_key(r, item, path, i))
        except _MissingEnv as missing:
            notes.append(f"{missing.path}: ${missing.var} is not set; that key is not accepted")
    names = [key.name for key in api_keys]
    for i, name in enumerate(names):
        if name in names[:i]:
            # Names own streams and carry limits: two keys sharing one would share both.
            raise r.fail(f"server.api_keys[{i}].name", f"duplicate key name {name!r}")
    defaults = ServerConfig()

    def number(name: str, low: float = 0.0) -> Any:
        return r.number(obj.get(name, getattr(defaults, name)), f"server.{name}", low=low)

    return ServerConfig(
        api_keys=tuple(api_keys),
        cors_origins=_origins(r, obj.get("cors_origins", [])),
        max_body_mb=number("max_body_mb"),
        heartbeat_s=number("heartbeat_s"),
        drain_s=number("drain_s", low=-1),
        open_metrics=_open_metrics(r, obj.get("open_metrics", defaults.open_metrics)),
        max_header_kb=number("max_header_kb"),
        request_timeout_s=number("request_timeout_s"),
        slow_client_s=number("slow_client_s"),
        client_buffer_kb=number("client_buffer_kb"),
        max_bodies_in_flight_mb=number("max_bodies_in_flight_mb"),
        max_json_nodes=r.integer(
            obj.get("max_json_nodes", defaults.max_json_nodes), "server.max_json_nodes"
        ),
        max_answer_mb=number("max_answer_mb"),
        admin_key=_admin_key(r, obj.get("admin_key"), notes),
    )


def _admin_key(r: _Reader, value: Any, notes: list[str]) -> str | None:
    if value is None:
        return None
    try:
        key = r.string(value, "server.admin_key")
    except _MissingEnv as missing:
        notes.append(f"server.admin_key: ${missing.var} is not set; the admin API is off")
        return None
    if len(key) < 16:
        raise r.fail("server.admin_key", "expected at least 16 characters")
    return key


def _open_metrics(r: _Reader, value: Any) -> bool | str:
    if isinstance(value, bool):
        return value
    if value == "loopback":
        return "loopback"
    raise r.fail("server.open_metrics", f'expected "loopback", true or false, got {_show(value)}')


def _origins(r: _Reader, value: Any) -> tuple[str, ...]:
    """Browser origins allowed by CORS: "*" or scheme://host[:port], nothing after it."""
    origins = r.strings(value, "server.cors_origins")
    for i, origin in enumerate(origins):
        if origin == "*":
            continue
        parts = urlsplit(origin)
        if (
            parts.scheme not in ("http", "https")
            or not parts.hostname
            or parts.path
            or parts.query
            or parts.fragment
            or origin.endswith("/")
        ):
            raise r.fail(
                f"server.cors_origins[{i}]",
                f'expected "*" or an origin like "https://app.example.com", got {_show(origin)}',
            )
    return tuple(origin.lower() for origin in origins)


def _api_key(r: _Reader, item: Any, path: str, index: int) -> ApiKey:
    if isinstance(item, str):
        return ApiKey(key=r.string(item, path), name=f"key{index}")
    obj = r.obj(item, path, ("key", "name", "models", "rpm", "tpm", "max_streams"))
    if "key" not in obj:
        raise r.fail(_join(path, "key"), "missing; expected the key string or a $VARIABLE")
    models = obj.get("models")
    return ApiKey(
        key=r.string(obj["key"], _join(path, "key")),
        name=r.string(obj.get("name", f"key{index}"), _join(path, "name"), env=False),
        models=None if models is None else frozenset(r.strings(models, _join(path, "models"))),
        rpm=r.integer(obj.get("rpm"), _join(path, "rpm"), nullable=True),
        tpm=r.integer(obj.get("tpm"), _join(path, "tpm"), nullable=True),
        max_streams=r.integer(obj.get("max_streams"), _join(path, "max_streams"), nullable=True),
    )


def _state(r: _Reader, value: Any) -> StateConfig:
    obj = r.obj(
        value,
        "state",
        (
            "redis_url",
            "resume_grace_s",
            "request_log",
            "stream_ttl_s",
            "stream_max_mb",
            "request_log_retention_days",
            "request_log_queue",
            "log_content",
            "finished_streams_mb",
            "responses",
            "keys_store",
        ),
    )
    defaults = StateConfig()
    redis_url = obj.get("redis_url")
    request_log = obj.get("request_log", defaults.request_log)
    if request_log is not None:
        request_log = r.string(request_log, "state.request_log")
        if not request_log.startswith("sqlite:") or request_log == "sqlite:":
            raise r.fail(
                "state.request_log",
                f'expected "sqlite:<path>" or null, got {_show(request_log)}',
            )
    return StateConfig(
        redis_url=None if redis_url is None else r.url(redis_url, "state.redis_url", REDIS_SCHEMES),
        resume_grace_s=r.number(
            obj.get("resume_grace_s", defaults.resume_grace_s), "state.resume_grace_s", low=-1
        ),
        request_log=request_log,
        stream_ttl_s=r.number(obj.get("stream_ttl_s", defaults.stream_ttl_s), "state.stream_ttl_s"),
        stream_max_mb=r.number(
            obj.get("stream_max_mb", defaults.stream_max_mb), "state.stream_max_mb"
        ),
        request_log_retention_days=r.number(
            obj.get("request_log_retention_days", defaults.request_log_retention_days),
            "state.request_log_retention_days",
            nullable=True,
        ),
        request_log_queue=r.integer(
            obj.get("request_log_queue", defaults.request_log_queue), "state.request_log_queue"
        ),
        log_content=r.boolean(obj.get("log_content", defaults.log_content), "state.log_content"),
        finished_streams_mb=r.number(
            obj.get("finished_streams_mb", defaults.finished_streams_mb),
            "state.finished_streams_mb",
        ),
        responses=_responses(r, obj.get("responses", {})),
        keys_store=_keys_store(r, obj.get("keys_store", defaults.keys_store)),
    )


def _keys_store(r: _Reader, value: Any) -> str:
    store = r.string(value, "state.keys_store")
    if not store.startswith("sqlite:") or store == "sqlite:":
        raise r.fail("state.keys_store", f'expected "sqlite:<path>", got {_show(store)}')
    return store


def _responses(r: _Reader, value: Any) -> ResponsesConfig:
    path = "state.responses"
    fields = ("store", "retention_days", "max_record_mb", "max_total_mb")
    obj = r.obj(value, path, fields)
    defaults = ResponsesConfig()
    store = obj.get("store", defaults.store)
    if store is not None:
        store = r.string(store, f"{path}.store")
        if not store.startswith("sqlite:") or store == "sqlite:":
            raise r.fail(f"{path}.store", f'expected "sqlite:<path>" or null, got {_show(store)}')
    numbers = {
        name: r.number(obj.get(name, getattr(defaults, name)), f"{path}.{name}")
        for name in fields[1:]
    }
    return ResponsesConfig(store=store, **numbers)


def _routing(r: _Reader, value: Any) -> RoutingConfig:
    obj = r.obj(value, "routing", ("max_attempts", "timeouts", "circuit"))
    circuit = r.obj(obj.get("circuit", {}), "routing.circuit", ("failures", "cooldown_s"))
    defaults = CircuitConfig()
    return RoutingConfig(
        max_attempts=r.integer(obj.get("max_attempts", 3), "routing.max_attempts"),
        timeouts=_timeouts(r, obj.get("timeouts", {}), "routing.timeouts", Timeouts()),
        circuit=CircuitConfig(
            failures=r.integer(
                circuit.get("failures", defaults.failures), "routing.circuit.failures"
            ),
            cooldown_s=r.number(
                circuit.get("cooldown_s", defaults.cooldown_s), "routing.circuit.cooldown_s"
            ),
        ),
    )


def _timeouts(r: _Reader, value: Any, path: str, base: Timeouts) -> Timeouts:
    obj = r.obj(value, path, ("connect_s", "first_token_s", "idle_s", "total_s", "answer_s"))
    return Timeouts(
        connect_s=r.number(obj.get("connect_s", base.connect_s), _join(path, "connect_s")),
        first_token_s=r.number(
            obj.get("first_token_s", base.first_token_s), _join(path, "first_token_s")
        ),
        idle_s=r.number(obj.get("idle_s", base.idle_s), _join(path, "idle_s")),
        total_s=r.number(obj.get("total_s", base.total_s), _join(path, "total_s"), nullable=True),
        answer_s=r.number(obj.get("answer_s", base.answer_s), _join(path, "answer_s")),
    )


def _providers(
    r: _Reader, value: Any, defaults: Timeouts, notes: list[str]
) -> tuple[set[str], list[ProviderConfig]]:
    if value is None:
        raise r.fail("providers", "missing; expected an object of providers in priority order")
    if not isinstance(value, dict) or not value:
        raise r.fail("providers", f"expected a non-empty object, got {_show(value)}")
    declared: set[str] = set()
    providers: list[ProviderConfig] = []
    for name, item in value.items():
        path = f"providers.{name}"
        if not _NAME.match(name):
            raise r.fail(path, "provider names may use letters, digits, '_', '.' and '-'")
        if not isinstance(item, dict):
            raise r.fail(path, f"expected an object, got {_show(item)}")
        kind = item.get("type")
        if not isinstance(kind, str) or kind not in PROTOCOLS:
            raise r.fail(
                f"{path}.type", f"expected one of {', '.join(PROTOCOLS)}, got {_show(kind)}"
            )
        obj = r.obj(item, path, ("type", *PROTOCOLS[kind].keys))
        try:
            provider = _provider(r, name, kind, obj, path, defaults)
        except _MissingEnv as missing:
            declared.update(_declared_models(obj))
            notes.append(f"provider {name!r} skipped: ${missing.var} ({missing.path}) is not set")
            continue
        declared.update(provider.models)
        providers.append(provider)
    return declared, providers


def _declared_models(obj: dict[str, Any]) -> list[str]:
    models = obj.get("models", [])
    return [str(m) for m in models] if isinstance(models, list | dict) else []


def _provider(
    r: _Reader, name: str, kind: str, obj: dict[str, Any], path: str, defaults: Timeouts
) -> ProviderConfig:
    timeouts = _timeouts(r, obj.get("timeouts", {}), f"{path}.timeouts", defaults)
    protocol = PROTOCOLS[kind]
    if protocol.bundled:
        model = r.string(obj.get("model"), f"{path}.model", env=False)
        if model not in LOCAL_MODELS:
            raise r.fail(
                f"{path}.model", f"expected one of {', '.join(LOCAL_MODELS)}, got {model!r}"
            )
        options: dict[str, Any] = {"model": model}
        if "model_path" in obj:
            options["model_path"] = r.string(obj["model_path"], f"{path}.model_path")
        for key in ("n_ctx", "threads", "parallel"):
            if key in obj:
                options[key] = r.integer(obj[key], f"{path}.{key}")
        return ProviderConfig(
            name=name,
            type=kind,
            base_url="",
            models={model: model},
            timeouts=timeouts,
            options=options,
        )
    default_url = default_base_url(r, protocol.base_url, obj, path) if "base_url" not in obj else ""
    base_url = r.url(obj.get("base_url", default_url), f"{path}.base_url")
    api_key = None if obj.get("api_key") is None else r.string(obj["api_key"], f"{path}.api_key")
    if api_key is not None and (problem := value_problem(api_key)):
        raise r.fail(f"{path}.api_key", problem)
    auth, cloud = cloud_options(r, kind, obj, path)
    if auth is not None and api_key is not None:
        raise r.fail(f"{path}.auth", "give either api_key or auth, not both")
    headers_obj = obj.get("headers", {})
    if not isinstance(headers_obj, dict):
        raise r.fail(f"{path}.headers", f"expected an object of strings, got {_show(headers_obj)}")
    headers = {k: r.string(v, f"{path}.headers.{k}") for k, v in headers_obj.items()}
    for name, header in headers.items():
        if problem := header_problem(name, header):
            at = f"{path}.headers.{name}" if _NAME.match(name) else f"{path}.headers {_show(name)}"
            raise r.fail(at, problem)
    authorization = (
        (api_key is not None and protocol.bearer_key)
        or auth is not None
        or any(name.lower() == "authorization" for name in headers)
    )
    if problem := url_credentials_clash(base_url, authorization):
        raise r.fail(f"{path}.base_url", problem)
    # An entry without `models` for a server that lists them (Ollama's /api/tags) discovers them.
    discover = protocol.discovers_models and "models" not in obj
    options = {"discover": True} if discover else {}
    options.update(cloud)
    if "max_tokens" in obj:
        options["max_tokens"] = r.integer(obj["max_tokens"], f"{path}.max_tokens")
    if "responses" in obj:
        # The upstream serves POST /responses itself: Responses requests pass through.
        options["responses"] = r.boolean(obj["responses"], f"{path}.responses")
    if "completions" in obj:
        # Whether the upstream serves POST /completions (legacy completions pass through).
        options["completions"] = r.boolean(obj["completions"], f"{path}.completions")
    return ProviderConfig(
        name=name,
        type=kind,
        base_url=base_url,
        models={} if discover else _models(r, obj.get("models"), f"{path}.models"),
        timeouts=timeouts,
        api_key=api_key,
        headers=headers,
        include_usage=r.boolean(obj.get("include_usage", True), f"{path}.include_usage"),
        options=options,
        price_in=_price(r, obj.get("price_in"), f"{path}.price_in"),
        price_out=_price(r, obj.get("price_out"), f"{path}.price_out"),
        auth=auth,
    )


def _price(r: _Reader, value: Any, path: str) -> float | None:
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not 0 <= value < float("inf")
    ):
        raise r.fail(path, f"expected USD per million tokens (a number >= 0), got {_show(value)}")
    return float(value)


def _models(r: _Reader, value: Any, path: str) -> dict[str, str]:
    if value is None:
        raise r.fail(path, "missing; expected a list of model ids or an object {public: upstream}")
    if isinstance(value, list) and value:
        return {m: m for m in r.strings(value, path)}
    if isinstance(value, dict) and value:
        return {
            r.string(k, path, env=False): r.string(v, f"{path}.{k}", env=False)
            for k, v in value.items()
        }
    raise r.fail(
        path, f"expected a non-empty list of ids or object {{public: upstream}}, got {_show(value)}"
    )
