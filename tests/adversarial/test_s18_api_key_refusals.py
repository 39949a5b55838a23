"""Refusing another tenant's key names nothing of it (session 18).

Every key may ask to rotate any key id (``keys.rotate`` is everyone's; ``governance.apikeys``
decides whose), and a tenant's security admin may ask to revoke one. The refusals named the
key's owner (and for a revocation its roles): a key id from a log line told globex who at acme
holds it and what it may do, which ``GET /v1/keys`` does not list to globex. Within a tenant the
refusal still names them.
"""

from __future__ import annotations

from ._api import Api, basic


def test_refusals_about_another_tenants_key_name_no_owner_or_roles(api: Api) -> None:
    hub = api.hub
    victim = hub.keys.create(["compliance_officer"], owner="ann-at-acme", tenant="acme")
    gil = hub.keys.create(["publisher"], owner="gil", tenant="globex").token
    gia = hub.keys.create(["security_admin"], owner="gia", tenant="globex").token
    r = api.client.post(f"/v1/keys/{victim.key_id}/rotate", json={}, headers=basic(gil))
    assert r.status_code == 403 and r.json()["reason"] == "key_not_manageable", r.text
    assert "ann-at-acme" not in r.text  # before: "... rotate key hk_... of 'ann-at-acme'"
    r = api.client.post(
        f"/v1/keys/{victim.key_id}/revoke", json={"reason": "x"}, headers=basic(gia)
    )
    assert r.status_code == 403 and r.json()["reason"] == "key_not_manageable", r.text
    assert "ann-at-acme" not in r.text and "compliance_officer" not in r.text, r.text
    # the key still works, and acme's own people still get the full refusal
    assert api.client.get("/v1/topics", headers=basic(victim.token)).status_code == 200
    sam = hub.keys.create(["security_admin"], owner="sam", tenant="acme").token
    r = api.client.post(
        f"/v1/keys/{victim.key_id}/revoke", json={"reason": "x"}, headers=basic(sam)
    )
    assert r.status_code == 403 and "'ann-at-acme' (roles: compliance_officer)" in r.text
