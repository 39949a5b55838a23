"""Attacks on the two-person rule (a policy change proposed by one person is approved by another).

The rule lives in ``governance.changes.check_two_person`` -> ``ApiKeys.check_approver``, called by
``PolicyChanges.approve`` and ``ConfigChanges.approve``, the only places that apply a pending
change; the API (``/v1/policy``, ``/v1/config``) and console (``/ui/api/security``) routes reach it.
Each test is one way a single person might try to approve their own proposal.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from core.policybundle import PolicyBundle
from core.ports.policy import Principal
from hub.api.app import create_app
from hub.bootstrap import Hub
from tests.adversarial._api import basic as auth
from tests.adversarial._people import enrolled
from tests.adversarial.test_console_keys import as_
from tests.adversarial.test_identity_escalation import _all_routes

ADMIN = Principal("root", frozenset({"admin"}))


def _principal(hub: Hub, issued: Any) -> Principal:
    return hub.keys.get(issued.key_id).principal


def _files(drop: str) -> dict[str, str]:
    shipped = PolicyBundle.from_dir()
    data = json.loads(shipped.files["hub/data.json"])
    data["role_actions"]["analyst"].remove(drop)
    return {**shipped.files, "hub/data.json": json.dumps(data, indent=2) + "\n"}


def _propose(client: TestClient, who: dict[str, str], drop: str = "event.read") -> str:
    resp = client.post(
        "/v1/policy/changes", headers=who, json={"files": _files(drop), "reason": "attack"}
    )
    assert resp.status_code == 201, resp.text
    assert resp.json()["status"] == "pending_approval"
    return str(resp.json()["change_id"])


def _approve(client: TestClient, who: dict[str, str], change_id: str) -> Any:
    return client.post(f"/v1/policy/changes/{change_id}/approve", headers=who, json={})


def test_a_second_key_of_the_same_person_cannot_approve(hub: Hub, client: TestClient) -> None:
    """An admin gives alice a second key with another role: still alice."""
    alice = auth(enrolled(hub, ADMIN, ["security_admin"], owner="alice").token)
    alice2 = auth(enrolled(hub, ADMIN, ["compliance_officer"], owner="alice").token)
    change = _propose(client, alice)
    resp = _approve(client, alice2, change)
    assert resp.status_code == 403 and "Two-person rule" in resp.json()["message"]


def test_a_case_or_space_variant_of_the_name_is_the_same_person(
    hub: Hub, client: TestClient
) -> None:
    alice = auth(enrolled(hub, ADMIN, ["security_admin"], owner="alice").token)
    variant = auth(hub.keys.create(["compliance_officer"], principal=" ALICE ").token)
    change = _propose(client, alice)
    assert _approve(client, variant, change).status_code == 403


def test_a_look_alike_name_cannot_be_issued(hub: Hub) -> None:
    """Full-width or Cyrillic letters would make a second 'alice' in the approvals report."""
    alice = _principal(hub, enrolled(hub, ADMIN, ["security_admin"], owner="alice"))
    for owner in ("\uff41lice", "\u0430lice", "ali\u200bce"):
        with pytest.raises(Exception, match="not a valid person id"):
            enrolled(hub, alice, ["security_admin"], owner=owner)


def test_an_identity_the_proposer_made_cannot_approve(hub: Hub, client: TestClient) -> None:
    """alice (an admin) proposes, then issues a key to a new 'person' and approves with it."""
    alice_key = enrolled(hub, ADMIN, ["admin"], owner="alice")
    change = _propose(client, auth(alice_key.token))
    puppet = auth(enrolled(hub, _principal(hub, alice_key), ["security_admin"], owner="zed").token)
    resp = _approve(client, puppet, change)
    # zed's enrolment token went to alice whole (or zed was enrolled during the proposal)
    assert resp.status_code == 403 and "Two-person rule" in resp.json()["message"]


def test_a_rotated_key_is_still_the_proposer(hub: Hub, client: TestClient) -> None:
    alice_key = enrolled(hub, ADMIN, ["security_admin"], owner="alice")
    change = _propose(client, auth(alice_key.token))
    rotated = hub.keys.rotate(_principal(hub, alice_key), alice_key.key_id)
    assert _approve(client, auth(rotated.token), change).status_code == 403


def test_an_approval_is_not_replayed_onto_another_change(hub: Hub, client: TestClient) -> None:
    """carol's approval of one change does nothing for the next one alice proposes."""
    alice = auth(enrolled(hub, ADMIN, ["security_admin"], owner="alice").token)
    carol = auth(enrolled(hub, ADMIN, ["compliance_officer"], owner="carol").token)
    first = _propose(client, alice)
    assert _approve(client, carol, first).status_code == 200
    second = _propose(client, alice, drop="query.run")
    assert _approve(client, carol, first).status_code == 409  # already active
    statuses = {c.change_id: c.status for c in hub.policy_changes.store.changes()}
    assert statuses[second] == "pending_approval"
    assert _approve(client, alice, second).status_code == 403


def test_the_console_approve_route_applies_the_rule(hub: Hub, client: TestClient) -> None:
    alice_key = enrolled(hub, ADMIN, ["security_admin"], owner="alice")
    alice2_key = enrolled(hub, ADMIN, ["security_admin"], owner="alice")
    change = _propose(client, auth(alice_key.token))
    csrf = as_(client, alice2_key.token)
    url = f"/ui/api/security/policy/changes/{change}/approve"
    shown = hub.policy_changes.store.change(change).bundle_version  # the console sends it
    resp = client.post(url, json={"reason": "me again", "expected_version": shown}, headers=csrf)
    assert resp.status_code == 403 and "Two-person rule" in resp.text


def test_no_route_activates_a_policy_change_without_approve(hub: Hub) -> None:
    """Every POST route under policy or config changes is one of the known, checked ones."""
    app = create_app(hub)
    writes = sorted(
        r.path
        for r in _all_routes(app.routes)
        if getattr(r, "methods", None)
        and "POST" in r.methods
        and ("/policy" in r.path or "/config" in r.path)
    )
    assert writes == [
        "/ui/api/security/policy/changes/{change_id}/approve",
        "/v1/config/changes",
        "/v1/config/changes/{change_id}/approve",
        "/v1/config/rollback",
        "/v1/policy/changes",
        "/v1/policy/changes/{change_id}/approve",
        "/v1/policy/rollback",
    ]
