"""A legal hold on a topic or projection MUST keep a data subject's personal data there from
being crypto-shredded (session 17 red team, stored bytes and erasure).

The README promises "a legal hold on the scope (or on a data subject) blocks deletion and
erasure", but ``Eraser.erase`` refused only a ``subject:`` hold: with ``topic:accounts`` under a
litigation hold, one compliance officer's ``POST /v1/erasures`` destroyed the subject's key, so
every held account record of that subject read ``[erased]`` for good (the hold could not undo it).
Now such an erasure answers 409 ``legal_hold`` naming the held scope, and the key survives; a
hold on a topic without the subject's PII (``payments``) still lets the erasure through."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from governance.erasure import pii_projections
from hub.api.app import create_app
from hub.bootstrap import Hub, bootstrap
from hub.settings import load_settings
from tests.service.accounts import account_opened, open_accounts


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    env = {"HUB_PROJECTION_AUTOSTART": "false"}
    h = bootstrap(load_settings(environ=env, data_dir=tmp_path / "data"))
    try:
        yield h
    finally:
        h.close()


def _erase(h: Hub, subject: str) -> object:
    token = h.keys.create(["compliance_officer"], principal="off", tenant="default").token
    c = TestClient(create_app(h), raise_server_exceptions=False)
    c.headers["Authorization"] = "Basic " + base64.b64encode(token.encode()).decode()
    with c:
        return c.post("/v1/erasures", json={"subject": subject, "reason": "DSR-17"})


@pytest.mark.parametrize("scope", ["topic:accounts", "projection"])
def test_a_held_topic_or_projection_keeps_the_subjects_key(hub: Hub, scope: str) -> None:
    open_accounts(hub, ["ACC-H1"])  # its PII is encrypted under ACC-H1's key
    if scope == "projection":
        scope = f"projection:{sorted(pii_projections())[0]}"
    hub.governance.place_hold(scope, actor="counsel", matter="M-17")
    r = _erase(hub, "ACC-H1")
    assert r.status_code == 409, r.text  # type: ignore[attr-defined]
    body = r.json()  # type: ignore[attr-defined]
    assert body["reason"] == "legal_hold" and scope in body["message"], body
    assert hub.keystore.for_tenant("default").exists("ACC-H1") and not hub.keystore.for_tenant(
        "default"
    ).erased("ACC-H1")
    assert not hub.ledger.entries(action="subject.erase")


def test_a_hold_on_a_topic_without_the_subjects_pii_does_not_block(hub: Hub) -> None:
    open_accounts(hub, ["ACC-H2", "ACC-H3"])
    hub.governance.place_hold("topic:payments", actor="counsel", matter="M-17")
    r = _erase(hub, "ACC-H2")
    assert r.status_code == 201, r.text  # type: ignore[attr-defined]
    assert hub.keystore.for_tenant("default").erased("ACC-H2")


def _erase_as(h: Hub, tenant: str, subject: str) -> object:
    token = h.keys.create(["compliance_officer"], principal=f"off-{tenant}", tenant=tenant).token
    c = TestClient(create_app(h), raise_server_exceptions=False)
    c.headers["Authorization"] = "Basic " + base64.b64encode(token.encode()).decode()
    with c:
        return c.post("/v1/erasures", json={"subject": subject, "reason": "DSR-17"})


@pytest.mark.parametrize("scope", ["subject:ACC-G1", "topic:accounts"])
def test_another_tenants_hold_does_not_block_an_erasure(hub: Hub, scope: str) -> None:
    """acme's officer (legalhold.write, no tenant.all) holds globex's customer, or the accounts
    topic: globex's erasure of its own customer answered 409 legal_hold, with no hold globex
    could list or release (holds are tenant-scoped), a GDPR request blocked by a competitor.
    acme has no record of ACC-G1 to keep; its hold still binds acme's own customer."""
    hub.publisher.publish("accounts", [account_opened("ACC-G1")], "globex-app", tenant="globex")
    hub.publisher.publish("accounts", [account_opened("ACC-A1")], "acme-app", tenant="acme")
    hub.governance.place_hold(scope, actor="acme-off", matter="M-17", tenant="acme")
    r = _erase_as(hub, "globex", "ACC-G1")
    assert r.status_code == 201, r.text  # type: ignore[attr-defined]
    assert hub.keystore.for_tenant("globex").erased("ACC-G1")
    if scope.startswith("topic:"):
        r = _erase_as(hub, "acme", "ACC-A1")  # acme's own customer: its hold binds
        assert r.status_code == 409, r.text  # type: ignore[attr-defined]
        assert hub.keystore.for_tenant("acme").exists("ACC-A1")


def test_the_hubs_own_hold_binds_every_tenant(hub: Hub) -> None:
    hub.publisher.publish("accounts", [account_opened("ACC-G2")], "globex-app", tenant="globex")
    hub.governance.place_hold("subject:ACC-G2", actor="counsel", matter="M-17")  # tenant default
    r = _erase_as(hub, "globex", "ACC-G2")
    assert r.status_code == 409, r.text  # type: ignore[attr-defined]
    assert hub.keystore.for_tenant("globex").exists("ACC-G2")
