"""The operators' kit: deploy/prometheus/alerts.yml checked and unit-tested with promtool, and
every metric the alerts and deploy/grafana/llms.json use found in a real /metrics scrape."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.upstreams.openai import FakeOpenAI, error_script

DEPLOY = Path(__file__).parent.parent / "deploy"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
ALERT_TESTS = DEPLOY / "prometheus" / "alerts.test.yml"
DASHBOARD = DEPLOY / "grafana" / "llms.json"
METRIC = re.compile(r"\bllms_[a-z_]+\b")
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None,
    reason="promtool is missing: `make system` installs Debian's prometheus package (CI does)",
)


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run(
        [PROMTOOL, *args], capture_output=True, text=True, timeout=120, cwd=ALERTS.parent
    )


@needs_promtool
def test_the_alert_rules_are_valid() -> None:
    result = promtool("check", "rules", str(ALERTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 5 rules found" in result.stdout


@needs_promtool
def test_the_alerts_fire_on_the_series_they_are_for() -> None:
    result = promtool("test", "rules", str(ALERT_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_promtool_would_notice_a_broken_alert(tmp_path: Path) -> None:
    # The unit tests fail when an alert does not fire as expected (the check is not vacuous).
    broken = ALERTS.read_text().replace("> 0.05", "> 0.5")
    (tmp_path / "alerts.yml").write_text(broken)
    (tmp_path / "alerts.test.yml").write_text(ALERT_TESTS.read_text())
    assert PROMTOOL is not None
    result = subprocess.run(
        [PROMTOOL, "test", "rules", "alerts.test.yml"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert result.returncode != 0 and "LLMSErrorRateHigh" in result.stdout + result.stderr


def dashboard_exprs() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    for variable in dashboard["templating"]["list"]:
        query = variable.get("query")
        if isinstance(query, dict):
            exprs.append(query["query"])
    return exprs


def test_the_dashboard_is_a_grafana_dashboard() -> None:
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "llms-gateway" and dashboard["schemaVersion"] >= 36
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)) >= 10
    for p in dashboard["panels"]:
        assert p["targets"] and p["datasource"]["uid"] == "${datasource}"


async def test_every_metric_the_kit_uses_is_in_a_real_scrape(
    gateway: str, fake_openai: FakeOpenAI
) -> None:
    base = gateway.removesuffix("/v1")
    fake_openai.scripts["other-up"] = error_script(500, {"error": {"message": "down"}})
    async with aiohttp.ClientSession() as session:
        chat = {"model": "test-model", "messages": [{"role": "user", "content": "hi"}]}
        for body in (
            {**chat, "stream": True, "stream_options": {"include_usage": True}},
            chat,
            {**chat, "model": "other"},
        ):
            async with session.post(f"{gateway}/chat/completions", json=body) as response:
                await response.read()
        async with session.get(f"{base}/metrics") as response:
            assert response.status == 200
            scrape = await response.text()
    known: set[str] = set()
    for family in text_string_to_metric_families(scrape):
        known.add(family.name)
        known.update(sample.name for sample in family.samples)
        suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}
        known.update(family.name + suffix for suffix in suffixes.get(family.type, ()))
    used = set(METRIC.findall(ALERTS.read_text()))
    for expr in dashboard_exprs():
        used.update(METRIC.findall(expr))
    assert len(used) >= 15, used
    assert used <= known, sorted(used - known)
    # The scrape really has the samples the alerts need (not only their HELP lines).
    assert 'llms_requests_total{model="test-model",provider="fake",status="200"}' in scrape
    assert 'llms_time_to_first_token_seconds_bucket{le="+Inf",model="test-model"' in scrape
    assert 'llms_circuit_state{provider="fake"}' in scrape
