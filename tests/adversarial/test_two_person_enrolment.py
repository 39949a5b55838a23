"""The two-person rule needs two people: enrolment of approvers (``governance.enrolment``).

The gap these close: an admin created a "person" with approval rights, kept the secret the hub
handed back (or rotated that person's key and kept the new one), and approved their own
proposals as that person. Each test is one way one human might still get two votes, or one
property an auditor relies on (docs/trust-model.md, rules 1-5).
"""

from __future__ import annotations

import json
import secrets
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from core import clock
from core.events import OutgoingEvent
from core.ports.policy import Principal
from hub.bootstrap import Hub
from tests.adversarial._api import basic as auth
from tests.adversarial.test_two_person_attacks import _approve, _propose

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture
def people(hub: Hub) -> dict[str, Any]:
    """The hub's first people (hub init's operator path): two admins and two approvers, so the
    bootstrap window is closed and every new approver needs a second approver (who holds the
    roles approved: an admin, or a holder of them)."""
    return {
        "root": hub.keys.create(["admin"], owner="root"),
        "ann": hub.keys.create(["admin"], owner="ann"),
        "carol": hub.keys.create(["compliance_officer"], owner="carol"),
        "dave": hub.keys.create(["security_admin"], owner="dave"),
    }


def _h(people: dict[str, Any], who: str) -> dict[str, str]:
    return auth(people[who].token)


def _enrol(client: TestClient, token: str, second: str | None = None, **kw: Any) -> Any:
    body = {"token": token, "secret": secrets.token_urlsafe(32)}
    if second:
        body["second_half"] = second
    resp = client.post("/v1/enrol", json=body, **kw)
    if resp.status_code == 201:
        resp.headers_token = f"{resp.json()['key_id']}:{body['secret']}"  # type: ignore[attr-defined]
    return resp


def _request(
    client: TestClient, who: dict[str, str], owner: str, role: str = "security_admin"
) -> dict[str, Any]:
    resp = client.post("/v1/keys", headers=who, json={"roles": [role], "owner": owner})
    assert resp.status_code == 201, resp.text
    body: dict[str, Any] = resp.json()
    assert "token" not in body, "a key that may approve was handed to its creator"
    return body


def _second(client: TestClient, who: dict[str, str], eid: str) -> Any:
    return client.post(f"/v1/enrolments/{eid}/approve", headers=who, json={})


def _person(client: TestClient, people: dict[str, Any], owner: str, role: str) -> dict[str, str]:
    """root requests, ann approves, the person enrols: a properly enrolled approver."""
    ticket = _request(client, _h(people, "root"), owner, role)
    second = _second(client, _h(people, "ann"), ticket["enrolment_id"])
    assert second.status_code == 200, second.text
    resp = _enrol(client, ticket["enrolment_token"], second.json()["second_half"])
    assert resp.status_code == 201, resp.text
    return auth(resp.headers_token)


def test_the_admin_never_receives_an_approvers_key(client: TestClient, people: Any) -> None:
    """The reported gap: creating a person who may approve returns no secret, only a token
    that is useless until a second approver adds its other half."""
    ticket = _request(client, _h(people, "root"), "mallory2")
    assert ticket["status"] == "pending_approval"
    assert len(ticket["enrolment_token"].split(".")[1]) == 43  # 256 random bits
    resp = _enrol(client, ticket["enrolment_token"])
    assert resp.status_code == 401 and resp.json()["reason"] == "enrolment_pending"
    # the requester cannot be the second approver
    resp = _second(client, _h(people, "root"), ticket["enrolment_id"])
    assert resp.status_code == 403 and "Two-person rule" in resp.json()["message"]


def test_admin_reset_and_self_approval_as_that_person_fails(
    hub: Hub, client: TestClient, people: Any
) -> None:
    """root rotates carol's key (on main: root receives carol's new secret and approves its
    own policy change as carol). Now it is a reset: carol's key stops, the answer is an
    enrolment token, and a second approver must approve before it works."""
    resp = client.post(
        f"/v1/keys/{people['carol'].key_id}/rotate", headers=_h(people, "root"), json={}
    )
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert "token" not in body and body["status"] == "pending_approval"
    assert client.get("/v1/whoami", headers=_h(people, "carol")).status_code == 401
    change = _propose(client, _h(people, "root"))
    assert _enrol(client, body["enrolment_token"]).status_code == 401  # half a token
    resp = _second(client, _h(people, "dave"), body["enrolment_id"])
    assert resp.status_code == 403 and resp.json()["reason"] == "role_escalation"
    second = _second(client, _h(people, "ann"), body["enrolment_id"]).json()["second_half"]
    resp = _enrol(client, body["enrolment_token"], second)
    assert resp.status_code == 201
    assert hub.keys.get(resp.json()["key_id"]).issuance == "enrolled"
    # carol (a real person: split knowledge) approves; the reset did not make root carol
    assert _approve(client, auth(resp.headers_token), change).status_code == 200


def test_a_token_the_admin_held_whole_never_approves_the_admins_change(
    hub: Hub, client: TestClient
) -> None:
    """Bootstrap window (no second approver exists yet): the admin is shown the whole token
    and could redeem it. The enrolment is marked, and that person never approves the
    admin's changes."""
    root = hub.keys.create(["admin"], owner="root")
    ticket = _request(client, auth(root.token), "puppet")
    assert ticket["status"] == "ready"
    enrolment = next(e for e in hub.keys.enrolments() if e.enrolment_id == ticket["enrolment_id"])
    assert enrolment.bootstrap
    puppet = _enrol(client, ticket["enrolment_token"])  # root redeems it itself
    assert puppet.status_code == 201
    change = _propose(client, auth(root.token))
    resp = _approve(client, auth(puppet.headers_token), change)
    assert resp.status_code == 403 and "whole enrolment token" in resp.json()["message"]


def test_a_token_works_once(client: TestClient, people: Any) -> None:
    ticket = _request(client, _h(people, "root"), "erin")
    second = _second(client, _h(people, "ann"), ticket["enrolment_id"]).json()["second_half"]
    assert _enrol(client, ticket["enrolment_token"], second).status_code == 201
    again = _enrol(client, ticket["enrolment_token"], second)
    assert again.status_code == 401 and again.json()["reason"] == "enrolment_used"


def test_an_expired_token_is_refused_and_recorded(
    hub: Hub, client: TestClient, people: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    ticket = _request(client, _h(people, "root"), "frank")
    second = _second(client, _h(people, "ann"), ticket["enrolment_id"]).json()["second_half"]

    later = time.time_ns() + 25 * 3600 * 10**9 - time.monotonic_ns()
    monkeypatch.setattr(clock, "_wall", lambda: later + time.monotonic_ns())  # 25 hours on
    resp = _enrol(client, ticket["enrolment_token"], second)
    assert resp.status_code == 401 and resp.json()["reason"] == "enrolment_expired"
    kinds = [r["headers"].get("ce_type") for r in _records(hub)]
    assert "hub.EnrolmentExpired" in kinds


def test_a_guessed_token_is_one_message_whatever_was_wrong(client: TestClient, people: Any) -> None:
    ticket = _request(client, _h(people, "root"), "gina")
    eid, first = ticket["enrolment_token"].split(".")
    forged = first[:-1] + ("A" if first[-1] != "A" else "B")
    wrong_half = _enrol(client, f"{eid}.{forged}.{'x' * 43}")
    unknown_id = _enrol(client, f"he_{'0' * 16}.{first}.{'x' * 43}")
    assert wrong_half.status_code == unknown_id.status_code == 401
    assert wrong_half.json() == unknown_id.json()
    short = _enrol(client, f"{eid}.abc")
    assert short.status_code == 401 and short.json()["reason"] == "enrolment_token_malformed"


def test_a_weak_secret_is_refused_with_the_rule(client: TestClient, people: Any) -> None:
    ticket = _request(client, _h(people, "root"), "hank")
    second = _second(client, _h(people, "ann"), ticket["enrolment_id"]).json()["second_half"]
    body = {"token": ticket["enrolment_token"], "second_half": second, "secret": "hunter2"}
    resp = client.post("/v1/enrol", json=body)
    assert resp.status_code == 422 and "32 to 256" in resp.json()["message"]
    assert _enrol(client, ticket["enrolment_token"], second).status_code == 201  # not used up


def test_an_admin_or_another_tenant_cannot_redeem_a_persons_token(
    hub: Hub, client: TestClient, people: Any
) -> None:
    resp = client.post(
        "/v1/keys",
        headers=_h(people, "root"),
        json={"roles": ["compliance_officer"], "owner": "ivy", "tenant": "acme"},
    )
    ticket = resp.json()
    second = _second(client, _h(people, "root") | {}, ticket["enrolment_id"])
    assert second.status_code == 403  # the requester does not approve
    half = _second(client, _h(people, "ann"), ticket["enrolment_id"]).json()["second_half"]
    other = hub.keys.create(["publisher"], owner="otto", tenant="globex")
    for who in (_h(people, "root"), auth(other.token)):
        resp = _enrol(client, ticket["enrolment_token"], half, headers=who)
        assert resp.status_code == 403 and resp.json()["reason"] == "enrolment_not_yours"
    resp = _enrol(client, ticket["enrolment_token"], half)
    assert resp.status_code == 201 and resp.json()["tenant"] == "acme"


def test_revoking_and_recreating_a_name_needs_a_second_approver_again(
    hub: Hub, client: TestClient, people: Any
) -> None:
    jo = _person(client, people, "jo", "security_admin")
    key_id = client.get("/v1/whoami", headers=jo).json()
    assert key_id["principal"] == "jo"
    jo_key = next(k for k in hub.keys.active() if k.owner == "jo")
    resp = client.post(
        f"/v1/keys/{jo_key.key_id}/revoke", headers=_h(people, "root"), json={"reason": "left"}
    )
    assert resp.status_code == 200
    change = _propose(client, _h(people, "root"))
    first = _request(client, _h(people, "root"), "jo")
    again = _request(client, _h(people, "root"), "jo")  # supersedes the first token
    assert again["status"] == "pending_approval"
    resp = _second(client, _h(people, "dave"), first["enrolment_id"])
    assert resp.status_code == 409  # superseded: nothing to approve
    half = _second(client, _h(people, "dave"), again["enrolment_id"]).json()["second_half"]
    new_jo = _enrol(client, again["enrolment_token"], half)
    assert new_jo.status_code == 201
    # enrolled (requested by root) after root proposed: not an approver of that change
    resp = _approve(client, auth(new_jo.headers_token), change)
    assert resp.status_code == 403 and "while the change is pending" in resp.json()["message"]


def test_granting_approval_rights_to_an_existing_person_is_an_enrolment(
    client: TestClient, people: Any, hub: Hub
) -> None:
    hub.keys.create(["publisher"], owner="pat")
    ticket = _request(client, _h(people, "root"), "pat", "compliance_officer")
    assert ticket["status"] == "pending_approval"


def test_a_key_another_person_issued_does_not_approve(hub: Hub, client: TestClient) -> None:
    root = hub.keys.create(["admin"], owner="root")
    handed = hub.keys.create(["compliance_officer"], owner="kim", issued_by="someone")
    change = _propose(client, auth(root.token))
    resp = _approve(client, auth(handed.token), change)
    assert resp.status_code == 403 and resp.json()["reason"] == "two_person_not_enrolled"


def test_a_person_rotates_their_own_key_alone_and_still_approves(
    hub: Hub, client: TestClient, people: Any
) -> None:
    lee = _person(client, people, "lee", "compliance_officer")
    key = next(k for k in hub.keys.active() if k.owner == "lee")
    resp = client.post(f"/v1/keys/{key.key_id}/rotate", headers=lee, json={})
    assert resp.status_code == 201 and "token" in resp.json()
    rotated = hub.keys.get(resp.json()["key_id"])
    assert rotated.issuance == "enrolled" and rotated.issued_by == "lee"
    change = _propose(client, _h(people, "dave"))
    assert _approve(client, auth(resp.json()["token"]), change).status_code == 200


def test_legacy_issued_approvers_keep_working_and_are_listed(
    hub: Hub, client: TestClient, people: Any, tmp_path: Any
) -> None:
    """A key from before enrolment (no issuance recorded) still approves; the listing flags it
    so that an admin re-enrols its owner."""
    from hub.cli import main

    secret = "legacy-secret"
    hub.publisher.publish(
        "hub.principals",
        [
            OutgoingEvent(
                event_type="hub.ApiKeyIssued",
                value={
                    "key_id": "hk_00000000000000aa",
                    "secret_sha256": __import__("hashlib").sha256(secret.encode()).hexdigest(),
                    "principal": "old-mo",
                    "owner": "old-mo",
                    "roles": ["compliance_officer"],
                    "issued_by": "hub",
                    "issued_at": datetime.now(UTC).isoformat(),
                },
            )
        ],
        producer="hub",
    )
    assert hub.keys.get("hk_00000000000000aa").public()["legacy_issued"]
    change = _propose(client, _h(people, "dave"))
    assert _approve(client, auth(f"hk_00000000000000aa:{secret}"), change).status_code == 200
    data_dir = str(hub.settings.data_dir)
    hub.close()
    out = CliRunner().invoke(
        main, ["--data-dir", data_dir, "--key", people["root"].token, "principals", "list"]
    )
    assert out.exit_code == 0, out.output
    line = next(x for x in out.output.splitlines() if x.startswith("old-mo"))
    assert "legacy-issued" in line


def test_every_enrolment_step_is_an_entry_with_actor_action_resource(
    hub: Hub, client: TestClient, people: Any
) -> None:
    ticket = _request(client, _h(people, "root"), "nia")
    half = _second(client, _h(people, "ann"), ticket["enrolment_id"]).json()["second_half"]
    assert _enrol(client, ticket["enrolment_token"], half).status_code == 201
    client.post(f"/v1/keys/{people['dave'].key_id}/rotate", headers=_h(people, "root"), json={})
    seen = {(r["headers"].get("ce_type"), r["headers"].get("ce_source")) for r in _records(hub)}
    kinds = {k for k, _ in seen}
    assert {
        "hub.EnrolmentIssued",
        "hub.EnrolmentApproved",
        "hub.EnrolmentRedeemed",
        "hub.KeyReset",
    } <= kinds
    # no token half or secret is readable from the log, even unredacted by name
    raw = json.dumps([r.get("value") for r in _records(hub)], default=str)
    assert ticket["enrolment_token"].split(".")[1] not in raw and half not in raw


def _records(hub: Hub) -> list[dict[str, Any]]:
    """The decoded events of hub.principals (the reader redacts hashes by field name)."""
    out: list[dict[str, Any]] = []
    for p in hub.log.end_offsets("hub.principals"):
        out += hub.reader.read("hub.principals", p, 0, 10_000)
    return out


def test_an_approval_with_someone_elses_key_id_is_refused(hub: Hub, people: Any) -> None:
    """An approval names the key it was made with: a principal claiming another's key is not
    that person."""
    from core.errors import Forbidden

    claimed = Principal("zoe", frozenset({"admin"}), attributes={"key_id": people["ann"].key_id})
    with pytest.raises(Forbidden, match="not theirs"):
        hub.keys.check_approver("root", claimed, None, "x")
