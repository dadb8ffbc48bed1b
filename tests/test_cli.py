"""The real command line, run as subprocesses: serve, chat, models, check.

A FakeOpenAI upstream runs in a thread of the test process; each `llms serve` is a real child
process on a free port with a temp config pointing at that upstream. Every wait is bounded and
every child is killed at teardown.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from tests.upstreams.openai import FakeOpenAI, Script, chunk, error_script, sse, text_script

SECRET = "sk-canary-7f3e9d1c5b2a"
STARTUP_S = 20.0
JSON = {"Content-Type": "application/json"}
MODELS = {"test-model": "up-model", **{m: f"{m}-up" for m in ("other", "slow", "long", "late")}}
MODELS["cut"] = "cut-up"


# --- helpers ------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def child_env(**extra: str) -> dict[str, str]:
    """The test's environment without any LLMS_* setting that would change the CLI's defaults."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMS_")}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def run_cli(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "llms", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env or child_env(),
        cwd=cwd,
    )


def write_config(path: Path, data: Any) -> Path:
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


class ThreadedUpstream:
    """A FakeOpenAI on its own event loop in a daemon thread, so tests can stay synchronous."""

    def __init__(self) -> None:
        self.fake = FakeOpenAI()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.runner: web.AppRunner | None = None
        self.port = 0

    def start(self) -> None:
        self.thread.start()
        self.port = asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)

    async def _start(self) -> int:
        self.runner = web.AppRunner(self.fake.app, shutdown_timeout=1)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", 0).start()
        return int(self.runner.addresses[0][1])

    def stop(self) -> None:
        if self.runner is not None:
            asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        asyncio.run_coroutine_threadsafe(self._cancel_leftovers(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()

    @staticmethod
    async def _cancel_leftovers() -> None:
        """Scripts still sleeping for a client that is long gone."""
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def received(self, upstream_model: str) -> list[Any]:
        return [r for r in list(self.fake.received) if r.body.get("model") == upstream_model]


@dataclass
class Served:
    """One `llms serve` child process."""

    proc: subprocess.Popen[bytes]
    port: int
    stderr_path: Path
    stdout_path: Path
    signalled: bool = False

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    @property
    def base_url(self) -> str:
        return self.url("/v1")

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_ready(self, timeout: float = STARTUP_S) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                pytest.fail(f"llms serve exited with {self.proc.returncode}:\n{self.stderr()}")
            try:
                with urllib.request.urlopen(self.url("/ready"), timeout=1) as response:
                    if response.status == 200:
                        return dict(json.loads(response.read()))
            except (OSError, http.client.HTTPException):
                pass
            time.sleep(0.05)
        pytest.fail(f"llms serve was not ready within {timeout} s:\n{self.stderr()}")

    def send(self, sig: int = signal.SIGTERM) -> None:
        self.proc.send_signal(sig)
        self.signalled = True

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 5.0) -> int:
        """Signal once (a second SIGTERM after the loop closed would kill it); the exit code."""
        if self.alive() and not self.signalled:
            self.send(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"llms serve did not exit within {timeout} s of signal {sig}")

    def kill(self) -> None:
        if self.alive():
            self.proc.kill()
            self.proc.wait(10)


ServeFactory = Callable[..., Served]


def start_serve(
    config: Path, workdir: Path, *args: str, env: dict[str, str] | None = None
) -> Served:
    port = free_port()
    n = len(list(workdir.glob("serve-*.err")))
    err, out = workdir / f"serve-{n}.err", workdir / f"serve-{n}.out"
    command = [sys.executable, "-m", "llms", "serve", "--config", str(config)]
    with err.open("wb") as err_file, out.open("wb") as out_file:
        proc = subprocess.Popen(
            [*command, "--port", str(port), *args],
            stdout=out_file,
            stderr=err_file,
            stdin=subprocess.DEVNULL,
            env=env or child_env(),
            cwd=workdir,
        )
    return Served(proc, port, err, out)


def send_chat(port: int, model: str, *, stream: bool = True) -> http.client.HTTPConnection:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": stream}
    conn.request("POST", "/v1/chat/completions", json.dumps(body), JSON)
    return conn


def chat_request(port: int, model: str) -> http.client.HTTPResponse:
    return send_chat(port, model).getresponse()


@dataclass
class StreamResult:
    text: str = ""
    pieces: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    done: bool = False
    after_done: bool = False


def read_stream(
    response: http.client.HTTPResponse, *, on_first_piece: Callable[[], None] | None = None
) -> StreamResult:
    """Read `data:` events to the end of the body; `on_first_piece` runs after the first token."""
    result = StreamResult()
    for raw in response:
        line = raw.decode().rstrip("\r\n")
        if not line.startswith("data: "):
            continue
        data = line[len("data: ") :]
        if result.done:
            result.after_done = True
        if data == "[DONE]":
            result.done = True
            continue
        event = json.loads(data)
        if "error" in event:
            result.errors.append(event["error"])
            continue
        for choice in event.get("choices", []):
            text = choice["delta"].get("content")
            if text:
                result.text += text
                result.pieces += 1
                if result.pieces == 1 and on_first_piece is not None:
                    on_first_piece()
    return result


def get_status(url: str, headers: dict[str, str] | None = None) -> int:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def serve_once(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`llms serve` that is expected to refuse to start."""
    port = str(free_port())
    return run_cli("serve", "--config", str(config), "--port", port, *args, cwd=config.parent)


def stream_and_terminate(served: Served, model: str) -> tuple[StreamResult, float]:
    """Stream `model`, SIGTERM the gateway after the first token; seconds from signal to end."""
    response = chat_request(served.port, model)
    assert response.status == 200
    signalled: list[float] = []

    def terminate() -> None:
        served.send()
        signalled.append(time.monotonic())

    result = read_stream(response, on_first_piece=terminate)
    assert signalled, "the stream never produced a token"
    return result, time.monotonic() - signalled[0]


def assert_clean_failure(proc: subprocess.CompletedProcess[str], code: int | None = None) -> None:
    """A non-zero exit, a message, and no Python traceback."""
    assert proc.returncode != 0 if code is None else proc.returncode == code, proc.stderr
    assert proc.stderr.strip(), "no message on stderr"
    assert "Traceback" not in proc.stderr, proc.stderr


# --- fixtures -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def upstream() -> Iterator[ThreadedUpstream]:
    server = ThreadedUpstream()
    server.fake.scripts["slow-up"] = text_script([f"p{i} " for i in range(12)], delay_s=0.25)
    server.fake.scripts["long-up"] = text_script([f"p{i} " for i in range(40)], delay_s=0.25)
    server.fake.scripts["late-up"] = text_script(["late"], first_delay_s=8)
    cut = sse(
        chunk({"role": "assistant", "content": ""}),
        chunk({"content": "Hel"}),
        chunk({"content": "lo"}),
    )
    server.fake.scripts["cut-up"] = Script(writes=cut, fault="reset")
    server.fake.scripts["broken-up"] = error_script(500, {"error": {"message": "upstream boom"}})
    server.start()
    try:
        yield server
    finally:
        server.stop()


def fake_provider(upstream: ThreadedUpstream, **extra: Any) -> dict[str, Any]:
    return {"type": "openai", "base_url": upstream.base_url, "models": MODELS, **extra}


def base_config(upstream: ThreadedUpstream, **sections: Any) -> dict[str, Any]:
    return {
        "state": {"request_log": None},
        "routing": {"max_attempts": 1},
        "providers": {"fake": fake_provider(upstream)},
        **sections,
    }


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[ServeFactory]:
    """Start `llms serve` for a config dict; every child is killed at teardown."""
    started: list[Served] = []

    def start(config: dict[str, Any], *args: str, env: dict[str, str] | None = None) -> Served:
        path = write_config(tmp_path / f"config-{len(started)}.json", config)
        served = start_serve(path, tmp_path, *args, env=env)
        started.append(served)
        return served

    try:
        yield start
    finally:
        for served in started:
            served.kill()


@pytest.fixture(scope="module")
def gateway(
    upstream: ThreadedUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    """One gateway shared by the client-command tests."""
    workdir = tmp_path_factory.mktemp("gateway")
    config = write_config(workdir / "config.json", base_config(upstream))
    served = start_serve(config, workdir)
    try:
        served.wait_ready()
        yield served
    finally:
        served.kill()


# --- serve: lifecycle ---------------------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_serve_starts_stays_up_streams_and_stops_on_signal(
    upstream: ThreadedUpstream, serve: ServeFactory, sig: int
) -> None:
    served = serve(base_config(upstream))
    ready = served.wait_ready()
    assert ready["status"] == "ready"
    assert list(ready["providers"]) == ["fake"]
    time.sleep(0.5)
    assert served.alive(), f"llms serve exited right after start:\n{served.stderr()}"

    before = len(upstream.received("up-model"))
    response = chat_request(served.port, "test-model")
    assert response.status == 200
    assert response.getheader("Content-Type", "").startswith("text/event-stream")
    result = read_stream(response)
    assert result.text == "Hello, world!"
    assert result.done
    assert not result.errors
    assert not result.after_done
    assert len(upstream.received("up-model")) == before + 1, "the upstream was not asked"
    assert served.alive()
    assert get_status(served.url("/health")) == 200

    started = time.monotonic()
    assert served.stop(sig) == 0, served.stderr()
    assert time.monotonic() - started < 5
    stderr = served.stderr()
    assert "llms serving on http://127.0.0.1:" in stderr
    assert "Traceback" not in stderr, stderr


def test_sigterm_lets_an_in_flight_stream_finish(
    upstream: ThreadedUpstream, serve: ServeFactory
) -> None:
    """Default drain (10 s) is longer than the remaining ~3 s of the stream: it ends normally."""
    served = serve(base_config(upstream))
    served.wait_ready()
    result, after_signal = stream_and_terminate(served, "slow")
    assert result.text == "".join(f"p{i} " for i in range(12))
    assert result.done, result
    assert not result.errors, result
    assert after_signal > 1.5, "the stream cannot have been in flight at SIGTERM"
    assert served.stop(timeout=5) == 0, served.stderr()
    assert "Traceback" not in served.stderr()


def test_sigterm_after_drain_timeout_ends_stream_with_error_event(
    upstream: ThreadedUpstream, serve: ServeFactory
) -> None:
    """`server.drain_s: 0.5` and a 10 s stream: an error event, then [DONE], then exit 0."""
    served = serve(base_config(upstream, server={"drain_s": 0.5}))
    served.wait_ready()
    gone_before = len(upstream.fake.gone)
    result, after_signal = stream_and_terminate(served, "long")
    assert 1 <= result.pieces < 40
    assert len(result.errors) == 1, result
    assert result.errors[0]["message"]
    assert result.done
    assert not result.after_done
    assert after_signal < 4, "the stream was not cut after drain_s"
    assert served.stop(timeout=5) == 0, served.stderr()
    deadline = time.monotonic() + 3
    while len(upstream.fake.gone) == gone_before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(upstream.fake.gone) > gone_before, "the upstream request was never closed"


@pytest.mark.parametrize(
    ("stream", "heartbeat_s"),
    [(True, 15), (True, 0.2), (False, 15)],
    ids=["stream", "stream-after-heartbeat", "non-stream"],
)
def test_sigterm_while_waiting_for_first_token_answers_with_an_error(
    upstream: ThreadedUpstream, serve: ServeFactory, stream: bool, heartbeat_s: float
) -> None:
    served = serve(base_config(upstream, server={"drain_s": 0.5, "heartbeat_s": heartbeat_s}))
    served.wait_ready()
    conn = send_chat(served.port, "late", stream=stream)
    time.sleep(0.5)  # the gateway is now waiting for the upstream's first chunk (8 s away)
    served.send()
    try:
        response = conn.getresponse()
        status = response.status
        try:
            payload = response.read().decode()
        except http.client.IncompleteRead as exc:
            payload = exc.partial.decode() + "<body cut short>"
    except (http.client.HTTPException, ConnectionError) as exc:
        status, payload = 0, repr(exc)
    finally:
        assert served.stop(timeout=5) == 0
    if status == 200 and stream:
        assert '"error"' in payload, payload
        assert payload.endswith("data: [DONE]\n\n"), payload
    else:
        assert status == 503, (status, payload)


def test_serve_refuses_a_port_in_use(upstream: ThreadedUpstream, serve: ServeFactory) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        served = serve(base_config(upstream), "--port", str(port))
        code = served.proc.wait(STARTUP_S)
    assert code == 1
    assert "cannot listen" in served.stderr()
    assert "Traceback" not in served.stderr()


BAD_ARGUMENTS = [
    pytest.param(["--port", "70000"], id="port-too-big"),
    pytest.param(["--port", "-5"], id="port-negative"),
    pytest.param(["--log-level", "bogus"], id="log-level"),
]


@pytest.mark.parametrize("args", BAD_ARGUMENTS)
def test_serve_bad_argument_fails_cleanly(
    upstream: ThreadedUpstream, tmp_path: Path, args: list[str]
) -> None:
    config = write_config(tmp_path / "ok.json", base_config(upstream))
    proc = run_cli("serve", "--config", str(config), *args, cwd=tmp_path, timeout=STARTUP_S)
    assert_clean_failure(proc)


# --- serve: config mistakes ---------------------------------------------------------------------


def _provider(**changes: Any) -> dict[str, Any]:
    provider = {"type": "openai", "base_url": "http://127.0.0.1:9/v1", "models": ["m"]}
    provider.update(changes)
    return {"providers": {"x": provider}}


CONFIG_MISTAKES = {
    "unknown-type": (_provider(type="openia"), "providers.x.type"),
    "wrong-json-type": ({**_provider(), "routing": {"max_attempts": "3"}}, "routing.max_attempts"),
    "bad-url": (_provider(base_url="ftp://x"), "providers.x.base_url"),
    "unknown-key": (_provider(modles=["m"]), "providers.x.modles"),
    "top-level-typo": ({**_provider(), "routnig": {}}, "routnig"),
    "key-model-served-by-nobody": (
        {**_provider(), "server": {"api_keys": [{"key": "sk-1", "models": ["nope"]}]}},
        "server.api_keys[0].models",
    ),
    "not-json": ('{"providers": {"x": ', "not valid JSON"),
}


@pytest.mark.parametrize("case", list(CONFIG_MISTAKES), ids=list(CONFIG_MISTAKES))
def test_config_mistake_exits_2_with_one_line_naming_the_path(case: str, tmp_path: Path) -> None:
    data, expected = CONFIG_MISTAKES[case]
    config = write_config(tmp_path / "broken.json", data)
    proc = serve_once(config)
    assert_clean_failure(proc, 2)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert expected in lines[0]
    assert str(config) in lines[0]


def test_missing_config_file_exits_2(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.json"
    for command in ("serve", "check"):
        proc = run_cli(command, "--config", str(missing), cwd=tmp_path)
        assert_clean_failure(proc, 2)
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert str(missing) in proc.stderr
        assert "cannot read" in proc.stderr


def test_llms_config_env_is_the_default_config(tmp_path: Path) -> None:
    config = write_config(tmp_path / "env.json", _provider(type="nope"))
    proc = run_cli(
        "serve", "--port", str(free_port()), cwd=tmp_path, env=child_env(LLMS_CONFIG=str(config))
    )
    assert_clean_failure(proc, 2)
    assert str(config) in proc.stderr
    assert "providers.x.type" in proc.stderr


# --- serve: environment variables and secrets ---------------------------------------------------


def test_provider_with_unset_key_variable_is_skipped_with_one_line(
    upstream: ThreadedUpstream, serve: ServeFactory
) -> None:
    config = base_config(upstream)
    config["providers"] = {
        "keyed": fake_provider(upstream, api_key="$LLMS_TEST_UNSET_VAR", models=["keyed-model"]),
        **config["providers"],
    }
    served = serve(config)
    ready = served.wait_ready()
    assert list(ready["providers"]) == ["fake"]
    mentions = [line for line in served.stderr().splitlines() if "LLMS_TEST_UNSET_VAR" in line]
    assert len(mentions) == 1, served.stderr()
    assert "keyed" in mentions[0]
    with urllib.request.urlopen(served.url("/v1/models"), timeout=5) as response:
        models = {card["id"] for card in json.loads(response.read())["data"]}
    assert "keyed-model" not in models
    assert "test-model" in models
    assert served.stop() == 0


def test_key_variable_value_never_reaches_the_logs(
    upstream: ThreadedUpstream, serve: ServeFactory
) -> None:
    config = base_config(upstream)
    config["providers"] = {
        "keyed": fake_provider(
            upstream,
            api_key="$LLMS_TEST_UPSTREAM_KEY",
            models={"keyed-model": "keyed-up", "broken": "broken-up"},
        )
    }
    served = serve(config, "--log-level", "debug", env=child_env(LLMS_TEST_UPSTREAM_KEY=SECRET))
    served.wait_ready()
    result = read_stream(chat_request(served.port, "keyed-model"))
    assert result.done
    assert not result.errors
    seen = upstream.received("keyed-up")
    assert seen
    assert seen[-1].headers.get("Authorization") == f"Bearer {SECRET}"
    broken = chat_request(served.port, "broken")
    assert broken.status >= 500
    broken.read()
    assert served.stop() == 0
    logs = served.stderr() + served.stdout()
    assert "LLMS_TEST_UPSTREAM_KEY" not in logs
    assert SECRET not in logs


# --- serve: binding beyond loopback -------------------------------------------------------------


def test_non_loopback_host_without_api_keys_is_refused(
    upstream: ThreadedUpstream, tmp_path: Path
) -> None:
    config = write_config(tmp_path / "open.json", base_config(upstream))
    proc = serve_once(config, "--host", "0.0.0.0")
    assert_clean_failure(proc, 2)
    assert "--insecure-no-auth" in proc.stderr


def test_non_loopback_host_with_insecure_no_auth_starts(
    upstream: ThreadedUpstream, serve: ServeFactory
) -> None:
    served = serve(base_config(upstream), "--host", "0.0.0.0", "--insecure-no-auth")
    try:
        served.wait_ready()
        assert get_status(served.url("/v1/models")) == 200
    finally:
        assert served.stop() == 0


def test_non_loopback_host_with_api_keys_starts_and_requires_a_key(
    upstream: ThreadedUpstream, serve: ServeFactory
) -> None:
    key = "sk-gateway-test-key"
    config = base_config(upstream, server={"api_keys": ["$LLMS_TEST_GATEWAY_KEY"]})
    served = serve(config, "--host", "0.0.0.0", env=child_env(LLMS_TEST_GATEWAY_KEY=key))
    try:
        served.wait_ready()
        assert get_status(served.url("/v1/models")) == 401
        assert get_status(served.url("/v1/models"), {"Authorization": f"Bearer {key}"}) == 200
        models = run_cli("models", "--base-url", served.base_url, "--api-key", key)
        assert models.returncode == 0, models.stderr
        assert "test-model" in models.stdout
        chat_args = ["chat", "--base-url", served.base_url, "-m", "test-model", "hi"]
        chat = run_cli(*chat_args, env=child_env(LLMS_API_KEY=key))
        assert chat.returncode == 0, chat.stderr
        assert chat.stdout.strip() == "Hello, world!"
        denied = run_cli("models", "--base-url", served.base_url)
        assert_clean_failure(denied)
        assert "HTTP 401" in denied.stderr
    finally:
        assert served.stop() == 0


def test_non_loopback_host_with_all_key_variables_unset_is_refused(
    upstream: ThreadedUpstream, tmp_path: Path
) -> None:
    """An unset `$VAR` key does not count as auth: the open bind is still refused."""
    config = write_config(
        tmp_path / "unset.json",
        base_config(upstream, server={"api_keys": ["$LLMS_TEST_NO_SUCH_KEY"]}),
    )
    proc = serve_once(config, "--host", "0.0.0.0")
    assert_clean_failure(proc, 2)
    assert "--insecure-no-auth" in proc.stderr


# --- chat and models ----------------------------------------------------------------------------

SUMMARY = re.compile(r"first token \d+ ms, [\d.]+ tokens/s")


@pytest.mark.parametrize("model", [["-m", "test-model"], []], ids=["explicit", "first-served"])
def test_chat_streams_tokens_to_stdout_and_a_summary_to_stderr(
    gateway: Served, model: list[str]
) -> None:
    proc = run_cli("chat", "--base-url", gateway.base_url, *model, "hi")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "Hello, world!"
    summary = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(summary) == 1, proc.stderr
    assert SUMMARY.search(summary[0]), summary[0]
    assert "test-model" in summary[0]


def test_chat_against_nothing_listening_fails_cleanly() -> None:
    base_url = f"http://127.0.0.1:{free_port()}/v1"
    for args in (["chat", "-m", "test-model", "hi"], ["chat", "hi"], ["models"]):
        proc = run_cli(*args, "--base-url", base_url)
        assert_clean_failure(proc)
        assert "cannot reach the gateway" in proc.stderr
        assert proc.stdout == ""


def test_chat_unknown_model_prints_the_gateways_message(gateway: Served) -> None:
    proc = run_cli("chat", "--base-url", gateway.base_url, "-m", "no-such-model", "hi")
    assert_clean_failure(proc)
    assert "HTTP 404" in proc.stderr
    assert "The model `no-such-model` does not exist" in proc.stderr
    assert proc.stdout == ""


def test_chat_reports_a_stream_that_fails_midway(gateway: Served) -> None:
    """The upstream resets after two tokens: the gateway's error event is shown, exit 1."""
    proc = run_cli("chat", "--base-url", gateway.base_url, "-m", "cut", "hi")
    assert_clean_failure(proc, 1)
    assert proc.stdout.strip() == "Hello"
    assert "the stream failed" in proc.stderr
    assert "tokens/s" not in proc.stderr


def test_models_lists_the_models(gateway: Served) -> None:
    proc = run_cli("models", "--base-url", gateway.base_url)
    assert proc.returncode == 0, proc.stderr
    rows = [line.split("\t") for line in proc.stdout.splitlines()]
    assert {row[0] for row in rows} == set(MODELS)
    assert all(row[1] == "fake" for row in rows)


@pytest.fixture
def hang_up_port() -> Iterator[int]:
    """A TCP port that accepts connections and closes them at once (not an HTTP server)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve_forever() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            conn.recv(65536)
            conn.close()

    thread = threading.Thread(target=serve_forever, daemon=True)
    thread.start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        stop.set()
        thread.join(5)
        listener.close()


def test_chat_against_a_server_that_hangs_up_fails_cleanly(hang_up_port: int) -> None:
    proc = run_cli(
        "chat", "-m", "test-model", "hi", "--base-url", f"http://127.0.0.1:{hang_up_port}/v1"
    )
    assert_clean_failure(proc)


def test_models_against_a_server_that_hangs_up_fails_cleanly(hang_up_port: int) -> None:
    proc = run_cli("models", "--base-url", f"http://127.0.0.1:{hang_up_port}/v1")
    assert_clean_failure(proc)


# --- check --------------------------------------------------------------------------------------


def test_check_prints_one_row_per_provider(upstream: ThreadedUpstream, tmp_path: Path) -> None:
    config = base_config(upstream)
    dead = f"http://127.0.0.1:{free_port()}/v1"
    config["providers"]["dead"] = {"type": "openai", "base_url": dead, "models": ["gone"]}
    path = write_config(tmp_path / "check.json", config)

    proc = run_cli("check", "--config", str(path), cwd=tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines[0].split()[:4] == ["provider", "type", "model", "result"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert set(rows) == {"fake", "dead"}
    assert rows["fake"][1:4] == ["openai", "test-model", "ok"]
    assert rows["dead"][1:4] == ["openai", "gone", "FAILED"]
    assert "connect" in lines[2].lower()

    only = run_cli("check", "fake", "--config", str(path), cwd=tmp_path)
    assert only.returncode == 0, only.stdout + only.stderr
    assert [line.split()[0] for line in only.stdout.strip().splitlines()[1:]] == ["fake"]

    unknown = run_cli("check", "nobody", "--config", str(path), cwd=tmp_path)
    assert_clean_failure(unknown, 2)
    assert "nobody" in unknown.stderr
