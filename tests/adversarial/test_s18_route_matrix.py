"""Every route the app registers x every kind of caller, from the app object (session 18).

``test_route_matrix`` walks the OpenAPI document; this walks ``app.router`` itself (the lean
registry routes, the console's pages and data calls, ``/docs`` and ``/openapi.json`` are not in
the document), so a route added anywhere without a line in ``ROUTES`` fails here. Each line
states the actions the route needs and whose resource it touches:

- ``open``: no credential (the probes, enrolment, the console's login and static files);
- ``own``: decided on the caller's own tenant (a tenant's key sees its own tenant's rows);
- ``hub``: no one tenant owns it (``authorize_hub_wide``): a tenant's key is refused even when
  its role grants the action;
- ``a``: the path names tenant A's (acme's) object: B's (globex's) key must not get a 2xx.

Callers: no key, A's publisher, analyst and compliance officer, the hub's security admin and
admin, a revoked key, an expired console session, and B's compliance officer on A's objects.
Asserted for every route: no 2xx to a caller the table denies, no 5xx for anyone, and no answer
to B (error or not) names A's tenant, principals or objects.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient

from core.ports.policy import HUB_TENANT
from core.roles import ROLE_ACTIONS
from hub.api.deps import route_actions
from hub.console.sessions import SessionStore

from ._api import basic, start_api

# METHOD path actions scope. Actions are the table's, not read from the code: a route that
# lost its ``authorize`` would otherwise be expected to answer everyone.
ROUTES_TEXT = """
GET /health - open
GET /ready - open
GET /ready/details metrics.read hub
GET /health/details metrics.read hub
GET /metrics metrics.read hub
GET /openapi.json - key
HEAD /openapi.json - key
GET /docs api.docs own
GET /v1/topics topic.read own
POST /v1/topics topic.create own
POST /v1/topics/{topic}/events event.publish own
GET /v1/topics/{topic}/events event.read own
POST /v1/keys keys.create own
GET /v1/whoami schema.read own
POST /v1/cases case.open own
GET /v1/cases case.read own
GET /v1/cases/{case_id} case.read a
POST /v1/cases/{case_id}/close case.close a
GET /v1/config/changes config.read own
GET /v1/config/changes/{change_id} config.read own
GET /v1/config/values/{resource} config.read own
POST /v1/config/changes config.propose own
POST /v1/config/changes/{change_id}/approve config.approve own
POST /v1/config/rollback config.propose own
POST /v1/erasures subject.erase own
GET /v1/catalog catalog.read own
GET /v1/lineage/graph catalog.read own
GET /v1/lineage/events catalog.read own
GET /v1/retention/policies catalog.read own
POST /v1/retention/policies retention.write hub
POST /v1/retention/run retention.write hub
GET /v1/legal-holds catalog.read own
POST /v1/legal-holds legalhold.write own
POST /v1/legal-holds/{hold_id}/release legalhold.write own
POST /v1/ingest/{topic} ingest.publish own
POST /v1/ingest/{topic}/avro ingest.publish own
GET /v1/quality/stats quarantine.read own
GET /v1/quarantine quarantine.read own
GET /v1/quarantine/{offset} quarantine.read own
POST /v1/quarantine/replay quarantine.replay own
GET /v1/rules rules.read own
GET /v1/rules/{subject} rules.read own
PUT /v1/rules/{subject} rules.write hub
GET /v1/keys keys.read own
POST /v1/keys/{key_id}/revoke keys.revoke a
POST /v1/keys/{key_id}/rotate keys.rotate a
POST /v1/enrol - open
GET /v1/enrolments keys.read own
POST /v1/enrolments/{enrolment_id}/approve keys.create own
GET /v1/ledger/entries ledger.read own
GET /v1/ledger/entries/{index} ledger.read own
GET /v1/ledger/lookup ledger.read own
GET /v1/ledger/checkpoints ledger.read own
GET /v1/ledger/checkpoints/latest ledger.read own
GET /v1/ledger/consistency ledger.read own
GET /v1/ledger/public-key ledger.read own
GET /v1/ledger/tlog/checkpoint ledger.read own
GET /v1/ledger/tlog/tile/{path:path} ledger.read own
POST /v1/ledger/verify ledger.verify own
POST /v1/evidence evidence.export own
GET /v1/models model.read own
GET /v1/models/{name} model.read own
POST /v1/models/{name}/predict model.predict own
POST /v1/models/{name}/retrain model.train,model.promote hub
GET /v1/models/{name}/ab model.read own
GET /v1/policy policy.read own
GET /v1/policy/changes policy.read own
GET /v1/policy/changes/{change_id} policy.read own
POST /v1/policy/changes policy.propose hub
POST /v1/policy/changes/{change_id}/approve policy.approve hub
POST /v1/policy/rollback policy.propose hub
GET /v1/projections projection.read own
POST /v1/projections/{name}/rebuild projection.rebuild own
GET /v1/projections/{name}/at projection.rebuild own
POST /v1/projections/{name}/at/query projection.rebuild,query.run own
GET /v1/projections/{name}/rows/{key}/sources projection.read,event.read own
POST /v1/query query.run own
GET /schemas/types schema.read own
GET /schemas schema.read own
GET /schemas/ids/{schema_id} schema.read own
GET /schemas/ids/{schema_id}/schema schema.read own
GET /schemas/ids/{schema_id}/subjects schema.read own
GET /schemas/ids/{schema_id}/versions schema.read own
GET /subjects schema.read own
GET /subjects/{subject}/versions schema.read own
GET /subjects/{subject}/versions/{version} schema.read own
GET /subjects/{subject}/versions/{version}/schema schema.read own
GET /subjects/{subject}/versions/{version}/referencedby schema.read own
POST /subjects/{subject}/versions schema.write own
POST /subjects/{subject} schema.read own
DELETE /subjects/{subject}/versions/{version} schema.delete own
DELETE /subjects/{subject} schema.delete own
POST /compatibility/subjects/{subject}/versions/{version} schema.read own
POST /compatibility/subjects/{subject}/versions schema.read own
GET /config schema.read own
PUT /config registry.config hub
DELETE /config registry.config hub
GET /config/{subject} schema.read own
PUT /config/{subject} registry.config hub
DELETE /config/{subject} registry.config hub
GET /mode schema.read own
PUT /mode registry.config hub
GET /mode/{subject} schema.read own
PUT /mode/{subject} registry.config hub
POST /v1/reports report.run own
GET /v1/reports/{report_id} report.read a
POST /v1/tier/offload retention.write hub
GET / - open
GET /ui projection.read own
GET /ui/markets projection.read own
GET /ui/payments query.run own
GET /ui/ledger ledger.read own
GET /ui/explore query.run own
GET /ui/health quarantine.read own
GET /ui/security policy.read own
GET /ui/enrolments keys.read own
GET /ui/reports report.read own
GET /ui/static/{name} - open
GET /ui/login - open
POST /ui/login - open
POST /ui/logout - session
GET /ui/enrol - open
GET /ui/api/markets/instruments query.run own
GET /ui/api/markets/bars query.run own
GET /ui/api/markets/positions query.run own
GET /ui/api/markets/stream query.run own
GET /ui/api/payments/summary query.run own
GET /ui/api/cases case.read own
POST /ui/api/cases case.open own
POST /ui/api/cases/{case_id}/close case.close a
GET /ui/api/ledger/entries ledger.read own
GET /ui/api/ledger/entries/{index} ledger.read own
GET /ui/api/ledger/lookup ledger.read own
GET /ui/api/ledger/key ledger.read own
GET /ui/api/ledger/checkpoints ledger.read own
POST /ui/api/evidence evidence.export own
GET /ui/api/catalog catalog.read own
POST /ui/api/query query.run own
GET /ui/api/reports report.read own
POST /ui/api/reports report.run own
GET /ui/api/reports/{report_id}/{part} report.read a
POST /ui/api/reports/{report_id}/verify report.read a
GET /ui/api/health projection.read,quarantine.read own
GET /ui/api/alerts quarantine.read own
GET /ui/api/security/policy policy.read own
POST /ui/api/security/policy/changes/{change_id}/approve policy.approve hub
GET /ui/api/security/keys keys.read own
POST /ui/api/security/keys keys.create own
POST /ui/api/security/keys/{key_id}/revoke keys.revoke a
POST /ui/api/security/keys/{key_id}/rotate keys.rotate a
GET /ui/api/enrolments keys.read own
POST /ui/api/enrolments/{enrolment_id}/approve keys.create own
"""


@dataclass(frozen=True)
class Entry:
    actions: tuple[str, ...]
    scope: str  # open, key, session, own, hub, a


def _table() -> dict[tuple[str, str], Entry]:
    out: dict[tuple[str, str], Entry] = {}
    for line in ROUTES_TEXT.strip().splitlines():
        method, path, actions, scope = line.split()
        assert (method, path) not in out, f"{method} {path} twice in ROUTES_TEXT"
        out[method, path] = Entry(() if actions == "-" else tuple(actions.split(",")), scope)
    return out


ROUTES = _table()
ACME, GLOBEX = "acme", "globex"


def _flat(routes: Any) -> Iterator[Any]:
    """The app's routes, included routers opened (FastAPI 0.165 keeps them as branches)."""
    for route in routes:
        branch = getattr(route, "effective_candidates", None)
        if callable(branch):
            yield from _flat(branch())
            yield from _flat(route.effective_low_priority_routes())
        else:
            yield route


def registered(app: Any) -> dict[tuple[str, str], Any]:
    """(METHOD, path) -> the first route serving it (first match wins, as in the router)."""
    out: dict[tuple[str, str], Any] = {}
    for route in _flat(app.router.routes):
        for method in sorted(getattr(route, "methods", None) or ()):
            out.setdefault((method, route.path), route)
    return out


def is_console(path: str) -> bool:
    return path == "/" or path == "/ui" or path.startswith("/ui/")


@dataclass
class World:
    client: TestClient
    hub: Any
    sessions: SessionStore
    keys: dict[str, tuple[str, str]]  # caller -> (token, tenant)
    samples: dict[str, str]  # path parameter -> A's object
    markers: tuple[str, ...]  # what no answer to B may contain
    cookies: dict[str, tuple[str, str]]  # caller -> (session cookie, csrf)
    expired: str  # a session cookie past its idle time


CALLERS = (
    "no key",
    "revoked",
    "expired session",
    "publisher",
    "analyst",
    "compliance_officer",
    "B officer",
    "security_admin",
    "admin",
)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    hub, client = start_api(tmp_path_factory.mktemp("hub") / "data")
    clock = [1000.0]
    sessions = SessionStore(clock=lambda: clock[0])
    client.app.state.console_sessions = sessions  # type: ignore[attr-defined]
    keys: dict[str, tuple[str, str]] = {}
    for role in ("publisher", "analyst", "compliance_officer"):
        keys[role] = (hub.keys.create([role], principal=f"acme-{role}", tenant=ACME).token, ACME)
    keys["B officer"] = (
        hub.keys.create(["compliance_officer"], principal="gus", tenant=GLOBEX).token,
        GLOBEX,
    )
    for role in ("security_admin", "admin"):
        keys[role] = (hub.keys.create([role], principal=f"hub-{role}").token, HUB_TENANT)
    revoked = hub.keys.create(["admin"], principal="gone")
    hub.keys.revoke(revoked.key_id, revoked_by="root")
    keys["revoked"] = (revoked.token, HUB_TENANT)
    # A's objects: a case, a report, its analyst's key
    officer = basic(keys["compliance_officer"][0])
    case = client.post(
        "/v1/cases", json={"reason": "SAR 9: acme-only", "subjects": ["ACC-9"]}, headers=officer
    )
    assert case.status_code == 201, case.text
    report = client.post("/v1/reports", json={"kind": "data-quality"}, headers=officer)
    assert report.status_code == 201, report.text
    analyst_key = keys["analyst"][0].partition(":")[0]
    samples = {
        "topic": "trades",
        "subject": "trades-value",
        "version": "1",
        "schema_id": "1",
        "name": "positions",
        "resource": "rules:trades-value",
        "case_id": case.json()["case_id"],
        "report_id": report.json()["report_id"],
        "key_id": analyst_key,
        "part": "manifest",
        "path": "0/000",
    }
    markers = (ACME, "acme-", samples["case_id"], samples["report_id"], analyst_key, "ACC-9")
    # The expired session first, then the clock past its idle time, then the live ones.
    expired, _ = sessions.open(keys["admin"][0].partition(":")[0], "hub-admin")
    clock[0] += sessions.idle_s + 1
    cookies = {c: _session(hub, sessions, keys[c][0]) for c in keys if c != "revoked"}
    revoked_cookie, revoked_session = sessions.open(revoked.key_id, "gone")
    cookies["revoked"] = (revoked_cookie, revoked_session.csrf)
    w = World(client, hub, sessions, keys, samples, markers, cookies, expired)
    try:
        yield w
    finally:
        client.close()
        hub.close()


def _session(hub: Any, sessions: SessionStore, token: str) -> tuple[str, str]:
    key_id = token.partition(":")[0]
    cookie, session = sessions.open(key_id, hub.keys.get(key_id).owner)
    return cookie, session.csrf


def test_every_registered_route_has_a_line_and_every_line_a_route(world: World) -> None:
    found = registered(world.client.app)
    missing = sorted(set(found) - set(ROUTES))
    assert not missing, f"routes with no line in ROUTES_TEXT (state who may call them): {missing}"
    gone = sorted(set(ROUTES) - set(found))
    assert not gone, f"lines of ROUTES_TEXT for routes the app no longer has: {gone}"
    assert len(found) >= 150


def test_the_table_states_what_each_route_decides(world: World) -> None:
    """The table's actions are those the route's ``authorize`` dependencies decide (a lean
    route, with no dependant, has the same path as its FastAPI twin's line)."""
    for (method, path), route in registered(world.client.app).items():
        dependant = getattr(route, "dependant", None)
        if dependant is None:
            continue
        entry = ROUTES[method, path]
        assert tuple(route_actions(dependant)) == entry.actions, (method, path)


def _url(world: World, path: str) -> str:
    if path == "/ui/static/{name}":
        return "/ui/static/console.css"
    return re.sub(r"\{(\w+)(:path)?\}", lambda m: world.samples.get(m.group(1), "0"), path)


def _request(world: World, caller: str, method: str, path: str, body: Any = None) -> Any:
    """``caller``'s request as that caller would send it: a key header to the API, the session
    cookie (and its CSRF token) to the console."""
    headers: dict[str, str] = {}
    cookies: dict[str, str] = {}
    if caller == "expired session":
        cookies["hub_session"] = world.expired
    elif caller != "no key":
        if is_console(path):
            cookie, csrf = world.cookies[caller]
            cookies["hub_session"] = cookie
            headers["X-CSRF-Token"] = csrf
        else:
            headers.update(basic(world.keys[caller][0]))
    world.client.cookies.clear()
    return world.client.request(
        method,
        _url(world, path),
        headers=headers,
        cookies=cookies,
        json=body,
        follow_redirects=False,
    )


def _denied_by_table(entry: Entry, caller: str) -> bool:
    if caller in ("no key", "revoked", "expired session"):
        return entry.scope not in ("open",)
    if entry.scope in ("open", "key", "session"):
        return False
    role = "compliance_officer" if caller == "B officer" else caller
    tenant = {"B officer": GLOBEX, "security_admin": HUB_TENANT, "admin": HUB_TENANT}.get(
        caller, ACME
    )
    if any(a not in ROLE_ACTIONS[role] for a in entry.actions):
        return True
    return entry.scope == "hub" and tenant != HUB_TENANT and "tenant.all" not in ROLE_ACTIONS[role]


ORDERED = sorted(ROUTES, key=lambda mp: (mp[0] == "DELETE", mp[1] == "/ui/logout", mp))


@pytest.mark.parametrize(("method", "path"), ORDERED, ids=[f"{m} {p}" for m, p in ORDERED])
def test_route_by_caller(world: World, method: str, path: str) -> None:
    entry = ROUTES[method, path]
    for caller in CALLERS:
        r = _request(world, caller, method, path)
        where = (caller, method, path, r.status_code, r.text[:300])
        assert r.status_code < 500, where
        if _denied_by_table(entry, caller):
            assert not 200 <= r.status_code < 300, where
            if caller in ("no key", "revoked", "expired session"):
                if is_console(path) and method == "GET" and not path.startswith("/ui/api/"):
                    assert r.status_code == 303 and "/ui/login" in r.headers["location"], where
                else:
                    assert r.status_code == 401, where
            else:
                assert r.status_code == 403, where
        elif caller == "B officer" and entry.scope == "a":
            pass  # refused below, as B's own tenant would be answered for a missing object
        elif caller not in ("no key", "revoked", "expired session") or entry.scope == "open":
            assert r.status_code != 401, where
            assert not (r.status_code == 403 and "Access denied: " in r.text), where
        if (method, path) == ("POST", "/ui/logout") and caller in world.cookies:
            # it ended the session: a new one for the routes after it
            world.cookies[caller] = _session(world.hub, world.sessions, world.keys[caller][0])
        if caller == "B officer":
            if entry.scope == "a":
                assert not 200 <= r.status_code < 300, where
                if method == "POST":  # with a body, past validation to the object's own check
                    r = _request(world, caller, method, path, {"reason": "x"})
                    where = (caller, method, path, r.status_code, r.text[:300])
                    assert r.status_code < 500 and not 200 <= r.status_code < 300, where
            url = _url(world, path)  # what B sent comes back in messages; nothing else of A's
            for marker in world.markers:
                assert marker in url or marker not in r.text, (marker, *where)
