"""What a reader limited to one tenant sees of the hub-wide policy bundle (session 16 review,
second pass).

``policy.read`` is decided for the reader's own tenant, so acme's compliance officer could read
every policy change's diff and, in the console, every bundle file: the bundle's ``grants`` name
other tenants' principals (``gus@globex`` given ``pii.read``, say) and what they may do. A
tenant-limited reader now sees versions, file names and the changes' summaries; the text is for
a reader allowed ``policy.read`` hub-wide (the hub's own tenant, or ``tenant.all``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from core.policybundle import PolicyBundle
from hub.api.app import create_app
from hub.bootstrap import Hub
from tests.adversarial._api import basic, quiet_hub

SECRET_GRANTEE = "gus-globex-investigator"


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    yield from quiet_hub(tmp_path / "d")


@pytest.fixture
def client(hub: Hub) -> Iterator[TestClient]:
    with TestClient(create_app(hub), raise_server_exceptions=False) as c:
        yield c


def _proposed(hub: Hub, client: TestClient) -> str:
    shipped = PolicyBundle.from_dir()
    data = json.loads(shipped.files["hub/data.json"])
    data["grants"] = [
        {
            "id": "g-1",
            "principal": SECRET_GRANTEE,
            "actions": ["pii.read"],
            "resource": "*",
            "expires_at": 4_000_000_000_000_000_000,
        }
    ]
    files = {**shipped.files, "hub/data.json": json.dumps(data, indent=2) + "\n"}
    sue = basic(hub.keys.create(["security_admin"], principal="sue").token)
    r = client.post("/v1/policy/changes", json={"files": files, "reason": "x"}, headers=sue)
    assert r.status_code == 201, r.text
    assert SECRET_GRANTEE in r.json()["diff"]
    change: str = r.json()["change_id"]
    return change


def test_a_tenant_officer_sees_no_diff_a_hub_officer_does(hub: Hub, client: TestClient) -> None:
    change = _proposed(hub, client)
    ann = basic(hub.keys.create(["compliance_officer"], principal="ann", tenant="acme").token)
    r = client.get(f"/v1/policy/changes/{change}", headers=ann)
    assert r.status_code == 200, r.text
    assert SECRET_GRANTEE not in r.text and r.json()["diff"] is None
    assert "hub-wide" in r.json()["withheld"]
    r = client.get("/v1/policy/changes", headers=ann)  # the summaries stay readable
    assert r.status_code == 200 and change in r.text and SECRET_GRANTEE not in r.text
    olga = basic(hub.keys.create(["compliance_officer"], principal="olga").token)
    r = client.get(f"/v1/policy/changes/{change}", headers=olga)
    assert r.status_code == 200 and SECRET_GRANTEE in r.json()["diff"], r.text


def test_the_console_withholds_the_bundle_text_from_a_tenant_officer(
    hub: Hub, client: TestClient
) -> None:
    from tests.adversarial.test_console_keys import as_

    change = _proposed(hub, client)
    olga = basic(hub.keys.create(["security_admin"], principal="olga2").token)
    assert (
        client.post(f"/v1/policy/changes/{change}/approve", json={}, headers=olga).status_code
        == 200
    )
    ann = hub.keys.create(["compliance_officer"], principal="ann", tenant="acme")
    as_(client, ann.token, "/ui")
    r = client.get("/ui/api/security/policy")
    assert r.status_code == 200, r.text
    assert "hub/data.json" in r.json()["files"] and SECRET_GRANTEE not in r.text, r.text
    root = hub.keys.create(["compliance_officer"], principal="otto")
    as_(client, root.token, "/ui")
    r = client.get("/ui/api/security/policy")
    assert r.status_code == 200 and SECRET_GRANTEE in r.text, r.text


def test_the_cli_diff_is_hub_wide(hub: Hub, client: TestClient) -> None:
    from hub.cli import main

    change = _proposed(hub, client)
    sam = hub.keys.create(["compliance_officer"], principal="sam", tenant="acme").token
    data_dir = str(hub.settings.data_dir)
    client.close()
    hub.close()
    hub.close = lambda: None  # type: ignore[method-assign]  # the CLI opens the folder itself
    r = CliRunner().invoke(main, ["--data-dir", data_dir, "policy", "diff", change, "--key", sam])
    assert r.exit_code == 1 and SECRET_GRANTEE not in r.output, r.output
    assert "tenant isolation" in r.output, r.output
