"""Prometheus: the rules pass promtool (syntax and unit tests), the configurations written by
infra/prometheus.sh and deploy/compose pass `promtool check config`, and a Prometheus started by
infra/ scrapes a real `hub serve` with the scrape token."""

from __future__ import annotations

import json
import os
import time
import urllib.parse
from pathlib import Path
from typing import Any

import httpx

from tests.infra import require
from tests.ops.conftest import ROOT, run, tool
from tests.ops.hubserver import serve

RULES = ROOT / "deploy" / "prometheus" / "rules" / "hub.yml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "tests" / "hub_test.yml"
SCRIPT = ROOT / "infra" / "prometheus.sh"


def test_rules_are_valid() -> None:
    done = run(tool("promtool"), "check", "rules", str(RULES))
    assert done.returncode == 0, done.stdout + done.stderr


def test_rules_unit_tests_pass() -> None:
    done = run(tool("promtool"), "test", "rules", str(RULE_TESTS))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_compose_prometheus_config_is_valid() -> None:
    config = ROOT / "deploy" / "compose" / "prometheus.yml"
    done = run(tool("promtool"), "check", "config", "--syntax-only", str(config))
    assert done.returncode == 0, done.stdout + done.stderr


def _query(base: str, expr: str) -> list[dict[str, object]]:
    url = f"{base}/api/v1/query?query={urllib.parse.quote(expr)}"
    body = httpx.get(url, timeout=5).json()
    assert body["status"] == "success", body
    result: list[dict[str, object]] = body["data"]["result"]
    return result


def _scrape_lines(output: Path) -> list[dict[str, Any]]:
    """The access log's lines of ``/metrics`` requests (logged by route template)."""
    lines = [json.loads(line) for line in output.read_text().splitlines() if "{" in line[:1]]
    return [x for x in lines if x.get("hub", {}).get("route") == "/metrics"]


def test_prometheus_from_infra_scrapes_the_hub(tmp_path: Path) -> None:
    tool("promtool")  # the prometheus package (skips loudly, or fails under CI, when missing)
    with serve(tmp_path) as hub:
        env = {
            **os.environ,
            "HUB_PROMETHEUS_TARGETS": f"127.0.0.1:{hub.port}",
            "HUB_PROMETHEUS_SCRAPE_TOKEN_FILE": str(hub.token_file),
            "HUB_PROMETHEUS_SCRAPE_INTERVAL": "1s",
        }
        was_running = run("bash", str(SCRIPT), "status").returncode == 0
        os.environ.update({k: env[k] for k in env if k.startswith("HUB_PROMETHEUS_")})
        try:
            require("prometheus", "the Prometheus scrape test")
            done = run("bash", str(SCRIPT), "reload")  # this test's targets and token
            assert done.returncode == 0, done.stderr
            done = run("bash", str(SCRIPT), "check")
            assert done.returncode == 0, done.stdout + done.stderr
            base = run("bash", str(SCRIPT), "url").stdout.strip()
            deadline = time.monotonic() + 90
            up: list[dict[str, object]] = []
            while time.monotonic() < deadline:
                up = _query(base, 'up{job="hub"}')
                if up and up[0]["value"][1] == "1":  # type: ignore[index]
                    break
                time.sleep(1)
            assert up and up[0]["value"][1] == "1", f"the hub was never scraped: {up}"  # type: ignore[index]
            # ``up`` may be a sample a previous run left in this slot's store (same instance):
            # wait for this hub's own scrape in its access log too
            while time.monotonic() < deadline and not _scrape_lines(hub.output):
                time.sleep(0.5)
            ready = _query(base, 'hub_component_ready{component="event_log"}')
            assert ready and ready[0]["metric"]["adapter"] == "sqlite"  # type: ignore[index]
            assert _query(base, "hub_ledger_tree_size")
            # The alerting rules are loaded from deploy/prometheus/rules.
            rules = httpx.get(f"{base}/api/v1/rules", timeout=5).json()
            names = {r["name"] for g in rules["data"]["groups"] for r in g["rules"]}
            assert {"HubDown", "HubLedgerCheckpointStale", "hub:http_requests:rate5m"} <= names
        finally:
            for k in list(os.environ):
                if k.startswith("HUB_PROMETHEUS_") and k != "HUB_PROMETHEUS_PORT":
                    del os.environ[k]
            if not was_running:
                run("bash", str(SCRIPT), "stop")
        # Scrapes carried the token, not an API key: the access log names the scraper.
        scrapes = _scrape_lines(hub.output)
        assert scrapes and all(x["http"]["response"]["status_code"] == 200 for x in scrapes)
        assert scrapes[0]["user"]["name"] == "metrics-scraper"
