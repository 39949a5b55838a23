"""The web console over HTTP in-process: sessions, CSRF, and every page and data call decided
by the policy engine, with refusals on the ledger."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from core.roles import ROLE_ACTIONS, ROLES
from hub.api.app import create_app
from hub.api.deps import route_actions
from hub.bootstrap import Hub, bootstrap
from hub.console.pages import PAGES
from hub.console.sessions import COOKIE, SessionStore
from hub.settings import load_settings

PUBLIC = {"/", "/ui/login", "/ui/logout", "/ui/static/{name}"}


def serve_console(data_dir: Path) -> Iterator[tuple[Hub, TestClient]]:
    """A hub (projections not autostarted) and its app's client from 127.0.0.1, answering
    server errors as responses; both closed after (``yield from`` it in a fixture)."""
    hub = bootstrap(load_settings(environ={"HUB_PROJECTION_AUTOSTART": "false"}, data_dir=data_dir))
    client = TestClient(create_app(hub), base_url="http://127.0.0.1", raise_server_exceptions=False)
    try:
        yield hub, client
    finally:
        client.close()
        hub.close()


@pytest.fixture
def console(tmp_path: Path) -> Iterator[tuple[Hub, TestClient]]:
    yield from serve_console(tmp_path / "data")


def login(client: TestClient, token: str, next_url: str = "/ui") -> Any:
    form = client.get("/ui/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert csrf, form.text
    return client.post(
        "/ui/login",
        data={"key": token, "csrf": csrf.group(1), "next": next_url},
        follow_redirects=False,
    )


def page_csrf(client: TestClient) -> str:
    found = re.search(r'name="csrf-token" content="([^"]+)"', client.get("/ui/explore").text)
    assert found
    return found.group(1)


def test_without_a_session_pages_go_to_login_and_data_calls_answer_401(
    console: tuple[Hub, TestClient],
) -> None:
    hub, client = console
    r = client.get("/", follow_redirects=False)
    assert (r.status_code, r.headers["location"]) == (307, "/ui")
    r = client.get("/ui/ledger?topic=trades", follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == "/ui/login?next=%2Fui%2Fledger%3Ftopic%3Dtrades"
    r = client.get("/ui/api/markets/instruments")
    assert r.status_code == 401 and r.json()["reason"] == "unauthenticated"
    # An API key header is not a console credential (and a forged cookie is none either).
    token = hub.keys.create(["admin"], principal="ann").token
    assert client.get("/ui/api/catalog", auth=tuple(token.split(":"))).status_code == 401
    client.cookies.set(COOKIE, "forged")
    assert client.get("/ui/api/catalog").status_code == 401


def test_login_opens_a_strict_httponly_session_stored_by_digest(
    console: tuple[Hub, TestClient],
) -> None:
    hub, client = console
    token = hub.keys.create(["analyst"], principal="ann").token
    r = login(client, token, "/ui/explore")
    assert (r.status_code, r.headers["location"]) == (303, "/ui/explore")
    cookie = next(c for c in r.headers.get_list("set-cookie") if c.startswith(COOKIE + "="))
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    value = cookie.split(";")[0].split("=", 1)[1]
    store: SessionStore = client.app.state.console_sessions  # type: ignore[attr-defined]
    assert len(store) == 1 and value not in store._sessions  # only its SHA-256 is kept
    page = client.get("/ui/explore")
    assert page.status_code == 200 and "ann (analyst)" in page.text
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert token.split(":")[1] not in page.text  # the secret never reaches a page


def test_a_bad_key_or_a_forged_login_form_opens_no_session(
    console: tuple[Hub, TestClient],
) -> None:
    hub, client = console
    key_id = hub.keys.create(["analyst"], principal="ann").key_id
    r = login(client, f"{key_id}:wrong")
    assert r.status_code == 401 and "Invalid API key" in r.text
    assert COOKIE not in client.cookies
    # A form posted from elsewhere lacks the login cookie's token: refused.
    token = hub.keys.create(["analyst"], principal="bob").token
    client.cookies.clear()
    r = client.post("/ui/login", data={"key": token, "csrf": "x"}, follow_redirects=False)
    assert r.status_code == 403 and COOKIE not in client.cookies
    # After login, only a console path on this host is a place to go back to.
    r = login(client, token, "https://evil.example/ui")
    assert r.headers["location"] == "/ui"


def test_posts_need_the_sessions_csrf_token_and_this_origin(
    console: tuple[Hub, TestClient],
) -> None:
    hub, client = console
    login(client, hub.keys.create(["admin"], principal="ann").token)
    body = {"sql": "SHOW TABLES"}
    r = client.post("/ui/api/query", json=body)
    assert r.status_code == 403 and r.json()["reason"] == "csrf"
    r = client.post("/ui/api/query", json=body, headers={"X-CSRF-Token": "guess"})
    assert r.status_code == 403 and r.json()["reason"] == "csrf"
    csrf = page_csrf(client)
    r = client.post(
        "/ui/api/query", json=body, headers={"X-CSRF-Token": csrf, "Origin": "https://evil.example"}
    )
    assert r.status_code == 403 and "evil.example" in r.json()["message"]
    r = client.post("/ui/api/query", json=body, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 200, r.text
    assert "ohlcv_1m" in r.text


def test_a_refused_page_answers_403_and_the_refusal_is_on_the_ledger(
    console: tuple[Hub, TestClient],
) -> None:
    hub, client = console
    login(client, hub.keys.create(["publisher"], principal="pat").token)
    r = client.get("/ui/ledger")
    assert r.status_code == 403
    assert r.headers["content-type"].startswith("text/html")
    assert "Access refused" in r.text and "ledger.read" in r.text
    assert client.get("/ui/api/ledger/entries").status_code == 403

    flush = getattr(getattr(hub.policy, "committer", None), "flush", None)
    if callable(flush):
        flush()
    hub.ledger.sync(force_checkpoint=True)
    refusals = [
        e
        for e in hub.ledger.entries(topic="hub.decisions", actor="pat", with_fields=True)
        if e["action"] == "ledger.read"
    ]
    assert {e["resource"] for e in refusals} >= {"/ui/ledger", "/ui/api/ledger/entries"}
    decided = [_decision(hub, e) for e in refusals]
    assert all(d["allow"] is False for d in decided), decided
    proof = hub.ledger.entry(refusals[0]["index"])
    assert proof["proof"] is not None and proof["checkpoint"]["size"] > refusals[0]["index"]


def _decision(hub: Hub, entry: dict[str, Any]) -> dict[str, Any]:
    (record,) = hub.reader.read(entry["topic"], entry["partition"], entry["offset"], 1)
    value: dict[str, Any] = record["value"]
    return value


def test_a_revoked_key_ends_its_sessions_and_logout_ends_one(
    console: tuple[Hub, TestClient],
) -> None:
    hub, client = console
    issued = hub.keys.create(["analyst"], principal="ann")
    login(client, issued.token)
    assert client.get("/ui/api/catalog").status_code == 200
    hub.keys.revoke(issued.key_id, revoked_by="admin", reason="laptop lost")
    assert client.get("/ui/api/catalog").status_code == 401
    assert client.get("/ui/explore", follow_redirects=False).status_code == 303

    login(client, hub.keys.create(["analyst"], principal="bob").token)
    r = client.post("/ui/logout", headers={"X-CSRF-Token": page_csrf(client)})
    assert r.status_code == 204
    assert client.get("/ui/api/catalog").status_code == 401


def test_every_console_route_declares_a_policy_action() -> None:
    from hub.console import data, pages

    routes = [r for r in [*pages.router.routes, *data.router.routes] if isinstance(r, APIRoute)]
    assert len(routes) >= 20
    for route in routes:
        if route.path in PUBLIC:
            continue
        actions = route_actions(route.dependant)
        assert actions, f"{route.path} declares no policy action: add authorize(...)"
        assert set(actions) <= set(ROLE_ACTIONS["admin"]), (route.path, actions)


@pytest.mark.parametrize("role", ROLES)
def test_pages_by_role_follow_the_role_table(console: tuple[Hub, TestClient], role: str) -> None:
    hub, client = console
    login(client, hub.keys.create([role], principal=f"p-{role}").token)
    for page, _, action, _ in PAGES:
        r = client.get(f"/ui/{page}")
        expected = 200 if action in ROLE_ACTIONS[role] else 403
        assert r.status_code == expected, (role, page, r.status_code, r.text[:200])


def test_bad_parameters_answer_422_naming_the_value(console: tuple[Hub, TestClient]) -> None:
    hub, client = console
    login(client, hub.keys.create(["admin"], principal="ann").token)
    r = client.get("/ui/api/markets/bars", params={"instrument": "X' OR 1=1 --"})
    assert r.status_code == 422
    assert 'instrument="X\' OR 1=1 --"' in r.json()["message"] or "X' OR 1=1" in r.json()["message"]
    r = client.get("/ui/api/markets/bars", params={"instrument": "INS1", "currency": "usd"})
    assert r.status_code == 422 and "three capital letters" in r.json()["message"]
    assert client.get("/ui/static/..%2Fpages.py").status_code in (404, 422)


def test_sessions_expire_when_idle_and_after_their_lifetime() -> None:
    now = [1000.0]
    store = SessionStore(idle_s=60, absolute_s=300, clock=lambda: now[0])
    token, _ = store.open("hk_1", "ann")
    now[0] += 59
    assert store.get(token) is not None  # used: the idle clock restarts
    now[0] += 59
    assert store.get(token) is not None
    now[0] += 61
    assert store.get(token) is None  # idle too long
    token, _ = store.open("hk_1", "ann")
    for _ in range(6):
        now[0] += 55
        found = store.get(token)
    assert found is None  # 330 s after login, though used every 55 s


def test_payments_page_summary_and_a_case_opened_and_closed(
    console: tuple[Hub, TestClient],
) -> None:
    hub, client = console
    login(client, hub.keys.create(["compliance_officer"], principal="cora").token)
    assert client.get("/ui/payments").status_code == 200
    summary = client.get("/ui/api/payments/summary")
    assert summary.status_code == 200, summary.text
    assert summary.json()["breaches"]["columns"][:3] == ["account_id", "day", "currency"]
    csrf = page_csrf(client)
    opened = client.post(
        "/ui/api/cases",
        json={"reason": "near-threshold payments", "subjects": ["ACC-0007"]},
        headers={"X-CSRF-Token": csrf},
    )
    assert opened.status_code == 200, opened.text
    case_id = opened.json()["case_id"]
    listed = client.get("/ui/api/cases").json()["cases"]
    assert [(c["case_id"], c["status"], c["opened_by"]) for c in listed] == [
        (case_id, "open", "cora")
    ]
    closed = client.post(
        f"/ui/api/cases/{case_id}/close",
        json={"reason": "reviewed"},
        headers={"X-CSRF-Token": csrf},
    )
    assert closed.status_code == 200 and closed.json()["status"] == "closed"

    client.cookies.clear()
    login(client, hub.keys.create(["analyst"], principal="ann").token)
    refused = client.post(
        "/ui/api/cases", json={"reason": "x"}, headers={"X-CSRF-Token": page_csrf(client)}
    )
    assert refused.status_code == 403 and "case.open" in refused.json()["message"]


def test_ledger_checkpoints_and_an_evidence_pack_that_verifies(
    console: tuple[Hub, TestClient],
) -> None:
    import io
    import json
    import zipfile

    from audit.bundle import verify_pack

    hub, client = console
    login(client, hub.keys.create(["compliance_officer"], principal="cora").token)
    hub.ledger.sync(force_checkpoint=True)
    cps = client.get("/ui/api/ledger/checkpoints").json()["checkpoints"]
    assert cps and cps[0]["size"] == hub.ledger.store.tree_size()
    r = client.post(
        "/ui/api/evidence",
        json={"from": "2020-01-01T00:00:00Z", "to": "2100-01-01T00:00:00Z"},
        headers={"X-CSRF-Token": page_csrf(client)},
    )
    assert r.status_code == 200, r.text[:300]
    assert r.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(r.content)) as zf:
        assert verify_pack(zf, json.loads(zf.read("manifest.json"))).startswith("OK")
    r = client.post(
        "/ui/api/evidence",
        json={"from": "2020-01-01T00:00:00Z", "to": "2100-01-01T00:00:00Z", "controls": "XX9"},
        headers={"X-CSRF-Token": page_csrf(client)},
    )
    assert r.status_code == 422 and "XX9" in r.json()["message"]
