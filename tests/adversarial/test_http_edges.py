"""Round 4 of the adversarial review: HTTP edges (session 12, redteam-d).

Each test is one attack that worked on the tree before its fix (docs/benchmarks/s12-redteam-d.md).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from hub.api.app import create_app
from hub.bootstrap import Hub, bootstrap
from hub.console.sessions import LOGIN_COOKIE
from hub.settings import load_settings


def _served(tmp_path: Path, **env: str) -> tuple[Hub, TestClient]:
    environ = {"HUB_PROJECTION_AUTOSTART": "false", **env}
    hub = bootstrap(load_settings(environ=environ, data_dir=tmp_path / "data"))
    return hub, TestClient(create_app(hub), raise_server_exceptions=False)


@pytest.fixture
def served(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Hub, TestClient]]:
    hub, client = _served(tmp_path, **getattr(request, "param", {}))
    try:
        yield hub, client
    finally:
        client.close()
        hub.close()


def _login_cookies(hub: Hub, client: TestClient, headers: dict[str, str]) -> list[str]:
    """The Set-Cookie lines of the login form and of a successful login."""
    token = hub.keys.create(["admin"], principal="p-cookie").token
    form = client.get("/ui/login", headers=headers)
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert csrf
    # A Secure cookie is not sent back over the test client's http: send it as a browser
    # behind the https proxy would.
    login = {"cookie": f"{LOGIN_COOKIE}={form.cookies[LOGIN_COOKIE]}"}
    client.cookies.clear()
    r = client.post(
        "/ui/login",
        data={"key": token, "csrf": csrf.group(1), "next": "/ui"},
        headers={**headers, **login},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    lines = form.headers.get_list("set-cookie") + r.headers.get_list("set-cookie")
    return [
        line for line in lines if "Max-Age=0" not in line and "expires=Thu, 01 Jan 1970" not in line
    ]


def _secure(lines: list[str]) -> list[bool]:
    return [bool(re.search(r";\s*secure(;|$)", line, re.I)) for line in lines]


@pytest.mark.parametrize("served", [{"HUB_COOKIE_SECURE": "true"}], indirect=True)
def test_session_cookie_is_secure_behind_a_tls_terminating_proxy(
    served: tuple[Hub, TestClient],
) -> None:
    """Behind a proxy that ends TLS and speaks http to the hub, the session cookie went out
    without ``Secure`` (the hub saw http), so a browser would send it over any plain-http link
    to the same host. ``HUB_COOKIE_SECURE=true`` marks every console cookie Secure."""
    hub, client = served
    lines = _login_cookies(hub, client, {})
    assert len(lines) == 2 and all(_secure(lines)), lines


@pytest.mark.parametrize("served", [{"HUB_TRUST_PROXY": "true"}], indirect=True)
def test_a_trusted_proxys_forwarded_proto_makes_the_cookie_secure(
    served: tuple[Hub, TestClient],
) -> None:
    """With ``HUB_TRUST_PROXY=true`` the proxy's ``X-Forwarded-Proto: https`` counts."""
    hub, client = served
    lines = _login_cookies(hub, client, {"X-Forwarded-Proto": "https"})
    assert len(lines) == 2 and all(_secure(lines)), lines


def test_the_http_demo_keeps_working_and_a_clients_forwarded_proto_is_ignored(
    served: tuple[Hub, TestClient],
) -> None:
    """The default (http://127.0.0.1 demos) sends no Secure cookie, or the browser would drop
    it; a client's own ``X-Forwarded-Proto`` changes nothing unless the proxy is trusted."""
    hub, client = served
    lines = _login_cookies(hub, client, {"X-Forwarded-Proto": "https"})
    assert len(lines) == 2 and not any(_secure(lines)), lines


@pytest.mark.parametrize(
    "path",
    [
        "0/x999/x999/x999/x999/x999/x999/x999/999",
        "entries/x999/x999/x999/x999/x999/x999/x999/999",
        "2/x549/x755/x813/888",  # 2^63 / 256^3: the first level-2 tile at leaf 2^63
    ],
)
def test_a_tile_index_past_any_tree_is_not_found_not_a_server_error(
    served: tuple[Hub, TestClient], path: str
) -> None:
    """``GET /v1/ledger/tlog/tile/0/x999/.../999`` (an index of 10^24) reached the tile store
    as an integer SQLite cannot hold: 500 ``internal_error`` (an alert, a traceback in the log)
    for any ``ledger.read`` key. Now 404 ``tile_not_found`` before the store is asked."""
    from tests.adversarial._api import basic

    hub, client = served
    admin = basic(hub.keys.create(["admin"], principal="p-tiles").token)
    hub.ledger.sync(force_checkpoint=True)
    r = client.get(f"/v1/ledger/tlog/tile/{path}", headers=admin)
    assert r.status_code == 404, r.text
    assert r.json()["reason"] == "tile_not_found", r.text
    ok = client.get("/v1/ledger/tlog/tile/0/000.p/1", headers=admin)
    assert ok.status_code == 200 and len(ok.content) == 32
