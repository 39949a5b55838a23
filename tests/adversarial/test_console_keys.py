"""Key management from the console's Security page (issue 15): create, revoke and rotate go
through the same key service, policy actions and issuance rules as ``/v1/keys``; a role without
the action, or a principal the rules refuse, cannot, and each refusal is on the ledger."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from hub.api.app import create_app
from hub.bootstrap import Hub, bootstrap
from hub.settings import load_settings
from tests.service.test_console import login


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Hub, TestClient]]:
    data: Path = tmp_path_factory.mktemp("console-keys") / "data"
    hub = bootstrap(load_settings(environ={"HUB_PROJECTION_AUTOSTART": "false"}, data_dir=data))
    client = TestClient(create_app(hub), base_url="http://127.0.0.1", raise_server_exceptions=False)
    try:
        yield hub, client
    finally:
        client.close()
        hub.close()


def as_(client: TestClient, token: str, page: str = "/ui/security") -> dict[str, str]:
    """Log in with ``token``; the CSRF header of its session (read from ``page``)."""
    client.cookies.clear()
    assert login(client, token).status_code == 303
    found = re.search(r'name="csrf-token" content="([^"]+)"', client.get(page).text)
    assert found, page
    return {"X-CSRF-Token": found.group(1)}


def api_ok(client: TestClient, token: str) -> int:
    """The status of an API call made with ``token`` (as a client would, no session)."""
    client.cookies.clear()
    return client.get("/v1/whoami", auth=tuple(token.split(":", 1))).status_code  # type: ignore[arg-type]


def _refusals(hub: Hub, actor: str, action: str) -> list[dict[str, Any]]:
    flush = getattr(getattr(hub.policy, "committer", None), "flush", None)
    if callable(flush):
        flush()
    hub.ledger.sync(force_checkpoint=True)
    return [
        e
        for e in hub.ledger.entries(topic="hub.decisions", actor=actor, with_fields=True)
        if e["action"] == action
    ]


def test_an_admin_creates_rotates_and_revokes_a_key_from_the_console(
    console: tuple[Hub, TestClient],
) -> None:
    hub, client = console
    csrf = as_(client, hub.keys.create(["admin"], principal="ada").token)
    r = client.post(
        "/ui/api/security/keys", json={"owner": "nina", "roles": ["analyst"]}, headers=csrf
    )
    assert r.status_code == 201, r.text
    made = r.json()
    assert made["owner"] == "nina" and made["roles"] == ["analyst"]
    assert made["token"].startswith(made["key_id"] + ":")
    listed = client.get("/ui/api/security/keys").json()["keys"]
    (row,) = [k for k in listed if k["key_id"] == made["key_id"]]
    assert row["state"] == "active" and made["token"].split(":")[1] not in str(listed)
    assert api_ok(client, made["token"]) == 200

    csrf = as_(client, hub.keys.create(["admin"], principal="ada2").token)
    r = client.post(
        f"/ui/api/security/keys/{made['key_id']}/rotate", json={"reason": "yearly"}, headers=csrf
    )
    assert r.status_code == 201, r.text
    rotated = r.json()
    assert rotated["replaces"] == made["key_id"] and rotated["owner"] == "nina"
    assert api_ok(client, made["token"]) == 401  # no grace: the old secret stops now
    assert api_ok(client, rotated["token"]) == 200

    csrf = as_(client, hub.keys.create(["admin"], principal="ada3").token)
    r = client.post(
        f"/ui/api/security/keys/{rotated['key_id']}/revoke",
        json={"reason": "left the team"},
        headers=csrf,
    )
    assert r.status_code == 200 and r.json() == {"revoked": [rotated["key_id"]]}
    assert api_ok(client, rotated["token"]) == 401


def test_an_analyst_cannot_create_revoke_or_rotate_anothers_key(
    console: tuple[Hub, TestClient],
) -> None:
    hub, client = console
    target = hub.keys.create(["analyst"], principal="tara")
    csrf = as_(client, hub.keys.create(["analyst"], principal="andy").token, "/ui/markets")
    r = client.post(
        "/ui/api/security/keys", json={"owner": "mallory", "roles": ["analyst"]}, headers=csrf
    )
    assert r.status_code == 403 and "keys.create" in r.json()["message"]
    r = client.post(
        f"/ui/api/security/keys/{target.key_id}/revoke", json={"reason": "x"}, headers=csrf
    )
    assert r.status_code == 403 and "keys.revoke" in r.json()["message"]
    # Everyone may rotate their own key, never another person's (it would hand them its secret).
    r = client.post(f"/ui/api/security/keys/{target.key_id}/rotate", json={}, headers=csrf)
    assert r.status_code == 403 and r.json()["reason"] == "key_not_manageable", r.text
    assert api_ok(client, target.token) == 200  # still works
    assert not [k for k in hub.keys.all() if k.owner == "mallory"]
    assert {e["resource"] for e in _refusals(hub, "andy", "keys.create")} >= {
        "/ui/api/security/keys"
    }
    assert _refusals(hub, "andy", "keys.revoke")


def test_the_issuance_rules_hold_in_the_console(console: tuple[Hub, TestClient]) -> None:
    """A security admin may issue and revoke keys within its own roles, and nothing more."""
    hub, client = console
    admin_key = hub.keys.create(["admin"], principal="root2")
    csrf = as_(client, hub.keys.create(["security_admin"], principal="sec").token)
    for body, reason in (
        ({"owner": "eve", "roles": ["admin"]}, "role_escalation"),
        ({"owner": "sec", "roles": ["security_admin"]}, "self_issue"),
        ({"owner": "../../etc", "roles": ["analyst"]}, "invalid_owner"),
        ({"owner": "eve", "roles": ["security_admin"], "expires_in": "-5d"}, None),
    ):
        r = client.post("/ui/api/security/keys", json=body, headers=csrf)
        assert 400 <= r.status_code < 500, (body, r.status_code, r.text)
        if reason:
            assert r.json()["reason"] == reason, r.text
    r = client.post(
        f"/ui/api/security/keys/{admin_key.key_id}/revoke", json={"reason": "x"}, headers=csrf
    )
    assert r.status_code == 403 and r.json()["reason"] == "key_not_manageable", r.text
    assert api_ok(client, admin_key.token) == 200
    # Without the session's CSRF token nothing is issued.
    csrf = as_(client, hub.keys.create(["security_admin"], principal="sec2").token)
    r = client.post("/ui/api/security/keys", json={"owner": "zed", "roles": ["security_admin"]})
    assert r.status_code == 403 and r.json()["reason"] == "csrf"
    r = client.post(
        "/ui/api/security/keys", json={"owner": "zed", "roles": ["security_admin"]}, headers=csrf
    )
    assert r.status_code == 201, r.text
