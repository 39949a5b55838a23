"""Configuration changes as governed commands: quality rules, registry compatibility levels and
retention policies.

Propose/apply, the two-person rule per resource (from the active policy bundle), self-approval,
stale approvals, rollback, the direct paths (``PUT /config``, ``hub rules set``, ``hub retention
set``, ``POST /v1/retention/policies``) under the rule, the events and audit entries they leave,
and denial per role on the CLI and over HTTP.
"""

from __future__ import annotations

import base64
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from core.errors import Conflict, Forbidden, InvalidInput, TopicNotFound
from core.policybundle import PolicyBundle
from core.ports.policy import Principal
from governance.configchanges import (
    ConfigChanges,
    StaleChange,
    TwoPersonRequired,
    two_person_applies,
)
from governance.configstore import CONFIG_CHANGES_TOPIC
from governance.retention import GOVERNANCE_TOPIC
from hub.api.app import create_app
from hub.bootstrap import Hub, bootstrap
from hub.cli import main
from hub.settings import load_settings
from tests.adversarial._people import enrolled
from tests.cli_keys import admin_args

ALICE = Principal("alice", frozenset({"security_admin"}))
CAROL = Principal("carol", frozenset({"compliance_officer"}))
RULES = "rules:trades-value"
LEVEL = "registry.config:trades-value"
TRADES = "retention:topic:trades"
PAYMENTS = "retention:projection:payments"
DAY = 86_400_000


def keyed(hub: Hub, owner: str, role: str) -> Principal:
    """``owner``'s principal as its key gives it: an approval is made with a person's key."""
    for k in hub.keys.active():
        if k.owner == owner:
            return k.principal
    return hub.keys.get(hub.keys.create([role], owner=owner).key_id).principal


@pytest.fixture(autouse=True)
def _people_with_keys(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """ALICE and CAROL of the test's hub, with their keys (the two-person rule counts only an
    approval made with the approver's own key)."""
    if "hub" in request.fixturenames:
        hub = request.getfixturevalue("hub")
        monkeypatch.setattr(sys.modules[__name__], "ALICE", keyed(hub, "alice", "security_admin"))
        monkeypatch.setattr(
            sys.modules[__name__], "CAROL", keyed(hub, "carol", "compliance_officer")
        )


def auth(token: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(token.encode()).decode()}


def enable_two_person(hub: Hub, *patterns: str) -> None:
    """Activate a policy bundle whose ``two_person`` list adds ``patterns`` (itself a change
    under the two-person rule for ``policy``: alice proposes, carol approves)."""
    shipped = PolicyBundle.from_dir()
    data = json.loads(shipped.files["hub/data.json"])
    data["two_person"] = [*data["two_person"], *patterns]
    files = {**shipped.files, "hub/data.json": json.dumps(data, indent=2) + "\n"}
    policies = hub.policy_changes
    alice = keyed(hub, "alice", "security_admin")
    change = policies.propose(alice, files, "config changes need two people")
    policies.approve(keyed(hub, "carol", "compliance_officer"), change.change_id, "agreed")


def fewer_rules(hub: Hub, n: int = 2) -> dict[str, Any]:
    rules = hub.ingest.rules.get("trades-value").as_dict()
    rules["rules"] = rules["rules"][:n]
    return rules


def events(hub: Hub, topic: str) -> list[dict[str, Any]]:
    end = hub.log.end_offsets(topic).get(0, 0)
    return hub.reader.read(topic, 0, 0, end + 1)


def audit_actions(hub: Hub) -> list[tuple[str, str, str]]:
    return [
        (v["actor"], v["action"], v["resource"])
        for v in (r["value"] for r in events(hub, "hub.audit"))
        if v["action"].startswith("config.")
    ]


@pytest.fixture
def changes(hub: Hub) -> ConfigChanges:
    return hub.config_changes


@pytest.fixture
def client(hub: Hub) -> Iterator[TestClient]:
    with TestClient(create_app(hub)) as c:
        yield c


def test_two_person_patterns() -> None:
    assert two_person_applies(["rules:trades-value"], "rules:trades-value")
    assert not two_person_applies(["rules:trades-value"], "rules:quotes-value")
    assert two_person_applies(["rules:*"], "rules:quotes-value")
    assert two_person_applies(["registry.config:*"], "registry.config:trades-value")
    assert two_person_applies(["registry.config:*"], "registry.config")  # the global level too
    assert not two_person_applies(["registry.config"], "registry.config:trades-value")
    assert not two_person_applies(["policy", 3, None], "rules:x")
    assert two_person_applies(["*"], "rules:x")


def test_propose_applies_at_once_without_two_person(hub: Hub, changes: ConfigChanges) -> None:
    change = changes.propose(ALICE, LEVEL, "full", "payments team asked")
    assert change.status == "applied" and not change.requires_approval
    assert change.summary()["old_value"] is None and change.summary()["new_value"] == "FULL"
    assert '-null\n+"FULL"' in change.diff
    assert hub.registry.compatibility("trades-value") == "FULL"

    rules = changes.propose(ALICE, RULES, fewer_rules(hub), "fewer rules")
    assert rules.status == "applied"
    assert len(hub.ingest.rules.get("trades-value").rules) == 2
    assert '-    "rules": [' not in rules.diff and "trade.ids.required" in rules.diff

    # The change log: one proposed and one applied event per change, linked by change_id.
    log = events(hub, CONFIG_CHANGES_TOPIC)
    assert [r["headers"]["ce_type"] for r in log] == [
        "hub.ConfigChangeProposed",
        "hub.ConfigChangeApplied",
    ] * 2
    assert log[0]["value"]["proposed_by"] == "alice" and log[0]["value"]["diff"] == change.diff
    # Their effect: ConfigChanged on hub.config (with the change id as correlation id).
    effect = events(hub, "hub.config")
    assert [r["value"]["key"] for r in effect] == [
        "registry.compatibility.trades-value",
        "quality.rules.trades-value",
    ]
    assert effect[0]["headers"]["ce_correlationid"] == change.change_id
    # And the audit ledger.
    assert audit_actions(hub) == [
        ("alice", "config.propose", LEVEL),
        ("alice", "config.propose", RULES),
    ]
    hub.ledger.sync()
    first = log[0]
    assert hub.ledger.index_of(CONFIG_CHANGES_TOPIC, 0, first["offset"]) is not None

    with pytest.raises(Conflict, match="nothing to change"):
        changes.propose(ALICE, LEVEL, "FULL", "again")
    with pytest.raises(InvalidInput, match="reason"):
        changes.propose(ALICE, LEVEL, "NONE", " ")


def test_values_are_validated(changes: ConfigChanges) -> None:
    with pytest.raises(InvalidInput) as bad_level:
        changes.propose(ALICE, LEVEL, "SIDEWAYS", "why not")
    assert bad_level.value.code == "invalid_compatibility_level"
    with pytest.raises(InvalidInput) as bad_rules:
        changes.propose(ALICE, RULES, {"rules": [{"id": "x", "kind": "nope"}]}, "broken")
    assert bad_rules.value.code == "invalid_rules"
    with pytest.raises(InvalidInput) as bad_regex:
        rule = {"id": "r", "kind": "regex", "field": "instrument", "pattern": "("}
        changes.propose(ALICE, RULES, {"rules": [rule]}, "broken regex")
    assert bad_regex.value.code == "invalid_rules"
    with pytest.raises(InvalidInput) as unknown:
        changes.propose(ALICE, "kafka.brokers", "x", "no such thing")
    assert unknown.value.code == "unknown_config_resource"
    assert changes.store.changes() == []


def test_two_person_pending_then_approved(hub: Hub, changes: ConfigChanges) -> None:
    enable_two_person(hub, "rules:*")
    assert changes.requires_two_person(RULES) and not changes.requires_two_person(LEVEL)
    shipped = len(hub.ingest.rules.get("trades-value").rules)
    # only an admin holds rules.write, which proposing a rule set takes (decided again at
    # approval: a security_admin's proposal, made in-process past the routes, does not count)
    ada = keyed(hub, "ada", "admin")
    change = changes.propose(ada, RULES, fewer_rules(hub), "fewer rules")
    assert change.status == "pending_approval"
    assert len(hub.ingest.rules.get("trades-value").rules) == shipped  # not yet

    with pytest.raises(Forbidden, match="Two-person rule"):
        changes.approve(ada, change.change_id)
    done = changes.approve(CAROL, change.change_id, "ok")
    assert done.status == "applied" and done.approvals[0]["approved_by"] == "carol"
    assert len(hub.ingest.rules.get("trades-value").rules) == 2
    with pytest.raises(Conflict, match="already applied"):
        changes.approve(CAROL, change.change_id)

    kinds = [r["headers"]["ce_type"] for r in events(hub, CONFIG_CHANGES_TOPIC)]
    assert kinds == [
        "hub.ConfigChangeProposed",
        "hub.ConfigChangeApproved",
        "hub.ConfigChangeApplied",
    ]
    assert audit_actions(hub) == [
        ("ada", "config.propose", RULES),
        ("carol", "config.approve", RULES),
    ]


def test_a_stale_approval_is_refused(hub: Hub, changes: ConfigChanges) -> None:
    enable_two_person(hub, "registry.config:*")
    first = changes.propose(ALICE, LEVEL, "FULL", "one")
    second = changes.propose(ALICE, LEVEL, "NONE", "two")
    changes.approve(CAROL, second.change_id)
    assert hub.registry.compatibility("trades-value") == "NONE"
    with pytest.raises(StaleChange, match="propose it again"):
        changes.approve(CAROL, first.change_id)
    assert hub.registry.compatibility("trades-value") == "NONE"
    assert changes.store.change(first.change_id).status == "pending_approval"


def test_rollback_is_a_new_change(hub: Hub, changes: ConfigChanges) -> None:
    one = changes.propose(ALICE, LEVEL, "FULL", "one")
    changes.propose(ALICE, LEVEL, "NONE", "two")
    back = changes.rollback(ALICE, LEVEL, one.change_id, "two broke consumers")
    assert back.kind == "rollback" and back.rollback_of == one.change_id
    assert back.status == "applied" and hub.registry.compatibility("trades-value") == "FULL"
    undo = changes.rollback(ALICE, LEVEL, one.change_id, "back to global", undo=True)
    assert undo.new_value is None and hub.registry.own_compatibility("trades-value") is None
    with pytest.raises(InvalidInput, match="same resource"):
        changes.rollback(ALICE, RULES, one.change_id, "wrong resource")
    assert len(changes.store.changes(LEVEL)) == 4

    enable_two_person(hub, LEVEL)
    pending = changes.rollback(ALICE, LEVEL, one.change_id, "under two-person now")
    assert pending.status == "pending_approval"
    assert hub.registry.own_compatibility("trades-value") is None


def test_direct_paths_are_refused_under_two_person(
    hub: Hub, client: TestClient, tmp_path: Path
) -> None:
    admin = auth(hub.keys.create(["admin"], principal="root").token)
    put = client.put("/config/trades-value", json={"compatibility": "FULL"}, headers=admin)
    assert put.status_code == 200 and put.json() == {"compatibility": "FULL"}
    direct = hub.config_changes.store.changes(LEVEL)
    assert [(c.kind, c.status, c.proposed_by) for c in direct] == [("direct", "applied", "root")]

    enable_two_person(hub, "registry.config:*", RULES)
    put = client.put("/config/trades-value", json={"compatibility": "NONE"}, headers=admin)
    assert put.status_code == 403, put.text
    body = put.json()
    assert body["error_code"] == 40301 and body["reason"] == "two_person_required"
    assert "hub config propose registry.config:trades-value" in body["message"]
    assert client.delete("/config", headers=admin).status_code == 200  # nothing to change
    assert client.put("/config", json={"compatibility": "NONE"}, headers=admin).status_code == 403
    assert hub.registry.compatibility("trades-value") == "FULL"

    with pytest.raises(TwoPersonRequired):
        hub.ingest.rules.set("trades-value", fewer_rules(hub), "ops", "direct")
    put = client.put("/v1/rules/trades-value", json={"rules": []}, headers=admin)
    assert put.status_code == 403 and put.json()["reason"] == "two_person_required"
    hub.close()  # the CLI opens the same data folder
    rules_file = tmp_path / "rules.json"
    rules_file.write_text(json.dumps({"rules": []}))
    data = str(hub.settings.data_dir)
    result = CliRunner().invoke(
        main, [*admin_args(data), "rules", "set", "trades-value", str(rules_file)]
    )
    assert result.exit_code == 1 and "two_person_required" in result.stderr
    assert len(config_changes_for_dir(data).store.changes(LEVEL)) == 1


def config_changes_for_dir(data: str) -> ConfigChanges:
    h = bootstrap(load_settings(environ={}, data_dir=Path(data)))
    try:
        return h.config_changes
    finally:
        h.close()


def test_http_flow_and_denial_per_role(hub: Hub, client: TestClient) -> None:
    enable_two_person(hub, "registry.config:*")
    keys = {
        role: auth(hub.keys.create([role], principal=f"p-{role}").token)
        for role in ("analyst", "compliance_officer", "security_admin", "admin")
    }
    body = {"resource": LEVEL, "value": "FULL_TRANSITIVE", "reason": "audit asked"}
    assert client.post("/v1/config/changes", json=body, headers=keys["analyst"]).status_code == 403
    denied = client.post("/v1/config/changes", json=body, headers=keys["compliance_officer"])
    # officers may propose (retention), but a registry level also needs registry.config
    assert denied.status_code == 403 and "'registry.config'" in denied.json()["message"]
    rules = {"resource": RULES, "value": None, "reason": "shipped rules"}
    denied = client.post("/v1/config/changes", json=rules, headers=keys["security_admin"])
    assert denied.status_code == 403 and "rules.write" in denied.json()["message"]

    resp = client.post("/v1/config/changes", json=body, headers=keys["security_admin"])
    assert resp.status_code == 201, resp.text
    change = resp.json()
    assert change["status"] == "pending_approval" and change["new_value"] == "FULL_TRANSITIVE"
    cid = change["change_id"]
    url = f"/v1/config/changes/{cid}/approve"
    assert client.post(url, json={}, headers=keys["analyst"]).status_code == 403
    same = client.post(url, json={}, headers=keys["security_admin"])
    assert same.status_code == 403 and "Two-person rule" in same.json()["message"]
    ok = client.post(url, json={"reason": "fine"}, headers=keys["compliance_officer"])
    assert ok.status_code == 200 and ok.json()["status"] == "applied", ok.text
    assert hub.registry.compatibility("trades-value") == "FULL_TRANSITIVE"

    assert client.get("/v1/config/changes", headers=keys["analyst"]).status_code == 403
    listed = client.get("/v1/config/changes", headers=keys["compliance_officer"]).json()
    assert [c["change_id"] for c in listed] == [cid]
    shown = client.get(f"/v1/config/changes/{cid}", headers=keys["compliance_officer"]).json()
    assert '+"FULL_TRANSITIVE"' in shown["diff"]
    value = client.get(f"/v1/config/values/{LEVEL}", headers=keys["admin"]).json()
    assert value == {"resource": LEVEL, "value": "FULL_TRANSITIVE", "requires_two_person": True}
    back = client.post(
        "/v1/config/rollback",
        json={"resource": LEVEL, "to_change_id": cid, "undo": True, "reason": "revert"},
        headers=keys["admin"],
    )
    assert back.status_code == 201 and back.json()["status"] == "pending_approval", back.text
    bad = client.post(
        "/v1/config/changes", json={**body, "value": "SIDEWAYS"}, headers=keys["admin"]
    )
    assert bad.status_code == 422 and bad.json()["reason"] == "invalid_compatibility_level"


def test_cli_flow_and_denial(tmp_path: Path) -> None:
    data = str(tmp_path / "data")

    def run(*args: str) -> tuple[int, str, str]:
        result = CliRunner().invoke(main, [*admin_args(data), *args])
        return result.exit_code, result.stdout, result.stderr

    code, out, err = run("config", "propose", LEVEL, "full", "--reason", "tighten")
    assert code == 0, err
    first = json.loads(out)
    assert first["status"] == "applied" and first["new_value"] == "FULL"
    code, out, err = run("config", "show", LEVEL)
    assert code == 0 and json.loads(out)["value"] == "FULL", err
    code, out, _ = run("config", "show", first["change_id"])
    assert json.loads(out)["diff"].endswith('+"FULL"\n')

    code, analyst, _ = run("keys", "create", "--role", "analyst", "--principal", "ann")
    code, _, err = run(
        "config", "propose", LEVEL, "NONE", "--reason", "x", "--key", analyst.strip()
    )
    assert code == 1 and "config.propose" in err
    code, _, err = run("config", "list", "--key", analyst.strip())
    assert code == 1 and "config.read" in err

    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - {id: trade.ids.required, kind: required, fields: [trade_id]}\n")
    code, out, err = run("config", "propose", RULES, "--file", str(rules), "--reason", "one rule")
    assert code == 0, err
    code, out, err = run("config", "rollback", LEVEL, first["change_id"], "--undo", "--reason", "r")
    assert code == 0 and json.loads(out)["kind"] == "rollback", err
    code, out, _ = run("config", "list")
    lines = out.strip().splitlines()
    assert len(lines) == 3 and all("\tapplied\t" in line for line in lines)
    code, _, err = run("config", "propose", LEVEL, "FULL", "--unset", "--reason", "both")
    assert code == 1 and "exactly one" in err


# -- retention policies (retention:<scope>) -------------------------------------------------------
def policy_of(hub: Hub, scope: str) -> dict[str, Any] | None:
    """The policy the retention fold has in force (a fresh fold: what the job would read)."""
    policy = hub.governance.policies().get(scope)
    return None if policy is None else policy.as_dict()


def test_retention_policies_are_config_changes(hub: Hub, changes: ConfigChanges) -> None:
    assert two_person_applies(["retention:*"], PAYMENTS)
    assert changes.value(TRADES) == {
        "resource": TRADES,
        "value": None,
        "requires_two_person": False,
    }
    one = changes.propose(ALICE, TRADES, {"max_age_ms": DAY}, "MiFID: one day")
    assert one.status == "applied" and one.summary()["new_value"] == {"max_age_ms": DAY}
    assert '-null\n+{\n+  "max_age_ms": 86400000\n+}' in one.diff
    policy = policy_of(hub, "topic:trades")
    assert policy is not None
    assert (policy["max_age_ms"], policy["set_by"], policy["reason"]) == (DAY, "alice", one.reason)
    # The effect is the RetentionPolicySet event the fold reads, linked to the change.
    (effect,) = events(hub, GOVERNANCE_TOPIC)
    assert effect["headers"]["ce_type"] == "hub.RetentionPolicySet"
    assert effect["headers"]["ce_correlationid"] == one.change_id
    two = changes.propose(ALICE, TRADES, {"max_age_ms": 2 * DAY, "max_records": 10}, "two")
    assert changes.value(TRADES)["value"] == {"max_age_ms": 2 * DAY, "max_records": 10}

    # Rollback restores the earlier policy; --undo of the first clears it (null: no policy).
    back = changes.rollback(ALICE, TRADES, one.change_id, "two was too long")
    assert back.kind == "rollback" and back.summary()["old_value"] == two.summary()["new_value"]
    restored = policy_of(hub, "topic:trades") or {}
    assert (restored["max_age_ms"], restored["max_records"]) == (DAY, None)
    changes.rollback(ALICE, TRADES, one.change_id, "no policy after all", undo=True)
    assert policy_of(hub, "topic:trades") is None and changes.value(TRADES)["value"] is None
    # A value without a limit is the same as null: clearing (and nothing to change now).
    with pytest.raises(Conflict, match="nothing to change"):
        changes.propose(ALICE, TRADES, {"max_records": None}, "clear again")

    # Projections: a usable time column; the value in force is the fold's.
    changes.propose(ALICE, PAYMENTS, {"max_age_ms": DAY, "time_column": "at"}, "GDPR")
    assert changes.value(PAYMENTS)["value"] == {"max_age_ms": DAY, "time_column": "at"}
    assert [r["headers"]["ce_type"] for r in events(hub, CONFIG_CHANGES_TOPIC)] == [
        "hub.ConfigChangeProposed",
        "hub.ConfigChangeApplied",
    ] * 5
    assert audit_actions(hub)[-1] == ("alice", "config.propose", PAYMENTS)


def test_invalid_retention_values_are_refused_at_propose(hub: Hub, changes: ConfigChanges) -> None:
    refused = [
        (TRADES, {"max_age_ms": -1}, "invalid_retention_limit"),
        (TRADES, {"max_records": 0}, "invalid_retention_limit"),
        (TRADES, {"max_age_ms": "1d"}, "invalid_retention_limit"),
        (TRADES, {"max_age_ms": DAY, "time_column": "at"}, "invalid_input"),
        (PAYMENTS, {"max_age_ms": DAY, "time_column": "nope"}, "invalid_time_column"),
        (PAYMENTS, {"max_age_ms": DAY}, "invalid_time_column"),
        (PAYMENTS, {"max_records": 5}, "invalid_input"),
        (TRADES, {"max_age": DAY}, "invalid_retention_policy"),
        (TRADES, DAY, "invalid_retention_policy"),
        ("retention:topic:hub.audit", {"max_age_ms": DAY}, "protected_topic"),
        ("retention:table:trades", {"max_age_ms": DAY}, "invalid_scope"),
    ]
    for resource, value, code in refused:
        with pytest.raises(InvalidInput) as exc:
            changes.propose(ALICE, resource, value, "bad")
        assert exc.value.code == code, (resource, value, exc.value.message)
    with pytest.raises(InvalidInput) as unknown:
        changes.propose(ALICE, "retention:", {"max_age_ms": DAY}, "no scope")
    assert unknown.value.code == "unknown_config_resource"
    with pytest.raises(TopicNotFound):
        changes.propose(ALICE, "retention:topic:nope", {"max_age_ms": DAY}, "no topic")
    assert changes.store.changes() == [] and hub.governance.policies() == {}


def test_retention_direct_api_is_recorded_and_refused_under_two_person(
    hub: Hub, client: TestClient
) -> None:
    keys = {
        role: auth(hub.keys.create([role], principal=f"p-{role}").token)
        for role in ("compliance_officer", "security_admin")
    }
    officer, admin = keys["compliance_officer"], keys["security_admin"]
    body = {"scope": "topic:trades", "max_age_ms": DAY, "reason": "MiFID"}
    direct = client.post("/v1/retention/policies", json=body, headers=officer)
    assert direct.status_code == 200, direct.text
    assert direct.json()["max_age_ms"] == DAY and direct.json()["set_by"] == "p-compliance_officer"
    recorded = hub.config_changes.store.changes(TRADES)
    assert [(c.kind, c.status, c.proposed_by, c.reason) for c in recorded] == [
        ("direct", "applied", "p-compliance_officer", "MiFID")
    ]
    again = client.post("/v1/retention/policies", json=body, headers=officer)
    assert again.status_code == 200 and again.json() == direct.json()  # nothing new

    enable_two_person(hub, "retention:*")
    refused = client.post(
        "/v1/retention/policies", json={**body, "max_age_ms": 2 * DAY}, headers=officer
    )
    assert refused.status_code == 403, refused.text
    assert refused.json()["reason"] == "two_person_required"
    assert f"hub config propose {TRADES}" in refused.json()["message"]
    clear = client.post("/v1/retention/policies", json={"scope": "topic:trades"}, headers=officer)
    assert clear.status_code == 403  # clearing is a change too
    assert (policy_of(hub, "topic:trades") or {})["max_age_ms"] == DAY

    # The governed path: one principal proposes, another approves; the fold shows the policy.
    proposal = {"resource": TRADES, "value": {"max_age_ms": 2 * DAY}, "reason": "two days"}
    resp = client.post("/v1/config/changes", json=proposal, headers=admin)
    assert resp.status_code == 201 and resp.json()["status"] == "pending_approval", resp.text
    cid = resp.json()["change_id"]
    assert (policy_of(hub, "topic:trades") or {})["max_age_ms"] == DAY  # not yet
    url = f"/v1/config/changes/{cid}/approve"
    assert client.post(url, json={}, headers=admin).status_code == 403  # the proposer
    ok = client.post(url, json={"reason": "agreed"}, headers=officer)
    assert ok.status_code == 200 and ok.json()["status"] == "applied", ok.text
    policy = policy_of(hub, "topic:trades")
    assert policy is not None and (policy["max_age_ms"], policy["set_by"]) == (
        2 * DAY,
        "p-security_admin",
    )
    listed = client.get("/v1/retention/policies", headers=officer).json()["policies"]
    assert [(p["scope"], p["max_age_ms"]) for p in listed] == [("topic:trades", 2 * DAY)]
    bad = {**proposal, "resource": PAYMENTS, "value": {"max_age_ms": DAY, "time_column": "x"}}
    denied = client.post("/v1/config/changes", json=bad, headers=admin)
    assert denied.status_code == 422 and denied.json()["reason"] == "invalid_time_column"


def test_retention_cli_direct_refused_then_proposed_approved_and_rolled_back(
    tmp_path: Path,
) -> None:
    data = str(tmp_path / "data")

    def run(*args: str) -> tuple[int, str, str]:
        result = CliRunner().invoke(main, [*admin_args(data), *args])
        return result.exit_code, result.stdout, result.stderr

    code, out, err = run("retention", "set", "topic:trades", "--max-age-ms", str(DAY))
    assert code == 0, err
    assert json.loads(out)["max_age_ms"] == DAY and json.loads(out)["scope"] == "topic:trades"
    code, out, err = run("config", "list", "--resource", TRADES)
    assert code == 0 and "\tdirect\tapplied\tby=admin" in out, err
    first = out.split("\t")[0]

    h = bootstrap(load_settings(environ={}, data_dir=Path(data)))
    try:
        enable_two_person(h, "retention:*")
    finally:
        h.close()
    code, _, err = run("retention", "set", "topic:trades", "--max-age-ms", str(2 * DAY))
    assert code == 1 and "two_person_required" in err and "hub config propose" in err

    # the admin proposes: ola approves with a key she enrolled (the admin requested it, a second
    # approver approved it: governance.enrolment)
    h = bootstrap(load_settings(environ={}, data_dir=Path(data)))
    try:
        admin = Principal("admin", frozenset({"admin"}))
        officer = enrolled(h, admin, ["compliance_officer"], owner="ola").token
    finally:
        h.close()
    value = json.dumps({"max_age_ms": 2 * DAY})
    code, out, err = run("config", "propose", TRADES, value, "--reason", "two days")
    assert code == 0, err
    pending = json.loads(out)
    assert pending["status"] == "pending_approval" and "hub config approve" in err
    code, _, err = run("config", "approve", pending["change_id"])
    assert code == 1 and "Two-person rule" in err  # the proposer (the admin) again
    code, out, err = run("config", "approve", pending["change_id"], "--key", officer.strip())
    assert code == 0 and json.loads(out)["status"] == "applied", err
    code, out, _ = run("retention", "list")
    assert [(p["scope"], p["max_age_ms"]) for p in json.loads(out)] == [("topic:trades", 2 * DAY)]

    # Rollback to the direct change: a new proposal, approved by the second principal.
    code, out, err = run("config", "rollback", TRADES, first, "--reason", "one day was right")
    assert code == 0, err
    back = json.loads(out)
    assert back["kind"] == "rollback" and back["status"] == "pending_approval"
    code, out, err = run("config", "approve", back["change_id"], "--key", officer.strip())
    assert code == 0, err
    code, out, _ = run("retention", "list")
    assert [(p["scope"], p["max_age_ms"]) for p in json.loads(out)] == [("topic:trades", DAY)]
    code, out, _ = run("config", "show", TRADES)
    assert json.loads(out) == {
        "resource": TRADES,
        "value": {"max_age_ms": DAY},
        "requires_two_person": True,
    }
