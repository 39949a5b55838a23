"""A tenant's security admin manages its own tenant's keys only (session 14 review).

Tenant isolation (``authz.rego`` step 3: a principal whose roles lack ``tenant.all`` acts only on
its own tenant) did not reach the key routes: acme's security admin listed globex's key owners
and roles and revoked globex's security admin, a one-call denial of service across tenants.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from hub.api.app import create_app
from hub.bootstrap import Hub


def auth(token: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(token.encode()).decode()}


@pytest.fixture
def client(hub: Hub) -> Iterator[TestClient]:
    with TestClient(create_app(hub)) as c:
        yield c


def test_a_tenants_security_admin_neither_lists_nor_revokes_another_tenants_keys(
    client: TestClient, hub: Hub
) -> None:
    sam = hub.keys.create(["security_admin"], owner="sam", tenant="acme")
    gia = hub.keys.create(["security_admin"], owner="gia", tenant="globex")
    hub.keys.create(["security_admin"], owner="sue", tenant="acme")
    root = hub.keys.create(["admin"], owner="root")

    listed = client.get("/v1/keys", headers=auth(sam.token)).json()
    assert sorted(k["owner"] for k in listed) == ["sam", "sue"]
    r = client.post(f"/v1/keys/{gia.key_id}/revoke", headers=auth(sam.token), json={"reason": "x"})
    assert r.status_code == 403 and r.json()["reason"] == "key_not_manageable"
    assert client.get("/v1/topics", headers=auth(gia.token)).status_code == 200
    # within its tenant nothing changes, and an admin still sees and manages every tenant
    everyone = client.get("/v1/keys", headers=auth(root.token)).json()
    assert {"sam", "sue", "gia", "root"} <= {k["owner"] for k in everyone}
    r = client.post(f"/v1/keys/{gia.key_id}/revoke", headers=auth(root.token), json={"reason": "y"})
    assert r.status_code == 200
