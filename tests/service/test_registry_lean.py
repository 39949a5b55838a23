"""The registry's lean async routes answer exactly as their FastAPI twins, and decide alike.

The same hub serves two apps: the real one (lean routes first) and one with the lean routes
removed (the FastAPI twins, the reference). Every request is sent to both, for every role, no
key, a wrong key, a refused ``Accept``, valid, unknown and malformed ids, a schema with
references, and a purpose of use: status, body and content type must be identical, and each
request must record the same decisions (action, resource, result and purpose).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.routing import Match

from core.roles import ROLES
from governance.decisions import RecordingPolicyEngine
from hub.api.app import create_app
from hub.api.routers.registry import LEAN_ROUTES
from hub.bootstrap import Hub
from registry.service import Reference
from tests.service.registry_twins import Refusing, decided, decisions


@pytest.fixture
def apps(hub: Hub) -> Iterator[tuple[TestClient, TestClient]]:
    lean = create_app(hub)
    twin = create_app(hub)
    twin.router.routes = [r for r in twin.router.routes if r not in LEAN_ROUTES]
    with TestClient(lean) as a, TestClient(twin) as b:
        yield a, b


def _served_by(app: FastAPI, path: str) -> Any:
    scope = {"type": "http", "method": "GET", "path": path, "root_path": ""}
    return next(r for r in app.router.routes if r.matches(scope)[0] == Match.FULL)


def test_the_lean_routes_serve_the_hot_reads(apps: tuple[TestClient, TestClient]) -> None:
    lean, twin = apps
    assert _served_by(lean.app, "/schemas/ids/1") is LEAN_ROUTES[0]  # type: ignore[arg-type]
    assert _served_by(lean.app, "/schemas/ids/1/schema") is LEAN_ROUTES[1]  # type: ignore[arg-type]
    assert _served_by(twin.app, "/schemas/ids/1") not in LEAN_ROUTES  # type: ignore[arg-type]


def test_lean_routes_answer_and_decide_exactly_as_their_twins(
    hub: Hub, apps: tuple[TestClient, TestClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    lean, twin = apps
    policy = hub.policy
    assert isinstance(policy, RecordingPolicyEngine)
    monkeypatch.setattr(policy, "inner", Refusing(policy.inner))
    base = hub.registry.register(
        "lean-base-value",
        json.dumps({"type": "record", "name": "Base", "fields": [{"name": "a", "type": "int"}]}),
    )
    with_refs = hub.registry.register(
        "lean-ref-value",
        json.dumps({"type": "record", "name": "Top", "fields": [{"name": "b", "type": "Base"}]}),
        references=(Reference("Base", "lean-base-value", base.version),),
    )
    keys = {role: hub.keys.create([role], principal=f"p-{role}").token for role in ROLES}
    auths: list[dict[str, str]] = [{"Authorization": f"Bearer {t}"} for t in keys.values()]
    auths += [{}, {"Authorization": "Bearer nope:wrong"}]
    admin = auths[list(ROLES).index("admin")]
    auths += [
        {**admin, "Accept": "text/html"},
        {**admin, "Accept": "application/json"},
        {**admin, "X-Hub-Purpose": "fraud-review"},
    ]
    ids = [str(base.id), str(with_refs.id), "999999", "-1", "abc", "99999999999", " 7", "1_0"]
    paths = [f"/schemas/ids/{i}" for i in ids]
    paths += [f"/schemas/ids/{i}/schema" for i in (base.id, 999999, "abc")]
    paths += [f"/schemas/ids/{base.id}?subject=x&format=resolved"]
    before = decided(hub)
    pairs = 0
    fields = ("principal", "action", "resource", "allow", "purpose", "reason")
    for path in paths:
        for headers in auths:
            # each request's decisions are the same on both apps (one for most; an unknown id
            # asks a second one, as another tenant's id does: hub.registry_scope)
            start = decided(hub)
            a = lean.get(path, headers=headers)
            middle = decided(hub)
            b = twin.get(path, headers=headers)
            theirs = decisions(hub, start)
            assert [tuple(d[f] for f in fields) for d in theirs[: middle - start]] == [
                tuple(d[f] for f in fields) for d in theirs[middle - start :]
            ], (path, headers)
            assert (a.status_code, a.content, a.headers["content-type"]) == (
                b.status_code,
                b.content,
                b.headers["content-type"],
            ), (path, headers)
            pairs += a.status_code != 401
    recorded = decisions(hub, before)
    assert lean.get(f"/schemas/ids/{with_refs.id}", headers=admin).json()["references"]
    assert lean.head(f"/schemas/ids/{base.id}", headers=admin).status_code == 405
    assert len(recorded) >= 2 * pairs - 2 * len(paths)  # every request past the key decided
    assert any(d["purpose"] == "fraud-review" for d in recorded)
    assert any(not d["allow"] for d in recorded) and any(d["allow"] for d in recorded)
    assert any("engine exploded" in d["reason"] for d in recorded)


def test_lean_route_fails_closed_when_its_decision_cannot_be_stored(
    hub: Hub, apps: tuple[TestClient, TestClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    lean, twin = apps
    token = hub.keys.create(["admin"], principal="ops").token
    headers = {"Authorization": f"Bearer {token}"}
    committer = hub.policy.committer  # type: ignore[attr-defined]

    def broken(prepared: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(committer._sink, "store", broken)
    a = lean.get("/schemas/ids/1", headers=headers)
    b = twin.get("/schemas/ids/1", headers=headers)
    assert a.status_code == b.status_code == 500
    assert "schema" not in a.json() and a.json()["error_code"] == b.json()["error_code"]
    assert "disk full" in a.json()["message"]
