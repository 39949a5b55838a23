"""Revoking a key withdraws the pending proposals its owner may no longer make.

Session 16 left them pending: an approval was refused (``proposer_revoked``), but the listings
still showed them ``pending_approval`` with nothing on the log saying why they stopped counting,
and a ready enrolment token its revoked requester had handed out stayed redeemable. Now each
revocation (``POST /v1/keys/{id}/revoke``, a rotation, a reset) appends ``PolicyChangeWithdrawn``
/ ``ConfigChangeWithdrawn`` / ``EnrolmentExpired`` ("withdrawn: ...") with the reason, the
listings show ``withdrawn``, and an approval answers 409 ``change_withdrawn``; an activation
another process appended after the withdrawal is not applied.
"""

from __future__ import annotations

import secrets
from typing import Any

import pytest
from fastapi.testclient import TestClient

from core.events import OutgoingEvent
from core.ports.policy import Principal
from governance.store import ACTIVATED, APPROVED, POLICIES_TOPIC
from hub.bootstrap import Hub
from tests.adversarial._api import basic as auth
from tests.adversarial._people import enrolled, witness
from tests.adversarial.test_two_person_attacks import _files

ADMIN = Principal("root", frozenset({"admin"}))


@pytest.fixture
def admin(hub: Hub) -> dict[str, str]:
    return auth(hub.keys.create(["admin"], principal="root").token)


def _revoke(client: TestClient, admin: dict[str, str], key_id: str) -> None:
    r = client.post(f"/v1/keys/{key_id}/revoke", headers=admin, json={"reason": "left the firm"})
    assert r.status_code == 200, r.text


def _propose_policy(client: TestClient, who: dict[str, str]) -> str:
    r = client.post(
        "/v1/policy/changes", headers=who, json={"files": _files("event.read"), "reason": "x"}
    )
    assert r.status_code == 201 and r.json()["status"] == "pending_approval", r.text
    return str(r.json()["change_id"])


def _events(hub: Hub, topic: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for p in hub.log.end_offsets(topic):
        out += hub.reader.read(topic, p, 0, 10_000)
    return out


def _listed(client: TestClient, who: dict[str, str], path: str, key: str, id_: str) -> Any:
    r = client.get(path, headers=who)
    assert r.status_code == 200, r.text
    return next(c for c in r.json() if c[key] == id_)


def test_a_revoked_proposers_policy_change_is_withdrawn_on_the_log(
    hub: Hub, client: TestClient, admin: dict[str, str]
) -> None:
    sue = enrolled(hub, ADMIN, ["security_admin"], owner="sue")
    olga = auth(enrolled(hub, ADMIN, ["compliance_officer"], owner="olga").token)
    before = hub.policy_changes.store.active_bundle().version
    change = _propose_policy(client, auth(sue.token))
    _revoke(client, admin, sue.key_id)

    listed = _listed(client, olga, "/v1/policy/changes", "change_id", change)
    assert listed["status"] == "withdrawn", listed
    assert listed["withdrawn_by"] == "root"
    reason = listed["withdrawn_reason"]
    assert sue.key_id in reason and "left the firm" in reason and "'sue'" in reason, reason
    withdrawn = [
        e["value"]
        for e in _events(hub, POLICIES_TOPIC)
        if e["headers"].get("ce_type") == "hub.PolicyChangeWithdrawn"
    ]
    assert [(w["change_id"], w["revoked_key"]) for w in withdrawn] == [(change, sue.key_id)]

    r = client.post(f"/v1/policy/changes/{change}/approve", headers=olga, json={})
    assert r.status_code == 409 and r.json()["reason"] == "change_withdrawn", r.text
    hub.policy_changes.store.refresh()
    assert hub.policy_changes.store.active_bundle().version == before


def test_an_activation_appended_after_the_withdrawal_is_not_applied(
    hub: Hub, client: TestClient, admin: dict[str, str]
) -> None:
    """Another process checked the approval before the withdrawal and appends after it."""
    sue = enrolled(hub, ADMIN, ["security_admin"], owner="sue")
    enrolled(hub, ADMIN, ["compliance_officer"], owner="olga")
    before = hub.policy_changes.store.active_bundle()
    change = _propose_policy(client, auth(sue.token))
    _revoke(client, admin, sue.key_id)
    proposed = hub.policy_changes.store.change(change)
    now = "2026-01-01T00:00:00+00:00"
    hub.publisher.publish(
        POLICIES_TOPIC,
        [
            OutgoingEvent(
                value={
                    "change_id": change,
                    "approved_by": "olga",
                    "reason": "",
                    "approved_at": now,
                },
                event_type=APPROVED,
                key=change,
            ),
            OutgoingEvent(
                value={
                    "change_id": change,
                    "bundle_version": proposed.bundle_version,
                    "previous_version": before.version,
                    "activated_by": "olga",
                    "activated_at": now,
                },
                event_type=ACTIVATED,
                key=change,
            ),
        ],
        producer="olga",
        tenant="default",
    )
    hub.policy_changes.store.refresh()
    assert hub.policy_changes.store.active_bundle().version == before.version
    assert hub.policy_changes.store.change(change).status == "withdrawn"


def test_a_revoked_proposers_legal_hold_release_is_withdrawn(
    hub: Hub, client: TestClient, admin: dict[str, str]
) -> None:
    carol = hub.keys.create(["compliance_officer"], principal="carol")
    dave = auth(hub.keys.create(["compliance_officer"], principal="dave").token)
    r = client.post(
        "/v1/legal-holds", json={"scope": "subject:ACC-9", "matter": "m"}, headers=auth(carol.token)
    )
    assert r.status_code == 201, r.text
    hold_id = r.json()["hold_id"]
    r = client.post(
        f"/v1/legal-holds/{hold_id}/release", json={"reason": "done"}, headers=auth(carol.token)
    )
    assert r.status_code == 202, r.text
    change = r.json()["change"]["change_id"]
    _revoke(client, admin, carol.key_id)

    listed = _listed(client, dave, "/v1/config/changes", "change_id", change)
    assert listed["status"] == "withdrawn" and carol.key_id in listed["withdrawn_reason"], listed
    r = client.post(f"/v1/config/changes/{change}/approve", json={}, headers=dave)
    assert r.status_code == 409 and r.json()["reason"] == "change_withdrawn", r.text
    assert hub.governance.is_held("subject:ACC-9")
    kinds = [e["headers"].get("ce_type") for e in _events(hub, "hub.config-changes")]
    assert kinds.count("hub.ConfigChangeWithdrawn") == 1


def test_a_revoked_requesters_enrolments_are_withdrawn(
    hub: Hub, client: TestClient, admin: dict[str, str]
) -> None:
    """Pending (waiting for a second approver) and ready (a token already handed out) alike."""
    sue = enrolled(hub, ADMIN, ["security_admin"], owner="sue")
    pending = hub.keys.issue(hub.keys.get(sue.key_id).principal, ["security_admin"], owner="mo")
    assert getattr(pending, "requires_approval", False)
    _revoke(client, admin, sue.key_id)

    listed = _listed(client, admin, "/v1/enrolments", "enrolment_id", pending.enrolment_id)  # type: ignore[union-attr]
    assert listed["state"] == "withdrawn" and sue.key_id in listed["ended_reason"], listed
    r = client.post(
        f"/v1/enrolments/{pending.enrolment_id}/approve",  # type: ignore[union-attr]
        headers=auth(hub.keys.create(["admin"], principal="ann").token),
        json={},
    )
    assert r.status_code == 409 and r.json()["reason"] == "enrolment_not_pending", r.text


def test_a_ready_token_of_a_revoked_requester_no_longer_redeems(
    hub: Hub, client: TestClient, admin: dict[str, str]
) -> None:
    """The two-person rule off: the requester's token is whole at once. Revoking the requester
    (a leaked key) must take back the token they handed out, without a cascade."""
    hub.keys.use_two_person(lambda: False)
    sue = hub.keys.create(["security_admin"], principal="sue")
    ticket = hub.keys.issue(hub.keys.get(sue.key_id).principal, ["security_admin"], owner="mo")
    assert not getattr(ticket, "requires_approval", True)
    _revoke(client, admin, sue.key_id)
    r = client.post(
        "/v1/enrol",
        json={"token": ticket.token, "secret": secrets.token_urlsafe(32)},
    )
    assert r.status_code == 401 and r.json()["reason"] == "enrolment_withdrawn", r.text


def test_a_rotation_or_a_second_key_withdraws_nothing(
    hub: Hub, client: TestClient, admin: dict[str, str]
) -> None:
    sue = enrolled(hub, ADMIN, ["security_admin"], owner="sue")
    olga = auth(enrolled(hub, ADMIN, ["compliance_officer"], owner="olga").token)
    change = _propose_policy(client, auth(sue.token))
    r = client.post(f"/v1/keys/{sue.key_id}/rotate", headers=auth(sue.token), json={})
    assert r.status_code == 201, r.text
    assert hub.policy_changes.store.change(change).status == "pending_approval"
    r = client.post(f"/v1/policy/changes/{change}/approve", headers=olga, json={})
    assert r.status_code == 200 and r.json()["status"] == "activated", r.text


def test_a_withdrawal_is_told_to_nobody_else(hub: Hub) -> None:
    """Revoking carol withdraws nothing of sue's (another owner), even with the same roles."""
    sue = enrolled(hub, ADMIN, ["security_admin"], owner="sue")
    carol = enrolled(hub, ADMIN, ["security_admin"], owner="carol")
    change = hub.policy_changes.propose(
        hub.keys.get(sue.key_id).principal, _files("event.read"), "x"
    )
    hub.keys.revoke(carol.key_id, revoked_by="root", reason="gone", actor=ADMIN)
    assert hub.policy_changes.store.change(change.change_id).status == "pending_approval"
    assert witness(hub).id == "witness"
