"""s23 (authz): a legal hold's release is its hold's tenant's, whoever proposed it.

The pending release of a hold (``legalhold:<id>``, a configuration change) is shown only to
readers of its tenant (``ConfigChanges.visible``). That tenant was the *proposer's*: when the
hub's admin (tenant ``default``, ``tenant.all``) proposed the release of acme's hold, the change
was recorded as tenant ``default``'s. So a compliance officer of the hub's own tenant, limited to
that tenant, listed the release of acme's hold (its id, the reason naming the matter) while
``GET /v1/config/values/legalhold:<id>`` answered them 404; acme's own officers, who must know
that their hold is about to be lifted, did not see it; and the release itself went on the
ledger as the admin's tenant's, not acme's. Now the change, its approval and the release are
recorded as the hold's tenant's.
"""

from __future__ import annotations

from fastapi.testclient import TestClient

from hub.bootstrap import Hub
from tests.adversarial._api import basic

MATTER = "SAR-2323 acme only"


def _listed(client: TestClient, token: str) -> set[str]:
    r = client.get("/v1/config/changes", headers=basic(token))
    assert r.status_code == 200, r.text
    return {c["change_id"] for c in r.json()}


def test_an_admins_release_of_a_tenants_hold_is_that_tenants(hub: Hub, client: TestClient) -> None:
    carol = hub.keys.create(["compliance_officer"], principal="carol", tenant="acme").token
    gus = hub.keys.create(["compliance_officer"], principal="gus", tenant="globex").token
    dora = hub.keys.create(["compliance_officer"], principal="dora").token  # the hub's tenant
    ada = hub.keys.create(["admin"], principal="ada").token
    r = client.post(
        "/v1/legal-holds",
        json={"scope": "subject:ACC-2323", "matter": MATTER},
        headers=basic(carol),
    )
    assert r.status_code == 201, r.text
    hold_id = r.json()["hold_id"]
    r = client.post(
        f"/v1/legal-holds/{hold_id}/release",
        json={"reason": f"{MATTER}: closed"},
        headers=basic(ada),
    )
    assert r.status_code == 202, r.text
    change_id = r.json()["change"]["change_id"]

    # the hub's own tenant's officer sees nothing of acme's hold, as on the value route
    assert change_id not in _listed(client, dora)  # before: listed, with the matter
    r = client.get(f"/v1/config/changes/{change_id}", headers=basic(dora))
    assert r.status_code == 404, r.text
    assert MATTER not in r.text and hold_id not in r.text
    r = client.get(f"/v1/config/values/legalhold:{hold_id}", headers=basic(dora))
    assert r.status_code == 404, r.text
    assert change_id not in _listed(client, gus)
    # acme's officer sees the pending release of acme's hold
    assert change_id in _listed(client, carol)  # before: hidden from the hold's own tenant
    r = client.get(f"/v1/config/changes/{change_id}", headers=basic(carol))
    assert r.status_code == 200 and r.json()["status"] == "pending_approval", r.text

    # approved by another acme officer: the release is acme's on the governance topic too
    cora = hub.keys.create(["compliance_officer"], principal="cora", tenant="acme").token
    r = client.post(f"/v1/config/changes/{change_id}/approve", json={}, headers=basic(cora))
    assert r.status_code == 200, r.text
    assert not hub.governance.is_held("subject:ACC-2323")
    released = [
        rec
        for rec in hub.reader.read("hub.governance", 0, 0, 10_000)
        if rec["headers"].get("ce_type") == "hub.LegalHoldReleased"
        and rec["value"].get("hold_id") == hold_id
    ]
    assert len(released) == 1
    assert released[0]["headers"].get("ce_tenant") == "acme"
    assert change_id in _listed(client, carol)
    assert change_id not in _listed(client, dora)
