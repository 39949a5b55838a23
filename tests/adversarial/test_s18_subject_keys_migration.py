"""s18: a store made before keys were per (tenant, subject) keeps working.

The store is made by the code of before (``git archive`` of the commit this change was made on,
run in a subprocess): hub-wide subject keys, the record of which tenants named each. Then this
code opens it. Migration rule (``governance.erasure.Eraser.plan``): values sealed under a
hub-wide (legacy) key stay readable until erased; nothing new is sealed under one; a legacy
erasure stays in force for the tenants that named the subject; an erasure destroys the legacy
key with the tenant's own when it covers every tenant that named it (``tenant.all``, or a
tenant's officer when the record names that tenant alone), and a tenant's officer is refused a
legacy key other tenants named too.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from hub.api.app import create_app
from hub.bootstrap import Hub, bootstrap
from hub.settings import load_settings
from tests.service.accounts import account_opened

BEFORE = "920dff7"  # the commit this change was made on: hub-wide subject keys
REPO = Path(__file__).resolve().parents[2]
ENV = {"HUB_PROJECTION_AUTOSTART": "false"}

OLD_HUB = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from core.ports.policy import Principal
    from hub.bootstrap import bootstrap
    from hub.settings import load_settings
    from tests.service.accounts import account_opened

    h = bootstrap(load_settings(environ={"HUB_PROJECTION_AUTOSTART": "false"},
                                data_dir=Path(sys.argv[1])))
    def pub(tenant, account, name):
        h.publisher.publish("accounts", [account_opened(account, name=name)], "app",
                            tenant=tenant)
    pub("globex", "ACC-L", "Legacy Globex")  # named by two tenants: shared
    pub("acme", "ACC-L", "Legacy Acme")
    pub("acme", "ACC-A", "Only Acme")  # acme's alone
    pub("globex", "ACC-E", "Erased Globex")  # erased hub-wide before the change
    h.eraser.erase(Principal("admin", frozenset({"admin"})), "ACC-E", "DSR-0", tenant_scope=None)
    h.close()
    """
)


@pytest.fixture(scope="module")
def old_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("s18-migration")
    tree = root / "before"
    tree.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", BEFORE], capture_output=True, check=False
    )
    if archive.returncode != 0:
        pytest.skip(f"commit {BEFORE} is not in this clone: {archive.stderr.decode()[:200]}")
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
    data = root / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env |= {"PYTHONPATH": str(tree), "HUB_PROJECTION_AUTOSTART": "false"}
    for name in ("HUB_INFRA_SLOT", "HUB_INFRA_DIR"):
        if name in os.environ:
            env[name] = os.environ[name]
    made = subprocess.run(
        [sys.executable, "-c", OLD_HUB, str(data)],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert made.returncode == 0, made.stderr[-3000:]
    return data


@pytest.fixture
def hub(old_store: Path, tmp_path: Path) -> Any:
    import shutil

    data = tmp_path / "data"
    shutil.copytree(old_store, data)
    h = bootstrap(load_settings(environ=ENV, data_dir=data))
    try:
        yield h
    finally:
        h.close()


def _names(h: Hub) -> dict[tuple[str, str], list[str]]:
    out: dict[tuple[str, str], list[str]] = {}
    for part in h.log.beginning_offsets("accounts"):
        for rec in h.reader.read("accounts", part, 0, 1000):
            v = rec["value"]
            out.setdefault((rec["headers"]["ce_tenant"], v["account_id"]), []).append(
                v["customer_name"]
            )
    return out


def _publish(h: Hub, tenant: str, account: str, name: str) -> None:
    h.publisher.publish("accounts", [account_opened(account, name=name)], "app", tenant=tenant)


def _erase(h: Hub, roles: list[str], tenant: str, subject: str) -> Any:
    token = h.keys.create(roles, principal=f"{tenant}-officer-{subject}", tenant=tenant).token
    c = TestClient(create_app(h), raise_server_exceptions=False)
    c.headers["Authorization"] = "Basic " + base64.b64encode(token.encode()).decode()
    with c:
        return c.post("/v1/erasures", json={"subject": subject, "reason": "DSR-18"})


def test_old_values_stay_readable_and_new_ones_use_the_tenants_key(hub: Hub) -> None:
    names = _names(hub)
    assert names[("globex", "ACC-L")] == ["Legacy Globex"]
    assert names[("acme", "ACC-L")] == ["Legacy Acme"]
    assert names[("acme", "ACC-A")] == ["Only Acme"]
    assert names[("globex", "ACC-E")] == ["[erased]"]
    _publish(hub, "acme", "ACC-A", "New Acme")
    assert _names(hub)[("acme", "ACC-A")] == ["Only Acme", "New Acme"]
    assert hub.keystore.exists("ACC-A")  # the legacy key, still there for the old value
    assert hub.keystore.for_tenant("acme").inner.exists("\x00acme\x00ACC-A")  # the new one


def test_a_legacy_erasure_holds_for_the_tenants_that_named_the_subject(hub: Hub) -> None:
    with pytest.raises(Exception, match="erased"):
        _publish(hub, "globex", "ACC-E", "Late Globex")
    _publish(hub, "acme", "ACC-E", "Acme's Own")  # acme never named it: another person
    assert _names(hub)[("acme", "ACC-E")] == ["Acme's Own"]


def test_a_tenants_officer_erases_old_and_new_values_of_its_own_legacy_subject(
    hub: Hub,
) -> None:
    _publish(hub, "acme", "ACC-A", "New Acme")
    r = _erase(hub, ["compliance_officer"], "acme", "ACC-A")
    assert r.status_code == 201, r.text
    assert _names(hub)[("acme", "ACC-A")] == ["[erased]", "[erased]"]
    assert hub.keystore.erased("ACC-A") and not hub.keystore.exists("ACC-A")  # legacy gone
    assert hub.keystore.for_tenant("acme").erased("ACC-A")
    with pytest.raises(Exception, match="erased"):
        _publish(hub, "acme", "ACC-A", "Late")
    _publish(hub, "globex", "ACC-A", "Globex's Own")  # not globex's subject: unaffected
    audit = [
        json.loads(
            hub.reader.read("hub.audit", e["partition"], e["offset"], 1)[0]["value"]["details"]
        )
        for e in hub.ledger.entries(action="subject.erase")
        if e["topic"] == "hub.audit" and e["tenant"] == "acme"
    ]
    assert audit[-1]["legacy_key_destroyed"] is True


def test_a_shared_legacy_key_needs_tenant_all_and_then_goes_everywhere(hub: Hub) -> None:
    r = _erase(hub, ["compliance_officer"], "globex", "ACC-L")
    assert r.status_code == 403, r.text
    assert r.json()["reason"] == "subject_shared" and "tenant.all" in r.json()["message"]
    assert _names(hub)[("globex", "ACC-L")] == ["Legacy Globex"]  # nothing destroyed
    _publish(hub, "globex", "ACC-L", "New Globex")  # a scoped key besides the legacy one
    r = _erase(hub, ["admin"], "default", "ACC-L")
    assert r.status_code == 201, r.text
    names = _names(hub)
    assert names[("globex", "ACC-L")] == ["[erased]", "[erased]"]
    assert names[("acme", "ACC-L")] == ["[erased]"]
    tenants = sorted(
        e["tenant"]
        for e in hub.ledger.entries(action="subject.erase")
        if e["topic"] == "hub.audit" and e["resource"] == "subject:ACC-L"
    )
    assert tenants == ["acme", "globex"]
