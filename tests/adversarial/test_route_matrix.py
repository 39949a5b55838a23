"""The route-by-role matrix, generated from the OpenAPI document of a real app.

Every operation of the served document x every role of ``core.roles.ROLES`` x bad credentials:
- no, wrong, malformed or unknown credentials: 401 on every route but the probes ``GET /health``
  and ``GET /ready``;
- a role's key: 403 (reason ``forbidden``) exactly when ``core.roles.ROLE_ACTIONS`` denies one of
  the route's declared actions (``x-hub-actions``, generated from its ``authorize``
  dependencies); otherwise neither 401 nor a policy 403, and never a 5xx.
An operation that declares no action fails, so a new route cannot skip the policy.
"""

from __future__ import annotations

import base64
import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

from core.roles import ROLE_ACTIONS, ROLES

from ._api import Api

PUBLIC = {("get", "/health"), ("get", "/ready")}  # the probes
# Enrolment: no API key (the person has none yet); the one-time token in the body is the
# credential, so without a body it answers 422 (body required), whatever the headers.
ENROL = ("post", "/v1/enrol")
# Path parameters that must name something real for the request to reach its handler.
SAMPLES = {
    "topic": "trades",
    "subject": "trades-value",
    "version": "1",
    "schema_id": "1",
    "name": "positions",
    "resource": "rules:trades-value",
}


def _document() -> dict[str, Any]:
    from pathlib import Path
    from tempfile import TemporaryDirectory

    from ._api import start_api

    with TemporaryDirectory() as tmp:
        hub, client = start_api(Path(tmp) / "data")
        try:
            token = hub.keys.create(["admin"], principal="doc").token
            r = client.get("/openapi.json", headers=_basic(token))
            assert r.status_code == 200, r.text
            doc: dict[str, Any] = r.json()
            return doc
        finally:
            client.close()
            hub.close()


def _basic(token: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(token.encode()).decode()}


DOC = _document()
OPERATIONS = [
    (method, path, op)
    for path, ops in DOC["paths"].items()
    for method, op in ops.items()
    if method in {"get", "post", "put", "delete", "patch"}
]


def _url(path: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: SAMPLES.get(m.group(1), "0"), path)


def _ids() -> list[str]:
    return [f"{m.upper()} {p}" for m, p, _ in OPERATIONS]


def test_the_document_lists_every_route() -> None:
    assert len(OPERATIONS) >= 79
    assert ("get", "/v1/topics") in {(m, p) for m, p, _ in OPERATIONS}


@pytest.mark.parametrize(("method", "path", "op"), OPERATIONS, ids=_ids())
def test_every_route_declares_its_actions(method: str, path: str, op: dict[str, Any]) -> None:
    actions = op.get("x-hub-actions")
    assert isinstance(actions, list), f"{method.upper()} {path} states no x-hub-actions"
    if (method, path) in PUBLIC or (method, path) == ENROL:
        assert actions == []
        return
    assert actions, f"{method.upper()} {path} declares no policy action: add authorize(...)"
    known = set(ROLE_ACTIONS["admin"])
    assert set(actions) <= known, f"unknown action(s) {set(actions) - known}"


def _bad_credentials(api: Api) -> dict[str, dict[str, str]]:
    key_id = api.tokens["admin"].partition(":")[0]
    return {
        "none": {},
        "wrong secret": _basic(f"{key_id}:not-the-secret"),
        "unknown key id": _basic("hk_0000000000000000:secret"),
        "malformed basic": {"Authorization": "Basic !!not-base64!!"},
        "no colon": {"Authorization": "Bearer onlyonepart"},
        "unknown scheme": {"Authorization": "Token abc:def"},
        "empty": {"Authorization": ""},
    }


@pytest.mark.parametrize(("method", "path", "op"), OPERATIONS, ids=_ids())
def test_route_by_credentials_and_role(
    shared_api: Api, method: str, path: str, op: dict[str, Any]
) -> None:
    api = shared_api
    client: TestClient = api.client
    url = _url(path)
    for label, headers in _bad_credentials(api).items():
        r = client.request(method, url, headers=headers)
        if (method, path) in PUBLIC:
            assert r.status_code == 200, (label, r.status_code)
        elif (method, path) == ENROL:
            assert r.status_code == 422 and "body" in r.text, (label, r.status_code)
        else:
            assert r.status_code == 401, (label, r.status_code, r.text[:200])
            assert r.json()["error_code"] == 40101
    actions = op.get("x-hub-actions") or []
    for role in ROLES:
        denied = [a for a in actions if a not in ROLE_ACTIONS[role]]
        r = client.request(method, url, headers=api.as_role(role))
        where = (role, method.upper(), url, r.status_code, r.text[:300])
        assert r.status_code < 500, where
        assert r.status_code != 401, where
        policy_denied = r.status_code == 403 and r.json().get("reason") == "forbidden"
        assert policy_denied == bool(denied), where


@pytest.mark.parametrize("path", ["/openapi.json", "/docs"])
def test_the_routes_outside_the_document_need_credentials_too(shared_api: Api, path: str) -> None:
    assert shared_api.client.get(path).status_code == 401
    for role in ROLES:
        r = shared_api.client.get(path, headers=shared_api.as_role(role))
        if path == "/docs":
            assert (r.status_code == 403) == ("api.docs" not in ROLE_ACTIONS[role]), role
        else:
            assert r.status_code == 200, role
