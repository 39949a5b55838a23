"""The registry's fast path (``hub.api.registry_fast``) answers and decides as the full stack.

The same hub serves two apps: the real one (the fast path outermost) and the reference, with
the fast path and the lean routes removed (FastAPI's routes, its middleware, its error
handling). Every request goes to both; status, body, content type, the echoed request id and
each request's recorded decision must be the same. Then what no cache may hide: a revoked key,
a changed policy and a schema registered after a 404 change the very next answer.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.types import Receive, Scope, Send

from core.policybundle import PolicyBundle
from core.ports.policy import Decision, PolicyEngine, Principal
from governance.decisions import DECISIONS_TOPIC, RecordingPolicyEngine
from hub.api.app import create_app
from hub.api.registry_fast import RegistryFastPath
from hub.api.routers.registry import LEAN_ROUTES
from hub.bootstrap import Hub
from ingest.publish import EventReader
from registry.service import Reference

BASE = json.dumps({"type": "record", "name": "Base", "fields": [{"name": "a", "type": "int"}]})
TOP = json.dumps({"type": "record", "name": "Top", "fields": [{"name": "b", "type": "Base"}]})


@pytest.fixture
def apps(hub: Hub) -> Iterator[tuple[TestClient, TestClient]]:
    fast = create_app(hub)
    reference = create_app(hub)
    reference.user_middleware = [
        m for m in reference.user_middleware if m.cls is not RegistryFastPath
    ]
    reference.router.routes = [r for r in reference.router.routes if r not in LEAN_ROUTES]
    with TestClient(fast) as a, TestClient(reference) as b:
        yield a, b


def _decisions(hub: Hub) -> list[dict[str, Any]]:
    hub.policy.committer.flush()  # type: ignore[attr-defined]
    reader = EventReader(hub.log, hub.registry)
    end = hub.log.end_offsets(DECISIONS_TOPIC)[0]
    return [reader.decode(r)["value"] for r in hub.log.read(DECISIONS_TOPIC, 0, 0, max(end, 1))]


class _Refusing(PolicyEngine):
    """The hub's engine, but ``p-publisher`` is denied and ``p-analyst``'s decision fails."""

    def __init__(self, inner: PolicyEngine) -> None:
        self.inner = inner

    def decide(
        self, principal: Principal, action: str, resource: str, context: Any = None
    ) -> Decision:
        if principal.id == "p-publisher":
            return Decision(False, "refused for the test", "t1")
        if principal.id == "p-analyst":
            raise RuntimeError("engine exploded")
        return self.inner.decide(principal, action, resource, context)


def test_the_fast_path_answers_and_decides_as_the_full_stack(
    hub: Hub, apps: tuple[TestClient, TestClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    fast, reference = apps
    policy = hub.policy
    assert isinstance(policy, RecordingPolicyEngine)
    monkeypatch.setattr(policy, "inner", _Refusing(policy.inner))
    base = hub.registry.register("fast-base-value", BASE)
    top = hub.registry.register(
        "fast-ref-value", TOP, references=(Reference("Base", "fast-base-value", base.version),)
    )
    keys = {r: hub.keys.create([r], principal=f"p-{r}").token for r in ("admin", "publisher")}
    keys["analyst"] = hub.keys.create(["analyst"], principal="p-analyst").token
    admin = {"Authorization": f"Bearer {keys['admin']}"}
    auths: list[dict[str, str]] = [{"Authorization": f"Bearer {t}"} for t in keys.values()]
    auths += [
        {},
        {"Authorization": "Bearer nope:wrong"},
        {**admin, "Accept": "text/html"},
        {**admin, "Accept": "application/json", "X-Hub-Purpose": "fraud-review"},
        {**admin, "X-Request-Id": "req-42", "X-Hub-Case": "c-1"},
    ]
    ids = [str(base.id), str(top.id), "999999", "0", "2147483648", "-1", "abc", "007"]
    paths = [f"/schemas/ids/{i}" for i in ids]
    paths += [f"/schemas/ids/{i}/schema" for i in (base.id, top.id, 999999)]
    paths += [f"/schemas/ids/{base.id}?subject=x&format=resolved", "/schemas/ids/1/"]
    before = len(_decisions(hub))
    for path in paths:
        for headers in auths:
            a, b = fast.get(path, headers=headers), reference.get(path, headers=headers)
            assert (a.status_code, a.content, a.headers.get("content-type")) == (
                b.status_code,
                b.content,
                b.headers.get("content-type"),
            ), (path, headers)
            if "X-Request-Id" in headers:
                assert a.headers["x-request-id"] == b.headers["x-request-id"] == "req-42"
            else:
                assert len(a.headers["x-request-id"]) == len(b.headers["x-request-id"]) == 32
    recorded = _decisions(hub)[before:]
    fields = ("principal", "action", "resource", "allow", "purpose", "case_id", "reason")
    firsts, seconds = recorded[0::2], recorded[1::2]  # sent alternately: pairs decide alike
    assert [tuple(d[f] for f in fields) for d in firsts] == [
        tuple(d[f] for f in fields) for d in seconds
    ]
    assert {d["purpose"] for d in recorded} >= {"fraud-review"}
    assert {d["case_id"] for d in recorded} >= {"c-1"}
    assert any("engine exploded" in d["reason"] for d in recorded)
    assert fast.get(f"/schemas/ids/{top.id}", headers=admin).json()["references"]
    assert fast.head(f"/schemas/ids/{base.id}", headers=admin).status_code == 405


def test_served_without_the_app_behind_it_counted_and_logged(
    hub: Hub, caplog: pytest.LogCaptureFixture
) -> None:
    """A valid read never reaches the app behind the fast path; it is counted with its route
    template and logged as one access line, as the full stack does."""

    async def behind(scope: Scope, receive: Receive, send: Send) -> None:
        raise AssertionError(f"{scope['path']} reached the app behind the fast path")

    sid = hub.registry.register("fast-base-value", BASE).id
    token = hub.keys.create(["analyst"], principal="ann").token
    client = TestClient(RegistryFastPath(behind, hub))
    with caplog.at_level(logging.INFO, logger="hub.access"):
        answer = client.get(f"/schemas/ids/{sid}", headers={"Authorization": f"Bearer {token}"})
        raw = client.get(f"/schemas/ids/{sid}/schema", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200 and answer.json() == {"schema": BASE}
    assert raw.content == BASE.encode() and raw.headers["content-length"] == str(len(BASE))
    lines = [r for r in caplog.records if r.name == "hub.access"]
    assert [(r.__dict__["hub.route"], r.__dict__["user.id"]) for r in lines] == [
        ("/schemas/ids/{schema_id}", "ann"),
        ("/schemas/ids/{schema_id}/schema", "ann"),
    ]
    text = hub.metrics.render().decode()
    assert 'route="/schemas/ids/{schema_id}",status="200"' in text
    assert 'action="schema.read",result="allow",route="/schemas/ids/{schema_id}"' in text


def test_a_revoked_key_is_refused_on_the_next_request(
    hub: Hub, apps: tuple[TestClient, TestClient]
) -> None:
    fast, _ = apps
    sid = hub.registry.register("fast-base-value", BASE).id
    issued = hub.keys.create(["analyst"], principal="ann")
    headers = {"Authorization": f"Bearer {issued.token}"}
    assert fast.get(f"/schemas/ids/{sid}", headers=headers).status_code == 200
    hub.keys.revoke(issued.key_id, revoked_by="test", reason="left the company")
    refused = fast.get(f"/schemas/ids/{sid}", headers=headers)
    assert refused.status_code == 401 and "revoked" in refused.json()["message"]


def test_a_policy_change_refuses_the_next_request(
    hub: Hub, apps: tuple[TestClient, TestClient]
) -> None:
    """The allow the decision cache holds for this very input goes with the old bundle."""
    fast, _ = apps
    sid = hub.registry.register("fast-base-value", BASE).id
    headers = {"Authorization": f"Bearer {hub.keys.create(['analyst'], principal='ann').token}"}
    for _ in range(2):  # the second answer comes from the decision cache
        assert fast.get(f"/schemas/ids/{sid}", headers=headers).status_code == 200
    closed = 'decision := {"allow": false, "reason": "closed for the test", "mask": [], '
    closed += '"row_filter": {}}'
    bundle = PolicyBundle.from_files({"hub/authz.rego": f"package hub.authz\n\n{closed}\n"})
    hub.policy.load(bundle)  # type: ignore[attr-defined]
    refused = fast.get(f"/schemas/ids/{sid}", headers=headers)
    assert refused.status_code == 403
    assert refused.json()["error_code"] == 40301 and "closed for the test" in refused.text
    last = _decisions(hub)[-1]
    assert (last["allow"], last["policy_version"]) == (False, bundle.version)


def test_an_unknown_id_is_not_remembered(hub: Hub, apps: tuple[TestClient, TestClient]) -> None:
    fast, _ = apps
    headers = {"Authorization": f"Bearer {hub.keys.create(['admin'], principal='ops').token}"}
    nxt = max(hub.registry.schema_ids(), default=0) + 1
    missing = fast.get(f"/schemas/ids/{nxt}", headers=headers)
    assert (missing.status_code, missing.json()["error_code"]) == (404, 40403)
    assert hub.registry.register("fast-new-value", BASE).id == nxt
    assert fast.get(f"/schemas/ids/{nxt}", headers=headers).json() == {"schema": BASE}


def test_the_fast_path_fails_closed_when_its_decision_cannot_be_stored(
    hub: Hub, apps: tuple[TestClient, TestClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    fast, reference = apps
    sid = hub.registry.register("fast-base-value", BASE).id
    headers = {"Authorization": f"Bearer {hub.keys.create(['admin'], principal='ops').token}"}
    committer = hub.policy.committer  # type: ignore[attr-defined]

    def broken(prepared: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(committer._sink, "store", broken)
    a = fast.get(f"/schemas/ids/{sid}", headers=headers)
    b = reference.get(f"/schemas/ids/{sid}", headers=headers)
    assert a.status_code == b.status_code == 500
    assert "schema" not in a.json() and a.json()["error_code"] == b.json()["error_code"]
    assert "disk full" in a.json()["message"]
