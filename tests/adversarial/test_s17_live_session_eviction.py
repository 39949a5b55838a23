"""One key's logins MUST NOT end other people's console sessions.

The in-memory session store holds at most ``max_sessions`` (10,000) and, when full, dropped the
least recently used session, whoever's it was. Any valid key (an analyst's, a publisher's)
logging in ``max_sessions`` times in a loop (each login is one form POST) pushed every other
session out: the admins and officers working in the console were logged out, again and again,
for as long as the loop ran. Session 17's live-surface review.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from hub.api.app import create_app
from hub.bootstrap import Hub, bootstrap
from hub.console.sessions import COOKIE, SessionStore
from hub.settings import load_settings
from tests.service.test_console import login

CAP = 40  # a small store: the same arithmetic as 10,000, in a test's time


@pytest.fixture
def console(tmp_path: Path) -> Iterator[tuple[Hub, TestClient]]:
    hub = bootstrap(
        load_settings(environ={"HUB_PROJECTION_AUTOSTART": "false"}, data_dir=tmp_path / "data")
    )
    app = create_app(hub)
    app.state.console_sessions = SessionStore(max_sessions=CAP)
    client = TestClient(app, base_url="http://127.0.0.1", raise_server_exceptions=False)
    try:
        yield hub, client
    finally:
        client.close()
        hub.close()


def test_one_keys_login_loop_does_not_log_others_out(console: tuple[Hub, TestClient]) -> None:
    hub, client = console
    admin = hub.keys.create(["admin"], owner="root")
    officer = hub.keys.create(["compliance_officer"], owner="olga")
    mallory = hub.keys.create(["analyst"], owner="mallory")
    cookies = {}
    for who, issued in (("root", admin), ("olga", officer)):
        assert login(client, issued.token).status_code == 303
        cookies[who] = client.cookies[COOKIE]
        client.cookies.clear()
    for _ in range(CAP + 5):
        assert login(client, mallory.token).status_code == 303
        client.cookies.clear()
    for who, cookie in cookies.items():
        client.cookies.set(COOKIE, cookie)
        assert client.get("/ui/api/catalog").status_code == 200, who
        client.cookies.clear()
    # mallory's newest session works: the loop ended its own older ones, nobody else's
    assert login(client, mallory.token).status_code == 303
    assert client.get("/ui/api/catalog").status_code == 200
