"""Keys that try to outlive their revocation through a rotation's grace period (session 14 review).

A rotation with grace schedules the old key's revocation for later. Two attacks on that window:
an admin revoking a leaked key during the grace must stop it at once (not at the end of the
grace), and whoever holds the old key must not rotate it again into a fresh key that no
deadline binds. Nor may the holder of a key that an admin gave an end date move that date by
rotating it.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from core.ports.policy import Principal
from hub.api.app import create_app
from hub.bootstrap import Hub


def auth(token: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(token.encode()).decode()}


@pytest.fixture
def client(hub: Hub) -> Iterator[TestClient]:
    with TestClient(create_app(hub)) as c:
        yield c


def test_revoking_a_key_in_its_rotation_grace_stops_it_at_once(
    client: TestClient, hub: Hub
) -> None:
    admin = auth(hub.keys.create(["admin"], owner="root").token)
    old = hub.keys.create(["analyst"], owner="gus")
    r = client.post(f"/v1/keys/{old.key_id}/rotate", headers=auth(old.token), json={"grace": "7d"})
    assert r.status_code == 201
    new = r.json()["token"]
    assert client.get("/v1/topics", headers=auth(old.token)).status_code == 200  # the grace
    # The old key leaks; the admin revokes it now.
    r = client.post(f"/v1/keys/{old.key_id}/revoke", headers=admin, json={"reason": "leaked"})
    assert r.status_code == 200 and r.json()["revoked"] == [old.key_id]
    answer = client.get("/v1/topics", headers=auth(old.token))
    assert answer.status_code == 401 and "revoked" in answer.json()["message"]
    key = hub.keys.get(old.key_id)
    assert key.revoked_by == "root" and key.revoked_reason == "leaked"
    assert client.get("/v1/topics", headers=auth(new)).status_code == 200  # the replacement
    keys = client.get("/v1/keys?all=true", headers=admin).json()
    listed = {k["key_id"]: k["state"] for k in keys}
    assert listed[old.key_id] == "revoked"


def test_a_key_in_its_rotation_grace_cannot_be_rotated_into_an_unbounded_key(
    client: TestClient, hub: Hub
) -> None:
    old = hub.keys.create(["analyst"], owner="gus")
    r = client.post(f"/v1/keys/{old.key_id}/rotate", headers=auth(old.token), json={"grace": "7d"})
    assert r.status_code == 201
    # Whoever holds the old key (a thief) tries to swap it for a key the grace does not bind.
    r = client.post(f"/v1/keys/{old.key_id}/rotate", headers=auth(old.token), json={})
    assert r.status_code == 422 and "rotated" in r.json()["message"]
    owners = [k for k in hub.keys.active() if k.owner == "gus"]
    assert len(owners) == 2  # the old key (in its grace) and its one replacement


def test_a_holder_cannot_push_back_an_expiry_by_rotating(client: TestClient, hub: Hub) -> None:
    # An admin gives a contractor a key that ends with the contract.
    end = datetime.now(UTC) + timedelta(hours=1)
    root = Principal("root", frozenset({"admin"}))
    key = hub.keys.issue(root, ["analyst"], owner="contractor", expires_at=end)
    time.sleep(0.05)
    r = client.post(f"/v1/keys/{key.key_id}/rotate", headers=auth(key.token), json={})
    assert r.status_code == 201
    new = hub.keys.get(r.json()["key_id"])
    assert new.expires_at is not None and new.expires_at <= end
    # and again from the replacement: the end date stays
    r = client.post(f"/v1/keys/{new.key_id}/rotate", headers=auth(r.json()["token"]), json={})
    assert r.status_code == 201
    latest = hub.keys.get(r.json()["key_id"]).expires_at
    assert latest is not None and latest <= end


@pytest.mark.parametrize("length", ["9999999w", "3000000d", "99999999999999999999s"])
def test_an_overlong_grace_or_lifetime_is_refused_before_anything_is_issued(
    client: TestClient, hub: Hub, length: str
) -> None:
    root = auth(hub.keys.create(["admin"], owner="root").token)
    old = hub.keys.create(["analyst"], owner="gus")
    before = len(hub.keys.all())
    r = client.post(f"/v1/keys/{old.key_id}/rotate", headers=root, json={"grace": length})
    assert r.status_code == 422 and r.json()["reason"] == "invalid_duration", r.text
    r = client.post("/v1/keys", headers=root, json={"roles": ["analyst"], "expires_in": length})
    assert r.status_code == 422 and r.json()["reason"] == "invalid_duration", r.text
    assert len(hub.keys.all()) == before  # no replacement issued whose secret nobody saw
    assert hub.keys.get(old.key_id).revoked_at is None
