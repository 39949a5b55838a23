"""s18 (trust): data-subject keys are per (tenant, subject).

Before, a subject's key was hub-wide and the hub recorded which tenants named it: a publisher of
tenant A naming tenant B's customer id made that subject "shared", so B's compliance officer was
refused its erasure (403 ``subject_shared``, a denial of a GDPR erasure by a publisher of another
tenant), and an officer erasing an id learnt whether another tenant used it (403 "belongs to
another tenant"). Now acme's "alice" and globex's "alice" are two keys (``TenantKeys``): each
tenant's officer erases its own; ``tenant.all`` erases the id in every tenant; the ledger's
``subject.erase`` entries name the tenant whose key was destroyed.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from hub.api.app import create_app
from hub.bootstrap import Hub, bootstrap
from hub.settings import load_settings
from tests.service.accounts import account_opened


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    env = {"HUB_PROJECTION_AUTOSTART": "false"}
    h = bootstrap(load_settings(environ=env, data_dir=tmp_path / "data"))
    try:
        yield h
    finally:
        h.close()


def _erase(h: Hub, roles: list[str], tenant: str, subject: str) -> Any:
    token = h.keys.create(roles, principal=f"{tenant}-officer", tenant=tenant).token
    c = TestClient(create_app(h), raise_server_exceptions=False)
    c.headers["Authorization"] = "Basic " + base64.b64encode(token.encode()).decode()
    with c:
        return c.post("/v1/erasures", json={"subject": subject, "reason": "DSR-18"})


def _publish(h: Hub, tenant: str, account: str, name: str) -> None:
    h.publisher.publish(
        "accounts", [account_opened(account, name=name)], f"{tenant}-app", tenant=tenant
    )


def _names(h: Hub) -> dict[tuple[str, str], list[str]]:
    """{(tenant, account): [customer_name as read back, ...]} over every stored record."""
    out: dict[tuple[str, str], list[str]] = {}
    for part in h.log.beginning_offsets("accounts"):
        for rec in h.reader.read("accounts", part, 0, 1000):
            v = rec["value"]
            out.setdefault((rec["headers"]["ce_tenant"], v["account_id"]), []).append(
                v["customer_name"]
            )
    return out


def _erasures(h: Hub) -> list[dict[str, Any]]:
    """The ledger's ``subject.erase`` audit entries, each with its recorded details."""
    out = []
    for e in h.ledger.entries(action="subject.erase"):
        if e["topic"] != "hub.audit":
            continue  # the decision that allowed it
        value = h.reader.read("hub.audit", e["partition"], e["offset"], 1)[0]["value"]
        out.append({**e, "details": json.loads(value["details"])})
    return out


def test_a_publisher_naming_another_tenants_subject_cannot_block_its_erasure(hub: Hub) -> None:
    _publish(hub, "globex", "ACC-G", "Gina Globex")
    _publish(hub, "acme", "ACC-G", "Planted By Acme")  # acme's publisher names globex's id
    r = _erase(hub, ["compliance_officer"], "globex", "ACC-G")
    assert r.status_code == 201, r.text  # main: 403 subject_shared
    names = _names(hub)
    assert names[("globex", "ACC-G")] == ["[erased]"]
    assert names[("acme", "ACC-G")] == ["Planted By Acme"]  # acme's own subject, untouched
    # globex's subject stays erased for globex; acme's id of the same name is acme's
    with pytest.raises(Exception, match="erased"):
        _publish(hub, "globex", "ACC-G", "Late Event")
    _publish(hub, "acme", "ACC-G", "Still Acme")
    entries = _erasures(hub)
    assert [e["tenant"] for e in entries] == ["globex"]
    assert entries[0]["details"]["tenant_scope"] == "globex"
    assert entries[0]["details"]["tenants_erased"] == ["globex"]


def test_an_officer_erasing_an_id_of_another_tenant_erases_only_its_own(hub: Hub) -> None:
    _publish(hub, "globex", "ACC-H", "Hanna Globex")
    r = _erase(hub, ["compliance_officer"], "acme", "ACC-H")
    # main: 403 "belongs to another tenant" (tells acme globex has that customer)
    assert r.status_code == 201, r.text
    assert "globex" not in r.text
    assert _names(hub)[("globex", "ACC-H")] == ["Hanna Globex"]
    _publish(hub, "globex", "ACC-H", "Globex Goes On")  # not refused: acme erased its own id
    with pytest.raises(Exception, match="erased"):
        _publish(hub, "acme", "ACC-H", "Acme Ahead")  # erased ahead of acme's data
    assert [e["tenant"] for e in _erasures(hub)] == ["acme"]


def test_tenant_all_erases_the_id_in_every_tenant(hub: Hub) -> None:
    _publish(hub, "globex", "ACC-X", "Xena Globex")
    _publish(hub, "acme", "ACC-X", "Xavier Acme")
    r = _erase(hub, ["admin"], "default", "ACC-X")
    assert r.status_code == 201, r.text
    names = _names(hub)
    assert names[("globex", "ACC-X")] == ["[erased]"]
    assert names[("acme", "ACC-X")] == ["[erased]"]
    for tenant in ("acme", "globex", "initech"):  # a tenant yet unseen too: the id everywhere
        with pytest.raises(Exception, match="erased"):
            _publish(hub, tenant, "ACC-X", "Late")
    entries = _erasures(hub)
    assert sorted(e["tenant"] for e in entries) == ["acme", "globex"]
    assert entries[0]["details"]["tenant_scope"] is None
    assert entries[0]["details"]["tenants_erased"] == ["acme", "globex"]


def test_a_subject_id_cannot_name_another_tenants_key(hub: Hub) -> None:
    """The scoped key id is ``NUL tenant NUL subject``: a subject id holding NUL is refused, so
    no id a publisher sends can pose as another tenant's key."""
    _publish(hub, "globex", "ACC-N", "Nora Globex")
    with pytest.raises(Exception, match=r"NUL|invalid"):
        _publish(hub, "acme", "\x00globex\x00ACC-N", "Posing")
    r = _erase(hub, ["compliance_officer"], "acme", "\x00globex\x00ACC-N")
    assert r.status_code == 422, r.text
    assert _names(hub)[("globex", "ACC-N")] == ["Nora Globex"]


def test_a_restore_re_applies_a_tenant_officers_erasure_to_that_tenant_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The erasure journal and the backup witness record a tenant officer's erasure under the
    tenant-scoped key id (a plain id means every tenant, as every entry before did): a restore
    of a backup made before it erases acme's subject again, and leaves globex's alone."""
    from tests.adversarial.test_backup_attacks import run

    data, target, kek = tmp_path / "hub", tmp_path / "restored", tmp_path / "vault" / "b.kek"
    monkeypatch.setenv("HUB_OBJECT_STORE_DIR", str(tmp_path / "store"))
    monkeypatch.setenv("HUB_BACKUP_KEK_FILE", str(kek))
    monkeypatch.delenv("HUB_OBJECT_STORE", raising=False)
    assert run("backup", "kek", str(kek)).exit_code == 0
    h = bootstrap(load_settings(environ={}, data_dir=data))
    try:
        admin = h.keys.create(["admin"], owner="admin-1").token
        officer = h.keys.create(["compliance_officer"], owner="acme-off", tenant="acme").token
        _publish(h, "acme", "ACC-R", "Rita Acme")
        _publish(h, "globex", "ACC-R", "Rolf Globex")
        h.ledger.sync(force_checkpoint=True)
    finally:
        h.close()
    r = run("--data-dir", str(data), "--key", admin, "backup", "create")
    assert r.exit_code == 0, r.output
    r = run("--data-dir", str(data), "--key", officer, "erase", "ACC-R", "--reason", "DSR-18")
    assert r.exit_code == 0, r.output
    r = run("--data-dir", str(data), "--key", admin, "backup", "restore", "--target", str(target))
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["erasures_reapplied"] == ["\x00acme\x00ACC-R"]
    h = bootstrap(load_settings(environ={}, data_dir=target))
    try:
        assert h.keystore.for_tenant("acme").erased("ACC-R")
        assert h.keystore.for_tenant("globex").exists("ACC-R")
        names = _names(h)
        assert names[("acme", "ACC-R")] == ["[erased]"]
        assert names[("globex", "ACC-R")] == ["Rolf Globex"]
    finally:
        h.close()
