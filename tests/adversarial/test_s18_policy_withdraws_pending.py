"""s18 (trust): a policy change that takes a permission away withdraws what was proposed under it.

Before, the pending changes of a person whose role lost ``policy.propose`` (or a configuration
change's needs, e.g. ``legalhold.write`` for a hold's release) stayed pending after the policy
change was applied: refused only if someone approved them, listed as pending meanwhile, and an
approval decided by a process still running the old bundle applied them. Now the activation
withdraws them: pending policy changes in the activation's own append on ``hub.policies`` (one
atomic append: no reader sees the new policy with such a change still pending), configuration
changes right after (another topic).
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from core.errors import Conflict
from hub.bootstrap import Hub
from tests.adversarial._api import basic as auth
from tests.adversarial.test_proposer_permission_redecided import _release, _take


def _files_with(hub: Hub, name: str) -> dict[str, str]:
    bundle = hub.policy_changes.store.active_bundle()
    return {**bundle.files, name: "package hub.s18\n\nnote := 1\n"}


def test_a_pending_policy_change_is_withdrawn_in_the_activations_append(hub: Hub) -> None:
    sam = hub.keys.get(hub.keys.create(["security_admin"], owner="sam").key_id).principal
    pending = hub.policy_changes.propose(sam, _files_with(hub, "hub/s18.rego"), "sam's change")
    assert pending.status == "pending_approval"
    _take(hub, "security_admin", "policy.propose")  # two admins activate it

    change = hub.policy_changes.store.change(pending.change_id)
    assert change.status == "withdrawn", change  # main: still pending_approval
    assert "policy.propose" in change.withdrawn_reason
    assert change.withdrawn_reason.startswith("policy ")
    # the withdrawal is in the activation's append: the record right after the activation
    records = hub.reader.read("hub.policies", 0, 0, 1000)
    types = [r["headers"].get("ce_type") for r in records]
    at = max(i for i, t in enumerate(types) if t == "hub.PolicyChangeActivated")
    assert types[at + 1] == "hub.PolicyChangeWithdrawn"
    assert records[at + 1]["value"]["change_id"] == pending.change_id
    assert records[at + 1]["offset"] == records[at]["offset"] + 1
    with pytest.raises(Conflict) as err:  # an approval later answers that it was withdrawn
        admin = hub.keys.get(hub.keys.create(["admin"], owner="ada").key_id).principal
        hub.policy_changes.approve(admin, pending.change_id)
    assert err.value.code == "change_withdrawn"


def test_a_pending_release_is_withdrawn_when_the_policy_takes_legalhold_write(
    hub: Hub, client: TestClient
) -> None:
    carol = hub.keys.create(["compliance_officer"], principal="carol")
    _, change_id = _release(client, auth(carol.token), "subject:ACC-18")
    _take(hub, "compliance_officer", "legalhold.write")

    change = hub.config_changes.store.change(change_id)
    assert change.status == "withdrawn", change  # main: still pending_approval
    assert "legalhold.write" in change.withdrawn_reason
    assert hub.governance.is_held("subject:ACC-18")


def test_a_pending_change_of_someone_who_keeps_the_permission_stays(hub: Hub) -> None:
    ada = hub.keys.get(hub.keys.create(["admin"], owner="ada").key_id).principal
    pending = hub.policy_changes.propose(ada, _files_with(hub, "hub/s18b.rego"), "ada's change")
    _take(hub, "security_admin", "policy.propose")  # admin keeps policy.propose
    assert hub.policy_changes.store.change(pending.change_id).status == "pending_approval"


def test_a_revocation_withdraws_its_owners_enrolments_in_its_own_append(hub: Hub) -> None:
    """Before, the ``EnrolmentExpired`` ("withdrawn: ...") was appended just after the
    revocation: a crash (or a failing hook) in between left the enrolment live for a revoked
    requester. Now it is in the revocation's append (one atomic append on the keyring topic)."""
    from governance.enrolment import TOPIC
    from tests.adversarial._people import enrolled
    from tests.adversarial.test_proposer_permission_redecided import ADMIN

    sue = enrolled(hub, ADMIN, ["security_admin"], owner="sue")
    pending = hub.keys.issue(hub.keys.get(sue.key_id).principal, ["security_admin"], owner="mo")
    eid = pending.enrolment_id  # type: ignore[union-attr]
    hub.keys._on_revoked.clear()  # the hooks after the append do nothing: a crash there
    after = hub.keys._withdraw_enrolments
    hub.keys._withdraw_enrolments = lambda *a, **k: []  # type: ignore[method-assign]
    try:
        hub.keys.revoke(sue.key_id, revoked_by="root", reason="left")
    finally:
        hub.keys._withdraw_enrolments = after  # type: ignore[method-assign]
    records = hub.reader.read(TOPIC, 0, 0, 10_000)
    at = max(i for i, r in enumerate(records) if r["headers"].get("ce_type") == "hub.ApiKeyRevoked")
    nxt = records[at + 1]
    assert nxt["headers"].get("ce_type") == "hub.EnrolmentExpired"  # main: nothing follows
    assert nxt["value"]["key_id"] == eid and nxt["value"]["reason"].startswith("withdrawn:")
    (mine,) = [e for e in hub.keys.enrolments() if e.enrolment_id == eid]
    assert mine.state(datetime.now(UTC)) == "withdrawn"
