"""Fuzz the stored responses' routes (GET, DELETE, input_items, cancel) and continuing a stored
response; a large request, concurrent cancels; the gateway still serves after the fuzzing. The
gateway: tests/fuzz_support.py."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import quote, urlencode

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from llms.api.responses_request import from_request
from llms.server import responses as responses_routes
from tests.fuzz_support import (
    MODELS,
    SETTINGS,
    STALLED,
    ThreadedGateway,
    gateway_fixture,  # noqa: F401 (the `gateway` fixture)
    json_values,
)
from tests.test_fuzz import BASE
from tests.test_fuzz_responses import RESPONSES, RESPONSES_BASE, check_response, respond


@pytest.fixture(scope="module")
def stored(gateway: ThreadedGateway) -> dict[str, str]:
    """The ids of a stored response (two input items) and of a finished background one."""
    ids = {}
    for name, extra in (("foreground", {}), ("background", {"background": True})):
        body = {**RESPONSES_BASE, "input": [{"role": "user", "content": "a"},
                                            {"role": "user", "content": "b"}], **extra}  # fmt: skip
        status, _, raw = respond(gateway, body)
        assert status == 200, raw
        ids[name] = orjson.loads(raw)["id"]
    for _ in range(200):  # the background one ends (the fake upstream answers at once)
        status, _, raw = gateway.call("GET", f"{RESPONSES}/{ids['background']}")
        if orjson.loads(raw)["status"] not in ("queued", "in_progress"):
            break
        time.sleep(0.02)
    return ids


@SETTINGS
@given(
    model=st.sampled_from(MODELS),
    previous=json_values | st.sampled_from(("foreground", "background")),
    reference=st.none() | json_values,
    stream=st.booleans(),
)
def test_responses_continuing_with_any_previous_response_id(
    gateway: ThreadedGateway,
    stored: dict[str, str],
    model: str,
    previous: Any,
    reference: Any,
    stream: bool,
) -> None:
    previous = stored.get(previous, previous) if isinstance(previous, str) else previous
    items: list[Any] = [{"role": "user", "content": "more"}]
    if reference is not None:
        items.insert(0, {"type": "item_reference", "id": reference})
    body = {**RESPONSES_BASE, "model": model, "previous_response_id": previous, "input": items,
            "stream": stream}  # fmt: skip
    check_response(respond(gateway, body))


ROUTES = (("GET", ""), ("DELETE", ""), ("GET", "/input_items"), ("POST", "/cancel"))
QUERY_NAMES = ("stream", "starting_after", "after", "limit", "order", "include[]",
               "include_obfuscation", "x")  # fmt: skip
query_values = (
    st.text(max_size=30)
    | st.integers(min_value=-(2**70), max_value=2**70).map(str)
    | st.sampled_from(("true", "false", "True", "1", "asc", "desc", "0", "100", "101", "²"))
)


def check_route(answer: tuple[int, dict[str, str], bytes]) -> None:
    """Never a 5xx, a stream ends with its terminal event, an error is OpenAI's shape."""
    status, headers, raw = answer
    if status == 200 and headers["Content-Type"].startswith("text/event-stream"):
        assert b"event: error" not in raw, raw[-2000:]
        return
    if status == 200:
        orjson.loads(raw)
        return
    assert status in (400, 404), (status, raw[:500])
    error = orjson.loads(raw)["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str) and error["message"]


@SETTINGS
@given(
    route=st.sampled_from(ROUTES),
    response_id=st.text(max_size=60) | st.sampled_from(("foreground", "background", "resp_")),
    query=st.dictionaries(st.sampled_from(QUERY_NAMES), query_values, max_size=3),
)
def test_response_routes_with_any_id_and_query(
    gateway: ThreadedGateway,
    stored: dict[str, str],
    route: tuple[str, str],
    response_id: str,
    query: dict[str, str],
) -> None:
    method, tail = route
    if method == "DELETE" and response_id in stored:
        response_id = "resp_" + response_id  # keep the stored ones for the other examples
    response_id = stored.get(response_id, response_id)
    path = f"{RESPONSES}/{quote(response_id, safe='')}{tail}"
    if query:
        path += "?" + urlencode(query)
    check_route(gateway.call(method, path))


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ("stream=yes", "stream"),
        ("stream=", "stream"),
        ("starting_after=-1", "starting_after"),  # without `stream`: once silently ignored
        ("stream=false&starting_after=x", "starting_after"),
        ("stream=true&starting_after=%C2%B2", "starting_after"),
        ("stream=true&starting_after=" + "9" * 30, "starting_after"),
    ],
)
def test_retrieve_refuses_bad_query_values(
    gateway: ThreadedGateway, stored: dict[str, str], query: str, param: str
) -> None:
    for response_id in stored.values():
        status, _, raw = gateway.call("GET", f"{RESPONSES}/{response_id}?{query}")
        assert status == 400, raw
        assert orjson.loads(raw)["error"]["param"] == param
    status, _, raw = gateway.call("GET", f"{RESPONSES}/{stored['foreground']}?stream=FALSE")
    assert status == 200, raw


def test_a_large_request_is_translated_off_the_event_loop(
    gateway: ThreadedGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """95 000 input items took the loop 2 s to translate (every stream stalled): from
    OFF_LOOP_ITEMS on, the translation runs in a thread."""
    threads = []

    def recorded(*args: Any) -> Any:
        threads.append(threading.current_thread())
        return from_request(*args)

    monkeypatch.setattr(responses_routes, "from_request", recorded)
    items = [{"role": "user", "content": "x"}] * responses_routes.OFF_LOOP_ITEMS
    for body in ({**RESPONSES_BASE, "input": items}, RESPONSES_BASE):
        status, _, raw = respond(gateway, body)
        assert status == 200, raw
    assert threads[0] is not gateway.thread
    assert threads[1] is gateway.thread


def test_concurrent_cancels_of_a_background_response(gateway: ThreadedGateway) -> None:
    """Two cancels at once cancelled the pump twice; the second interrupted it while it stored
    and logged the end: both answered `queued` after 5 s, the response stayed `queued` and a
    reader of its stream waited for ever."""
    status, _, raw = respond(gateway, {"model": STALLED, "input": "x", "background": True})
    assert status == 200, raw
    path = f"{RESPONSES}/{orjson.loads(raw)['id']}"
    time.sleep(0.2)  # its pump waits for the upstream's first token
    with ThreadPoolExecutor(3) as pool:
        answers = list(pool.map(lambda _: gateway.call("POST", f"{path}/cancel"), range(3)))
    for status, _, raw in answers:
        assert status == 200, raw
        assert orjson.loads(raw)["status"] == "cancelled"
    status, _, raw = gateway.call("GET", path)
    assert orjson.loads(raw)["status"] == "cancelled"
    status, _, raw = gateway.call("GET", f"{path}?stream=true")  # ends (30 s socket timeout)
    assert status == 200 and b"event: response.created" in raw, raw


def test_the_gateway_still_serves_after_the_fuzzing(
    gateway: ThreadedGateway, stored: dict[str, str]
) -> None:
    for model in MODELS:
        status, _, raw = gateway.post(orjson.dumps({**BASE, "model": model}))
        assert status == 200, raw
        status, _, raw = respond(gateway, {**RESPONSES_BASE, "model": model})
        assert status == 200, raw
    for response_id in stored.values():
        status, _, raw = gateway.call("GET", f"{RESPONSES}/{response_id}")
        assert status == 200, raw
        assert orjson.loads(raw)["status"] == "completed"
    assert gateway.call("GET", "/health")[0] == 200
