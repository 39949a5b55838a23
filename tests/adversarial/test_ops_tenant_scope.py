"""Hub-wide figures and writes, and keys limited to one tenant (session 14 review findings).

What no single tenant owns (the process's metrics, readiness figures, retention of shared
topics) is decided as the hub's own tenant's (``core.ports.policy.HUB_TENANT``): its operators'
keys act on it as their roles allow, another tenant's key needs ``tenant.all``.

1. ``GET /metrics`` counts every tenant's traffic (labels are topics, routes, projections, never
   tenants): refused to another tenant's compliance officer; the console's ``/ui/api/alerts``
   shows a tenant-limited reader the figures of its own tenant's rules only.
2. ``GET /ready`` (no key) answered log, ledger and view sizes and failure reasons naming hosts:
   it now says only which component answered; ``GET /ready/details`` carries the rest.
3. ``GET /v1/projections/{name}/at`` returned every tenant's rows, unmasked, to whoever the
   policy allows ``projection.rebuild`` (admin in the shipped table, but a governed policy
   change or a grant gives it to others): it now shows the rows the live views would show that
   reader, and a view's digest only to one who sees the whole view.
4.-6. Found probing hub/api: legal holds, API keys and retention crossed tenants.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from core.events import OutgoingEvent
from core.policybundle import PolicyBundle
from hub.api.app import create_app
from hub.bootstrap import Hub, bootstrap
from hub.console.alerts import FIRED, AlertEngine
from hub.settings import load_settings
from tests.adversarial._api import basic, issue_key, quiet_hub
from tests.adversarial.test_console_keys import as_

DAY = "2026-11-24"


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    yield from quiet_hub(tmp_path / "d")


@pytest.fixture
def client(hub: Hub) -> Iterator[TestClient]:
    with TestClient(create_app(hub), raise_server_exceptions=False) as c:
        yield c


# -- 1. /metrics and the console's alerts --------------------------------------------------------
def test_metrics_are_refused_to_a_key_limited_to_one_tenant(hub: Hub, client: TestClient) -> None:
    hub.publisher.publish("trades", [_trade(0, "acme")], producer="t", tenant="acme")
    globex = basic(issue_key(hub, "compliance_officer", "gus", "globex"))
    r = client.get("/metrics", headers=globex)
    assert r.status_code == 403, r.text[:300]
    assert "tenant isolation" in r.json()["message"]
    assert "hub_events_appended_total" not in r.text
    for headers in (  # the hub's own operators: its tenant's officer, an admin
        basic(issue_key(hub, "compliance_officer", "carol")),
        basic(issue_key(hub, "admin", "root")),
    ):
        r = client.get("/metrics", headers=headers)
        assert r.status_code == 200
        assert 'hub_events_appended_total{topic="trades"} 1.0' in r.text


def test_console_alerts_withhold_hub_wide_figures_from_a_tenant(
    hub: Hub, client: TestClient
) -> None:
    """The quarantine rate counts every tenant's records, a ledger verification's first problem
    names any tenant's record: acme's officer sees that they fired, not what they measured."""
    engine = AlertEngine(hub, ())
    fired = {"severity": "warning", "threshold": "5", "fired_at": "2026-12-04T10:00:00+00:00"}
    engine._append(
        FIRED,
        {**fired, "alert_id": "a1", "rule": "quarantine_rate", "value": "37.50",
         "summary": "More than 5% of the records received in the last 5 minutes went to "
         "quarantine."},
    )  # fmt: skip
    engine._append(
        FIRED,
        {**fired, "alert_id": "a2", "rule": "ledger_verify_failed", "value": "1",
         "summary": "x First problem: record globex.payments/0@17 differs from its leaf"},
    )  # fmt: skip
    engine._append(
        FIRED,
        {**fired, "alert_id": "a3", "rule": "projection_lag", "value": "12000", "summary": "lag"},
    )

    def seen(token: str) -> dict[str, dict[str, Any]]:
        as_(client, token)
        r = client.get("/ui/api/alerts")
        assert r.status_code == 200, r.text
        return {e["rule"]: e for e in r.json()["events"]}

    acme = seen(issue_key(hub, "compliance_officer", "ann", "acme"))
    assert acme["quarantine_rate"]["value"] is None
    assert "tenant.all" in acme["quarantine_rate"]["withheld"]
    assert acme["ledger_verify_failed"]["value"] is None
    assert "globex" not in json.dumps(acme)
    assert acme["projection_lag"]["value"] == "12000"  # the hub's own jobs, as on the health page
    admin = seen(issue_key(hub, "admin", "root"))
    assert admin["quarantine_rate"]["value"] == "37.50"
    assert "globex.payments" in admin["ledger_verify_failed"]["summary"]


# -- 2. /ready ------------------------------------------------------------------------------
def test_ready_without_a_key_shows_no_figures_and_details_need_a_role(
    hub: Hub, client: TestClient
) -> None:
    hub.publisher.publish("trades", [_trade(0, "acme")], producer="t", tenant="acme")
    r = client.get("/ready")
    assert r.status_code == 200, r.text
    assert r.json() == {"ready": True}  # s19: not even the components (test_s19_small_ready_status)
    assert client.get("/ready/details").status_code == 401
    officer = basic(issue_key(hub, "compliance_officer", "ann", "acme"))
    assert client.get("/ready/details", headers=officer).status_code == 403
    r = client.get("/ready/details", headers=basic(issue_key(hub, "admin", "root")))
    assert r.status_code == 200, r.text
    by_name = {c["component"]: c for c in r.json()["components"]}
    assert by_name["event_log"]["topics"] > 0 and by_name["ledger"]["pending_records"] >= 0


def test_ready_hides_a_failed_checks_reason_from_anonymous_callers(tmp_path: Path) -> None:
    h = bootstrap(
        load_settings(
            environ={}, data_dir=tmp_path / "d", policy_engine="opa", opa_url="http://10.9.8.7:9"
        )
    )
    try:
        h.projections = None
        c = TestClient(create_app(h))
        r = c.get("/ready")
        assert r.status_code == 503
        assert "10.9.8.7" not in r.text
        assert r.json() == {"ready": False}
    finally:
        h.close()


# -- 3. time travel ------------------------------------------------------------------------
def _trade(i: int, account: str, at: str = "10:00:00") -> OutgoingEvent:
    return OutgoingEvent(
        value={
            "trade_id": f"t{i}-{account}",
            "account_id": account.upper(),
            "instrument": "XS1",
            "side": "BUY",
            "quantity": "10",
            "price": "100",
            "currency": "USD",
            "executed_at": f"{DAY}T{at}Z",
        }
    )


def _analysts_may_time_travel(hub: Hub, client: TestClient) -> None:
    """A governed policy change (two people): role analyst gains projection.rebuild."""
    shipped = PolicyBundle.from_dir()
    data = json.loads(shipped.files["hub/data.json"])
    data["role_actions"]["analyst"].append("projection.rebuild")
    files = {**shipped.files, "hub/data.json": json.dumps(data, indent=2) + "\n"}
    alice = basic(issue_key(hub, "security_admin", "alice"))
    carol = basic(issue_key(hub, "compliance_officer", "carol"))
    r = client.post("/v1/policy/changes", headers=alice, json={"files": files, "reason": "tt"})
    assert r.status_code == 201, r.text
    change = r.json()["change_id"]
    r = client.post(f"/v1/policy/changes/{change}/approve", headers=carol, json={})
    assert r.status_code == 200, r.text


def test_time_travel_shows_a_tenant_its_own_rows_only(hub: Hub, client: TestClient) -> None:
    _analysts_may_time_travel(hub, client)
    for tenant in ("acme", "globex"):
        hub.publisher.publish("trades", [_trade(0, tenant)], producer="t", tenant=tenant)
    acme = basic(issue_key(hub, "analyst", "ann", "acme"))
    r = client.get("/v1/projections/positions/at", params={"offset": 10}, headers=acme)
    assert r.status_code == 200, r.text
    rows = r.json()["views"]["positions"]
    assert [row["account_id"] for row in rows] == ["ACME"], rows
    assert r.json()["digests"]["positions"] is None  # a digest over globex's rows too
    admin = basic(issue_key(hub, "admin", "root"))
    r = client.get("/v1/projections/positions/at", params={"offset": 10}, headers=admin)
    assert sorted(row["account_id"] for row in r.json()["views"]["positions"]) == [
        "ACME",
        "GLOBEX",
    ]
    assert isinstance(r.json()["digests"]["positions"], str)


# -- 4. legal holds (found probing hub/api) ------------------------------------------------------
def test_a_tenant_can_neither_see_nor_release_another_tenants_legal_hold(
    hub: Hub, client: TestClient
) -> None:
    """Holds were hub-wide: acme's officer (legalhold.write, no tenant.all) listed globex's hold
    (its matter names an investigation, its scope a customer) and released it, so globex's
    records fell to the next retention run and its subject could be erased."""
    gus = basic(issue_key(hub, "compliance_officer", "gus", "globex"))
    ann = basic(issue_key(hub, "compliance_officer", "ann", "acme"))
    r = client.post(
        "/v1/legal-holds",
        json={"scope": "subject:GLOBEX-CUST-9", "matter": "SEC inquiry 42"},
        headers=gus,
    )
    assert r.status_code == 201, r.text
    hold_id = r.json()["hold_id"]
    listed = client.get("/v1/legal-holds", headers=ann)
    assert listed.status_code == 200 and listed.json()["holds"] == []
    r = client.post(f"/v1/legal-holds/{hold_id}/release", json={"reason": "x"}, headers=ann)
    assert r.status_code == 404, r.text
    assert hub.governance.is_held("subject:GLOBEX-CUST-9")
    assert [h["hold_id"] for h in client.get("/v1/legal-holds", headers=gus).json()["holds"]] == [
        hold_id
    ]
    admin = basic(issue_key(hub, "admin", "root"))
    assert len(client.get("/v1/legal-holds", headers=admin).json()["holds"]) == 1
    r = client.post(f"/v1/legal-holds/{hold_id}/release", json={"reason": "closed"}, headers=gus)
    assert r.status_code == 202, r.text
    change_id = r.json()["change"]["change_id"]
    # nor may acme's officer approve (or learn of) globex's release
    r = client.post(f"/v1/config/changes/{change_id}/approve", json={}, headers=ann)
    assert r.status_code == 404, r.text
    assert hub.governance.is_held("subject:GLOBEX-CUST-9")
    gail = basic(issue_key(hub, "compliance_officer", "gail", "globex"))
    r = client.post(f"/v1/config/changes/{change_id}/approve", json={}, headers=gail)
    assert r.status_code == 200, r.text
    assert not hub.governance.is_held("subject:GLOBEX-CUST-9")


# -- 5. keys (found probing hub/api) --------------------------------------------------------------
def test_a_tenants_security_admin_neither_lists_nor_revokes_another_tenants_keys(
    hub: Hub, client: TestClient
) -> None:
    """acme's security admin listed every tenant's keys (owners, roles) and, holding the roles
    of globex's security admin key, revoked it: one tenant locked another out."""
    sam = basic(issue_key(hub, "security_admin", "sam", "acme"))
    gus_key = hub.keys.create(["security_admin"], principal="gus", tenant="globex")
    listed = client.get("/v1/keys", headers=sam)
    assert listed.status_code == 200
    assert {k["tenant"] for k in listed.json()} == {"acme"}, listed.json()
    r = client.post(f"/v1/keys/{gus_key.key_id}/revoke", json={"reason": "x"}, headers=sam)
    assert r.status_code == 403, r.text
    assert client.get("/v1/whoami", headers=basic(gus_key.token)).status_code == 200
    # within its own tenant it still manages the keys whose roles it holds
    own = hub.keys.create(["security_admin"], principal="sue", tenant="acme")
    r = client.post(f"/v1/keys/{own.key_id}/revoke", json={"reason": "left"}, headers=sam)
    assert r.status_code == 200, r.text
    admin = basic(issue_key(hub, "admin", "root"))
    assert {k["tenant"] for k in client.get("/v1/keys", headers=admin).json()} >= {
        "acme",
        "globex",
    }


# -- 6. retention (found probing hub/api) ---------------------------------------------------------
def test_a_tenant_cannot_set_retention_that_deletes_other_tenants_records(
    hub: Hub, client: TestClient
) -> None:
    """Topics are shared (a record's tenant is a header): acme's officer (retention.write, no
    tenant.all) set ``max_records: 1`` on topic trades and ran the job, deleting globex's
    trades; through ``POST /v1/config/changes`` of ``retention:topic:trades`` as well."""
    for tenant in ("globex", "globex", "acme"):
        hub.publisher.publish("trades", [_trade(0, tenant)], producer="t", tenant=tenant)
    ann = basic(issue_key(hub, "compliance_officer", "ann", "acme"))
    r = client.post(
        "/v1/retention/policies", json={"scope": "topic:trades", "max_records": 1}, headers=ann
    )
    assert r.status_code == 403 and "tenant isolation" in r.json()["message"], r.text
    r = client.post(
        "/v1/config/changes",
        json={"resource": "retention:topic:trades", "value": {"max_records": 1}, "reason": "x"},
        headers=ann,
    )
    assert r.status_code == 403 and "tenant isolation" in r.json()["message"], r.text
    assert client.post("/v1/retention/run", headers=ann).status_code == 403
    assert hub.governance.policies() == {}
    admin = basic(issue_key(hub, "admin", "root"))
    r = client.post(
        "/v1/retention/policies", json={"scope": "topic:trades", "max_records": 100}, headers=admin
    )
    assert r.status_code == 200, r.text
    assert client.post("/v1/retention/run", headers=admin).status_code == 200
