"""Session 24 (trustleft24): a change id names one proposal, the first.

The folds of ``hub.policies`` and ``hub.config.changes`` kept the NEWEST
``...ChangeProposed`` under an id: anyone able to append one more proposal to the topic (an
insider with the hub's append path, a copy of a genuine record carrying another change's id)
replaced what a pending change would activate, and an approval by id (the API and the CLI do not
require the version shown) approved a bundle or value nobody had read. A change's content is now
fixed by its first proposal: a later proposal under the same id is ignored by the fold and
counted on the change (``ignored_proposals``), so every reader sees it and the approval
activates what was proposed and shown.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from core.events import OutgoingEvent
from core.policybundle import PolicyBundle
from core.ports.policy import Principal
from governance.changes import bundle_diff
from governance.configstore import CONFIG_CHANGES_TOPIC
from governance.configstore import PROPOSED as CONFIG_PROPOSED
from governance.store import POLICIES_TOPIC, PROPOSED
from hub.api.app import create_app
from hub.bootstrap import Hub
from tests.adversarial._api import basic, quiet_hub
from tests.adversarial._people import enrolled
from tests.adversarial.test_s23_consoleapprove_as_shown import _files
from tests.service.test_config_changes import RULES, auth, enable_two_person, fewer_rules, keyed

ADMIN = Principal("root", frozenset({"admin"}))
SWAPPED = "swapped-grantee"


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    yield from quiet_hub(tmp_path / "d")


@pytest.fixture
def client(hub: Hub) -> Iterator[TestClient]:
    with TestClient(create_app(hub), raise_server_exceptions=False) as c:
        yield c


def _second_policy_proposal(hub: Hub, change_id: str) -> None:
    """Another, self-consistent, proposal under ``change_id``: a grant of pii.read."""
    shipped = PolicyBundle.from_dir()
    grant = {
        "id": "g-x",
        "principal": SWAPPED,
        "actions": ["pii.read"],
        "resource": "*",
        "expires_at": 4_000_000_000_000_000_000,
    }
    files = _files(open_cases=["shown"], grants=[grant])
    value = {
        "change_id": change_id,
        "resource": "policy",
        "kind": "change",
        "bundle_version": PolicyBundle.from_files(files).version,
        "base_version": shipped.version,
        "files": files,
        "diff": bundle_diff(shipped.files, files),
        "proposed_by": "alice",
        "proposed_by_key": "",
        "reason": "open a case",
        "requires_approval": True,
        "tests_passed": 1,
        "proposed_at": "2026-01-01T00:00:00+00:00",
    }
    event = OutgoingEvent(value=value, event_type=PROPOSED, key=change_id)
    hub.publisher.publish(POLICIES_TOPIC, [event], producer="alice", tenant="default")
    hub.policy_changes.store.refresh()


def test_a_second_policy_proposal_under_an_id_does_not_replace_the_first(
    hub: Hub, client: TestClient
) -> None:
    alice = basic(enrolled(hub, ADMIN, ["security_admin"], owner="alice").token)
    carol = basic(enrolled(hub, ADMIN, ["compliance_officer"], owner="carol").token)
    r = client.post(
        "/v1/policy/changes",
        headers=alice,
        json={"files": _files(open_cases=["shown"]), "reason": "open a case"},
    )
    assert r.status_code == 201, r.text
    proposed = r.json()
    change = proposed["change_id"]
    _second_policy_proposal(hub, change)
    seen = client.get(f"/v1/policy/changes/{change}", headers=carol).json()
    assert seen["bundle_version"] == proposed["bundle_version"], seen
    assert SWAPPED not in seen["diff"] and seen["ignored_proposals"] == 1, seen
    # approved by id alone (the API allows it): what was proposed first is what activates
    r = client.post(f"/v1/policy/changes/{change}/approve", json={"reason": "ok"}, headers=carol)
    assert r.status_code == 200 and r.json()["status"] == "activated", r.text
    active = client.get("/v1/policy", headers=carol)
    assert active.json()["version"] == proposed["bundle_version"], active.text
    assert SWAPPED not in json.dumps(hub.policy_changes.store.active_bundle().files)


def test_a_fresh_fold_of_the_log_keeps_the_first_policy_proposal_too(
    hub: Hub, client: TestClient
) -> None:
    """The rule is the fold's, not the process's memory: a store folded from the start of the
    log (another process, a restart) reads the same."""
    from governance.store import PolicyStore

    alice = basic(enrolled(hub, ADMIN, ["security_admin"], owner="alice").token)
    r = client.post(
        "/v1/policy/changes",
        headers=alice,
        json={"files": _files(open_cases=["shown"]), "reason": "open a case"},
    )
    change = r.json()["change_id"]
    _second_policy_proposal(hub, change)
    fresh = PolicyStore(hub.log, hub.policy_changes.store._reader)
    assert fresh.change(change).bundle_version == r.json()["bundle_version"]
    assert fresh.change(change).ignored_proposals == 1


def test_a_second_config_proposal_under_an_id_does_not_replace_the_first(
    hub: Hub, client: TestClient
) -> None:
    enable_two_person(hub, "rules:*")
    shipped = len(hub.ingest.rules.get("trades-value").rules)
    ada = keyed(hub, "ada", "admin")
    change = hub.config_changes.propose(ada, RULES, fewer_rules(hub, 2), "fewer rules")
    first = hub.config_changes.store.change(change.change_id)
    forged = {
        "change_id": change.change_id,
        "resource": RULES,
        "kind": first.kind,
        "old_value": first.old_value,
        "new_value": json.dumps(fewer_rules(hub, 0)),  # every rule gone
        "diff": "",
        "proposed_by": "ada",
        "proposed_by_key": "",
        "reason": "fewer rules",
        "requires_approval": True,
        "rollback_of": "",
        "proposed_at": "2026-01-01T00:00:00+00:00",
    }
    event = OutgoingEvent(value=forged, event_type=CONFIG_PROPOSED, key=change.change_id)
    hub.publisher.publish(CONFIG_CHANGES_TOPIC, [event], producer="ada", tenant="default")
    hub.config_changes.store.refresh()
    carol = hub.keys.create(["compliance_officer"], principal="carol2").token
    seen = client.get(f"/v1/config/changes/{change.change_id}", headers=auth(carol)).json()
    assert seen["new_value"] == fewer_rules(hub, 2) and seen["ignored_proposals"] == 1, seen
    r = client.post(
        f"/v1/config/changes/{change.change_id}/approve",
        json={"reason": "ok"},
        headers=auth(carol),
    )
    assert r.status_code == 200 and r.json()["status"] == "applied", r.text
    assert len(hub.ingest.rules.get("trades-value").rules) == min(shipped, 2)
