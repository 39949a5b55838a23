"""``GET /v1/config/values/legalhold:<id>`` keeps another tenant's hold hidden (session 18).

A tenant's reader gets 404 for another tenant's legal hold on ``/v1/legal-holds``, on the hold's
configuration changes and on its release (``ConfigChanges.check_hold_scope``); the value route
answered ``"held"`` for it, so globex's officer could tell that acme holds that id. It now
answers the same 404 as for a hold that does not exist; acme's officer still reads it.
"""

from __future__ import annotations

from ._api import Api, basic


def test_another_tenants_hold_value_answers_as_a_missing_hold(api: Api) -> None:
    hub = api.hub
    acme = basic(hub.keys.create(["compliance_officer"], owner="ann", tenant="acme").token)
    globex = basic(hub.keys.create(["compliance_officer"], owner="gus", tenant="globex").token)
    r = api.client.post(
        "/v1/legal-holds",
        json={"scope": "subject:ACC-1", "matter": "acme matter", "reason": "SAR"},
        headers=acme,
    )
    assert r.status_code == 201, r.text
    hold = r.json()["hold_id"]
    r = api.client.get(f"/v1/config/values/legalhold:{hold}", headers=globex)
    assert r.status_code == 404 and r.json()["reason"] == "hold_not_found", r.text  # was "held"
    assert "held" not in r.text.replace(hold, "") and "acme" not in r.text
    r = api.client.get(f"/v1/config/values/legalhold:{hold}", headers=acme)
    assert r.status_code == 200 and r.json()["value"] == "held", r.text
    r = api.client.get(f"/v1/config/values/legalhold:{hold}", headers=api.admin)
    assert r.status_code == 200 and r.json()["value"] == "held", r.text
