"""The benchmark's processes: fake upstream, memory-mode gateway, redis-server, Redis replicas.

Every one runs in its own process, so its CPU is never counted with another's. The Redis-mode
gateways are two replicas, A and B, sharing one redis-server; the Redis scenarios are skipped
(reported, not failed) when there is no redis-server.
"""

from __future__ import annotations

import asyncio
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from bench.figures import Report
from bench.native import gateway_providers
from bench.procs import Child, free_port, spawn, stop, wait_ready
from bench.redis_server import command, find_redis_server, spawn_redis, wait_redis

REPLICAS = ("A", "B")


def gateway_config(
    upstream_url: str,
    models: list[str],
    redis_url: str | None = None,
    responses_store: Path | None = None,
) -> Report:
    """The gateway's config.json: the fake upstream as an OpenAI-type provider, and as one
    provider of each native type (bench.native: models ``<type>-<model>``); Redis if given;
    stored responses (``POST /v1/responses``, background mode) in this SQLite file if given."""
    config: Report = {
        "providers": {
            "bench": {
                "type": "openai",
                "base_url": f"{upstream_url}/v1",
                "api_key": "bench",
                "models": models,
            },
            **gateway_providers(upstream_url, models),
        }
    }
    state: Report = {}
    if redis_url is not None:
        state["redis_url"] = redis_url
    if responses_store is not None:
        state["responses"] = {"store": f"sqlite:{responses_store}"}
    if state:
        config["state"] = state
    return config


@dataclass
class Fleet:
    """The started processes; the gateway ones are None when not started."""

    upstream: Child
    gateway: Child | None = None
    redis: Child | None = None
    replicas: dict[str, Child] = field(default_factory=dict)


def _spawn_gateway(
    name: str, config_path: Path, module: str, log_path: Path, home: str
) -> tuple[Child, str]:
    """Start ``python -m MODULE serve`` on a free port; return it and its command line."""
    port = free_port()
    argv = ["-m", module, "serve", "--config", str(config_path)]
    argv += ["--host", "127.0.0.1", "--port", str(port)]
    # HOME points at the temp dir so the gateway's default files stay out of ~.
    child = spawn(name, argv, log_path, port, {"HOME": home})
    return child, shlex.join(["python", *argv])


def _write_config(path: Path, config: Report) -> Path:
    path.write_bytes(orjson.dumps(config, option=orjson.OPT_INDENT_2))
    return path


async def start_gateways(
    fleet: Fleet,
    report: Report,
    *,
    models: list[str],
    tmp: Path,
    results_dir: Path,
    module: str,
    redis_program: str,
    start_timeout: float,
) -> None:
    """Start the memory-mode gateway and, if redis-server exists, Redis and two replicas.

    Each process is put in ``fleet`` as soon as it is spawned, so the caller can stop it
    whatever fails next.
    """
    upstream_url = fleet.upstream.base_url
    # The Responses scenarios store every response (OpenAI's default), background ones too.
    config = gateway_config(upstream_url, models, responses_store=tmp / "responses.db")
    config_path = _write_config(tmp / "config.json", config)
    fleet.gateway, gw_command = _spawn_gateway(
        "gateway", config_path, module, results_dir / "gateway.log", str(tmp)
    )
    report["gateway"] = {"command": gw_command, "config": config}
    program = find_redis_server(redis_program)
    if program is None:
        report["redis"] = {"skipped": f"{redis_program} not found"}
    else:
        data = tmp / "redis"
        data.mkdir()
        fleet.redis, redis_command = spawn_redis(program, data, results_dir / "redis.log")
        report["redis"] = {"server": {"command": redis_command}}
        await wait_redis(fleet.redis, 10)
        version = await command(fleet.redis.base_url, "INFO", "server")
        if isinstance(version, bytes):
            for line in version.decode().splitlines():
                if line.startswith("redis_version:"):
                    report["redis"]["server"]["version"] = line.split(":", 1)[1]
        redis_config = gateway_config(upstream_url, models, f"{fleet.redis.base_url}/0")
        path = _write_config(tmp / "config-redis.json", redis_config)
        report["redis"]["config"] = redis_config
        report["redis"]["replicas"] = {}
        for name in REPLICAS:
            log_path = results_dir / f"replica-{name.lower()}.log"
            child, argv = _spawn_gateway(f"replica {name}", path, module, log_path, str(tmp))
            fleet.replicas[name] = child
            report["redis"]["replicas"][name] = {"command": argv}
    gateways = [fleet.gateway, *fleet.replicas.values()]
    await asyncio.gather(*(wait_ready(child, "/ready", start_timeout) for child in gateways))


async def stop_fleet(fleet: Fleet, report: Report) -> None:
    """SIGTERM the gateways together, then redis-server, then the upstream; record each end."""
    gateways: dict[str, Child] = {}
    if fleet.gateway is not None:
        gateways["gateway"] = fleet.gateway
    gateways.update(fleet.replicas)
    outcomes = await asyncio.gather(*(stop(child) for child in gateways.values()))
    for name, outcome in zip(gateways, outcomes, strict=True):
        if name == "gateway":
            report["gateway"]["stop"] = outcome
        else:
            report["redis"]["replicas"][name]["stop"] = outcome
    if fleet.redis is not None:
        report["redis"]["server"]["stop"] = await stop(fleet.redis)
    report["upstream_stop"] = await stop(fleet.upstream)
