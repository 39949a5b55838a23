"""Session 23 (consoleapprove23): what an approver saw is what gets approved.

The console's Approve button sent a change id and a reason, nothing of what the page had shown.
When the pending change was replaced between showing and clicking (here: a second
``PolicyChangeProposed`` under the same id, as anyone able to append to ``hub.policies`` can
write; the fold kept the newest until session 24, which keeps the first), the second person
approved a bundle they never read. The
console now always sends the ``bundle_version`` shown with the diff, the API and ``hub policy
approve --expect`` may; ``PolicyChanges.approve`` refuses (409 ``change_not_as_shown``) when
the pending change proposes another bundle, or when its recorded diff is not the diff of its
files against the active bundle. Nothing is approved or activated then.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from core.events import OutgoingEvent
from core.policybundle import PolicyBundle
from core.ports.policy import Principal
from governance.changes import bundle_diff
from governance.store import POLICIES_TOPIC, PROPOSED
from hub.api.app import create_app
from hub.bootstrap import Hub
from tests.adversarial._api import basic, quiet_hub
from tests.adversarial._people import enrolled
from tests.adversarial.test_console_keys import as_

ADMIN = Principal("root", frozenset({"admin"}))
SHOWN = "shown-case-1"
SWAPPED = "swapped-grantee"


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    yield from quiet_hub(tmp_path / "d")


@pytest.fixture
def client(hub: Hub) -> Iterator[TestClient]:
    with TestClient(create_app(hub), raise_server_exceptions=False) as c:
        yield c


def _files(**changes: Any) -> dict[str, str]:
    shipped = PolicyBundle.from_dir()
    data = json.loads(shipped.files["hub/data.json"])
    data.update(changes)
    return {**shipped.files, "hub/data.json": json.dumps(data, indent=2) + "\n"}


def _propose(client: TestClient, who: dict[str, str]) -> dict[str, Any]:
    r = client.post(
        "/v1/policy/changes",
        headers=who,
        json={"files": _files(open_cases=[SHOWN]), "reason": "open a case"},
    )
    assert r.status_code == 201 and r.json()["status"] == "pending_approval", r.text
    out: dict[str, Any] = r.json()
    return out


def _swap(hub: Hub, change_id: str, *, diff_of_shown: bool = False) -> str:
    """Append another proposal under ``change_id``: a grant of pii.read. With
    ``diff_of_shown`` its recorded diff is still the innocent one (only its files change)."""
    shipped = PolicyBundle.from_dir()
    grant = {
        "id": "g-x",
        "principal": SWAPPED,
        "actions": ["pii.read"],
        "resource": "*",
        "expires_at": 4_000_000_000_000_000_000,
    }
    files = _files(open_cases=[SHOWN], grants=[grant])
    shown = _files(open_cases=[SHOWN])
    value = {
        "change_id": change_id,
        "resource": "policy",
        "kind": "change",
        "bundle_version": PolicyBundle.from_files(shown if diff_of_shown else files).version,
        "base_version": shipped.version,
        "files": files,
        "diff": bundle_diff(shipped.files, shown if diff_of_shown else files),
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
    return str(value["bundle_version"])


def _nothing_activated(hub: Hub, client: TestClient, who: dict[str, str]) -> None:
    hub.policy_changes.store.refresh()
    assert hub.policy_changes.store.active_bundle().version == PolicyBundle.from_dir().version
    r = client.get("/v1/policy", headers=who)
    assert r.status_code == 200 and SWAPPED not in r.text, r.text


def _people(hub: Hub) -> tuple[dict[str, str], Any]:
    alice = basic(enrolled(hub, ADMIN, ["security_admin"], owner="alice").token)
    carol = enrolled(hub, ADMIN, ["compliance_officer"], owner="carol")
    return alice, carol


def test_the_console_refuses_an_approval_of_a_change_replaced_after_it_was_shown(
    hub: Hub, client: TestClient
) -> None:
    alice, carol = _people(hub)
    proposed = _propose(client, alice)
    change = proposed["change_id"]
    csrf = as_(client, carol.token)
    page = client.get("/ui/api/security/policy")
    (row,) = [c for c in page.json()["pending"] if c["change_id"] == change]
    assert SHOWN in row["diff"] and row["bundle_version"] == proposed["bundle_version"]
    _swap(hub, change)  # between showing and clicking: ignored since s24 (first one stands)
    assert hub.policy_changes.store.change(change).ignored_proposals == 1
    r = client.post(
        f"/ui/api/security/policy/changes/{change}/approve",
        json={"reason": "read the diff", "expected_version": "0" * 64},  # not what it shows
        headers=csrf,
    )
    assert r.status_code == 409, r.text
    assert r.json()["reason"] == "change_not_as_shown" and "0" * 64 in r.text
    assert hub.policy_changes.store.change(change).approvals == []
    r = client.post(
        f"/ui/api/security/policy/changes/{change}/approve",
        json={"reason": "read the diff", "expected_version": row["bundle_version"]},
        headers=csrf,
    )
    assert r.status_code == 200 and r.json()["status"] == "activated", r.text
    assert SWAPPED not in json.dumps(hub.policy_changes.store.active_bundle().files)


def test_the_console_sends_what_it_showed(hub: Hub, client: TestClient) -> None:
    """Without the version shown, the console refuses (422) rather than approve by id alone;
    with it, the unchanged change is approved; the page sends it."""
    alice, carol = _people(hub)
    proposed = _propose(client, alice)
    change = proposed["change_id"]
    csrf = as_(client, carol.token)
    url = f"/ui/api/security/policy/changes/{change}/approve"
    r = client.post(url, json={"reason": "read it"}, headers=csrf)
    assert r.status_code == 422 and "expected_version" in r.text, r.text
    assert hub.policy_changes.store.change(change).approvals == []
    r = client.post(
        url,
        json={"reason": "read it", "expected_version": proposed["bundle_version"]},
        headers=csrf,
    )
    assert r.status_code == 200 and r.json()["status"] == "activated", r.text
    js = client.get("/ui/static/security.js")
    assert "expected_version: row.bundle_version" in js.text


def test_the_api_refuses_an_expected_version_the_change_no_longer_proposes(
    hub: Hub, client: TestClient
) -> None:
    alice, carol = _people(hub)
    proposed = _propose(client, alice)
    change = proposed["change_id"]
    swapped = _swap(hub, change)  # ignored since s24: the change still proposes the first
    url = f"/v1/policy/changes/{change}/approve"
    for shown in (swapped, proposed["bundle_version"][:12]):
        r = client.post(
            url, json={"reason": "ok", "expected_version": shown}, headers=basic(carol.token)
        )
        assert r.status_code == 409 and r.json()["reason"] == "change_not_as_shown", r.text
    _nothing_activated(hub, client, basic(carol.token))


def test_a_recorded_diff_that_is_not_the_files_diff_is_refused(
    hub: Hub, client: TestClient
) -> None:
    """The replacement keeps the version and diff that were shown but other files: the
    version is recomputed from the files and the diff from the active bundle."""
    alice, carol = _people(hub)
    proposed = _propose(client, alice)
    change = "forged-" + proposed["change_id"]  # a first proposal written past the service
    assert _swap(hub, change, diff_of_shown=True) == proposed["bundle_version"]
    r = client.post(
        f"/v1/policy/changes/{change}/approve",
        json={"reason": "ok", "expected_version": proposed["bundle_version"]},
        headers=basic(carol.token),
    )
    assert r.status_code == 409 and r.json()["reason"] == "change_not_as_shown", r.text
    _nothing_activated(hub, client, basic(carol.token))


def test_hub_policy_diff_shows_the_version_and_approve_expect_refuses_another(
    hub: Hub, client: TestClient
) -> None:
    from hub.cli import main

    alice, carol = _people(hub)
    proposed = _propose(client, alice)
    change = proposed["change_id"]
    data_dir = str(hub.settings.data_dir)
    client.close()
    hub.close()
    hub.close = lambda: None  # type: ignore[method-assign]  # the CLI opens the folder itself
    base = ["--data-dir", data_dir]
    r = CliRunner().invoke(main, [*base, "policy", "diff", change, "--key", carol.token])
    assert r.exit_code == 0 and SHOWN in r.stdout, r.output
    assert f"--expect {proposed['bundle_version']}" in r.stderr, r.stderr
    other = "0" * 64
    r = CliRunner().invoke(
        main,
        [*base, "policy", "approve", change, "--expect", other, "--key", carol.token],
    )
    assert r.exit_code == 1 and "change_not_as_shown" in r.stderr, r.output
    r = CliRunner().invoke(
        main,
        [
            *base,
            "policy",
            "approve",
            change,
            "--expect",
            proposed["bundle_version"],
            "--reason",
            "read it",
            "--key",
            carol.token,
        ],
    )
    assert r.exit_code == 0 and json.loads(r.stdout)["status"] == "activated", r.output
