"""The schema registry's levels and modes are one for the whole hub (session 16 review).

Subjects are shared by every tenant's producers, so a compatibility level or a mode (global or
a subject's) is decided as the hub's own tenant's (``governance.configchanges.hub_wide``): acme's
security admin set the global mode to READONLY in one request (no second person), and every
tenant's producers could no longer register a schema; a level of NONE on ``trades-value`` let
any publisher break every tenant's consumers of it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from hub.api.app import create_app
from hub.bootstrap import Hub
from tests.adversarial._api import basic, issue_key, quiet_hub
from tests.adversarial.test_hub_wide_s16 import _refused


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    yield from quiet_hub(tmp_path / "d")


@pytest.fixture
def client(hub: Hub) -> Iterator[TestClient]:
    with TestClient(create_app(hub), raise_server_exceptions=False) as c:
        yield c


def test_a_tenants_security_admin_cannot_set_the_registrys_mode_or_levels(
    hub: Hub, client: TestClient
) -> None:
    sam = basic(issue_key(hub, "security_admin", "sam", "acme"))
    _refused(client.put("/mode", json={"mode": "READONLY"}, headers=sam))
    _refused(client.put("/config", json={"compatibility": "NONE"}, headers=sam))
    _refused(client.put("/config/trades-value", json={"compatibility": "NONE"}, headers=sam))
    _refused(client.put("/mode/trades-value", json={"mode": "READONLY"}, headers=sam))
    r = client.post(
        "/v1/config/changes",
        json={"resource": "registry.mode", "value": "READONLY", "reason": "x"},
        headers=sam,
    )
    _refused(r)
    assert hub.registry.mode() == "READWRITE"
    # the hub's own security admin still can
    sue = basic(issue_key(hub, "security_admin", "sue"))
    assert (
        client.put("/config/trades-value", json={"compatibility": "FULL"}, headers=sue).status_code
        == 200
    )


@pytest.mark.parametrize(
    "resource",
    [
        "registry.mode:hub.decisions-value",
        "registry.mode:HUB.Principals-value",
        "registry.mode:hub.ConfigChangeProposed",
        "registry.mode:_schemas",
    ],
)
@pytest.mark.parametrize("value", ["READONLY", "IMPORT"])
def test_an_internal_subjects_mode_is_not_set_through_config_changes(
    hub: Hub, client: TestClient, resource: str, value: str
) -> None:
    """``PUT /mode/{subject}`` refused an internal subject; ``POST /v1/config/changes`` of
    ``registry.mode:<internal subject>`` applied it (the hub's own security admin, one
    request): its next release could not register the subject's new schema."""
    sue = basic(issue_key(hub, "security_admin", "sue"))
    r = client.post(
        "/v1/config/changes",
        json={"resource": resource, "value": value, "reason": "x"},
        headers=sue,
    )
    assert r.status_code == 403 and r.json()["reason"] == "internal_subject", r.text
    subject = resource.split(":", 1)[1]
    assert hub.registry.mode(subject) == "READWRITE"
