"""HUB_SESSION_STORE=redis (issue 15): a session opened through one hub app is live in another
app sharing the Redis (two processes behind a load balancer), and logout ends it in both."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from hub.api.app import create_app
from hub.bootstrap import bootstrap
from hub.console.redis_sessions import RedisSessionStore
from hub.console.sessions import COOKIE
from hub.settings import load_settings
from tests.contract.test_session_store import _redis_url
from tests.service.test_console import login, page_csrf


def test_a_session_is_shared_by_two_apps_through_redis(tmp_path: Path) -> None:
    url = _redis_url()
    env = {
        "HUB_PROJECTION_AUTOSTART": "false",
        "HUB_SESSION_STORE": "redis",
        "HUB_SESSION_REDIS_URL": url,
    }
    hub = bootstrap(load_settings(environ=env, data_dir=tmp_path / "data"))
    one, two = create_app(hub), create_app(hub)
    assert isinstance(one.state.console_sessions, RedisSessionStore)
    a = TestClient(one, base_url="http://127.0.0.1", raise_server_exceptions=False)
    b = TestClient(two, base_url="http://127.0.0.1", raise_server_exceptions=False)
    try:
        assert login(a, hub.keys.create(["analyst"], principal="ann").token).status_code == 303
        b.cookies.set(COOKIE, a.cookies[COOKIE])
        assert b.get("/ui/api/catalog").status_code == 200  # the other app knows the session
        csrf = page_csrf(b)
        assert b.post("/ui/logout", headers={"x-csrf-token": csrf}).status_code == 204
        a.cookies.set(COOKIE, b.cookies.get(COOKIE) or a.cookies[COOKIE])
        assert a.get("/ui/api/catalog").status_code == 401  # ended for both
    finally:
        a.close()
        b.close()
        hub.close()
