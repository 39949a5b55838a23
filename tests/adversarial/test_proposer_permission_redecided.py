"""A pending change counts only while the policy in force lets its proposer (and approver) act.

Session 16's ``check_proposer`` compared role sets: once a policy change took an action away
from a role, a change that role's holder proposed before still counted, and an approval decided
by an engine that had not reloaded the new bundle yet (another process: the follower polls)
still applied. Now the proposer's needs (``policy.propose``; ``config.propose`` and the
resource's write action; ``legalhold.write`` for a release; ``keys.create`` for an enrolment)
and the approver's are decided again against the bundle in force when the change is approved:
409 ``proposer_not_permitted`` / 403 ``approver_not_permitted``, nothing applied.
"""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from core.errors import Conflict, Forbidden
from core.policybundle import PolicyBundle
from core.ports.policy import Principal
from hub.bootstrap import Hub
from tests.adversarial._api import basic as auth
from tests.adversarial._people import enrolled, witness

ADMIN = Principal("root", frozenset({"admin"}))


def _take(hub: Hub, role: str, action: str) -> None:
    """Activate a bundle without ``action`` for ``role`` (two admins: proposer and approver)."""
    bundle = hub.policy_changes.store.active_bundle()
    data = json.loads(bundle.files["hub/data.json"])
    data["role_actions"][role].remove(action)
    files = {**bundle.files, "hub/data.json": json.dumps(data, indent=2) + "\n"}
    pa = hub.keys.get(hub.keys.create(["admin"], owner="pa").key_id).principal
    pb = hub.keys.get(hub.keys.create(["admin"], owner="pb").key_id).principal
    change = hub.policy_changes.propose(pa, files, f"{role} loses {action}")
    assert hub.policy_changes.approve(pb, change.change_id).status == "activated"
    assert (
        hub.policy_changes.store.active_bundle().version == PolicyBundle.from_files(files).version
    )


def _release(client: TestClient, who: dict[str, str], scope: str) -> tuple[str, str]:
    r = client.post("/v1/legal-holds", json={"scope": scope, "matter": "m"}, headers=who)
    assert r.status_code == 201, r.text
    hold_id = r.json()["hold_id"]
    r = client.post(f"/v1/legal-holds/{hold_id}/release", json={"reason": "done"}, headers=who)
    assert r.status_code == 202, r.text
    return hold_id, r.json()["change"]["change_id"]


def test_a_release_whose_proposer_lost_legalhold_write_is_not_applied(
    hub: Hub, client: TestClient
) -> None:
    carol = hub.keys.create(["compliance_officer"], principal="carol")
    ann = auth(hub.keys.create(["admin"], principal="ann").token)
    hold_id, change = _release(client, auth(carol.token), "subject:ACC-11")
    # the policy activated by another process: this one's configuration store is not told (s18:
    # the activating process withdraws the release at once), its approval decides again
    hub.policy_changes._activated_hooks.clear()
    _take(hub, "compliance_officer", "legalhold.write")

    r = client.post(f"/v1/config/changes/{change}/approve", json={}, headers=ann)
    assert r.status_code == 409 and r.json()["reason"] == "proposer_not_permitted", r.text
    assert "legalhold.write" in r.json()["message"] and "'carol'" in r.json()["message"]
    assert hub.governance.is_held("subject:ACC-11")
    assert hub.config_changes.store.change(change).status == "pending_approval"
    hub.ledger.sync(force_checkpoint=True)
    refused = [
        (e["actor"], e["action"])
        for e in hub.ledger.entries(topic="hub.audit", with_fields=True)
        if e["resource"] == f"legalhold:{hold_id}" and e["action"].endswith("_refused")
    ]
    assert refused == [("ann", "config.approve_refused")]


def test_an_approver_the_policy_in_force_refuses_does_not_apply(
    hub: Hub, client: TestClient
) -> None:
    """dave approves in-process (another process whose engine still ran the old bundle)."""
    carol = hub.keys.create(["compliance_officer"], principal="carol")
    dave = hub.keys.get(hub.keys.create(["compliance_officer"], principal="dave").key_id)
    _, change = _release(client, auth(carol.token), "subject:ACC-12")
    _take(hub, "compliance_officer", "config.approve")

    with pytest.raises(Forbidden, match=r"config\.approve") as err:
        hub.config_changes.approve(dave.principal, change)
    assert err.value.code == "approver_not_permitted"
    assert hub.governance.is_held("subject:ACC-12")


def test_an_enrolment_whose_requester_lost_keys_create_is_not_approved(hub: Hub) -> None:
    sue = enrolled(hub, ADMIN, ["security_admin"], owner="sue")
    ticket = hub.keys.issue(hub.keys.get(sue.key_id).principal, ["security_admin"], owner="mo")
    assert getattr(ticket, "requires_approval", False)
    _take(hub, "security_admin", "keys.create")

    with pytest.raises(Conflict, match=r"keys\.create") as err:
        hub.keys.approve_enrolment(witness(hub), ticket.enrolment_id)  # type: ignore[union-attr]
    assert err.value.code == "proposer_not_permitted"


def test_a_proposer_who_keeps_the_permission_still_counts(hub: Hub, client: TestClient) -> None:
    """Taking another role's action changes nothing for carol's release."""
    carol = hub.keys.create(["compliance_officer"], principal="carol")
    ann = auth(hub.keys.create(["admin"], principal="ann").token)
    _, change = _release(client, auth(carol.token), "subject:ACC-13")
    _take(hub, "security_admin", "legalhold.write")

    r = client.post(f"/v1/config/changes/{change}/approve", json={}, headers=ann)
    assert r.status_code == 200 and r.json()["status"] == "applied", r.text
    assert not hub.governance.is_held("subject:ACC-13")
