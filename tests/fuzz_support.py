"""The gateway that the fuzz tests (test_fuzz, test_fuzz_responses, test_fuzz_responses_routes)
fire at, and what they share: the check of an answer, the JSON strategies, the settings.

The gateway runs on its own event loop in a thread (hypothesis drives synchronous tests), in
front of four fake providers, one per protocol, so every adapter meets every body that the
validation lets through. A module that asks for the `gateway` fixture gets its own, for the
module's tests.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import tempfile
import threading
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from aiohttp import web
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from llms import create_app
from llms.server.app import server_options
from tests.conftest import gateway_config
from tests.upstreams.anthropic import FakeAnthropic
from tests.upstreams.gemini import FakeGemini
from tests.upstreams.ollama import FakeOllama
from tests.upstreams.openai import FakeOpenAI, Script

KEY = "sk-fuzz"
MODELS = ("via-openai", "via-anthropic", "via-gemini", "via-ollama")
STALLED = "via-openai-stalled"
# Errors the gateway may answer a fuzzed body with (no upstream fails here).
CLIENT_ERRORS = {400, 403, 404, 413}


class ThreadedGateway:
    """The gateway and four fake providers on one event loop in a daemon thread; stored
    responses in a SQLite file of a temporary directory."""

    def __init__(self, **server: Any) -> None:
        self.server = server
        self.state_dir = tempfile.TemporaryDirectory(prefix="llms-fuzz-")
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.runners: list[web.AppRunner] = []
        self.port = 0

    def __enter__(self) -> ThreadedGateway:
        self.thread.start()
        self.port = asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(30)
        return self

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            for runner in reversed(self.runners):
                await runner.cleanup()
            # What outlived its server (a stalled fake upstream's handler) ends here.
            tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()
        self.state_dir.cleanup()

    async def _serve(self, app: web.Application, **options: Any) -> str:
        runner = web.AppRunner(app, **options)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        self.runners.append(runner)
        return f"http://127.0.0.1:{runner.addresses[0][1]}"

    async def _start(self) -> int:
        fakes = {
            "openai": (FakeOpenAI(), "/v1", {}),
            "anthropic": (FakeAnthropic(), "", {"api_key": "sk-ant-test"}),
            "gemini": (FakeGemini(), "/v1beta", {"api_key": "gm-test-key"}),
            "ollama": (FakeOllama(), "", {}),
        }
        providers = {}
        for name, (fake, path, extra) in fakes.items():
            root = await self._serve(fake.app, shutdown_timeout=1)
            providers[name] = {
                "type": name,
                "base_url": root + path,
                "models": {f"via-{name}": "up-model"},
                **extra,
            }
        # An upstream that sends its headers, then nothing: a generation to cancel.
        fakes["openai"][0].scripts["stalled"] = Script(fault="stall")  # type: ignore[attr-defined]
        providers["openai"]["models"][STALLED] = "stalled"
        config = gateway_config(
            providers,
            server={"api_keys": [KEY], "request_timeout_s": 10, **self.server},
            routing={"max_attempts": 1},
            state={
                "responses": {"store": f"sqlite:{self.state_dir.name}/responses.db"},
                "keys_store": f"sqlite:{self.state_dir.name}/keys.db",  # with server.admin_key
            },
        )
        await self._serve(create_app(config), shutdown_timeout=1, **server_options(config))
        return int(self.runners[-1].addresses[0][1])

    def call(
        self, method: str, path: str, body: bytes | None = None, **headers: str
    ) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            headers = {"Authorization": f"Bearer {KEY}", **headers}
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            conn.close()

    def post(
        self, body: bytes, path: str = "/v1/chat/completions"
    ) -> tuple[int, dict[str, str], bytes]:
        return self.call("POST", path, body, **{"Content-Type": "application/json"})


@pytest.fixture(scope="module", name="gateway")
def gateway_fixture() -> Iterator[ThreadedGateway]:
    with ThreadedGateway() as served:
        yield served


def check(answer: tuple[int, dict[str, str], bytes], *, valid: bool = False) -> None:
    """Never a 5xx; an error is OpenAI's shape; a valid body gets its answer."""
    status, headers, raw = answer
    if status == 200:
        return
    assert not valid, raw
    assert status in CLIENT_ERRORS, (status, raw[:500])
    assert headers["Content-Type"].startswith("application/json")
    error = orjson.loads(raw)["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str) and error["message"]


def dumps(value: Any) -> bytes:
    """JSON as a client may send it: integers of any size, non-ASCII as is."""
    return json.dumps(value, ensure_ascii=False, allow_nan=False).encode("utf-8", "surrogatepass")


scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=True,
)
