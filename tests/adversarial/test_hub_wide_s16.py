"""Hub-wide changes made by keys limited to one tenant (session 16 review, attacker view).

The policy bundle and the schema registry's settings are one for the whole hub: every tenant's
decisions come from the one bundle, every tenant's producers register under the one registry
mode. So they are decided as the hub's own tenant's (``core.ports.policy.HUB_TENANT``), as
retention and quality rules already were: a key of another tenant needs ``tenant.all``.

1. acme's security admin proposed a bundle granting acme's compliance officers ``tenant.all``
   and acme's compliance officer approved it (two persons, so the two-person rule held): from
   then on acme read globex's records. Through the API, the console and the CLI alike.
2. (``test_registry_hub_wide.py``) the registry's levels and modes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from core.policybundle import PolicyBundle
from hub.api.app import create_app
from hub.bootstrap import Hub
from tests.adversarial._api import basic, issue_key, quiet_hub


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    yield from quiet_hub(tmp_path / "d")


@pytest.fixture
def client(hub: Hub) -> Iterator[TestClient]:
    with TestClient(create_app(hub), raise_server_exceptions=False) as c:
        yield c


def _escalating_bundle() -> dict[str, str]:
    """The shipped bundle with ``tenant.all`` given to every compliance officer."""
    shipped = PolicyBundle.from_dir()
    data = json.loads(shipped.files["hub/data.json"])
    data["role_actions"]["compliance_officer"].append("tenant.all")
    return {**shipped.files, "hub/data.json": json.dumps(data, indent=2) + "\n"}


def _refused(r: Any) -> None:
    assert r.status_code == 403, r.text
    assert "tenant isolation" in r.json()["message"], r.text


def test_a_tenants_officers_cannot_change_the_hubs_policy(hub: Hub, client: TestClient) -> None:
    sam = basic(issue_key(hub, "security_admin", "sam", "acme"))
    ann = basic(issue_key(hub, "compliance_officer", "ann", "acme"))
    before = hub.policy_changes.store.active_bundle().version
    r = client.post(
        "/v1/policy/changes", json={"files": _escalating_bundle(), "reason": "x"}, headers=sam
    )
    _refused(r)
    _refused(
        client.post("/v1/policy/rollback", json={"version": before, "reason": "x"}, headers=sam)
    )
    # a change the hub's own security admin proposed is not approved by another tenant's officer
    own = basic(issue_key(hub, "security_admin", "sue"))
    r = client.post(
        "/v1/policy/changes", json={"files": _escalating_bundle(), "reason": "x"}, headers=own
    )
    assert r.status_code == 201, r.text
    change = r.json()["change_id"]
    _refused(client.post(f"/v1/policy/changes/{change}/approve", json={}, headers=ann))
    hub.policy_changes.store.refresh()
    assert hub.policy_changes.store.active_bundle().version == before
    # the hub's own compliance officer still approves it
    olga = basic(issue_key(hub, "compliance_officer", "olga"))
    r = client.post(f"/v1/policy/changes/{change}/approve", json={}, headers=olga)
    assert r.status_code == 200, r.text


def test_the_console_approve_route_is_hub_wide_too(hub: Hub, client: TestClient) -> None:
    from tests.adversarial.test_console_keys import as_

    own = basic(issue_key(hub, "security_admin", "sue"))
    r = client.post(
        "/v1/policy/changes", json={"files": _escalating_bundle(), "reason": "x"}, headers=own
    )
    change = r.json()["change_id"]
    ann = hub.keys.create(["compliance_officer"], principal="ann", tenant="acme")
    headers = as_(client, ann.token, "/ui")
    r = client.post(
        f"/ui/api/security/policy/changes/{change}/approve", json={"reason": "x"}, headers=headers
    )
    _refused(r)


def test_the_cli_policy_commands_are_hub_wide(hub: Hub, tmp_path: Path) -> None:
    from hub.cli import main

    sam = issue_key(hub, "security_admin", "sam", "acme")
    folder = tmp_path / "bundle"
    for name, text in _escalating_bundle().items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    data_dir = str(hub.settings.data_dir)
    hub.close()
    hub.close = lambda: None  # type: ignore[method-assign]  # the CLI opens the folder itself
    r = CliRunner().invoke(
        main,
        ["--data-dir", data_dir, "policy", "propose", str(folder), "--reason", "x", "--key", sam],
    )
    assert r.exit_code == 1 and "tenant isolation" in r.output, r.output
