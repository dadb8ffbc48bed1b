"""Several gateway replicas behind nginx, sharing stream state through Redis, on this machine.

    make cluster                                   # = .venv/bin/python -m cluster.run
    python -m cluster.run [CONFIG] [--listen 127.0.0.1:8080] [--replicas 2] [--log-level info]

No Docker: Debian's `redis-server` (apt-get install redis-server) on a free loopback port with a
temp dir and no persistence; N `llms serve` replicas on free loopback ports, each with a config
generated from CONFIG (default: the repo's config.json) with `state.redis_url` pointing at that
Redis; Debian's `nginx` (apt-get install nginx-light) in front, from the SSE-safe template
cluster/nginx.conf, round robin over the replicas. Everything runs in the foreground until
Ctrl-C or SIGTERM, then every child is stopped (replicas get SIGTERM, so in-flight streams
drain for `server.drain_s`). If any child dies on its own, the rest are stopped too.

The tests (tests/cluster.py) start the same pieces with the functions below.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
NGINX_TEMPLATE = HERE / "nginx.conf"
SBIN = ("/usr/local/sbin", "/usr/sbin", "/sbin")
PR_SET_PDEATHSIG = 1


class ClusterError(Exception):
    """A piece of the topology is missing or did not start."""


# --- the pieces -----------------------------------------------------------------------------------


def find_binary(name: str) -> str | None:
    """`name` on PATH, or in the sbin directories a non-root PATH often lacks (nginx is there)."""
    path = os.pathsep.join([os.environ.get("PATH", ""), *SBIN])
    return shutil.which(name, path=path)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the parent dies, so nothing outlives a crash."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def spawn(
    args: Sequence[str],
    *,
    stdout: IO[Any] | int | None = None,
    stderr: IO[Any] | int | None = None,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    die_with_parent: bool = False,
) -> subprocess.Popen[bytes]:
    """A child in its own session: a Ctrl-C on the terminal reaches only us, and we stop the
    children in order, each signalled once. `die_with_parent` (Linux; only for a parent without
    threads, as code between fork and exec must be) also ends it if we are killed."""
    use_pdeathsig = die_with_parent and sys.platform.startswith("linux")
    return subprocess.Popen(
        list(args),
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=stderr,
        env=env,
        cwd=cwd,
        start_new_session=True,
        preexec_fn=_die_with_parent if use_pdeathsig else None,
    )


def start_redis(
    workdir: Path,
    port: int,
    *,
    binary: str | None = None,
    log: IO[Any] | None = None,
    die_with_parent: bool = False,
) -> subprocess.Popen[bytes]:
    """redis-server on 127.0.0.1:`port`, data dir `workdir`, no RDB snapshots, no AOF."""
    binary = binary or find_binary("redis-server")
    if binary is None:
        raise ClusterError("redis-server is not installed (apt-get install redis-server)")
    args = [
        binary,
        "--port", str(port),
        "--bind", "127.0.0.1",
        "--dir", str(workdir),
        "--save", "",
        "--appendonly", "no",
        "--daemonize", "no",
        "--protected-mode", "yes",
        "--logfile", str(workdir / "redis.log"),
    ]  # fmt: skip
    return spawn(args, stdout=log, stderr=log, cwd=workdir, die_with_parent=die_with_parent)


def wait_for_redis(port: int, proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """Until PING answers PONG (a plain socket: no client library needed)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ClusterError(f"redis-server exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1) as s:
            s.sendall(b"PING\r\n")
            if s.recv(64).startswith(b"+PONG"):
                return
        time.sleep(0.05)
    raise ClusterError(f"redis-server did not answer on port {port} within {timeout} s")


def replica_config(config: dict[str, Any], redis_url: str) -> dict[str, Any]:
    """`config` with `state.redis_url` set: every replica shares stream state through Redis."""
    out = dict(config)
    out["state"] = {**config.get("state", {}), "redis_url": redis_url}
    return out


def start_replica(
    config_path: Path,
    port: int,
    *,
    host: str = "127.0.0.1",
    args: Sequence[str] = (),
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    stdout: IO[Any] | int | None = None,
    stderr: IO[Any] | int | None = None,
    die_with_parent: bool = False,
) -> subprocess.Popen[bytes]:
    """One `llms serve` process."""
    command = [sys.executable, "-m", "llms", "serve", "--config", str(config_path)]
    command += ["--host", host, "--port", str(port), *args]
    return spawn(
        command, stdout=stdout, stderr=stderr, env=env, cwd=cwd, die_with_parent=die_with_parent
    )


def wait_http(
    url: str, proc: subprocess.Popen[bytes], timeout: float = 30.0, *, what: str = "server"
) -> None:
    """Until `url` answers 200."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ClusterError(f"{what} exited with {proc.returncode}")
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1) as response:
            if response.status == 200:
                return
        time.sleep(0.05)
    raise ClusterError(f"{what} did not answer 200 at {url} within {timeout} s")


def render_nginx_conf(
    prefix: Path, listen: str, replicas: Sequence[str], template: Path = NGINX_TEMPLATE
) -> str:
    """The template with its placeholders filled in (see cluster/nginx.conf)."""
    servers = "\n        ".join(f"server {address};" for address in replicas)
    user = "user root root;" if hasattr(os, "geteuid") and os.geteuid() == 0 else ""
    text = template.read_text()
    for name, value in (
        ("USER", user),
        ("PREFIX", str(prefix)),
        ("LISTEN", listen),
        ("SERVERS", servers),
    ):
        text = text.replace("{{" + name + "}}", value)
    return text


def start_nginx(
    prefix: Path,
    listen: str,
    replicas: Sequence[str],
    *,
    binary: str | None = None,
    log: IO[Any] | None = None,
    die_with_parent: bool = False,
) -> subprocess.Popen[bytes]:
    """nginx as an ordinary foreground process: config, pid, logs and temp files in `prefix`."""
    binary = binary or find_binary("nginx")
    if binary is None:
        raise ClusterError("nginx is not installed (apt-get install nginx-light)")
    conf = prefix / "nginx.conf"
    conf.write_text(render_nginx_conf(prefix, listen, replicas))
    args = [binary, "-p", str(prefix), "-e", str(prefix / "error.log"), "-c", str(conf)]
    args += ["-g", "daemon off;"]
    return spawn(args, stdout=log, stderr=log, cwd=prefix, die_with_parent=die_with_parent)


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the child and what it started (nginx's workers, a replica's bundled model): they
    share its process group (see spawn), and a worker outlives a master killed alone."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(5)


def stop(procs: Sequence[subprocess.Popen[bytes]], sig: int, timeout: float) -> None:
    """Signal each once, wait for all up to `timeout` together, then SIGKILL what is left."""
    for proc in procs:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(sig)
    deadline = time.monotonic() + timeout
    for proc in procs:
        try:
            proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            kill_group(proc)


# --- the command ----------------------------------------------------------------------------------


def _listen_address(text: str) -> str:
    host, _, port = text.rpartition(":")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT or PORT, got {text!r}")
    return f"{host or '127.0.0.1'}:{port}"


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m cluster.run",
        description="Redis, several llms replicas and nginx in front, until Ctrl-C.",
    )
    parser.add_argument(
        "config",
        nargs="?",
        default=str(REPO / "config.json"),
        help="the gateway config with the providers (default: the repo's config.json)",
    )
    parser.add_argument(
        "--listen",
        type=_listen_address,
        default="127.0.0.1:8080",
        help="where nginx listens (default 127.0.0.1:8080)",
    )
    parser.add_argument("--replicas", type=int, default=2, help="how many (default 2)")
    parser.add_argument("--log-level", default="info", help="the replicas' log level")
    return parser.parse_args(argv)


class _Stop(Exception):
    pass


def _on_signal(signum: int, frame: object) -> None:
    raise _Stop(signal.Signals(signum).name)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    try:
        config = json.loads(Path(args.config).read_text())
    except (OSError, ValueError) as exc:
        print(f"cluster: cannot read the config {args.config}: {exc}", file=sys.stderr)
        return 2
    if args.replicas < 1:
        print("cluster: --replicas must be at least 1", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    children: dict[str, subprocess.Popen[bytes]] = {}
    with tempfile.TemporaryDirectory(prefix="llms-cluster-") as tmp:
        try:
            return _run(args, config, Path(tmp), children)
        except _Stop as stop_signal:
            print(f"\ncluster: {stop_signal}: stopping", file=sys.stderr)
            return 0
        except ClusterError as exc:
            print(f"cluster: {exc}", file=sys.stderr)
            return 1
        finally:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            _stop_all(children, float(config.get("server", {}).get("drain_s", 10)))
            print("cluster: stopped", file=sys.stderr)


def _stop_all(children: dict[str, subprocess.Popen[bytes]], drain_s: float) -> None:
    """nginx stops accepting and the replicas drain together; Redis goes last."""
    replicas = [proc for name, proc in children.items() if name.startswith("replica")]
    nginx = [children["nginx"]] if "nginx" in children else []
    # SIGQUIT: nginx's graceful stop; its open streams end when the replicas end them.
    for proc in nginx:
        if proc.poll() is None:
            proc.send_signal(signal.SIGQUIT)
    stop(replicas, signal.SIGTERM, drain_s + 10)
    stop(nginx, signal.SIGTERM, 5)
    if "redis" in children:
        stop([children["redis"]], signal.SIGTERM, 5)


def _run(
    args: argparse.Namespace,
    config: dict[str, Any],
    workdir: Path,
    children: dict[str, subprocess.Popen[bytes]],
) -> int:
    redis_port = free_port()
    children["redis"] = start_redis(workdir, redis_port, die_with_parent=True)
    wait_for_redis(redis_port, children["redis"])
    redis_url = f"redis://127.0.0.1:{redis_port}/0"

    config_path = workdir / "replica.json"
    config_path.write_text(json.dumps(replica_config(config, redis_url), indent=2))
    addresses = {}
    for i in range(args.replicas):
        name = f"replica {i + 1}"
        port = free_port()
        children[name] = start_replica(
            config_path,
            port,
            args=["--log-level", args.log_level],
            cwd=Path(args.config).resolve().parent,
            die_with_parent=True,
        )
        addresses[name] = f"127.0.0.1:{port}"
    for name, address in addresses.items():
        wait_http(f"http://{address}/health", children[name], 120, what=f"llms {name}")

    children["nginx"] = start_nginx(
        workdir, args.listen, list(addresses.values()), die_with_parent=True
    )
    wait_http(f"http://{args.listen}/health", children["nginx"], 10, what="nginx")

    print(
        f"cluster: http://{args.listen}/v1 -> nginx -> {', '.join(addresses.values())}\n"
        f"cluster: redis {redis_url}; replica config {config_path}; nginx logs in {workdir}\n"
        "cluster: Ctrl-C stops it",
        file=sys.stderr,
    )
    while True:
        for name, proc in children.items():
            if proc.poll() is not None:
                raise ClusterError(f"{name} exited with {proc.returncode}")
        time.sleep(0.5)


if __name__ == "__main__":
    sys.exit(main())
