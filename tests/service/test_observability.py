"""Operators' view of a hub: /health and /ready per component and adapter, ECS log lines with
request ids, an access log without secrets, and /metrics for a scraper with its own token."""

from __future__ import annotations

import io
import json
import logging
import secrets
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from hub.api.app import create_app
from hub.bootstrap import Hub, bootstrap
from hub.cli import init_admin_key
from hub.logs import configure, redact
from hub.settings import load_settings
from tests.ops.hubserver import serve

pytestmark = pytest.mark.timeout(900)


class Served:
    def __init__(self, hub: Hub, client: TestClient, key: str, token: str, logs: io.StringIO):
        self.hub, self.client, self.key, self.token, self.logs = hub, client, key, token, logs

    def auth(self) -> tuple[str, str]:
        key_id, _, secret = self.key.partition(":")
        return key_id, secret

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.logs.getvalue().splitlines() if line]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("obs")
    token = secrets.token_hex(32)
    (tmp / "token").write_text(token + "\n")
    hub = bootstrap(
        load_settings(environ={}, data_dir=tmp / "data", metrics_token_file=tmp / "token")
    )
    logs = io.StringIO()
    configure("INFO", json_lines=True)
    root = logging.getLogger()
    handler = root.handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(logs)
    key = init_admin_key(hub, tmp / "admin.key")
    try:
        yield Served(hub, TestClient(create_app(hub)), key, token, logs)
    finally:
        root.handlers[:] = []
        hub.close()


def test_health_names_every_adapter_without_calling_them(served: Served) -> None:
    r = served.client.get("/health/details", auth=served.auth())  # who and what: a role's
    assert r.status_code == 200
    assert r.json()["adapters"] == {
        "event_log": "sqlite",
        "policy": "rego",
        "keystore": "local",
        "views_analytics": "chdb",
        "views_transactional": "sqlite",
        "ledger": "tiles",
    }
    # one process, no leader election: it runs every single-writer part
    assert r.json()["leader"] == {"role": "single", "lease": None, "holder": None, "epoch": None}


def test_ready_checks_each_component_through_its_adapter(served: Served) -> None:
    r = served.client.get("/ready/details", auth=served.auth())  # the figures need a role
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["ready"] is True
    by_name = {c["component"]: c for c in body["components"]}
    assert set(by_name) >= {
        "event_log", "policy", "keystore", "ledger", "views_analytics", "views_transactional",
        "projections",
    }  # fmt: skip
    assert by_name["event_log"]["adapter"] == "sqlite" and by_name["event_log"]["topics"] > 0
    assert by_name["ledger"]["pending_records"] >= 0
    assert set(by_name["projections"]["lag"]) >= {"market_bars", "positions"}


def test_ready_answers_503_naming_the_component_that_fails(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # OPA configured but unreachable: the policy component fails, with its adapter; its reason
    # is logged (/ready/details, which has it too, is refused while the policy engine is down).
    hub = bootstrap(
        load_settings(
            environ={}, data_dir=tmp_path / "d", policy_engine="opa", opa_url="http://127.0.0.1:9"
        )
    )
    try:
        hub.projections = None  # only the components this test looks at
        with caplog.at_level(logging.WARNING, logger="hub.observability"):
            r = TestClient(create_app(hub)).get("/ready")
        assert r.status_code == 503 and r.json() == {"ready": False}  # the rest: details, log
        assert "127.0.0.1:9" in caplog.text and "policy" in caplog.text and "opa" in caplog.text
    finally:
        hub.close()


def test_scrape_token_reads_metrics_without_an_api_key_or_a_decision(served: Served) -> None:
    c = served.client
    before = c.get("/metrics", headers={"Authorization": f"Bearer {served.token}"})
    assert before.status_code == 200
    for name in ("hub_ledger_tree_size", "hub_ledger_pending_records", "hub_component_ready"):
        assert f"\n{name}" in before.text
    assert '\nhub_leader{name="hub"} 1.0' in before.text  # the only process leads
    again = c.get("/metrics", headers={"Authorization": f"Bearer {served.token}"}).text
    decisions = [line for line in again.splitlines() if line.startswith("hub_policy_decisions")]
    assert not [
        line for line in decisions if 'action="metrics.read"' in line and '"/metrics"' in line
    ]
    assert c.get("/metrics", headers={"Authorization": "Bearer " + "0" * 64}).status_code == 401
    assert c.get("/metrics").status_code == 401
    # An API key with metrics.read still works, and that one is a policy decision.
    after = c.get("/metrics", auth=served.auth()).text
    assert 'hub_policy_decisions_total{action="metrics.read",result="allow",route="/metrics"}' in (
        after
    )


def test_decisions_are_labelled_by_route_template(served: Served) -> None:
    c = served.client
    c.get("/v1/topics/some-raw-topic-name/events", auth=served.auth())
    text = c.get("/metrics", headers={"Authorization": f"Bearer {served.token}"}).text
    assert 'route="/v1/topics/{topic}/events"' in text
    assert "some-raw-topic-name" not in text


def test_log_lines_are_ecs_with_the_request_id(served: Served) -> None:
    r = served.client.get("/v1/topics", auth=served.auth(), headers={"X-Request-Id": "req-42"})
    assert r.status_code == 200 and r.headers["x-request-id"] == "req-42"
    generated = served.client.get("/health").headers["x-request-id"]
    assert len(generated) == 32
    access = [x for x in served.lines() if x["log"]["logger"] == "hub.access"]
    (line,) = [x for x in access if x["http"]["request"].get("id") == "req-42"]
    datetime.fromisoformat(line["@timestamp"])
    assert line["ecs"]["version"] and line["service"]["name"] == "hub"
    assert line["log"]["level"] == "info"
    assert line["event"]["dataset"] == "hub.access" and line["event"]["outcome"] == "success"
    assert line["http"]["request"]["method"] == "GET"
    assert line["http"]["response"]["status_code"] == 200
    assert line["hub"]["route"] == "/v1/topics" and "url" not in line, line  # template only
    assert line["hub"]["route"] == "/v1/topics", line
    assert line["user"]["id"] == "admin" or line["user"]["id"]
    assert isinstance(line["event"]["duration"], int)
    # A sane incoming id is kept; anything else is replaced.
    odd = served.client.get("/health", headers={"X-Request-Id": "x" * 500 + "\n"})
    assert odd.headers["x-request-id"] != "x" * 500


def test_redact_hides_key_secrets_and_authorization_values() -> None:
    text = "key hk_0123abcd:S3cr3tS3cr3tS3cr3t and Authorization: Bearer hk_1:abcdefghijkl"
    out = redact(text)
    assert "S3cr3t" not in out and "abcdefghijkl" not in out
    assert "hk_0123abcd:[redacted]" in out


def test_the_admin_key_never_reaches_the_log(tmp_path: Path) -> None:
    import httpx

    with serve(tmp_path) as hub:
        secret = hub.admin_key.partition(":")[2]
        key_id = hub.admin_key.partition(":")[0]
        for headers in (
            {"Authorization": f"Bearer {hub.admin_key}"},
            {"Authorization": f"Bearer {key_id}:wrong-{secret}"},
            {"X-Request-Id": hub.admin_key},  # not a sane request id: replaced, never logged
        ):
            httpx.get(f"{hub.url}/v1/topics", headers=headers, timeout=30)
        httpx.get(f"{hub.url}/v1/topics", auth=(key_id, secret), timeout=30)
        httpx.get(f"{hub.url}/v1/topics/{hub.admin_key}/events", auth=(key_id, secret), timeout=30)
    output = hub.output.read_text()
    assert "[not printed: stdout is not a terminal]" in output
    assert secret not in output
    access = [json.loads(x) for x in output.splitlines() if x.startswith("{")]
    assert len([x for x in access if x.get("event", {}).get("dataset") == "hub.access"]) >= 5
