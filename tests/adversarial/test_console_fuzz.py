"""Fuzzing the console's routes (issue 15). They are out of ``/openapi.json``, so the
schemathesis run does not reach them: this walks every ``/ui`` route found on the app with
hostile path parameters, query parameters and JSON bodies (Hypothesis), logged in as roles that
may and may not use each route, and asserts that nothing answers 5xx and that a route whose
action the role lacks never answers 2xx (no unauthorised data)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.roles import ROLE_ACTIONS
from hub.api.app import create_app
from hub.api.deps import route_actions
from hub.bootstrap import Hub, bootstrap
from hub.settings import load_settings

# The login form and logout are covered by tests/service/test_console.py; the live stream never
# ends while the session lives (its refusals are covered there too); static files hold no data.
SKIP = {"/", "/ui/login", "/ui/logout", "/ui/markets/stream", "/ui/static/{name}"}
ROLES_TRIED = ("analyst", "publisher", "compliance_officer")

HOSTILE = st.one_of(
    st.sampled_from(
        [
            "",
            "../../etc/passwd",
            "..%2f..%2f",
            "%00",
            "' OR 1=1 --",
            "'; DROP TABLE positions; --",
            "<script>alert(1)</script>",
            "${jndi:ldap://x}",
            "9" * 40,
            "-1",
            "1e309",
            "NaN",
            "\u202e\u0000",
            "ACC-0001",
            "00000000-0000-0000-0000-000000000000",
        ]
    ),
    st.text(max_size=300),
)
JSON_VALUE = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), HOSTILE),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)


def _routes(app: Any) -> list[APIRoute]:
    """The console's routes (its routers, as ``hub.console.install`` adds them)."""
    from hub.console import data, enrolments, pages

    return [
        r
        for r in [*pages.router.routes, *data.router.routes, *enrolments.router.routes]
        if isinstance(r, APIRoute) and r.path.startswith("/ui") and r.path not in SKIP
    ]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Hub, TestClient]]:
    data: Path = tmp_path_factory.mktemp("console-fuzz") / "data"
    hub = bootstrap(load_settings(environ={"HUB_PROJECTION_AUTOSTART": "false"}, data_dir=data))
    app = create_app(hub)
    client = TestClient(app, base_url="http://127.0.0.1", raise_server_exceptions=False)
    client.fuzz_routes = _routes(app)  # type: ignore[attr-defined]
    try:
        yield hub, client
    finally:
        client.close()
        hub.close()


def _session(hub: Hub, client: TestClient, role: str) -> dict[str, str]:
    """Log ``role`` in; the cookie header and the CSRF token of its session."""
    client.cookies.clear()
    token = hub.keys.create([role], principal=f"fuzz-{role}").token
    form = client.get("/ui/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert csrf
    r = client.post(
        "/ui/login",
        data={"key": token, "csrf": csrf.group(1), "next": "/ui"},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    cookie = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
    page = client.get("/ui/explore" if "query.run" in ROLE_ACTIONS[role] else "/ui/health")
    found = re.search(r'name="csrf-token" content="([^"]+)"', page.text)
    client.cookies.clear()
    return {"cookie": cookie, "x-csrf-token": found.group(1) if found else ""}


@pytest.fixture(scope="module")
def sessions(served: tuple[Hub, TestClient]) -> dict[str, dict[str, str]]:
    hub, client = served
    return {role: _session(hub, client, role) for role in ROLES_TRIED}


def _fill(path: str, values: list[str]) -> str:
    from urllib.parse import quote

    names = re.findall(r"{([^}:]+)(?::[^}]+)?}", path)
    for name, value in zip(names, values, strict=False):
        path = re.sub(r"{" + name + r"(?::[^}]+)?}", quote(value, safe="") or "x", path, count=1)
    return path


def test_every_console_route_is_walked(served: tuple[Hub, TestClient]) -> None:
    """The walk below covers every console data call and page but the ones in SKIP."""
    paths = {r.path for r in served[1].fuzz_routes}  # type: ignore[attr-defined]
    assert {"/ui/api/query", "/ui/api/reports", "/ui/api/ledger/entries/{index}"} <= paths
    assert len(paths) >= 25, sorted(paths)


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=True,
)
@given(data=st.data())
def test_hostile_inputs_never_5xx_and_never_leak_to_a_role_without_the_action(
    served: tuple[Hub, TestClient], sessions: dict[str, dict[str, str]], data: Any
) -> None:
    _, client = served
    routes = sorted(client.fuzz_routes, key=lambda r: (r.path, sorted(r.methods)))  # type: ignore[attr-defined]
    route = data.draw(st.sampled_from(routes), label="route")
    method = sorted(route.methods)[0]
    role = data.draw(st.sampled_from(ROLES_TRIED), label="role")
    n_params = len(re.findall(r"{", route.path))
    path = _fill(route.path, data.draw(st.lists(HOSTILE, min_size=n_params, max_size=n_params)))
    query = {p.alias: data.draw(HOSTILE, label=p.alias) for p in route.dependant.query_params}
    body = None
    if method == "POST":
        body = data.draw(
            st.one_of(JSON_VALUE, st.dictionaries(st.sampled_from(_FIELDS), JSON_VALUE)),
            label="body",
        )
    r = client.request(
        method,
        path,
        params=query,
        content=None if body is None else json.dumps(body, allow_nan=True),
        headers={**sessions[role], "content-type": "application/json"},
        follow_redirects=False,
    )
    assert r.status_code < 500, (method, path, query, body, r.status_code, r.text[:300])
    allowed = set(route_actions(route.dependant)) <= ROLE_ACTIONS[role]
    if not allowed:
        assert r.status_code in (401, 403, 404, 405, 422), (role, path, r.status_code)


_FIELDS = [
    "sql",
    "store",
    "format",
    "signed",
    "kind",
    "day",
    "reason",
    "subjects",
    "from",
    "to",
    "controls",
    "owner",
    "roles",
    "expires_in",
    "grace",
    "description",
]
