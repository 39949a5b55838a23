"""s15 red team finding (critical): a tenant's compliance officer crypto-shredded another tenant's
data subject.

Subject keys are hub-wide (``KeyStore.destroy(subject_id)``, no tenant), and ``subject.erase`` is
decided on ``subject:<id>`` without a resource tenant. The hub now records which tenants named
each subject (``SubjectTenants``, written before a batch is appended) and an officer limited to
one tenant (no ``tenant.all``) may erase only a subject that its own tenant alone named: another
tenant's subject, a shared one and one named before the record existed need ``tenant.all``. The
ledger's ``subject.erase`` carries each named tenant, so that tenant's officer and evidence see it.

Since s18 keys are per (tenant, subject) (``core.ports.keystore.TenantKeys``): an officer erases
its own tenant's subject of that id and never touches another's; the record of names is frozen
and decides only the erasure of hub-wide keys made before (``governance.erasure.Eraser.plan``).
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from hub.api.app import create_app
from hub.bootstrap import Hub, bootstrap
from hub.settings import load_settings
from tests.adversarial._legacy import publish_before
from tests.service.accounts import account_opened, open_accounts


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    env = {"HUB_PROJECTION_AUTOSTART": "false"}
    h = bootstrap(load_settings(environ=env, data_dir=tmp_path / "data"))
    try:
        yield h
    finally:
        h.close()


def _erase(h: Hub, principal: str, roles: list[str], tenant: str, subject: str) -> object:
    token = h.keys.create(roles, principal=principal, tenant=tenant).token
    c = TestClient(create_app(h), raise_server_exceptions=False)
    c.headers["Authorization"] = "Basic " + base64.b64encode(token.encode()).decode()
    with c:
        return c.post("/v1/erasures", json={"subject": subject, "reason": "DSR-1"})


def _erasures(h: Hub, tenant: str, subject: str) -> list[dict[str, object]]:
    return [
        e
        for e in h.ledger.entries(action="subject.erase")
        if e.get("tenant") == tenant and e.get("resource") == f"subject:{subject}"
    ]


def test_another_tenants_officer_erases_only_its_own_id(hub: Hub) -> None:
    """Since s18 keys are per (tenant, subject): acme's officer naming default's customer id
    erases acme's subject of that id (none), never default's key, and learns nothing."""
    open_accounts(hub, ["ACC-9"])  # tenant default's data subject (its PII is encrypted)
    assert hub.keystore.for_tenant("default").exists("ACC-9")
    r = _erase(hub, "acme-off", ["compliance_officer"], "acme", "ACC-9")
    assert r.status_code == 201, r.text
    assert hub.keystore.for_tenant("default").exists("ACC-9")
    assert hub.keystore.for_tenant("acme").erased("ACC-9")
    assert not hub.keystore.for_tenant("default").erased("ACC-9")
    assert len(_erasures(hub, "acme", "ACC-9")) == 1
    assert not _erasures(hub, "default", "ACC-9")


def test_own_tenants_officer_erases_and_the_entry_carries_the_tenant(hub: Hub) -> None:
    hub.publisher.publish("accounts", [account_opened("ACC-A1")], "acme-app", tenant="acme")
    r = _erase(hub, "acme-off", ["compliance_officer"], "acme", "ACC-A1")
    assert r.status_code == 201, r.text
    assert hub.keystore.for_tenant("acme").erased("ACC-A1")
    assert len(_erasures(hub, "acme", "ACC-A1")) == 1


def test_a_shared_legacy_subject_needs_tenant_all(hub: Hub) -> None:
    """A hub-wide key of before s18 that two tenants named holds both tenants' old values."""
    publish_before(hub, "default", ["ACC-S"])
    publish_before(hub, "acme", ["ACC-S"])
    r = _erase(hub, "acme-off", ["compliance_officer"], "acme", "ACC-S")
    assert r.status_code == 403, r.text
    assert "other tenants" in r.json()["message"] and "tenant.all" in r.json()["message"]
    assert hub.keystore.exists("ACC-S")
    # an admin (tenant.all) erases it; each tenant's ledger view shows the erasure
    r = _erase(hub, "admin", ["admin"], "default", "ACC-S")
    assert r.status_code == 201, r.text
    assert hub.keystore.erased("ACC-S")
    assert len(_erasures(hub, "acme", "ACC-S")) == 1
    assert len(_erasures(hub, "default", "ACC-S")) == 1


def test_a_legacy_subject_named_before_the_record_needs_tenant_all(hub: Hub) -> None:
    keystore: Any = hub.keystore
    keystore.for_tenant = lambda tenant: keystore  # a hub before the record: a key, no record
    try:
        open_accounts(hub, ["ACC-OLD"])
    finally:
        del keystore.for_tenant
    assert hub.keystore.exists("ACC-OLD")
    r = _erase(hub, "def-off", ["compliance_officer"], "default", "ACC-OLD")
    assert r.status_code == 403, r.text
    assert "is not known" in r.json()["message"]
    assert hub.keystore.exists("ACC-OLD")


def test_an_unknown_subject_keeps_its_answer(hub: Hub) -> None:
    r = _erase(hub, "acme-off", ["compliance_officer"], "acme", "ACC-NEVER")
    assert r.status_code == 201, r.text
    assert len(_erasures(hub, "acme", "ACC-NEVER")) == 1


def test_the_ingest_pipeline_records_the_tenant_of_accepted_and_quarantined_records(
    hub: Hub,
) -> None:
    import json

    from ingest.pipeline import RawRecord

    good = account_opened("ACC-P1").value
    bad = {**account_opened("ACC-P2").value, "email": "not an email"}  # quarantined, sealed
    done = hub.ingest.ingest(
        "accounts",
        [
            RawRecord(json.dumps(v).encode(), value=v, event_type="hub.accounts.AccountOpened")
            for v in (good, bad)
        ],
        source="acme-src",
        tenant="acme",
    )
    assert (done.accepted, done.rejected) == (1, 1)
    # the keys are acme's own (the accepted value and the quarantined original's)
    assert hub.keystore.for_tenant("acme").exists("ACC-P1")
    assert hub.keystore.for_tenant("acme").exists("ACC-P2")
    assert not hub.keystore.for_tenant("default").exists("ACC-P2")
    r = _erase(hub, "def-off", ["compliance_officer"], "default", "ACC-P2")
    assert r.status_code == 201, r.text  # default's own ACC-P2 (none): acme's key untouched
    assert hub.keystore.for_tenant("acme").exists("ACC-P2")
