"""Another tenant's enrolment answers as a missing one to an approver (session 20, low).

``approve_enrolment`` checked the approver's tenant last: a key of acme that may approve
(``keys.create``) learned, for an id of globex's enrolment, that it exists (403 instead of 404),
its state ("is redeemed, not pending approval"), and from the two-person checks its requester's
name; the list a tenant-limited reader gets leaves other tenants' enrolments out. Now the tenant
comes first, and another tenant's enrolment answers word for word as an unknown id.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from governance.apikeys import IssuedKey
from hub.bootstrap import bootstrap
from tests.adversarial._api import Api, basic, issue_key, quiet_settings, serve_hub
from tests.adversarial._people import enrolled

MISSING = "he_0000000000000000"


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    yield from serve_hub(bootstrap(quiet_settings(tmp_path / "data")))


def _answer(api: Api, who: dict[str, str], eid: str) -> tuple[int, Any]:
    r = api.client.post(f"/v1/enrolments/{eid}/approve", headers=who, json={"reason": "x"})
    body = r.json()
    return r.status_code, body["reason"], body["message"].replace(eid, "<id>")


@pytest.mark.parametrize("state", ["pending", "redeemed"])
def test_another_tenants_enrolment_answers_as_a_missing_one(api: Api, state: str) -> None:
    hub = api.hub
    issue_key(hub, "admin", "ann")  # a second admin: the bootstrap window is closed
    root = hub.keys.get(api.tokens["admin"].partition(":")[0]).principal
    sam = enrolled(hub, root, ["security_admin"], owner="sam", tenant="acme")
    acme = basic(sam.token)
    ticket = hub.keys.issue(root, ["compliance_officer"], owner="gustav", tenant="globex")
    assert not isinstance(ticket, IssuedKey) and ticket.requires_approval
    if state == "redeemed":
        ann = next(k for k in hub.keys.active() if k.owner == "ann").principal
        second = hub.keys.approve_enrolment(ann, ticket.enrolment_id)
        hub.keys.redeem(ticket.token, secrets.token_urlsafe(32), second=second)
    got = _answer(api, acme, ticket.enrolment_id)
    assert got[0] == 404, got
    assert got == _answer(api, acme, MISSING), got
    assert "gustav" not in got[2] and "globex" not in got[2] and "root" not in got[2], got
