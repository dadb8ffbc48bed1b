"""`llms serve --workers N`: real supervisor and worker processes sharing one port.

The launcher, the threaded fake upstream and the stream reader are test_cli.py's. The kernel
spreads connections among the workers (SO_REUSEPORT); a test that needs a given worker opens
connections until one lands there (`X-Worker` on `/health` names the worker's pid) and then sends
its request on that kept-alive connection.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from llms.framing import SSEDecoder
from llms.local import find_model_file
from llms.workers import raise_fd_limit
from tests.cluster import redis_port_fixture  # noqa: F401 (the `redis_port` fixture)
from tests.test_cli import (
    Served,
    StreamResult,
    ThreadedUpstream,
    assert_clean_failure,
    child_env,
    read_stream,
    run_cli,
    start_serve,
    write_config,
)
from tests.upstreams.openai import text_script

MODELS = {"m": "m-up", "slow": "slow-up", "resume": "resume-up", "counted": "m-up"}
SLOW_TEXT = "".join(f"s{i} " for i in range(10))
RESUME_TEXT = "".join(f"r{i} " for i in range(12))
JSON = {"Content-Type": "application/json"}
# The module's gateway also serves the bundled model when it is installed (make test does it).
LOCAL_MODEL = find_model_file("smollm2-135m") is not None
RESUMABLE = {"X-Stream-Resumable": "true", **JSON}


# --- helpers --------------------------------------------------------------------------------------


def config_for(upstream: ThreadedUpstream, workdir: Path, **sections: Any) -> dict[str, Any]:
    return {
        "state": {
            "request_log": f"sqlite:{workdir / 'requests.db'}",
            "responses": {"store": f"sqlite:{workdir / 'responses.db'}"},
        },
        "routing": {"max_attempts": 1},
        "providers": {"fake": {"type": "openai", "base_url": upstream.base_url, "models": MODELS}},
        **sections,
    }


def connect(port: int) -> tuple[http.client.HTTPConnection, int]:
    """A new kept-alive connection and the pid of the worker the kernel gave it to."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/health")
    response = conn.getresponse()
    response.read()
    return conn, int(response.getheader("X-Worker", "0"))


def connect_to(port: int, pid: int | None = None, *, avoid: int | None = None) -> tuple[Any, int]:
    """A connection served by worker `pid` (or by any worker but `avoid`)."""
    for _ in range(200):
        conn, got = connect(port)
        if (pid is None or got == pid) and got != avoid:
            return conn, got
        conn.close()
    pytest.fail(f"200 connections never reached worker {pid} (avoiding {avoid})")


def worker_pids(port: int, count: int = 2, within_s: float = 10.0) -> set[int]:
    """Pids seen on new connections until `count` distinct ones have answered."""
    seen: set[int] = set()
    deadline = time.monotonic() + within_s
    while len(seen) < count and time.monotonic() < deadline:
        try:
            conn, pid = connect(port)
        except (OSError, http.client.HTTPException):
            time.sleep(0.05)
            continue
        conn.close()
        seen.add(pid)
    assert len(seen) >= count, f"only workers {seen} answered within {within_s} s"
    return seen


def chat_body(model: str, **extra: Any) -> str:
    return json.dumps(
        {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": True, **extra}
    )


def post_chat(
    conn: http.client.HTTPConnection, model: str, headers: dict[str, str] | None = None
) -> http.client.HTTPResponse:
    conn.request("POST", "/v1/chat/completions", chat_body(model), headers or JSON)
    return conn.getresponse()


def read_events(
    response: http.client.HTTPResponse, stop_after_chunks: int | None = None
) -> list[tuple[str, str]]:
    """(id, data) of each SSE event, to the end or until `stop_after_chunks` chunks."""
    decoder = SSEDecoder()
    events: list[tuple[str, str]] = []
    for line in response:
        for event in decoder.feed(line):
            events.append((event.id, event.data))
            chunks = [d for _, d in events if d.startswith('{"id"')]
            if stop_after_chunks is not None and len(chunks) >= stop_after_chunks:
                return events
    return events


def text_of(events: list[tuple[str, str]]) -> str:
    out = ""
    for _, data in events:
        if data.startswith('{"id"'):
            for choice in json.loads(data)["choices"]:
                out += choice["delta"].get("content") or ""
    return out


def get_json(port: int, path: str, pid: int) -> Any:
    conn, _ = connect_to(port, pid)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        assert response.status == 200, response.read()
        assert int(response.getheader("X-Worker", "0")) == pid
        return json.loads(response.read())
    finally:
        conn.close()


def scrape(port: int, pid: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    conn, _ = connect_to(port, pid)
    try:
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
    finally:
        conn.close()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def requests_of(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], model: str) -> float:
    return sum(
        value
        for (name, labels), value in samples.items()
        if name == "llms_requests_total" and ("model", model) in labels
    )


def resume_through_another_worker(port: int) -> tuple[int, http.client.HTTPResponse]:
    """Start a resumable stream on one worker, drop it after 3 chunks, resume it through
    another worker to [DONE]; (the first worker's pid, the resumed response)."""
    owner_conn, owner = connect_to(port)
    response = post_chat(owner_conn, "resume", RESUMABLE)
    assert response.status == 200
    stream_id = response.getheader("X-Stream-Id")
    first = read_events(response, stop_after_chunks=3)
    owner_conn.close()  # the client's connection drops mid-answer

    other_conn, _ = connect_to(port, avoid=owner)
    other_conn.request("GET", f"/v1/streams/{stream_id}", headers={"Last-Event-ID": first[-1][0]})
    resumed = other_conn.getresponse()
    assert resumed.status == 200
    assert resumed.getheader("Content-Type", "").startswith("text/event-stream")
    rest = read_events(resumed)
    other_conn.close()
    ids = [int(i) for i, _ in first + rest]
    assert ids == list(range(1, len(ids) + 1)), "no event lost or repeated"
    assert rest[-1][1] == "[DONE]"
    assert text_of(first + rest) == RESUME_TEXT
    return owner, resumed


# --- fixtures -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def upstream() -> Iterator[ThreadedUpstream]:
    server = ThreadedUpstream()
    server.fake.scripts["slow-up"] = text_script([f"s{i} " for i in range(10)], delay_s=0.2)
    server.fake.scripts["resume-up"] = text_script([f"r{i} " for i in range(12)], delay_s=0.12)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def gateway(
    upstream: ThreadedUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    """One `llms serve --workers 2` (memory mode, request log on) for the tests that share it."""
    workdir = tmp_path_factory.mktemp("workers")
    data = config_for(upstream, workdir)
    if LOCAL_MODEL:
        data["providers"]["local"] = {"type": "local", "model": "smollm2-135m", "n_ctx": 1024}
    served = start_serve(write_config(workdir / "config.json", data), workdir, "--workers", "2")
    try:
        served.wait_ready(timeout=60)
        worker_pids(served.port)
        yield served
    finally:
        served.kill()


def _workers_of(supervisor: int) -> list[int]:
    """The live worker processes of a supervisor."""
    return _children({supervisor}, b"--worker-index")


# --- tests ----------------------------------------------------------------------------------------


def test_two_workers_share_the_port_and_both_serve(gateway: Served) -> None:
    pids = worker_pids(gateway.port)
    assert gateway.proc.pid not in pids, "the supervisor itself must not serve"
    assert sorted(pids) == sorted(_workers_of(gateway.proc.pid))
    for pid in pids:
        conn, _ = connect_to(gateway.port, pid)
        response = post_chat(conn, "m")
        assert response.status == 200
        assert int(response.getheader("X-Worker", "0")) == pid
        result = read_stream(response)
        assert (result.text, result.done, result.errors) == ("Hello, world!", True, [])
        conn.close()
    stderr = gateway.stderr()
    assert "llms serving on http://127.0.0.1:" in stderr
    assert "with 2 workers" in stderr
    assert re.search(r"open files limit: (\d+|unlimited) per process", stderr), stderr
    assert "Traceback" not in stderr


@pytest.mark.skipif(not LOCAL_MODEL, reason="the bundled model is not installed (make test does)")
def test_the_bundled_model_runs_once_for_every_worker(gateway: Served) -> None:
    pids = worker_pids(gateway.port)
    for pid in pids:
        deadline = time.monotonic() + 5
        while get_json(gateway.port, "/ready", pid)["providers"]["local"]["state"] != "ok":
            assert time.monotonic() < deadline, f"worker {pid} never heard the model is up"
            time.sleep(0.05)
        conn, _ = connect_to(gateway.port, pid)
        conn.request("POST", "/v1/chat/completions", chat_body("smollm2-135m", max_tokens=3), JSON)
        response = conn.getresponse()
        assert response.status == 200
        assert int(response.getheader("X-Worker", "0")) == pid
        assert read_stream(response).done
        conn.close()
    assert len(_children({gateway.proc.pid}, b"llms.local")) == 1, "one llama.cpp, run once"
    assert not _children(pids, b"llms.local"), "no worker runs one"


def test_usage_and_metrics_report_every_worker(gateway: Served) -> None:
    pids = sorted(worker_pids(gateway.port))
    per_worker = 3
    for pid in pids:
        conn, _ = connect_to(gateway.port, pid)
        for _ in range(per_worker):
            result = read_stream(post_chat(conn, "counted"))
            assert result.done and not result.errors
        conn.close()
    total = per_worker * len(pids)
    # Each worker writes its rows a moment later (its own queue): poll until all are there.
    deadline = time.monotonic() + 5
    counted: list[int] = []
    while time.monotonic() < deadline:
        counted = []
        for pid in pids:
            usage = get_json(gateway.port, "/api/usage?group_by=model", pid)
            counted.append(sum(g["requests"] for g in usage["data"] if g["group"] == "counted"))
        if counted == [total] * len(pids):
            break
        time.sleep(0.1)
    assert counted == [total] * len(pids), "/api/usage must count every worker's requests"
    for pid in pids:
        samples = scrape(gateway.port, pid)
        assert requests_of(samples, "counted") == total, f"worker {pid}'s /metrics"
        assert samples[("llms_active_streams", ())] == 0


def test_resume_and_cancel_reach_the_worker_that_holds_the_stream(gateway: Served) -> None:
    """Memory mode: the stream lives in one worker; resume and cancel through the other."""
    assert len(list(_runtime_dir(gateway).glob("worker-*.sock"))) == 2
    owner, resumed = resume_through_another_worker(gateway.port)
    assert int(resumed.getheader("X-Worker", "0")) == owner, "relayed from the stream's worker"

    # Cancel, through the other worker, a stream named by the client.
    chosen = "workers-test-cancel-0001"
    owner_conn, _ = connect_to(gateway.port, owner)
    response = post_chat(owner_conn, "resume", {**RESUMABLE, "X-Stream-Id": chosen})
    assert response.status == 200
    read_events(response, stop_after_chunks=2)
    other_conn, _ = connect_to(gateway.port, avoid=owner)
    other_conn.request("POST", f"/v1/streams/{chosen}/cancel")
    cancelled = other_conn.getresponse()
    assert cancelled.status == 200
    assert json.loads(cancelled.read())["status"] == "cancelled"
    tail = read_events(response)
    owner_conn.close()
    errors = [json.loads(d)["error"] for _, d in tail if d.startswith('{"error"')]
    assert [e["code"] for e in errors] == ["cancelled"]
    assert tail[-1][1] == "[DONE]"

    # A stream no worker holds is still a plain 404 (the siblings' misses are not relayed).
    other_conn.request("GET", "/v1/streams/no-such-stream-0000000")
    missing = other_conn.getresponse()
    assert missing.status == 404
    assert json.loads(missing.read())["error"]["code"] == "stream_not_found"
    other_conn.close()


def response_events(
    response: http.client.HTTPResponse, stop_after_deltas: int | None = None
) -> list[dict[str, Any]]:
    """The Responses events of a stream (each `event:` type checked against its data)."""
    decoder = SSEDecoder()
    events: list[dict[str, Any]] = []
    for line in response:
        for event in decoder.feed(line):
            data = json.loads(event.data)
            assert data["type"] == event.event
            events.append(data)
            deltas = [e for e in events if e["type"] == "response.output_text.delta"]
            if stop_after_deltas is not None and len(deltas) >= stop_after_deltas:
                return events
    return events


def test_background_responses_resume_and_cancel_through_another_worker(gateway: Served) -> None:
    """Memory mode: a background response's stream lives in one worker; its events resume and
    it is cancelled through the other, and any worker reads its stored state (one SQLite file)."""
    owner_conn, owner = connect_to(gateway.port)
    body = {"model": "resume", "input": "hi", "background": True, "stream": True}
    owner_conn.request("POST", "/v1/responses", json.dumps(body), JSON)
    response = owner_conn.getresponse()
    assert response.status == 200
    first = response_events(response, stop_after_deltas=3)
    owner_conn.close()  # the client's connection drops mid-answer
    response_id = first[0]["response"]["id"]
    other_conn, _ = connect_to(gateway.port, avoid=owner)
    after = first[-1]["sequence_number"]
    other_conn.request("GET", f"/v1/responses/{response_id}?stream=true&starting_after={after}")
    resumed = other_conn.getresponse()
    assert resumed.status == 200
    assert int(resumed.getheader("X-Worker", "0")) == owner, "relayed from the stream's worker"
    rest = response_events(resumed)
    events = first + rest
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert events[-1]["type"] == "response.completed"
    text = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    assert text == RESUME_TEXT
    other_conn.request("GET", f"/v1/responses/{response_id}")
    stored = json.loads(other_conn.getresponse().read())
    assert stored["status"] == "completed"
    other_conn.close()

    owner_conn, _ = connect_to(gateway.port, owner)
    body = {"model": "slow", "input": "hi", "background": True}
    owner_conn.request("POST", "/v1/responses", json.dumps(body), JSON)
    queued = json.loads(owner_conn.getresponse().read())
    assert queued["status"] == "queued"
    other_conn, _ = connect_to(gateway.port, avoid=owner)
    other_conn.request("POST", f"/v1/responses/{queued['id']}/cancel")
    cancelled = other_conn.getresponse()
    assert cancelled.status == 200
    assert json.loads(cancelled.read())["status"] == "cancelled"
    owner_conn.close()
    other_conn.close()


def test_a_stored_response_is_found_by_another_worker_as_its_stream_ends(gateway: Served) -> None:
    """With `--workers N` a stored answer's stream ends only once the write landed (a worker
    alone on its file writes behind the end instead): the other worker reads it at once."""
    conn, first = connect(gateway.port)
    other_conn, _ = connect_to(gateway.port, avoid=first)
    for _ in range(10):
        body = {"model": "m", "input": "hi", "stream": True}
        conn.request("POST", "/v1/responses", json.dumps(body), JSON)
        events = response_events(conn.getresponse())
        assert events[-1]["type"] == "response.completed"
        response_id = events[-1]["response"]["id"]
        other_conn.request("GET", f"/v1/responses/{response_id}")
        found = other_conn.getresponse()
        assert found.status == 200, found.read()
        assert json.loads(found.read())["status"] == "completed"
    conn.close()
    other_conn.close()


def test_with_redis_every_worker_is_a_replica(
    upstream: ThreadedUpstream, redis_port: int, tmp_path: Path
) -> None:
    """Redis mode: the resuming worker reads the stream from Redis itself, nothing is relayed."""
    state = {"request_log": None, "redis_url": f"redis://127.0.0.1:{redis_port}/0"}
    config = write_config(tmp_path / "config.json", config_for(upstream, tmp_path, state=state))
    served = start_serve(config, tmp_path, "--workers", "2")
    try:
        served.wait_ready()
        owner, resumed = resume_through_another_worker(served.port)
        assert int(resumed.getheader("X-Worker", "0")) != owner, "served by the other worker"
        replicas = set()
        for pid in worker_pids(served.port):
            conn, _ = connect_to(served.port, pid)
            conn.request("GET", "/health")
            response = conn.getresponse()
            response.read()
            replicas.add(response.getheader("X-Replica"))
            conn.close()
        assert len(replicas) == 2 and None not in replicas
        assert not list(_runtime_dir(served).glob("*.sock")), "no sibling sockets"
        assert served.stop() == 0, served.stderr()
    finally:
        served.kill()


def test_a_killed_worker_is_restarted(gateway: Served) -> None:
    before = worker_pids(gateway.port)
    victim = min(before)
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while _alive(victim) and time.monotonic() < deadline:
        time.sleep(0.01)
    # The kernel closes a dead process's listening socket a moment after its death (a deferred
    # close); a connection it hands that socket meanwhile is reset, as the README says.
    time.sleep(0.1)
    # The survivor serves meanwhile.
    survivor = (before - {victim}).pop()
    conn, _ = connect_to(gateway.port, survivor)
    assert read_stream(post_chat(conn, "m")).done
    conn.close()
    deadline = time.monotonic() + 10
    after: set[int] = set()
    while time.monotonic() < deadline:
        after = set(_workers_of(gateway.proc.pid))
        if len(after) == 2 and victim not in after:
            break
        time.sleep(0.05)
    assert len(after) == 2 and victim not in after, after
    replacement = (after - before).pop()
    assert worker_pids(gateway.port) == after
    conn, _ = connect_to(gateway.port, replacement)
    result = read_stream(post_chat(conn, "m"))
    assert (result.text, result.done) == ("Hello, world!", True)
    conn.close()
    logged = rf"worker \d \(pid {victim}\) exited with signal 9; restarting it in"
    assert re.search(logged, gateway.stderr()), gateway.stderr()
    if LOCAL_MODEL:
        assert len(_children({gateway.proc.pid}, b"llms.local")) == 1, "still the same one"


def test_workers_stop_when_the_supervisor_is_killed(gateway: Served) -> None:
    """kill -9 of the supervisor: each worker sees its control pipe close, drains and exits."""
    models = _children({gateway.proc.pid}, b"llms.local")
    children = worker_pids(gateway.port) | set(models)
    # What a killed supervisor cannot remove; the test does.
    leftovers = [_runtime_dir(gateway)]
    leftovers += [Path(os.readlink(f"/proc/{pid}/fd/2")).parent for pid in models]
    gateway.kill()
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(_alive(pid) for pid in children):
            time.sleep(0.05)
        assert not any(_alive(pid) for pid in children), "a child outlived its supervisor"
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", gateway.port)) != 0, "the port is free again"
    finally:
        for path in leftovers:
            shutil.rmtree(path, ignore_errors=True)


def _runtime_dir(served: Served) -> Path:
    """The supervisor's runtime directory, from a worker's command line."""
    worker = _workers_of(served.proc.pid)[0]
    argv = Path(f"/proc/{worker}/cmdline").read_bytes().decode().split("\0")
    return Path(argv[argv.index("--runtime-dir") + 1])


def _alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status


def test_sigterm_drains_every_worker_and_exits_0(
    upstream: ThreadedUpstream, tmp_path: Path
) -> None:
    config = write_config(tmp_path / "config.json", config_for(upstream, tmp_path))
    served = start_serve(config, tmp_path, "--workers", "2")
    try:
        served.wait_ready()
        pids = sorted(worker_pids(served.port))
        results: dict[int, StreamResult] = {}
        started = threading.Barrier(len(pids) + 1, timeout=10)

        def stream_on(pid: int) -> None:
            conn, _ = connect_to(served.port, pid)
            results[pid] = read_stream(post_chat(conn, "slow"), on_first_piece=started.wait)
            conn.close()

        threads = [threading.Thread(target=stream_on, args=(pid,)) for pid in pids]
        for thread in threads:
            thread.start()
        started.wait()  # a stream in flight on every worker
        signalled = time.monotonic()
        code = served.stop(signal.SIGTERM, timeout=15)
        for thread in threads:
            thread.join(10)
        assert code == 0, served.stderr()
        for pid in pids:
            result = results[pid]
            assert (result.text, result.done, result.errors) == (SLOW_TEXT, True, [])
        assert time.monotonic() - signalled > 1.0, "the streams cannot have been in flight"
        assert not _workers_of(served.proc.pid)
        stderr = served.stderr()
        assert stderr.count("stopping: finishing in-flight streams") == 2, stderr
        assert "Traceback" not in stderr
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", served.port)) != 0, "nothing listens any more"
    finally:
        served.kill()


@pytest.mark.parametrize(
    ("args", "env"),
    [(["--workers", "0"], {}), (["--workers", "-2"], {}), ([], {"LLMS_WORKERS": "none"})],
    ids=["zero", "negative", "env"],
)
def test_a_bad_number_of_workers_is_a_usage_error(
    upstream: ThreadedUpstream, tmp_path: Path, args: list[str], env: dict[str, str]
) -> None:
    config = write_config(tmp_path / "config.json", config_for(upstream, tmp_path))
    proc = run_cli("serve", "--config", str(config), *args, env=child_env(**env), cwd=tmp_path)
    assert_clean_failure(proc, 2)
    assert "--workers" in proc.stderr


@pytest.mark.parametrize("reuse_port", [False, True], ids=["plain", "another-gateway"])
def test_a_busy_port_fails_at_once(
    upstream: ThreadedUpstream, tmp_path: Path, reuse_port: bool
) -> None:
    """Also when the port is held with SO_REUSEPORT (the workers would silently join it)."""
    config = write_config(tmp_path / "config.json", config_for(upstream, tmp_path))
    with socket.socket() as busy:
        if reuse_port:
            busy.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = str(busy.getsockname()[1])
        proc = run_cli(
            "serve", "--config", str(config), "--port", port, "--workers", "2", cwd=tmp_path
        )
    assert_clean_failure(proc, 1)
    assert f"cannot listen on 127.0.0.1:{port}" in proc.stderr
    assert "worker" not in proc.stderr, "no worker was started"


def test_raise_fd_limit_lifts_the_soft_limit_to_the_hard_one() -> None:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    lower = min(soft, 256)
    resource.setrlimit(resource.RLIMIT_NOFILE, (lower, hard))
    try:
        assert raise_fd_limit() == (lower, hard)
        assert resource.getrlimit(resource.RLIMIT_NOFILE) == (hard, hard)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def _children(parents: set[int], needle: bytes) -> list[int]:
    """Live processes whose parent is in `parents` and whose command line holds `needle`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            status = (entry / "status").read_text()
        except OSError:
            continue
        ppid = re.search(r"^PPid:\s+(\d+)", status, re.M)
        state = re.search(r"^State:\s+(\w)", status, re.M)
        if (
            ppid is not None
            and int(ppid.group(1)) in parents
            and needle in cmdline
            and (state is None or state.group(1) != "Z")
        ):
            found.append(int(entry.name))
    return found
