"""One tenant must not fill the registry: caps on subjects and schema versions per tenant (s22).

Session 22's exhaustion red team registered 300 subjects and 200 schema versions from one
publisher key in seconds, all accepted (docs/benchmarks/s22-redteam-exhaust22.md). Now
``HUB_REGISTRY_MAX_SUBJECTS_PER_TENANT`` and ``HUB_REGISTRY_MAX_VERSIONS_PER_TENANT`` (off by
default) cap what a tenant's keys create: past one, 507 with the Confluent error_code 507 and
the reason ``tenant_subjects_full`` / ``tenant_versions_full`` naming the setting; nothing is
registered; an idempotent registration of a schema already there is still answered; another
tenant registers at once; the count is the registry's folded state, so a restart keeps it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from hub.api.app import create_app
from hub.bootstrap import Hub, bootstrap
from hub.settings import load_settings
from tests.adversarial._api import basic, issue_key


@contextmanager
def capped_api(data_dir: Path) -> Iterator[tuple[Hub, TestClient]]:
    environ = {
        "HUB_PROJECTION_AUTOSTART": "false",
        "HUB_REGISTRY_MAX_SUBJECTS_PER_TENANT": "2",
        "HUB_REGISTRY_MAX_VERSIONS_PER_TENANT": "3",
        "HUB_REGISTRY_COMPATIBILITY": "NONE",
    }
    hub = bootstrap(load_settings(environ=environ, data_dir=data_dir))
    try:
        with TestClient(create_app(hub), raise_server_exceptions=False) as c:
            yield hub, c
    finally:
        hub.close()


def _schema(name: str, field: str = "id") -> str:
    return json.dumps(
        {
            "type": "record",
            "name": name,
            "namespace": "com.quota",
            "fields": [{"name": field, "type": "string"}],
        }
    )


def _register(c: TestClient, who: dict[str, str], subject: str, schema: str) -> Any:
    return c.post(f"/subjects/{subject}/versions", json={"schema": schema}, headers=who)


def test_a_tenant_at_its_subject_cap_is_refused_and_another_tenant_registers(
    tmp_path: Path,
) -> None:
    with capped_api(tmp_path / "d") as (hub, c):
        globex = basic(issue_key(hub, "publisher", "gus", "globex"))
        acme = basic(issue_key(hub, "publisher", "ann", "acme"))
        for name in ("GA", "GB"):
            r = _register(c, globex, f"com.globex.{name}", _schema(name))
            assert r.status_code == 200, r.text
        r = _register(c, globex, "com.globex.GC", _schema("GC"))
        assert r.status_code == 507, r.text
        assert r.json()["error_code"] == 507
        assert r.json()["reason"] == "tenant_subjects_full"
        assert "HUB_REGISTRY_MAX_SUBJECTS_PER_TENANT" in r.json()["message"]
        assert "com.globex.GC" not in hub.registry.subjects()
        # the same schema again under its subject is answered (nothing new)
        r = _register(c, globex, "com.globex.GA", _schema("GA"))
        assert r.status_code == 200, r.text
        # acme is not held by globex's cap
        r = _register(c, acme, "com.acme.AA", _schema("AA"))
        assert r.status_code == 200, r.text
        assert hub.metrics.tenant_refusals.labels("globex", "registry_subjects")._value.get() == 1
    with capped_api(tmp_path / "d") as (hub, c):  # the cap holds after a restart
        globex = basic(issue_key(hub, "publisher", "gus2", "globex"))
        r = _register(c, globex, "com.globex.GD", _schema("GD"))
        assert r.status_code == 507 and r.json()["reason"] == "tenant_subjects_full", r.text


def test_a_tenant_at_its_version_cap_is_refused(tmp_path: Path) -> None:
    with capped_api(tmp_path / "d") as (hub, c):
        globex = basic(issue_key(hub, "publisher", "gus", "globex"))
        for k in range(3):
            r = _register(c, globex, "com.globex.V", _schema("V", f"f{k}"))
            assert r.status_code == 200, r.text
        r = _register(c, globex, "com.globex.V", _schema("V", "f9"))
        assert r.status_code == 507, r.text
        assert r.json()["reason"] == "tenant_versions_full"
        assert "HUB_REGISTRY_MAX_VERSIONS_PER_TENANT" in r.json()["message"]
        assert len(hub.registry.versions("com.globex.V")) == 3
        # the hub's own tenant is not capped (its domain schemas)
        hal = basic(issue_key(hub, "publisher", "hal"))
        for k in range(4):
            r = _register(c, hal, f"com.hub.H{k}", _schema(f"H{k}"))
            assert r.status_code == 200, r.text


def test_versions_under_a_plain_companion_count_toward_the_cap(tmp_path: Path) -> None:
    """Live run (docs/benchmarks/s22-quota22.md, attack 17): registering under
    ``<own subject>-plain`` directly was answered 200 and its versions were not counted, a way
    around the version cap."""
    with capped_api(tmp_path / "d") as (hub, c):
        globex = basic(issue_key(hub, "publisher", "gus", "globex"))
        assert _register(c, globex, "com.globex.P", _schema("P")).status_code == 200
        codes = [
            _register(c, globex, "com.globex.P-plain", _schema("P", f"g{k}")).status_code
            for k in range(5)
        ]
        assert codes[:2] == [200, 200], codes
        assert set(codes[2:]) == {507}, codes
