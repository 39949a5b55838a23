"""Session 18 red team (new surfaces): one person, two votes, through a chain of enrolments
whose middle link was revoked.

Rule 4 of docs/trust-model.md: whoever saw a whole enrolment token (a bootstrap enrolment, or
one made while the two-person rule was off) may hold the key it made, and so does whoever held
the requester's key then, and so on up the chain (``EnrolmentCommands._holders``). The walk
went up only through the requester's *unrevoked* keys. So the first admin, in the bootstrap
window, enrolled ``x`` (and kept the whole token: x's key is theirs), enrolled ``y`` as ``x``
(x's whole token: y's key is theirs too), then revoked x's key: the walk from y's key stopped
at x (no unrevoked key), the admin was no longer among y's holders, and y's key approved the
admin's own policy change. Revoking a key does not make its holder forget a token they were
shown with it: the walk now also goes through the key each enrolment was requested with,
revoked or not.
"""

from __future__ import annotations

import secrets
from typing import Any

from fastapi.testclient import TestClient

from governance.enrolment import EnrolmentTicket
from hub.bootstrap import Hub
from tests.adversarial._api import basic as auth
from tests.adversarial.test_two_person_attacks import _approve, _propose


def _bootstrap_enrol(hub: Hub, requester: Any, owner: str) -> Any:
    """``requester`` (an issued key) enrols ``owner`` as admin, alone (the bootstrap window),
    and redeems the whole token it was shown: the requester holds the new key."""
    ticket = hub.keys.issue(hub.keys.get(requester.key_id).principal, ["admin"], owner=owner)
    assert isinstance(ticket, EnrolmentTicket) and not ticket.requires_approval, ticket
    return hub.keys.redeem(ticket.token, secrets.token_urlsafe(32))


def test_revoking_the_middle_of_a_bootstrap_chain_does_not_make_a_second_person(
    hub: Hub, client: TestClient
) -> None:
    root = hub.keys.create(["admin"], owner="root")
    x = _bootstrap_enrol(hub, root, "x")  # root holds x's key
    y = _bootstrap_enrol(hub, x, "y")  # requested as x: root holds y's key too
    change = _propose(client, auth(root.token))
    refused = _approve(client, auth(y.token), change)
    assert refused.status_code == 403, refused.text  # before the revocation: refused
    hub.keys.revoke(x.key_id, revoked_by="root", reason="tidy up")
    again = _approve(client, auth(y.token), change)
    assert again.status_code == 403, again.text
    assert "Two-person rule" in again.json()["message"], again.text


def test_an_independent_second_admin_still_approves(hub: Hub, client: TestClient) -> None:
    """The chain walk is about held tokens, not about who enrolled whom: a person the admin
    enrolled with a second approver (split token) approves the admin's changes."""
    root = hub.keys.create(["admin"], owner="root")
    ann = hub.keys.create(["admin"], owner="ann")
    hub.keys.create(["admin"], owner="cy")  # three approvers: the bootstrap window is closed
    ticket = hub.keys.issue(hub.keys.get(root.key_id).principal, ["admin"], owner="dee")
    assert isinstance(ticket, EnrolmentTicket) and ticket.requires_approval
    second = hub.keys.approve_enrolment(
        hub.keys.get(ann.key_id).principal, ticket.enrolment_id, "known"
    )
    dee = hub.keys.redeem(ticket.token, secrets.token_urlsafe(32), second=second)
    change = _propose(client, auth(root.token))
    done = _approve(client, auth(dee.token), change)
    assert done.status_code == 200, done.text


def test_a_ready_token_whose_approvers_key_was_revoked_no_longer_redeems(
    hub: Hub, client: TestClient
) -> None:
    """Session 17 withdrew the live enrolments of a revoked *requester*; the approver's half
    stayed good. A stolen approver key approved a colluding requester's enrolment of a made-up
    person (whose key then counts as a second person); revoking the stolen key once found out
    left the token redeemable. The approval is withdrawn with the approver's right, unless
    they still hold a key that may approve (a rotation withdraws nothing)."""
    root = hub.keys.create(["admin"], owner="root")
    ann = hub.keys.create(["admin"], owner="ann")
    hub.keys.create(["admin"], owner="cy")  # the bootstrap window is closed
    ticket = hub.keys.issue(hub.keys.get(root.key_id).principal, ["admin"], owner="zed")
    assert isinstance(ticket, EnrolmentTicket) and ticket.requires_approval
    second = hub.keys.approve_enrolment(
        hub.keys.get(ann.key_id).principal, ticket.enrolment_id, "known"
    )
    hub.keys.revoke(ann.key_id, revoked_by="cy", reason="ann's key was stolen")
    r = client.post(
        "/v1/enrol",
        json={"token": ticket.token, "secret": secrets.token_urlsafe(32), "second_half": second},
    )
    assert r.status_code == 401 and r.json()["reason"] == "enrolment_withdrawn", r.text
    assert "approver 'ann'" in r.json()["message"], r.text


def test_an_approvers_rotation_withdraws_nothing(hub: Hub, client: TestClient) -> None:
    root = hub.keys.create(["admin"], owner="root")
    ann = hub.keys.create(["admin"], owner="ann")
    hub.keys.create(["admin"], owner="cy")
    ticket = hub.keys.issue(hub.keys.get(root.key_id).principal, ["admin"], owner="zed")
    assert isinstance(ticket, EnrolmentTicket)
    ann_p = hub.keys.get(ann.key_id).principal
    second = hub.keys.approve_enrolment(ann_p, ticket.enrolment_id, "known")
    hub.keys.rotate(ann_p, ann.key_id)
    r = client.post(
        "/v1/enrol",
        json={"token": ticket.token, "secret": secrets.token_urlsafe(32), "second_half": second},
    )
    assert r.status_code == 201, r.text


def test_a_ready_token_is_decided_again_at_redemption(hub: Hub, client: TestClient) -> None:
    """The withdrawal is a second append after the revocation: a crash between them (here the
    revocation primitive alone, as such a crash leaves the log) left the token redeemable."""
    root = hub.keys.create(["admin"], owner="root")
    ann = hub.keys.create(["admin"], owner="ann")
    hub.keys.create(["admin"], owner="cy")
    ticket = hub.keys.issue(hub.keys.get(root.key_id).principal, ["admin"], owner="zed")
    assert isinstance(ticket, EnrolmentTicket)
    second = hub.keys.approve_enrolment(
        hub.keys.get(ann.key_id).principal, ticket.enrolment_id, "known"
    )
    hub.keys._revoke(
        ann.key_id, revoked_by="cy", reason="stolen", actor=None, at=None, cascade=False
    )
    r = client.post(
        "/v1/enrol",
        json={"token": ticket.token, "secret": secrets.token_urlsafe(32), "second_half": second},
    )
    assert r.status_code == 401 and r.json()["reason"] == "enrolment_withdrawn", r.text
