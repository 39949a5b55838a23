"""Session 26, red team (docs/benchmarks/s26-redteam-attacker26.md): a key revoked while its
request is in flight still issued keys that outlived the revocation.

A request's key is verified when the request arrives (``AuthMiddleware``, on its head); the
route runs once its body is read. ``POST /v1/keys`` and ``POST /v1/keys/{id}/rotate`` then
issued the new key without asking whether the issuing key was still active. Someone holding a
leaked security-admin key sends an issuance with a body trickled slowly (the body time bound
allows 30 s plus one second per 16 KiB, up to 30 min for a large body); the key's owner revokes
it with ``--cascade`` (the documented answer to a leak: "a leaked key's offspring") in that
window; the body then completes and the hub issues a key recorded as issued with the revoked
key, active, which the cascade, computed before it existed, never reached. The owner is told
the leak and its offspring are revoked; the holder keeps a working key.

Now the key service decides the issuing key again under its lock, after folding the latest
revocations, before it appends: an issuance or rotation by a key that is no longer active is
refused (401 ``key_revoked``) and nothing is appended.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from hub.api.app import create_app
from hub.bootstrap import Hub, bootstrap
from hub.settings import load_settings
from tests.adversarial._api import basic


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    h = bootstrap(
        load_settings(environ={"HUB_PROJECTION_AUTOSTART": "false"}, data_dir=tmp_path / "d")
    )
    try:
        yield h
    finally:
        h.close()


def _revoked_mid_body(hub: Hub, leaked_id: str, body: bytes) -> Iterator[bytes]:
    """The request body, sent in two pieces; between them the key's owner (an admin) revokes
    the leaked key with its offspring, as ``hub keys revoke KEY --cascade`` does."""
    yield body[:1]
    root = hub.keys.get(hub.keys.create(["admin"], principal="root").key_id).principal
    revoked = hub.keys.revoke(
        leaked_id, revoked_by=root.id, reason="leaked", actor=root, cascade=True
    )
    assert revoked == [leaked_id]  # nothing issued with it yet
    yield body[1:]


def _active_keys_issued_with(hub: Hub, key_id: str) -> list[str]:
    return [k.key_id for k in hub.keys.active() if k.issued_by_key == key_id]


def test_a_key_issued_by_a_request_whose_key_was_revoked_in_flight(hub: Hub) -> None:
    leaked = hub.keys.create(["security_admin", "analyst"], owner="sam", tenant="globex")
    body = b'{"roles": ["analyst"], "owner": "mallory"}'
    with TestClient(create_app(hub), raise_server_exceptions=False) as c:
        r = c.post(
            "/v1/keys",
            content=_revoked_mid_body(hub, leaked.key_id, body),
            headers={**basic(leaked.token), "content-type": "application/json"},
        )
        assert r.status_code == 401, r.text
        assert r.json()["reason"] == "key_revoked", r.text
        assert leaked.key_id in r.json()["message"], r.text
        # nothing was issued with the revoked key, and its token works no more
        assert _active_keys_issued_with(hub, leaked.key_id) == []
        assert not any(k.owner == "mallory" for k in hub.keys.all())
        assert c.get("/v1/topics", headers=basic(leaked.token)).status_code == 401


def test_a_rotation_by_a_key_revoked_in_flight(hub: Hub) -> None:
    """An admin key rotating another person's key (its replacement's secret is in the answer)
    while the admin key is revoked: the replacement, issued with the revoked key, outlived it."""
    leaked = hub.keys.create(["admin"], owner="ada")
    victim = hub.keys.create(["analyst"], owner="val", tenant="globex")
    with TestClient(create_app(hub), raise_server_exceptions=False) as c:
        r = c.post(
            f"/v1/keys/{victim.key_id}/rotate",
            content=_revoked_mid_body(hub, leaked.key_id, b'{"reason": "routine"}'),
            headers={**basic(leaked.token), "content-type": "application/json"},
        )
        assert r.status_code == 401, r.text
        assert r.json()["reason"] == "key_revoked", r.text
        assert _active_keys_issued_with(hub, leaked.key_id) == []
        # the victim's key was not rotated away from its owner either
        assert hub.keys.get(victim.key_id).revoked_at is None
        assert c.get("/v1/topics", headers=basic(victim.token)).status_code == 200


def test_a_key_issued_by_an_active_key_still_works(hub: Hub) -> None:
    """The refusal is for a key revoked in flight only: an active issuer still issues."""
    issuer = hub.keys.create(["security_admin", "analyst"], owner="sam", tenant="globex")
    with TestClient(create_app(hub), raise_server_exceptions=False) as c:
        r = c.post(
            "/v1/keys",
            json={"roles": ["analyst"], "owner": "nina"},
            headers=basic(issuer.token),
        )
        assert r.status_code == 201, r.text
        assert c.get("/v1/whoami", headers=basic(r.json()["token"])).status_code == 200


def test_an_approval_by_a_key_revoked_in_flight(hub: Hub) -> None:
    """A two-person approval (here a configuration change: approved is applied) made with a key
    revoked while the approval's body was read counted as the second person."""
    from tests.service.test_config_changes import RULES, enable_two_person, fewer_rules, keyed

    enable_two_person(hub, "rules:*")
    shipped = len(hub.ingest.rules.get("trades-value").rules)
    change = hub.config_changes.propose(
        keyed(hub, "ada", "admin"), RULES, fewer_rules(hub, 2), "fewer rules"
    )
    leaked = hub.keys.create(["compliance_officer"], principal="carol2")
    with TestClient(create_app(hub), raise_server_exceptions=False) as c:
        r = c.post(
            f"/v1/config/changes/{change.change_id}/approve",
            content=_revoked_mid_body(hub, leaked.key_id, b'{"reason": "ok"}'),
            headers={**basic(leaked.token), "content-type": "application/json"},
        )
    assert r.status_code == 401 and r.json()["reason"] == "key_revoked", r.text
    assert len(hub.ingest.rules.get("trades-value").rules) == shipped
    assert hub.config_changes.store.change(change.change_id).approvals == []
