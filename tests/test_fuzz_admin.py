"""Fuzz the admin API (`server.admin_key`): any JSON body and any value of each field on create
and PATCH, bodies that are not JSON (NaN, huge numbers, bad UTF-8, nesting), bad ids and `days`,
odd methods and headers on every admin route. Always an answer in OpenAI's error shape with a
4xx naming the field (never a 5xx, never a hang), and never the admin key or a key's secret in an
answer. Then the admin API and a managed key still work. The gateway: tests/fuzz_support.py."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llms.managed.model import FIELDS
from tests.fuzz_support import KEY, SETTINGS, ThreadedGateway, dumps, json_values

ADMIN = "adm-fuzz-0123456789abcdef"
Answer = tuple[int, dict[str, str], bytes]
names = itertools.count()
# What aiohttp's HTTP parser answers itself (text/plain 400) before any middleware runs: a method
# it does not know, a Content-Encoding it cannot decode (brotli is not installed).
PARSER_REFUSALS = (b"Invalid method encountered", b"Can not decode content-encoding")
ROUTES = ("/admin/keys", "/admin/keys/{id}", "/admin/keys/{id}/spend")
METHODS = {
    "/admin/keys": {"GET", "POST"},
    "/admin/keys/{id}": {"GET", "PATCH", "DELETE"},
    "/admin/keys/{id}/spend": {"GET"},
}


class Admin:
    """The gateway with the admin API on, and a key made at the start (its secret kept, so that
    no answer may show it)."""

    def __init__(self, gateway: ThreadedGateway) -> None:
        self.gateway = gateway
        status, _, raw = self.call("POST", "/admin/keys", dumps({"name": "kept", "budget_usd": 1}))
        assert status == 201, raw
        made = orjson.loads(raw)
        self.id: str = made["id"]
        self.secret: str = made["secret"]

    def call(self, method: str, path: str, body: bytes | None = None, **headers: str) -> Answer:
        headers = {
            "Authorization": f"Bearer {ADMIN}",
            "Content-Type": "application/json",
            **headers,
        }
        return self.gateway.call(method, path, body, **headers)

    def check(self, answer: Answer, *, param: str | None = None) -> dict[str, Any] | None:
        """A success, or a 4xx in OpenAI's shape (naming `param` when given); never a secret."""
        status, headers, raw = answer
        assert ADMIN.encode() not in raw and self.secret[8:].encode() not in raw, raw[:300]
        if status < 300:
            return None
        if status == 400 and raw.startswith(PARSER_REFUSALS):
            return None  # refused by aiohttp's HTTP parser, before the gateway sees a request
        assert 400 <= status < 500, (status, raw[:500])
        assert headers["Content-Type"].startswith("application/json"), raw[:300]
        error = orjson.loads(raw)["error"]
        assert set(error) == {"message", "type", "param", "code"}
        assert isinstance(error["message"], str) and error["message"]
        assert len(error["message"]) < 1000, error["message"][:300]
        if param is not None and status == 400:
            assert error["param"] == param, error
        return dict(error)

    def forget(self, answer: Answer) -> None:
        """Delete a key a case made (names stay free, the store stays small)."""
        if answer[0] == 201:
            made = orjson.loads(answer[2])
            assert made["secret"].startswith("sk-llms-")
            status, _, raw = self.call("DELETE", f"/admin/keys/{made['id']}")
            assert status == 200, raw


@pytest.fixture(scope="module")
def admin() -> Iterator[Admin]:
    with ThreadedGateway(admin_key=ADMIN) as gateway:
        yield Admin(gateway)


def fresh(**fields: Any) -> dict[str, Any]:
    return {"name": f"fuzz-{next(names)}", **fields}


# Numbers and strings that break naive checks: NaN, the infinities, -0, huge, tiny, bools.
ODD_NUMBERS = (0, -0.0, -1, 1, 0.5, 2**31, 2**53, 2**53 - 1, 2**63, 2**64, -(2**63), 1e12,
               1e308, 5e-324, True, False, 2**40, 2**40 - 1, 1e-9)  # fmt: skip
ODD_TIMES = ("2027-01-01", "2027-01-01T00:00:00", "2027-01-01T00:00:00Z", "2027-13-01T00:00:00Z",
             "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "1970-01-01T00:00:00Z",
             "1969-12-31T23:59:59Z", "2027-01-01T00:00:00+25:00", "2027-01-01 00:00:00+00:00",
             "\uff12\uff10\uff12\uff17-01-01T00:00:00Z", "1970-01-01T00:00:00.5Z", "now", "",
             " ", "1735689600", "NaN")  # fmt: skip
odd_numbers = st.sampled_from(ODD_NUMBERS) | st.floats(allow_nan=False, allow_infinity=False)
odd_times = st.sampled_from(ODD_TIMES)
field_values = json_values | odd_numbers | odd_times


@SETTINGS
@given(value=json_values)
def test_any_json_body_to_create_and_patch(admin: Admin, value: Any) -> None:
    answer = admin.call("POST", "/admin/keys", dumps(value))
    admin.check(answer)
    admin.forget(answer)
    admin.check(admin.call("PATCH", f"/admin/keys/{admin.id}", dumps(value)))
    # What a PATCH may have changed is put back (name, a budget the key must keep).
    admin.check(admin.call("PATCH", f"/admin/keys/{admin.id}", dumps(fresh(budget_usd=1))))


@pytest.mark.parametrize("field", FIELDS)
@settings(SETTINGS, max_examples=40)
@given(value=field_values)
def test_every_field_with_any_value(admin: Admin, field: str, value: Any) -> None:
    body = {**fresh(), field: value}
    answer = admin.call("POST", "/admin/keys", dumps(body))
    admin.check(answer, param=field)
    if answer[0] == 201:
        made = orjson.loads(answer[2])
        stored = made[field]
        if isinstance(stored, float):
            assert math.isfinite(stored) and math.copysign(1, stored) > 0  # never -0.0 or inf
        if field == "expires_at" and stored is not None:
            assert 0 < stored < 2**40
    admin.forget(answer)
    patch = admin.call("PATCH", f"/admin/keys/{admin.id}", dumps({field: value}))
    admin.check(patch, param=field)
    admin.check(admin.call("PATCH", f"/admin/keys/{admin.id}", dumps(fresh(budget_usd=1))))


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"null",
        b"[]",
        b'"name"',
        b'{"name": NaN}',
        b'{"name": "x", "budget_usd": NaN}',
        b'{"name": "x", "budget_usd": Infinity}',
        b'{"name": "x", "budget_usd": -Infinity}',
        b'{"name": "x", "budget_usd": 1e999}',
        b'{"name": "x", "rpm": 1e999}',
        b'{"name": "x", "rpm": 123456789012345678901234567890}',
        b'{"name": "x", "expires_at": -1e999}',
        b'{"name": "x", "expires_at": 1e400}',
        b'{"name": "x", "tpm": 1.0}',
        b'{"name": "x", "name": 5}',
        b'{"name": "\xff\xfe"}',
        b'\xef\xbb\xbf{"name": "bom"}',
        b'{"name": "\\ud800"}',
        b'{"name": "x"',
        b'{"name": "x"} trailing',
        b"[" * 10000 + b"]" * 10000,
        b'{"name": "x", "models": ' + b"[" * 5000 + b"]" * 5000 + b"}",
        b'{"name": "x", "models": ["' + b"m" * 200_000 + b'"]}',
        b'{"' + b"k" * 50_000 + b'": 1}',
    ],
)
def test_bodies_that_are_not_what_json_should_be(admin: Admin, raw: bytes) -> None:
    for method, path in (("POST", "/admin/keys"), ("PATCH", f"/admin/keys/{admin.id}")):
        answer = admin.call(method, path, raw)
        admin.check(answer)
        assert answer[0] != 201 or b"bom" in raw or b"m" * 1000 in raw, answer
        admin.forget(answer)


ids = st.text(min_size=1, max_size=60) | st.sampled_from(
    ("key_0000000000000000", "..", ".", "%00", "key_" + "f" * 16, " ", "x" * 5000, "spend")
)


@SETTINGS
@given(key_id=ids, days=st.none() | st.text(max_size=12) | st.integers().map(str))
def test_bad_ids_and_days_on_every_route(admin: Admin, key_id: str, days: str | None) -> None:
    path = f"/admin/keys/{quote(key_id, safe='')}"
    query = "" if days is None else f"?days={quote(days, safe='')}"
    for method, route in (("GET", path), ("PATCH", path), ("DELETE", path),
                          ("GET", f"{path}/spend{query}")):  # fmt: skip
        body = dumps({"rpm": 5}) if method == "PATCH" else None
        error = admin.check(admin.call(method, route, body))
        assert error is not None, (method, route)  # no key has such an id
    error = admin.check(admin.call("GET", f"/admin/keys/{admin.id}/spend{query}"))
    if error is not None:
        assert error["param"] == "days", error


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE",
                                    "PROPFIND", "FOO"])  # fmt: skip
def test_odd_methods_on_every_route(admin: Admin, route: str, method: str) -> None:
    key_id = admin.id
    if method == "DELETE" and "{id}" in route:  # the kept key stays
        made = admin.call("POST", "/admin/keys", dumps(fresh()))
        key_id = orjson.loads(made[2])["id"]
    path = route.replace("{id}", key_id)
    body = dumps(fresh()) if method in ("POST", "PATCH", "PUT") else None
    answer = admin.call(method, path, body)
    error = admin.check(answer)
    if method in METHODS[route]:
        assert error is None, error
        admin.forget(answer)
    elif method not in ("OPTIONS", "FOO"):
        assert answer[0] == 405, answer
        assert set(answer[1]["Allow"].split(",")) >= METHODS[route], answer[1]
    # Without the admin key, whatever the method: never a key, never a 5xx.
    for headers in ({"Authorization": ""}, {"Authorization": f"Bearer {admin.secret}"}):
        status, _, raw = admin.call(method, path, body, **headers)
        admin.check((status, _, raw))
        assert status >= 400 or method == "OPTIONS", raw


ODD_HEADERS: list[dict[str, str]] = [
    {"Authorization": f"Basic {ADMIN}"},
    {"Authorization": f"Bearer {ADMIN}x"},
    {"Authorization": f"Bearer {ADMIN[:-1]}"},
    {"Authorization": "Bearer", "x-api-key": ADMIN},
    {"Authorization": "", "x-api-key": ADMIN[:-1]},
    {"Authorization": "Bearer " + "a" * 6000},
    {"Authorization": "Bearer sk-llms-" + "a" * 43},
    {"Content-Type": "text/plain"},
    {"Content-Type": "application/x-www-form-urlencoded"},
    {"Content-Type": "application/json; charset=latin-1"},
    {"Content-Encoding": "gzip"},
    {"Content-Encoding": "br"},
    {"Expect": "100-continue"},
    {"Accept": "text/event-stream"},
]


@pytest.mark.parametrize("headers", ODD_HEADERS, ids=range(len(ODD_HEADERS)))
def test_odd_headers(admin: Admin, headers: dict[str, str]) -> None:
    for method, route in (("GET", "/admin/keys"), ("POST", "/admin/keys"),
                          ("PATCH", f"/admin/keys/{admin.id}"),
                          ("GET", f"/admin/keys/{admin.id}/spend")):  # fmt: skip
        body = dumps(fresh()) if method != "GET" else None
        answer = admin.call(method, route, body, **headers)
        admin.check(answer)
        admin.forget(answer)
        if "Authorization" in headers and "x-api-key" not in headers:
            assert answer[0] == 401, answer  # not the admin key as it must be sent
    # The scheme is case-insensitive (RFC 9110) and spaces around the key do not count.
    for authorization in (f"bearer {ADMIN}", f"BEARER  {ADMIN} "):
        assert admin.call("GET", "/admin/keys", Authorization=authorization)[0] == 200


def test_the_admin_api_and_a_managed_key_still_work(admin: Admin) -> None:
    status, _, raw = admin.call("GET", "/admin/keys")
    assert status == 200, raw
    listed = orjson.loads(raw)["data"]
    assert [key for key in listed if key["id"] == admin.id]
    assert all("secret" not in key for key in listed)
    status, _, raw = admin.call("POST", "/admin/keys", dumps(fresh(models=["via-openai"])))
    assert status == 201, raw
    made = orjson.loads(raw)
    body = dumps({"model": "via-openai", "messages": [{"role": "user", "content": "hi"}]})
    status, _, raw = admin.gateway.call(
        "POST", "/v1/chat/completions", body, Authorization=f"Bearer {made['secret']}"
    )
    assert status == 200, raw
    status, _, raw = admin.call("GET", f"/admin/keys/{made['id']}/spend?days=7")
    assert status == 200, raw
    assert len(orjson.loads(raw)["data"]) == 7


@pytest.mark.parametrize("path", ["/admin/keys", "/v1/chat/completions"])
def test_a_body_that_does_not_match_its_content_encoding_is_400(admin: Admin, path: str) -> None:
    body = dumps({"model": "via-openai", "messages": [], "name": "x"})
    key = ADMIN if path.startswith("/admin") else KEY
    answer = admin.call("POST", path, body, **{"Content-Encoding": "gzip"},
                        Authorization=f"Bearer {key}")  # fmt: skip
    error = admin.check(answer)
    assert (answer[0], error and error["code"]) == (400, "invalid_body"), answer
