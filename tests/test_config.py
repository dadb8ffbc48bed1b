"""config.json validation: every mistake names its JSON path; $VAR expansion; skipping."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from llms.config import Timeouts, load_config, parse_config
from llms.errors import ConfigError

OPENAI = {"type": "openai", "base_url": "http://127.0.0.1:9/v1", "models": ["m"]}


def parse(data: Any, **env: str) -> Any:
    return parse_config(data, source="c.json", env=env)


def test_repository_default_config_loads() -> None:
    config = load_config(Path(__file__).parent.parent / "config.json", env={})
    assert config.providers[0].type == "local"
    assert "smollm2-135m" in config.routes()
    # No OPENAI_API_KEY here: that provider is skipped with one note, and no key means no auth.
    assert [p.name for p in config.providers] == ["local"]
    assert any("OPENAI_API_KEY" in note for note in config.notes)
    assert config.server.api_keys == ()


def test_defaults_and_overrides() -> None:
    config = parse(
        {
            "routing": {"timeouts": {"idle_s": 5}},
            "providers": {
                "a": {
                    **OPENAI,
                    "models": {"pub": "up"},
                    "timeouts": {"connect_s": 2},
                    "headers": {"X-T": "$TOKEN"},
                },
                "b": {**OPENAI, "models": ["pub", "other"], "include_usage": False},
            },
        },
        TOKEN="tok",
    )
    a, b = config.providers
    assert a.models == {"pub": "up"}
    assert a.timeouts == Timeouts(connect_s=2, first_token_s=120, idle_s=5, total_s=None)
    assert a.headers == {"X-T": "tok"}
    assert b.include_usage is False
    assert config.routes()["pub"] == (a, b)  # order is priority
    assert config.server.max_body_mb == 32
    assert config.server.heartbeat_s == 15


def test_env_expansion_and_skipping() -> None:
    config = parse(
        {
            "server": {
                "api_keys": [
                    "$GW_KEY",
                    "${MISSING_KEY}",
                    {"key": "literal", "name": "team", "models": ["m"], "rpm": 60},
                ]
            },
            "providers": {
                "keyed": {**OPENAI, "api_key": "$UPSTREAM_KEY", "models": ["m"]},
                "skipped": {**OPENAI, "api_key": "$NOT_SET", "models": ["only-here"]},
            },
        },
        GW_KEY="sk-gw",
        UPSTREAM_KEY="sk-up",
    )
    assert [p.name for p in config.providers] == ["keyed"]
    assert config.providers[0].api_key == "sk-up"
    assert [k.key for k in config.server.api_keys] == ["sk-gw", "literal"]
    assert config.server.api_keys[1].models == frozenset({"m"})
    assert len(config.notes) == 2
    assert all("sk-" not in note for note in config.notes)
    assert any("$NOT_SET" in note and "skipped" in note for note in config.notes)


@pytest.mark.parametrize(
    ("data", "path"),
    [
        ({}, "providers"),
        ({"providers": {}}, "providers"),
        ({"providers": {"x": {"type": "bogus"}}}, "providers.x.type"),
        ({"providers": {"x": {**OPENAI, "base_url": "ftp://host"}}}, "providers.x.base_url"),
        ({"providers": {"x": {**OPENAI, "base_ur": "http://a"}}}, "providers.x.base_ur"),
        ({"providers": {"x": {**OPENAI, "models": []}}}, "providers.x.models"),
        ({"providers": {"x": {**OPENAI, "models": "m"}}}, "providers.x.models"),
        (
            {"providers": {"x": {**OPENAI, "timeouts": {"idle_s": -1}}}},
            "providers.x.timeouts.idle_s",
        ),
        (
            {"providers": {"x": {**OPENAI, "timeouts": {"answer_s": 0}}}},
            "providers.x.timeouts.answer_s",
        ),
        ({"providers": {"x": {**OPENAI, "include_usage": "yes"}}}, "providers.x.include_usage"),
        ({"providers": {"x": {"type": "local", "model": "gpt-5"}}}, "providers.x.model"),
        ({"routing": {"max_attempts": "3"}, "providers": {"x": OPENAI}}, "routing.max_attempts"),
        ({"server": {"max_body_mb": 0}, "providers": {"x": OPENAI}}, "server.max_body_mb"),
        (
            {
                "server": {"api_keys": [{"key": "k", "models": ["ghost"]}]},
                "providers": {"x": OPENAI},
            },
            "server.api_keys[0].models",
        ),
        (
            {"server": {"api_keys": [{"name": "no key"}]}, "providers": {"x": OPENAI}},
            "server.api_keys[0].key",
        ),
        ({"providers": {"x": OPENAI}, "extra": 1}, "extra"),
        ({"providers": {"bad name": OPENAI}}, "providers.bad name"),
    ],
)
def test_mistakes_name_the_json_path(data: Any, path: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(data)
    message = str(caught.value)
    assert message.startswith(f"c.json: {path}: "), message
    assert "\n" not in message


def test_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "absent.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"providers": ')
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_config(bad)


def test_the_file_is_never_rewritten(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    text = (
        '{"providers": {"x": {"type": "openai", "api_key": "$NOPE", "models": ["m"]}, "y": '
        + str(OPENAI).replace("'", '"')
        + "}}"
    )
    path.write_text(text)
    load_config(path, env={})
    assert path.read_text() == text
