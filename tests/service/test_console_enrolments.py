"""The console's enrolment pages over HTTP in-process (hub.console.enrolments): the list and its
Approve call are decided like GET /v1/enrolments and POST /v1/enrolments/{id}/approve (roles,
tenant, the two-person rule), and the redemption page is public but only a static page."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from core.roles import ROLE_ACTIONS
from governance.enrolment import EnrolmentTicket
from hub.api.deps import route_actions
from hub.bootstrap import Hub
from hub.console import enrolments

from .test_console import login, serve_console


@pytest.fixture
def console(tmp_path: Path) -> Iterator[tuple[Hub, TestClient]]:
    yield from serve_console(tmp_path / "data")


def _csrf(client: TestClient) -> str:
    page = client.get("/ui/enrolments")
    assert page.status_code == 200, page.text[:300]
    found = re.search(r'name="csrf-token" content="([^"]+)"', page.text)
    assert found
    return found.group(1)


def _people(hub: Hub) -> dict[str, str]:
    """Three independent admins (the bootstrap window closes: enrolments need a second
    person) and their tokens."""
    people = {name: hub.keys.create(["admin"], owner=name).token for name in ("ann", "bob", "cy")}
    assert hub.keys.two_person_on()
    return people


def _request(hub: Hub, token: str, owner: str, tenant: str | None = None) -> EnrolmentTicket:
    ticket = hub.keys.issue(
        hub.keys.verify(*token.split(":", 1)), ["security_admin"], owner=owner, tenant=tenant
    )
    assert isinstance(ticket, EnrolmentTicket) and ticket.requires_approval
    return ticket


def _approved_by(hub: Hub, enrolment_id: str) -> str:
    return next(e for e in hub.keys.enrolments() if e.enrolment_id == enrolment_id).approved_by


def _approve(client: TestClient, eid: str, csrf: str, reason: str = "known person") -> Any:
    return client.post(
        f"/ui/api/enrolments/{eid}/approve", json={"reason": reason}, headers={"X-CSRF-Token": csrf}
    )


def test_a_second_admin_approves_and_the_person_redeems_with_the_half(
    console: tuple[Hub, TestClient],
) -> None:
    hub, client = console
    people = _people(hub)
    ticket = _request(hub, people["ann"], "dee")
    login(client, people["bob"])
    listed = client.get("/ui/api/enrolments").json()["enrolments"]
    row = next(e for e in listed if e["enrolment_id"] == ticket.enrolment_id)
    assert (row["owner"], row["roles"], row["requested_by"], row["state"]) == (
        "dee",
        ["security_admin"],
        "ann",
        "pending_approval",
    )
    assert not any("hmac" in k or "salt" in k for k in row)
    csrf = _csrf(client)
    # the gate's CSRF check, and a reason is required
    assert _approve(client, ticket.enrolment_id, "guess").json()["reason"] == "csrf"
    assert _approve(client, ticket.enrolment_id, csrf, reason="").status_code == 422
    r = _approve(client, ticket.enrolment_id, csrf)
    assert r.status_code == 200, r.text
    half = r.json()["second_half"]
    assert r.json()["owner"] == "dee" and len(half) == 43
    # approved once: a second click is refused, not a second half
    again = _approve(client, ticket.enrolment_id, csrf)
    assert again.status_code == 409 and "not pending approval" in again.json()["message"]
    secret = secrets.token_urlsafe(32)
    body = {"token": ticket.token, "second_half": half, "secret": secret}
    done = client.post("/v1/enrol", json=body)
    assert done.status_code == 201, done.text
    assert hub.keys.verify(done.json()["key_id"], secret).id == "dee"
    open_ids = [e["enrolment_id"] for e in client.get("/ui/api/enrolments").json()["enrolments"]]
    assert ticket.enrolment_id not in open_ids
    every = client.get("/ui/api/enrolments", params={"all": "true"}).json()["enrolments"]
    assert next(e for e in every if e["enrolment_id"] == ticket.enrolment_id)["state"] == (
        "redeemed"
    )


def test_self_approval_is_refused_with_the_apis_message(
    console: tuple[Hub, TestClient],
) -> None:
    hub, client = console
    people = _people(hub)
    ticket = _request(hub, people["ann"], "dee")
    login(client, people["ann"])
    r = _approve(client, ticket.enrolment_id, _csrf(client))
    assert r.status_code == 403, r.text
    api = client.post(
        f"/v1/enrolments/{ticket.enrolment_id}/approve",
        json={"reason": "x"},
        auth=tuple(people["ann"].split(":", 1)),  # type: ignore[arg-type]
    )
    assert api.status_code == 403
    assert r.json()["message"] == api.json()["message"]
    assert "Two-person rule" in r.json()["message"]
    assert not _approved_by(hub, ticket.enrolment_id)  # still waiting for another person


@pytest.mark.parametrize("role", ["analyst", "compliance_officer", "ml_engineer", "publisher"])
def test_roles_without_keys_read_see_no_enrolments(
    console: tuple[Hub, TestClient], role: str
) -> None:
    hub, client = console
    people = _people(hub)
    ticket = _request(hub, people["ann"], "dee")
    assert "keys.read" not in ROLE_ACTIONS[role]
    login(client, hub.keys.create([role], owner=f"p-{role}").token)
    assert client.get("/ui/enrolments").status_code == 403
    assert client.get("/ui/api/enrolments").status_code == 403
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', client.get("/ui/explore").text)
    r = _approve(client, ticket.enrolment_id, csrf.group(1) if csrf else "")
    # decided by the policy (keys.create) when the role has a page to take the CSRF token from
    assert r.status_code == 403, r.text
    assert r.json()["reason"] == ("forbidden" if csrf else "csrf"), r.text
    assert not next(
        e for e in hub.keys.enrolments() if e.enrolment_id == ticket.enrolment_id
    ).approved_by


def test_a_tenant_security_admin_sees_and_approves_its_tenant_only(
    console: tuple[Hub, TestClient],
) -> None:
    hub, client = console
    people = _people(hub)
    home = _request(hub, people["ann"], "dee")  # tenant default
    acme = _request(hub, people["ann"], "eve", tenant="acme")
    login(client, hub.keys.create(["security_admin"], owner="sam", tenant="acme").token)
    listed = {e["enrolment_id"] for e in client.get("/ui/api/enrolments").json()["enrolments"]}
    assert acme.enrolment_id in listed and home.enrolment_id not in listed
    csrf = _csrf(client)
    refused = _approve(client, home.enrolment_id, csrf)
    # as a missing enrolment (s20): the refusal names nothing of the other tenant's enrolment
    # (owner, roles, tenant, requester), nor that it exists
    assert refused.status_code == 404 and "No enrolment" in refused.json()["message"]
    assert "dee" not in refused.text and "'default'" not in refused.text
    assert not next(
        e for e in hub.keys.enrolments() if e.enrolment_id == home.enrolment_id
    ).approved_by
    done = _approve(client, acme.enrolment_id, csrf)
    assert done.status_code == 200, done.text


def test_the_redemption_page_is_public_and_static(console: tuple[Hub, TestClient]) -> None:
    _, client = console
    page = client.get("/ui/enrol")
    assert page.status_code == 200 and "enrol.js" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-store"
    assert "csrf" not in page.text  # no session, no form of its own to forge
    assert client.post("/ui/enrol", json={}).status_code == 405
    # the public path is that one page: the data calls still need a session
    assert client.get("/ui/api/enrolments").status_code == 401
    assert client.get("/ui/enrolments", follow_redirects=False).status_code == 303
    script = client.get("/ui/static/enrol.js").text
    assert "crypto.getRandomValues" in script and 'credentials: "omit"' in script


def test_every_enrolment_route_but_the_redemption_page_declares_a_policy_action() -> None:
    routes = [r for r in enrolments.router.routes if isinstance(r, APIRoute)]
    assert {r.path for r in routes} >= {"/ui/enrol", "/ui/api/enrolments"}
    for route in routes:
        if route.path == enrolments.REDEEM_PAGE:
            continue
        assert route_actions(route.dependant), route.path
