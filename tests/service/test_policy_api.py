"""The policy decision point wired into the hub: routes, recorded decisions, policy changes as
events with the two-person rule, fail-closed engines, and the crash guarantee for allows."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from core.policybundle import PolicyBundle
from core.roles import ROLE_ACTIONS
from governance.decisions import DECISIONS_TOPIC
from hub.api.app import create_app
from hub.bootstrap import Hub, bootstrap
from hub.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]


def auth(token: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(token.encode()).decode()}


@pytest.fixture
def client(hub: Hub) -> Iterator[TestClient]:
    with TestClient(create_app(hub)) as c:
        yield c


def decisions(hub: Hub) -> list[dict[str, Any]]:
    hub.policy.committer.flush()  # type: ignore[attr-defined]
    end = hub.log.end_offsets(DECISIONS_TOPIC).get(0, 0)
    return [r["value"] for r in hub.reader.read(DECISIONS_TOPIC, 0, 0, end + 1)]


def test_the_default_engine_is_rego_with_recording(hub: Hub) -> None:
    assert hub.settings.policy_engine == "rego"
    assert type(hub.policy).__name__ == "RecordingPolicyEngine"
    assert type(hub.policy.inner).__name__ == "RegoPolicyEngine"  # type: ignore[attr-defined]


def test_every_request_decision_is_recorded(client: TestClient, hub: Hub) -> None:
    analyst = auth(hub.keys.create(["analyst"], principal="ann").token)
    assert client.get("/v1/topics", headers=analyst).status_code == 200
    denied = client.post("/v1/topics", headers=analyst, json={"name": "x"})
    assert denied.status_code == 403
    assert "no role of principal 'ann'" in denied.json()["message"]
    got = decisions(hub)
    # GET /v1/topics asks whether the reader may see every tenant's end offsets (tenant.all):
    # that question is a decision too, and recorded.
    assert [(d["action"], d["allow"]) for d in got[-3:]] == [
        ("topic.read", True),
        ("tenant.all", False),
        ("topic.create", False),
    ]
    last = got[-1]
    assert last["principal"] == "ann" and last["roles"] == ["analyst"]
    assert last["policy_version"] == PolicyBundle.from_dir().version
    assert len(last["input_sha256"]) == 64 and last["resource"] == "/v1/topics"


def test_purpose_header_reaches_the_policy(client: TestClient, hub: Hub) -> None:
    ann = auth(hub.keys.create(["analyst"], principal="ann").token)
    client.get("/v1/topics/trades/events", headers=ann)
    plain = decisions(hub)[-1]
    assert plain["mask"] == ["pii"] and plain["row_filter"] == {"tenant": "default"}
    headers = {**ann, "X-Hub-Purpose": "investigation", "X-Hub-Case": "CASE-9"}
    denied = client.get("/v1/topics/trades/events", headers=headers)
    assert denied.status_code == 403  # CASE-9 is not a case of this hub (tests/.../test_cases.py)
    last = decisions(hub)[-1]
    assert not last["allow"] and last["case_id"] == "CASE-9"
    assert last["purpose"] == "investigation"


def test_a_route_decision_is_made_in_the_event_loop_and_a_case_lookup_is_not(
    client: TestClient, hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``authorize`` asks the engine in the event loop (no thread-pool hop, no pool thread
    blocked on the record's fsync); a request naming a case is asked in a worker thread,
    since completing it reads the cases log. Same decision, record and answer either way."""
    inner = hub.policy.inner  # type: ignore[attr-defined]
    asked = inner.decide_digested
    in_loop: list[tuple[str, bool]] = []

    def decide(principal: Any, action: str, resource: str, context: Any = None) -> Any:
        try:
            asyncio.get_running_loop()
            in_loop.append((action, True))
        except RuntimeError:
            in_loop.append((action, False))
        return asked(principal, action, resource, context)

    prepared = inner.decide_prepared

    def decide_prepared(request: Any, now: int) -> Any:  # a request seen before (issue 13)
        decide(request.principal, request.action, request.resource)
        return prepared(request, now)

    monkeypatch.setattr(inner, "decide_digested", decide)
    monkeypatch.setattr(inner, "decide_prepared", decide_prepared)
    ann = auth(hub.keys.create(["analyst"], principal="ann").token)
    assert client.get("/v1/topics", headers=ann).status_code == 200
    assert client.post("/v1/topics", headers=ann, json={"name": "x"}).status_code == 403
    case = {**ann, "X-Hub-Purpose": "investigation", "X-Hub-Case": "CASE-9"}
    assert client.get("/v1/topics/trades/events", headers=case).status_code == 403
    assert in_loop[0] == ("topic.read", True) and in_loop[-2:] == [
        ("topic.create", True),
        ("event.read", False),
    ]
    got = decisions(hub)[-4:]
    assert [(d["action"], d["allow"], d["case_id"]) for d in got] == [
        ("topic.read", True, ""),
        ("tenant.all", False, ""),
        ("topic.create", False, ""),
        ("event.read", False, "CASE-9"),
    ]


@pytest.mark.parametrize("role", sorted(ROLE_ACTIONS))
def test_policy_routes_deny_per_role(client: TestClient, hub: Hub, role: str) -> None:
    h = auth(hub.keys.create([role], principal=f"p-{role}").token)
    can = ROLE_ACTIONS[role]
    status = client.get("/v1/policy", headers=h).status_code
    assert (status == 200) == ("policy.read" in can), (role, status)
    resp = client.post("/v1/policy/changes", headers=h, json={"files": {}, "reason": "r"})
    if "policy.propose" not in can:
        assert resp.status_code == 403, resp.text
    resp = client.post("/v1/policy/changes/nope/approve", headers=h, json={})
    assert resp.status_code == (404 if "policy.approve" in can else 403), resp.text


def test_two_person_rule_over_http(client: TestClient, hub: Hub) -> None:
    alice = auth(hub.keys.create(["security_admin"], principal="alice").token)
    carol = auth(hub.keys.create(["compliance_officer"], principal="carol").token)
    ann = auth(hub.keys.create(["analyst"], principal="ann").token)
    shipped = PolicyBundle.from_dir()
    data = json.loads(shipped.files["hub/data.json"])
    data["role_actions"]["analyst"].remove("event.read")
    files = {**shipped.files, "hub/data.json": json.dumps(data, indent=2) + "\n"}

    resp = client.post("/v1/policy/changes", headers=alice, json={"files": files, "reason": ""})
    assert resp.status_code == 422  # a reason is required
    resp = client.post(
        "/v1/policy/changes", headers=alice, json={"files": files, "reason": "least privilege"}
    )
    assert resp.status_code == 201, resp.text
    change = resp.json()
    assert change["status"] == "pending_approval" and change["requires_approval"]
    assert '-      "event.read",' in change["diff"]
    assert change["tests_passed"] > 100
    assert client.get("/v1/topics/trades/events", headers=ann).status_code == 200  # not yet

    same = client.post(f"/v1/policy/changes/{change['change_id']}/approve", headers=alice, json={})
    assert same.status_code == 403 and "Two-person rule" in same.json()["message"]
    ok = client.post(
        f"/v1/policy/changes/{change['change_id']}/approve", headers=carol, json={"reason": "ok"}
    )
    assert ok.status_code == 200, ok.text
    assert ok.json()["status"] == "activated"
    assert client.get("/v1/policy", headers=carol).json()["version"] == change["bundle_version"]
    assert client.get("/v1/topics/trades/events", headers=ann).status_code == 403  # reloaded
    assert decisions(hub)[-1]["policy_version"] == change["bundle_version"]

    back = client.post(
        "/v1/policy/rollback",
        headers=alice,
        json={"version": shipped.version[:12], "reason": "analysts need reads"},
    )
    assert back.status_code == 201 and back.json()["kind"] == "rollback"
    client.post(f"/v1/policy/changes/{back.json()['change_id']}/approve", headers=carol, json={})
    assert client.get("/v1/topics/trades/events", headers=ann).status_code == 200
    history = client.get("/v1/policy/changes", headers=carol).json()
    assert [c["kind"] for c in history] == ["change", "rollback"]
    assert [c["status"] for c in history] == ["activated", "activated"]


def test_an_invalid_policy_is_refused_and_nothing_is_appended(client: TestClient, hub: Hub) -> None:
    alice = auth(hub.keys.create(["security_admin"], principal="alice").token)
    shipped = PolicyBundle.from_dir()
    text = shipped.files["hub/authz.rego"]
    cases = {
        "does not compile": text + "\nbroken := {{\n",  # a syntax error
        "fails its cases": text.replace("not cross_tenant\n", "", 1),
    }
    for name, rego in cases.items():
        files = {**shipped.files, "hub/authz.rego": rego}
        resp = client.post(
            "/v1/policy/changes", headers=alice, json={"files": files, "reason": "x"}
        )
        assert resp.status_code == 422, (name, resp.text)
        assert resp.json()["reason"] == "policy_invalid"
    assert sum(hub.log.end_offsets("hub.policies").values()) == 0
    assert "tenant isolation" in resp.json()["message"]


def test_fail_closed_when_opa_is_down(tmp_path: Path) -> None:
    settings = load_settings(
        environ={},
        data_dir=tmp_path / "data",
        policy_engine="opa",
        opa_url="http://127.0.0.1:9",  # nothing listens there
    )
    h = bootstrap(settings)
    try:
        token = h.keys.create(["admin"], principal="root").token
        with TestClient(create_app(h)) as c:
            resp = c.get("/v1/topics", headers=auth(token))
        assert resp.status_code == 403
        assert "policy engine (OPA) failed" in resp.json()["message"]
        assert "unreachable" in resp.json()["message"]
        assert decisions(h)[-1]["allow"] is False
    finally:
        h.close()


CRASHER = textwrap.dedent(
    """
    import json, os, sys
    from hub.bootstrap import bootstrap
    from hub.settings import load_settings
    from core.ports.policy import Principal
    h = bootstrap(load_settings(environ={}, data_dir=sys.argv[1]))
    root = Principal("root", frozenset({"admin"}))
    ann = Principal("ann", frozenset({"analyst"}))
    ids = []
    for i in range(int(sys.argv[2])):
        ids.append(h.policy.decide(root, "event.read", f"r{i}").decision_id)
        h.policy.decide(ann, "keys.create", f"r{i}")  # a deny, not waited for
    print(json.dumps(ids), flush=True)
    os._exit(0)  # a crash: no close(), no flush
    """
)


def test_a_crash_loses_no_decision_that_allowed_an_action(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", CRASHER, str(data), "40"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    allowed = set(json.loads(done.stdout.strip().splitlines()[-1]))
    assert len(allowed) == 40
    h = bootstrap(load_settings(environ={}, data_dir=data, policy_record_decisions=False))
    try:
        end = h.log.end_offsets(DECISIONS_TOPIC).get(0, 0)
        stored = [r["value"] for r in h.reader.read(DECISIONS_TOPIC, 0, 0, end + 1)]
    finally:
        h.close()
    assert allowed <= {d["decision_id"] for d in stored if d["allow"]}


def test_an_allow_that_cannot_be_recorded_answers_503(
    client: TestClient, hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = auth(hub.keys.create(["admin"], principal="root").token)

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise OSError("disk I/O error")

    monkeypatch.setattr(hub.log, "append", broken)
    monkeypatch.setattr(hub.log, "append_columns", broken)  # the decisions' batch path
    resp = client.get("/v1/topics", headers=token)
    assert resp.status_code == 503, resp.text
    assert resp.json()["reason"] == "decision_not_recorded"
    assert "disk I/O error" in resp.json()["message"]
