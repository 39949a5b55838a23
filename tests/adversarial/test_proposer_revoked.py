"""A pending change must not be applied after its proposer lost the right to propose it.

redteam-api2 (session 16) finding 4: sue (security_admin) proposes a policy bundle; an admin
revokes sue's key (``POST /v1/keys/{key_id}/revoke``); olga approves and the bundle became
active. Every change that goes through the two-person propose/approve machinery (policy
bundles, configuration changes: registry settings, retention, legal-hold releases, migrations,
model promotions; enrolments) now counts a proposal only while its proposer still holds an
unrevoked key like the one it proposed with (``ApiKeys.check_proposer``): 409
``proposer_revoked`` otherwise, and nothing is applied.

Since session 17 a revocation also withdraws such proposals on the log
(test_revoked_proposals_withdrawn.py). These tests revoke with the ``ApiKeyRevoked`` event alone,
as an older hub or a crash between the revocation and its withdrawals leaves it: the approval
check is what still refuses.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from core.errors import Conflict
from core.events import OutgoingEvent
from core.ports.policy import Principal
from hub.bootstrap import Hub
from tests.adversarial._api import basic as auth
from tests.adversarial._people import enrolled, witness
from tests.adversarial.test_two_person_attacks import _files

ADMIN = Principal("root", frozenset({"admin"}))


@pytest.fixture
def admin(hub: Hub) -> dict[str, str]:
    return auth(hub.keys.create(["admin"], principal="root").token)


def _revoke(client: TestClient, admin: dict[str, str], key_id: str) -> None:
    """The revocation event alone (no withdrawal: module docstring)."""
    hub: Hub = client.app.state.hub  # type: ignore[attr-defined]
    hub.publisher.publish(
        "hub.principals",
        [
            OutgoingEvent(
                event_type="hub.ApiKeyRevoked",
                value={
                    "key_id": key_id,
                    "revoked_by": "root",
                    "reason": "left",
                    "revoked_at": datetime.now(UTC).isoformat(),
                },
            )
        ],
        producer="root",
        tenant="default",
    )


def _refusals(hub: Hub, resource: str) -> list[tuple[str, str]]:
    """The refused approvals the audit ledger recorded for ``resource``."""
    hub.ledger.sync(force_checkpoint=True)
    return [
        (e["actor"], e["action"])
        for e in hub.ledger.entries(topic="hub.audit", with_fields=True)
        if e["resource"] == resource and e["action"].endswith("_refused")
    ]


def _propose_policy(client: TestClient, who: dict[str, str]) -> str:
    r = client.post(
        "/v1/policy/changes", headers=who, json={"files": _files("event.read"), "reason": "x"}
    )
    assert r.status_code == 201 and r.json()["status"] == "pending_approval", r.text
    return str(r.json()["change_id"])


def test_a_policy_change_of_a_revoked_proposer_is_not_activated(
    hub: Hub, client: TestClient, admin: dict[str, str]
) -> None:
    sue = enrolled(hub, ADMIN, ["security_admin"], owner="sue")
    olga = auth(enrolled(hub, ADMIN, ["compliance_officer"], owner="olga").token)
    before = hub.policy_changes.store.active_bundle().version
    change = _propose_policy(client, auth(sue.token))
    _revoke(client, admin, sue.key_id)

    r = client.post(f"/v1/policy/changes/{change}/approve", headers=olga, json={})
    assert r.status_code == 409, r.text
    assert r.json()["reason"] == "proposer_revoked" and "'sue'" in r.json()["message"]
    hub.policy_changes.store.refresh()
    assert hub.policy_changes.store.active_bundle().version == before
    assert hub.policy_changes.store.change(change).status == "pending_approval"
    assert _refusals(hub, "policy") == [("olga", "policy.approve_refused")]


def test_a_proposer_with_another_valid_key_like_it_still_counts(
    hub: Hub, client: TestClient, admin: dict[str, str]
) -> None:
    sue = enrolled(hub, ADMIN, ["security_admin"], owner="sue")
    enrolled(hub, ADMIN, ["security_admin"], owner="sue")  # her second key stays valid
    olga = auth(enrolled(hub, ADMIN, ["compliance_officer"], owner="olga").token)
    change = _propose_policy(client, auth(sue.token))
    _revoke(client, admin, sue.key_id)

    r = client.post(f"/v1/policy/changes/{change}/approve", headers=olga, json={})
    assert r.status_code == 200 and r.json()["status"] == "activated", r.text


def test_a_remaining_key_without_the_proposing_role_does_not_count(
    hub: Hub, client: TestClient, admin: dict[str, str]
) -> None:
    """sue keeps only an analyst key: she may no longer propose a bundle."""
    sue = enrolled(hub, ADMIN, ["security_admin"], owner="sue")
    hub.keys.create(["analyst"], principal="sue")
    olga = auth(enrolled(hub, ADMIN, ["compliance_officer"], owner="olga").token)
    change = _propose_policy(client, auth(sue.token))
    _revoke(client, admin, sue.key_id)

    r = client.post(f"/v1/policy/changes/{change}/approve", headers=olga, json={})
    assert r.status_code == 409 and r.json()["reason"] == "proposer_revoked", r.text


def test_a_legal_hold_release_of_a_revoked_proposer_is_not_applied(
    hub: Hub, client: TestClient, admin: dict[str, str]
) -> None:
    carol = hub.keys.create(["compliance_officer"], principal="carol")
    dave = auth(hub.keys.create(["compliance_officer"], principal="dave").token)
    r = client.post(
        "/v1/legal-holds",
        json={"scope": "subject:ACC-7", "matter": "m"},
        headers=auth(carol.token),
    )
    assert r.status_code == 201, r.text
    hold_id = r.json()["hold_id"]
    r = client.post(
        f"/v1/legal-holds/{hold_id}/release", json={"reason": "done"}, headers=auth(carol.token)
    )
    assert r.status_code == 202, r.text
    change = r.json()["change"]["change_id"]
    _revoke(client, admin, carol.key_id)

    r = client.post(f"/v1/config/changes/{change}/approve", json={}, headers=dave)
    assert r.status_code == 409 and r.json()["reason"] == "proposer_revoked", r.text
    assert hub.governance.is_held("subject:ACC-7")
    assert _refusals(hub, f"legalhold:{hold_id}") == [("dave", "config.approve_refused")]


def test_an_enrolment_requested_by_a_revoked_key_is_not_approved(
    hub: Hub, admin: dict[str, str], client: TestClient
) -> None:
    sue = enrolled(hub, ADMIN, ["security_admin"], owner="sue")
    ticket = hub.keys.issue(hub.keys.get(sue.key_id).principal, ["security_admin"], owner="mo")
    assert getattr(ticket, "requires_approval", False)
    _revoke(client, admin, sue.key_id)
    with pytest.raises(Conflict, match="holds no unrevoked key") as err:
        hub.keys.approve_enrolment(witness(hub), ticket.enrolment_id)  # type: ignore[union-attr]
    assert err.value.code == "proposer_revoked"


def test_a_proposal_without_its_key_id_is_decided_from_the_owners_keys(hub: Hub) -> None:
    """Events from before the key id was recorded: any active key of the owner counts."""
    sue = enrolled(hub, ADMIN, ["security_admin"], owner="sue")
    carol = hub.keys.get(enrolled(hub, ADMIN, ["compliance_officer"], owner="carol").key_id)
    change = hub.policy_changes.propose(
        Principal("sue", frozenset({"security_admin"})), _files("event.read"), "old-style"
    )
    assert change.proposed_by_key == ""
    hub.keys.revoke(sue.key_id, revoked_by="root", reason="left", actor=ADMIN)
    assert hub.policy_changes.store.change(change.change_id).status == "withdrawn"
    with pytest.raises(Conflict, match=r"withdrawn.*does not say which key") as err:
        hub.policy_changes.approve(carol.principal, change.change_id)
    assert err.value.code == "change_withdrawn"
