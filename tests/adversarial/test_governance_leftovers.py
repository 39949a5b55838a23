"""Legal holds and hub-wide configuration (session 14, governance leftovers).

1. (high) One holder of ``legalhold.write`` released a legal hold alone; a compliance officer
   also holds ``subject.erase`` and ``retention.write``, so one person could lift a hold and then
   erase the subject or let retention cut what it kept. A release is now a change of
   ``legalhold:<hold_id>`` that another person must approve; the ledger records the proposal,
   the approval and the release.
2. (medium) Ingest rules (``rules:<subject>``) and the alert rules (``alerts.rules``) are
   hub-wide (they quarantine every tenant's records, alert on every tenant's figures), yet one
   tenant's officer changed them: they are now decided as the hub's own tenant's.
3. (high) Projection retention cut the view rows of a data subject under a legal hold, which
   topic retention keeps: they now survive it (and a rebuild's cut).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from hub.api.app import create_app
from hub.bootstrap import Hub, bootstrap
from hub.settings import load_settings
from tests.adversarial._api import quiet_hub


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    yield from quiet_hub(tmp_path / "d")


@pytest.fixture
def client(hub: Hub) -> Iterator[TestClient]:
    with TestClient(create_app(hub), raise_server_exceptions=False) as c:
        yield c


def _auth(hub: Hub, role: str, owner: str, tenant: str = "default") -> dict[str, str]:
    token = hub.keys.create([role], principal=owner, tenant=tenant).token
    return {"Authorization": "Basic " + base64.b64encode(token.encode()).decode()}


def _actions(hub: Hub, resource: str) -> list[tuple[str, str]]:
    hub.ledger.sync(force_checkpoint=True)
    return [
        (e["actor"], e["action"])
        for e in hub.ledger.entries(topic="hub.audit", with_fields=True)
        if e["resource"] == resource
    ]


# -- 1. releasing a legal hold needs a second person ---------------------------------------------
def test_one_officer_cannot_release_a_hold_and_then_erase_its_subject(
    hub: Hub, client: TestClient
) -> None:
    carol = _auth(hub, "compliance_officer", "carol")
    hold = {"scope": "subject:ACC-7", "matter": "m"}
    r = client.post("/v1/legal-holds", json=hold, headers=carol)
    assert r.status_code == 201, r.text  # placing stays one person's act
    hold_id = r.json()["hold_id"]

    r = client.post(f"/v1/legal-holds/{hold_id}/release", json={"reason": "done"}, headers=carol)
    assert r.status_code == 202, r.text
    change = r.json()["change"]
    assert change["requires_approval"] and change["resource"] == f"legalhold:{hold_id}"
    assert hub.governance.is_held("subject:ACC-7")  # still in force
    r = client.post("/v1/erasures", json={"subject": "ACC-7", "reason": "gdpr"}, headers=carol)
    assert r.status_code == 409 and r.json()["reason"] == "legal_hold", r.text

    # the proposer may not approve its own release, nor go around it
    r = client.post(f"/v1/config/changes/{change['change_id']}/approve", json={}, headers=carol)
    assert r.status_code == 403 and r.json()["reason"] == "two_person_rule", r.text
    for value in ("held", {"released": True}):
        body = {"resource": f"legalhold:{hold_id}", "value": value, "reason": "x"}
        r = client.post("/v1/config/changes", json=body, headers=carol)
        assert r.status_code == 422 and r.json()["reason"] == "invalid_legalhold_change", r.text
    analyst = _auth(hub, "analyst", "ann")  # no config.approve, no legalhold.write
    r = client.post(f"/v1/config/changes/{change['change_id']}/approve", json={}, headers=analyst)
    assert r.status_code == 403, r.text
    assert hub.governance.is_held("subject:ACC-7")

    dave = _auth(hub, "compliance_officer", "dave")
    r = client.post(f"/v1/config/changes/{change['change_id']}/approve", json={}, headers=dave)
    assert r.status_code == 200 and r.json()["status"] == "applied", r.text
    assert not hub.governance.is_held("subject:ACC-7")
    assert _actions(hub, f"legalhold:{hold_id}") == [
        ("carol", "config.propose"),
        ("dave", "config.approve"),
        ("dave", "legalhold.release"),
    ]
    # a second approval, or a release of a hold no longer active, changes nothing
    r = client.post(f"/v1/config/changes/{change['change_id']}/approve", json={}, headers=dave)
    assert r.status_code == 409, r.text
    r = client.post(f"/v1/legal-holds/{hold_id}/release", json={}, headers=carol)
    assert r.status_code == 404 and r.json()["reason"] == "hold_not_found", r.text


def test_another_tenant_neither_sees_nor_approves_a_release(hub: Hub, client: TestClient) -> None:
    """A release names a hold of an investigation: acme's officer (config.read, no tenant.all)
    neither lists globex's release proposal nor reads or approves it."""
    gus = _auth(hub, "compliance_officer", "gus", "globex")
    ann = _auth(hub, "compliance_officer", "ann", "acme")
    r = client.post("/v1/legal-holds", json={"scope": "subject:G-9", "matter": "m"}, headers=gus)
    hold_id = r.json()["hold_id"]
    r = client.post(f"/v1/legal-holds/{hold_id}/release", json={"reason": "SEC 42"}, headers=gus)
    change_id = r.json()["change"]["change_id"]
    assert client.get("/v1/config/changes", headers=ann).json() == []
    assert client.get(f"/v1/config/changes/{change_id}", headers=ann).status_code == 404
    r = client.post(f"/v1/config/changes/{change_id}/approve", json={}, headers=ann)
    assert r.status_code == 404, r.text
    assert hub.governance.is_held("subject:G-9")
    listed = client.get(
        "/v1/config/changes", headers=_auth(hub, "compliance_officer", "gail", "globex")
    )
    assert [c["change_id"] for c in listed.json()] == [change_id]


def test_a_release_cannot_be_applied_directly_even_with_an_empty_two_person_list(
    hub: Hub,
) -> None:
    """The shipped bundle's ``two_person`` list does not name ``legalhold:*``; a release needs a
    second person anyway, and ``set_direct`` (the direct paths' call) refuses it."""
    from core.ports.policy import Principal
    from governance.configchanges import TwoPersonRequired

    hold = hub.governance.place_hold("topic:trades", actor="carol")
    carol = Principal("carol", frozenset({"compliance_officer"}))
    with pytest.raises(TwoPersonRequired):
        hub.config_changes.set_direct(carol, f"legalhold:{hold.hold_id}", None, "x")
    assert hub.governance.is_held("topic:trades")


def test_the_cli_release_only_proposes(tmp_path: Path) -> None:
    from hub.cli import main

    data = tmp_path / "d"
    h = bootstrap(load_settings(environ={"HUB_PROJECTION_AUTOSTART": "false"}, data_dir=data))
    try:
        hold = h.governance.place_hold("topic:trades", actor="carol")
        token = h.keys.create(["compliance_officer"], principal="carol").token
    finally:
        h.close()
    env = {"HUB_DATA_DIR": str(data), "HUB_API_KEY": token, "HUB_PROJECTION_AUTOSTART": "false"}
    result = CliRunner().invoke(
        main, ["legal-hold", "release", hold.hold_id, "--reason", "r"], env=env
    )
    assert result.exit_code == 0, result.output
    out: dict[str, Any] = json.loads(result.output[: result.output.rindex("}") + 1])
    assert out["change"]["status"] == "pending_approval"
    result = CliRunner().invoke(main, ["legal-hold", "list"], env=env)
    assert [h["hold_id"] for h in json.loads(result.output)] == [hold.hold_id]


# -- 2. hub-wide configs ------------------------------------------------------------------
RULES = {"rules": [{"id": "r", "kind": "regex", "field": "instrument", "pattern": "^X"}]}
BARS_RULE = {
    "name": "many_bars",
    "summary": "More one-minute bars than the threshold.",
    "sql": "SELECT count() AS bars FROM ohlcv_1m",
    "threshold": "0",
    "severity": "info",
}


def _officers_may_write_rules(hub: Hub, client: TestClient) -> None:
    """A governed policy change (two people): compliance officers gain ``rules.write`` (no
    ``tenant.all``), as a deployment that lets them tune quality rules would."""
    from core.policybundle import PolicyBundle

    shipped = PolicyBundle.from_dir()
    data = json.loads(shipped.files["hub/data.json"])
    data["role_actions"]["compliance_officer"].append("rules.write")
    files = {**shipped.files, "hub/data.json": json.dumps(data, indent=2) + "\n"}
    alice = _auth(hub, "security_admin", "alice")
    carol = _auth(hub, "compliance_officer", "carol")
    r = client.post("/v1/policy/changes", headers=alice, json={"files": files, "reason": "rw"})
    assert r.status_code == 201, r.text
    change = r.json()["change_id"]
    r = client.post(f"/v1/policy/changes/{change}/approve", headers=carol, json={})
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(
    ("resource", "value"),
    [("rules:trades-value", RULES), ("alerts.rules", [BARS_RULE])],
)
def test_a_tenant_cannot_change_hub_wide_rules(
    hub: Hub, client: TestClient, resource: str, value: Any
) -> None:
    _officers_may_write_rules(hub, client)
    ann = _auth(hub, "compliance_officer", "ann", "acme")
    body = {"resource": resource, "value": value, "reason": "x"}
    r = client.post("/v1/config/changes", json=body, headers=ann)
    assert r.status_code == 403 and "tenant isolation" in r.json()["message"], r.text
    if resource.startswith("rules:"):  # the direct path too
        r = client.put("/v1/rules/trades-value", json=RULES, headers=ann)
        assert r.status_code == 403 and "tenant isolation" in r.json()["message"], r.text
    assert hub.config_changes.value(resource)["value"] is None  # the shipped ones still
    carol = _auth(hub, "compliance_officer", "carol")  # the hub's own tenant's officer
    r = client.post("/v1/config/changes", json=body, headers=carol)
    assert r.status_code == 201, r.text
    assert hub.config_changes.value(resource)["value"] is not None


# -- 3. projection retention keeps a held subject's rows -----------------------------------------
def test_projection_retention_keeps_the_rows_of_a_held_subject(hub: Hub) -> None:
    """A0 is under a legal hold; its log records survive topic retention, but projection
    retention cut its ten-day-old ``payment_limits`` row (and a rebuild's cut did too)."""
    import time

    from core.ports.views import Target
    from projections.service import projection
    from tests.service.test_retention import DAY, history, publish_payments

    def limits() -> list[str]:
        table = projection("payments").table("payment_limits")
        rows = hub.projections.store("transactional").rows(Target("payments"), table)
        return sorted(r["account_id"] for r in rows)

    now = int(time.time() * 1000)
    # A0, A1 ten days old; A2, A3 younger, on today's UTC date: ``payment_limits`` keeps a row
    # per account and day, and in the first hour after midnight "an hour ago" is yesterday,
    # whose day (more than a DAY before now) the cut would take too (a CI run at 00:15 did).
    publish_payments(hub, now, young_age_ms=min(3_600_000, (now % DAY) // 2))
    g = hub.governance
    hold = g.place_hold("subject:A0", actor="legal", matter="m")
    g.set_policy("projection:payments", max_age_ms=DAY, time_column="day", actor="a")
    assert [d.count for d in hub.retention.plan(now).deleted_rows] == [1]
    assert [d.count for d in hub.retention.run(now).deleted_rows] == [1]
    assert limits() == ["A0", "A2", "A3"]
    hub.projections.rebuild("payments")  # the rebuild's cut keeps it too
    assert limits() == ["A0", "A2", "A3"]

    # payment_history stores no account: none of its rows is cut while a subject is held
    g.set_policy("projection:payments", max_age_ms=DAY, time_column="at", actor="a")
    report = hub.retention.run(now)
    assert report.deleted_rows == [] and len(history(hub)) == 5
    assert "payment_history" in report.skipped[0]["reason"]

    g.release_hold(hold.hold_id, actor="legal")  # released: the next run cuts them
    assert [d.count for d in hub.retention.run(now).deleted_rows] == [3]
    g.set_policy("projection:payments", max_age_ms=DAY, time_column="day", actor="a")
    hub.retention.run(now)
    assert limits() == ["A2", "A3"]
