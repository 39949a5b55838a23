"""Session 23 (consoleapprove23): a refused approval is on the change's tenant's record.

An approval refused because the proposer may no longer propose the change
(``proposer_not_permitted``, ``proposer_revoked``) is recorded in the audit ledger
(``config.approve_refused`` / ``policy.approve_refused``). It was recorded under the
approver's tenant: the hub admin (tenant ``default``) trying to complete the release of acme's
legal hold left the trace on ``default``'s record, where acme's officers, whose hold it is,
never see it. It is now recorded under the change's tenant: the hold's for a release (as the
release itself, ``ConfigChanges._tenant_of``), the hub's own for the hub-wide policy.
"""

from __future__ import annotations

from fastapi.testclient import TestClient

from hub.bootstrap import Hub
from tests.adversarial._api import basic as auth
from tests.adversarial.test_proposer_permission_redecided import _release, _take


def test_a_refused_release_approval_is_on_the_holds_tenants_record(
    hub: Hub, client: TestClient
) -> None:
    carol = hub.keys.create(["compliance_officer"], principal="carol", tenant="acme")
    ann = auth(hub.keys.create(["admin"], principal="ann").token)  # the hub's own tenant
    hold_id, change = _release(client, auth(carol.token), "subject:ACC-12")
    hub.policy_changes._activated_hooks.clear()  # activated by another process (as s18)
    _take(hub, "compliance_officer", "legalhold.write")

    r = client.post(f"/v1/config/changes/{change}/approve", json={}, headers=ann)
    assert r.status_code == 409 and r.json()["reason"] == "proposer_not_permitted", r.text
    hub.ledger.sync(force_checkpoint=True)
    refused = [
        (e["actor"], e["action"], e["tenant"])
        for e in hub.ledger.entries(topic="hub.audit", with_fields=True)
        if e["resource"] == f"legalhold:{hold_id}" and e["action"].endswith("_refused")
    ]
    assert refused == [("ann", "config.approve_refused", "acme")]
