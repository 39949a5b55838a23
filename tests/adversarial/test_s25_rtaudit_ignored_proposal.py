"""Session 25 (redteam-auditor25): a later proposal under a change's id, in the evidence pack.

Since session 24 the fold keeps a change's FIRST proposal: a later ``...ChangeProposed`` under
the same id (an insider's append, a copy carrying another change's id) is ignored and counted.
The evidence pack's CC8 population described that later proposal as any other: its diff (a
grant nobody was shown), and as approver the people who approved the first. An auditor read "a
grant of pii.read to swapped-grantee, approved by carol". Now a proposal that is not its
change's first is shown with outcome ``ignored``, no approver, and a reason saying so."""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from core.policybundle import PolicyBundle
from hub.api.app import create_app
from hub.bootstrap import Hub
from ledger.evidence import export_pack
from tests.adversarial._api import basic, quiet_hub
from tests.adversarial._people import enrolled
from tests.adversarial.test_s23_consoleapprove_as_shown import _files
from tests.adversarial.test_s24_trustleft_first_proposal import (
    ADMIN,
    SWAPPED,
    _second_policy_proposal,
)


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    yield from quiet_hub(tmp_path / "d")


def test_a_later_proposal_is_not_shown_as_approved(hub: Hub) -> None:
    since = datetime.now(UTC) - timedelta(minutes=1)
    with TestClient(create_app(hub), raise_server_exceptions=False) as client:
        alice = basic(enrolled(hub, ADMIN, ["security_admin"], owner="alice").token)
        carol = basic(enrolled(hub, ADMIN, ["compliance_officer"], owner="carol").token)
        r = client.post(
            "/v1/policy/changes",
            headers=alice,
            json={"files": _files(open_cases=["shown"]), "reason": "open a case"},
        )
        assert r.status_code == 201, r.text
        change = r.json()["change_id"]
        _second_policy_proposal(hub, change)
        r = client.post(
            f"/v1/policy/changes/{change}/approve", json={"reason": "ok"}, headers=carol
        )
        assert r.status_code == 200, r.text
    pack = export_pack(
        hub.ledger,
        since,
        datetime(2100, 1, 1, tzinfo=UTC),
        ["CC8"],
        actor="auditor",
        reader=hub.reader,
        default_policy=PolicyBundle.from_dir().version,
    )
    with zipfile.ZipFile(io.BytesIO(pack.data)) as zf:
        rows = list(csv.DictReader(io.StringIO(zf.read("populations/CC8.csv").decode())))
    proposals = [r for r in rows if r["action"] == "policy.propose"]
    assert len(proposals) == 2, proposals
    first, later = proposals
    assert SWAPPED not in first["diff"] and first["approver"] == "carol", first
    assert SWAPPED in later["diff"]
    # before: the swapped grant's row named carol as its approver
    assert later["approver"] == "" and later["outcome"] == "ignored", later
    assert "first proposal" in later["reason"], later
