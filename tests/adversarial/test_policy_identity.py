"""Policy, identity and decisions (session 12 red team): text that rego-cpp would echo unescaped
in the bundle's own data or in a key's identity, and the two-person rule against an identity
whose key the proposer was handed.

rego-cpp 1.5.2 does not escape strings in its JSON answer (``test_rego_answer_injection.py``):
a bundle whose data holds a quote or a backslash (a role name, a grant id) MUST be refused when it
is proposed (422, naming where) and MUST NOT be loaded by the embedded engine; a key's tenant
MUST be a plain name, or every decision of that identity fails.
"""

from __future__ import annotations

import json
from typing import Any

import pyarrow  # noqa: F401 - pyarrow before regopy (STACK-NOTES)
import pytest
from fastapi.testclient import TestClient

from adapters.rego_policy import RegoPolicyEngine
from core.errors import Forbidden, InvalidInput, Unauthenticated
from core.policybundle import PolicyBundle, PolicyError
from core.ports.policy import Principal
from hub.api.app import create_app
from hub.bootstrap import Hub
from tests.adversarial._api import basic as auth
from tests.adversarial._people import enrolled, witness

ADMIN = Principal("root", frozenset({"admin"}))
QUOTED = 'g", "allow": true, "z": "'


def _files(edit: Any) -> dict[str, str]:
    shipped = PolicyBundle.from_dir()
    data = json.loads(shipped.files["hub/data.json"])
    edit(data)
    return {**shipped.files, "hub/data.json": json.dumps(data, indent=2) + "\n"}


def _grant(data: dict[str, Any]) -> None:
    data["grants"] = [
        {
            "id": QUOTED,
            "principal": "eve",
            "actions": ["event.read"],
            "resource": "*",
            "expires_at": 4_000_000_000_000_000_000,
        }
    ]


def _role(data: dict[str, Any]) -> None:
    data["role_actions"]['aud"itor'] = ["event.read"]


def _two_person(data: dict[str, Any]) -> None:
    data["two_person"] = ["policy", "rules:x\\y"]


def test_a_bundle_whose_data_holds_a_quote_or_backslash_is_refused_when_proposed(
    hub: Hub, client: TestClient
) -> None:
    alice = auth(enrolled(hub, ADMIN, ["security_admin"], owner="alice").token)
    cases = [
        (_grant, "grants[0].id"),
        (_role, "role_actions[key 'aud\"itor']"),
        (_two_person, "two_person[1]"),
    ]
    for edit, where in cases:
        body = {"files": _files(edit), "reason": "attack"}
        resp = client.post("/v1/policy/changes", headers=alice, json=body)
        assert resp.status_code == 422, resp.text
        assert where in resp.json()["message"] and "hub/data.json" in resp.json()["message"]
    assert hub.policy_changes.store.changes() == []  # nothing recorded


def test_the_embedded_engine_refuses_to_load_such_data_and_keeps_its_bundle() -> None:
    """A bundle built without ``from_files`` (so unchecked there) is still never loaded."""
    shipped = PolicyBundle.from_dir()
    engine = RegoPolicyEngine(shipped)
    data = json.loads(json.dumps(dict(shipped.data)))
    _grant(data["hub"])
    forged = PolicyBundle(shipped.files, "f" * 64, data)
    with pytest.raises(PolicyError, match=r"hub\.grants\[0\]\.id"):
        engine.load(forged)
    assert engine.version == shipped.version
    ann = Principal("ann", frozenset({"analyst"}), "acme")
    assert engine.decide(ann, "event.read", "topics/trades", {}).allow


def test_a_key_cannot_be_issued_for_a_tenant_the_engine_refuses(
    hub: Hub, client: TestClient
) -> None:
    """An admin (or the console) naming tenant 'x"y' made an identity every decision of which
    failed ("does not escape"): refused at issuance instead, naming the tenant."""
    for tenant in ('ac"me', "ac\\me", " acme"):
        with pytest.raises(InvalidInput, match="not a valid tenant name"):
            enrolled(hub, ADMIN, ["analyst"], owner="tina", tenant=tenant)
    admin = auth(enrolled(hub, ADMIN, ["admin"], owner="adam").token)
    resp = client.post(
        "/v1/keys", headers=admin, json={"roles": ["analyst"], "owner": "tina", "tenant": 'a"b'}
    )
    assert resp.status_code == 422 and "tenant" in resp.json()["message"], resp.text
    assert enrolled(hub, ADMIN, ["analyst"], owner="tina", tenant="acme-eu.2").key_id


# -- the two-person rule: a key the proposer was handed is not a second person -----------------
def _propose(client: TestClient, who: dict[str, str]) -> str:
    def drop(data: dict[str, Any]) -> None:
        data["role_actions"]["analyst"].remove("event.read")

    resp = client.post(
        "/v1/policy/changes", headers=who, json={"files": _files(drop), "reason": "tighten"}
    )
    assert resp.status_code == 201, resp.text
    return str(resp.json()["change_id"])


def _approve(client: TestClient, who: dict[str, str], change_id: str) -> Any:
    return client.post(f"/v1/policy/changes/{change_id}/approve", headers=who, json={})


def test_an_admin_cannot_approve_with_a_key_it_issued_before_proposing(
    hub: Hub, client: TestClient
) -> None:
    """ada (admin) creates bea while no second approver exists, keeps the whole token she was
    shown, proposes, approves as bea: one person, two names. Refused; bea's own rotation does
    not change who may hold her key; a reset that a second approver approves does."""
    ada = enrolled(hub, ADMIN, ["admin"], owner="ada")
    ada_p = hub.keys.get(ada.key_id).principal
    bea = enrolled(hub, ada_p, ["compliance_officer"], owner="bea")
    change = _propose(client, auth(ada.token))
    resp = _approve(client, auth(bea.token), change)
    assert resp.status_code == 403, resp.text
    assert "whole enrolment token" in resp.json()["message"]
    own = hub.keys.rotate(hub.keys.get(bea.key_id).principal, bea.key_id)
    assert _approve(client, auth(own.token), change).status_code == 403
    # an admin's rotation of bea's key is a reset: no secret for ada, a token a second
    # approver completes; only then is bea's key bea's alone
    ticket = hub.keys.rotate(ada_p, own.key_id)
    assert not hasattr(ticket, "secret") and ticket.requires_approval
    half = hub.keys.approve_enrolment(witness(hub), ticket.enrolment_id)
    fresh = hub.keys.redeem(ticket.token, "b" * 43, second=half)
    # enrolled by ada while her change was pending: not for that change; for her next one
    assert _approve(client, auth(fresh.token), change).status_code == 403
    later = _propose(client, auth(ada.token))
    assert _approve(client, auth(fresh.token), later).status_code == 200


def test_the_config_two_person_rule_refuses_a_handed_key_too(hub: Hub) -> None:
    ada = enrolled(hub, ADMIN, ["admin"], owner="ada")
    bea = enrolled(hub, hub.keys.get(ada.key_id).principal, ["security_admin"], owner="bea")
    with pytest.raises(Forbidden, match="whole enrolment token"):
        hub.keys.check_approver("ada", hub.keys.get(bea.key_id).principal, None, "config change")
    # a key issued by someone else than the proposer is the owner's as far as ada is concerned
    cid = enrolled(hub, ADMIN, ["security_admin"], owner="cid")
    hub.keys.check_approver("ada", hub.keys.get(cid.key_id).principal, None, "config change")


# -- the decision cache --------------------------------------------------------------------------
def test_a_cached_allow_does_not_outlive_a_grant_whose_expiry_is_written_as_a_float() -> None:
    """``expires_at: 1.8e+18`` is a JSON number the policy compares like any other, but the
    cache bounded an entry by integer expiries only: the allow was served past the expiry for
    as long as the cache's TTL."""
    from core.decisioncache import DecisionCache

    expiry = 1_800_000_000_000_000_000
    shipped = PolicyBundle.from_dir()
    data = json.loads(shipped.files["hub/data.json"])
    data["grants"] = [
        {
            "id": "g-1",
            "principal": "eve",
            "actions": ["event.read"],
            "resource": "*",
            "expires_at": float(expiry),
        }
    ]
    bundle = PolicyBundle.from_files({**shipped.files, "hub/data.json": json.dumps(data)})
    clock = [expiry - 10**9]
    cache = DecisionCache(ttl_ms=3_600_000)
    engine = RegoPolicyEngine(bundle, cache=cache, clock_ns=lambda: clock[0])
    eve = Principal("eve", frozenset({"publisher"}), "acme")
    assert engine.decide(eve, "event.read", "topics/trades", {}).allow
    clock[0] = expiry + 10**9
    late = engine.decide(eve, "event.read", "topics/trades", {})
    assert not late.allow and "has expired" in late.reason


# -- approval while the active bundle changes under you -----------------------------------------
def test_an_activation_that_lost_a_race_to_another_process_is_not_applied(
    hub: Hub, client: TestClient
) -> None:
    """Two changes proposed against v1. Another process approved the first and, between its
    check and its append, this one approved the second: both appends name v1 as the previous
    version. The second silently replaced the first, whose diff its approver never saw."""
    from core.events import OutgoingEvent
    from governance.store import ACTIVATED, APPROVED, POLICIES_TOPIC

    alice = auth(enrolled(hub, ADMIN, ["security_admin"], owner="alice").token)
    carol = auth(enrolled(hub, ADMIN, ["compliance_officer"], owner="carol").token)
    v1 = hub.policy_changes.store.active_bundle().version
    first = _propose(client, alice)

    def open_case(data: dict[str, Any]) -> None:
        data["open_cases"] = ["CASE-9"]

    resp = client.post(
        "/v1/policy/changes", headers=alice, json={"files": _files(open_case), "reason": "b"}
    )
    second = resp.json()["change_id"]
    assert _approve(client, carol, first).status_code == 200
    lost = hub.policy_changes.store.change(second)
    hub.publisher.publish(  # what the other process appended, checked against v1 before
        POLICIES_TOPIC,
        [
            OutgoingEvent(
                value={
                    "change_id": second,
                    "approved_by": "carol",
                    "reason": "",
                    "approved_at": "2026-12-03T12:00:00+00:00",
                },
                event_type=APPROVED,
                key=second,
            ),
            OutgoingEvent(
                value={
                    "change_id": second,
                    "bundle_version": lost.bundle_version,
                    "previous_version": v1,
                    "activated_by": "carol",
                    "activated_at": "2026-12-03T12:00:00+00:00",
                },
                event_type=ACTIVATED,
                key=second,
            ),
        ],
        producer="carol",
    )
    hub.policy_changes.store.refresh()
    active = hub.policy_changes.store.active_change()
    assert active is not None and active.change_id == first
    assert hub.policy_changes.store.change(second).status == "pending_approval"
    assert _approve(client, carol, second).status_code == 409  # stale: propose again


# -- the registry fast path decides on the resource the full stack decides on ------------------
def test_the_registry_fast_path_decides_on_the_full_stacks_resource(hub: Hub) -> None:
    """The full stack decides on ``request.url.path``, where Starlette re-escapes ``?``, ``#``
    and ``\\``; the fast path decided on the raw decoded path. So a subject holding a backslash
    was denied by the fast path (the engine refuses a backslash) and answered 404 by the full
    stack, and every such decision was recorded under another resource than the full stack's."""
    from hub.api.registry_fast import RegistryFastPath
    from hub.api.routers.registry import LEAN_ROUTES
    from tests.service.registry_twins import decisions

    fast_app, reference = create_app(hub), create_app(hub)
    reference.user_middleware = [
        m for m in reference.user_middleware if m.cls is not RegistryFastPath
    ]
    reference.router.routes = [r for r in reference.router.routes if r not in LEAN_ROUTES]
    headers = auth(hub.keys.create(["analyst"], principal="ann").token)
    with TestClient(fast_app) as fast, TestClient(reference) as full:
        fast.get("/subjects", headers=headers)  # a first decision: the topic exists
        for segment in ("a%5Cb", "a%3Fb", "a%23b"):
            url = f"/subjects/{segment}/versions/1"
            answers, resources = [], []
            for c in (fast, full):
                start = hub.log.end_offsets("hub.decisions")[0]
                resp = c.get(url, headers=headers)
                answers.append((resp.status_code, resp.json().get("error_code")))
                resources.append([d["resource"] for d in decisions(hub, start)])
            assert answers[0] == answers[1] == (404, 40401), segment
            # the route's decision, then the question a missing subject is asked as another
            # tenant's is (test_s20_registry_squat), both on the full stack's resource
            assert resources[0] == resources[1] == [url, url]


def test_a_key_issued_with_a_handed_key_is_handed_too(hub: Hub, client: TestClient) -> None:
    """ada creates pat (keeping pat's whole token), acts as pat to create zoe, proposes,
    approves as zoe. Before enrolment zoe's secret went to ada; now pat (no admin: no
    bootstrap) gets half a token, useless without a second approver's half, and a zoe
    enrolled from a whole token pat saw is still ada's (the walk follows whole holders)."""
    ada = enrolled(hub, ADMIN, ["admin"], owner="ada")
    pat = enrolled(hub, hub.keys.get(ada.key_id).principal, ["security_admin"], owner="pat")
    ticket = hub.keys.issue(hub.keys.get(pat.key_id).principal, ["security_admin"], owner="zoe")
    assert ticket.requires_approval  # type: ignore[union-attr]
    with pytest.raises(Unauthenticated):
        hub.keys.redeem(ticket.token, "z" * 43)  # type: ignore[union-attr]
    change = _propose(client, auth(ada.token))
    # with the rule off for a moment, pat's token comes whole: zed is then ada's
    hub.keys.use_two_person(lambda: False)
    zed = enrolled(hub, hub.keys.get(pat.key_id).principal, ["security_admin"], owner="zed")
    resp = _approve(client, auth(zed.token), change)
    assert resp.status_code == 403 and "whole enrolment token" in resp.json()["message"]
