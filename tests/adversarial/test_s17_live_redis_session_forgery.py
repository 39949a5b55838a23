"""Whoever can write to the console's Redis MUST NOT become whoever they like in the console.

With ``HUB_SESSION_STORE=redis`` a session is the JSON ``{key_id, owner, csrf, created,
last_used}`` under ``hub:session:<SHA-256 of the cookie>``, and the hub trusted it as it found
it. Key ids are not secrets (ledger entries name them: ``console.login`` on ``key:hk_...``; the
console's key table lists them), and the client speaks to Redis without a password. So anyone
who reaches that Redis (a sidecar, another service sharing the cache, a network neighbour of
the compose file's Redis, which runs without AUTH) wrote a session naming an admin's key id
under the digest of a cookie of their choosing, or rewrote their own analyst session's
``key_id``, and was that admin in the console: issuing keys, approving policy changes.
Session 17's live-surface review.

The records are now sealed with an HMAC under a key derived from the API key pepper (a secret
every hub process has and Redis never sees), over the digest and the body: a record written or
changed without it, or moved to another digest, is no session.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from hub.api.app import create_app
from hub.bootstrap import Hub, bootstrap
from hub.console.redis_sessions import RedisSessionStore
from hub.console.sessions import COOKIE
from hub.settings import load_settings
from tests.contract.test_session_store import _redis_url
from tests.service.test_console import login

KEYS = "/ui/api/security/keys"


@pytest.fixture
def console(tmp_path: Path) -> Iterator[tuple[Hub, TestClient, RedisSessionStore]]:
    env = {
        "HUB_PROJECTION_AUTOSTART": "false",
        "HUB_SESSION_STORE": "redis",
        "HUB_SESSION_REDIS_URL": _redis_url(),
    }
    hub = bootstrap(load_settings(environ=env, data_dir=tmp_path / "data"))
    app = create_app(hub)
    store = app.state.console_sessions
    assert isinstance(store, RedisSessionStore)
    client = TestClient(app, base_url="http://127.0.0.1", raise_server_exceptions=False)
    try:
        yield hub, client, store
    finally:
        for key in store.session_keys():
            store.redis.call("DEL", key)
        client.close()
        store.redis.close()
        hub.close()


def _raw_set(store: RedisSessionStore, cookie: str, record: dict[str, object]) -> None:
    """What an attacker with Redis access writes: no hub secret, plain RESP."""
    digest = hashlib.sha256(cookie.encode()).hexdigest()
    store.redis.call("SET", store.prefix + digest, json.dumps(record), "PX", "600000")


def test_a_session_written_straight_into_redis_logs_nobody_in(
    console: tuple[Hub, TestClient, RedisSessionStore],
) -> None:
    hub, client, store = console
    admin = hub.keys.create(["admin"], owner="root")
    cookie = "attacker-chosen-cookie-value-0123456789"
    now = time.time()
    _raw_set(
        store,
        cookie,
        {"key_id": admin.key_id, "owner": "root", "csrf": "c", "created": now, "last_used": now},
    )
    client.cookies.set(COOKIE, cookie)
    assert client.get(KEYS).status_code == 401
    created = client.post(
        KEYS, json={"roles": ["analyst"], "owner": "mallory"}, headers={"X-CSRF-Token": "c"}
    )
    assert created.status_code == 401, created.text
    assert not [k for k in hub.keys.all() if k.owner == "mallory"]


def test_an_analysts_own_session_cannot_be_rewritten_into_an_admins(
    console: tuple[Hub, TestClient, RedisSessionStore],
) -> None:
    hub, client, store = console
    admin = hub.keys.create(["admin"], owner="root")
    analyst = hub.keys.create(["analyst"], owner="ann")
    assert login(client, analyst.token).status_code == 303
    assert client.get(KEYS).status_code in (200, 403)  # the analyst's own session works
    cookie = client.cookies[COOKIE]
    digest = hashlib.sha256(cookie.encode()).hexdigest()
    stored = json.loads(store.redis.call("GET", store.prefix + digest))
    inner = stored.get("session", stored)  # whatever the layout: edit the key id inside
    session = json.loads(inner) if isinstance(inner, str) else inner
    session["key_id"], session["owner"] = admin.key_id, "root"
    if isinstance(inner, str):
        stored["session"] = json.dumps(session)
    store.redis.call("SET", store.prefix + digest, json.dumps(stored), "PX", "600000")
    answer = client.get(KEYS)
    assert answer.status_code == 401, answer.text
    assert "root" not in answer.text


def test_a_sealed_session_moved_to_another_cookie_is_no_session(
    console: tuple[Hub, TestClient, RedisSessionStore],
) -> None:
    """Sealing the body alone would let a reader of Redis copy a live admin session's record
    under a cookie of their own choosing: the digest is under the seal too."""
    hub, client, store = console
    admin = hub.keys.create(["admin"], owner="root")
    assert login(client, admin.token).status_code == 303
    digest = hashlib.sha256(client.cookies[COOKIE].encode()).hexdigest()
    record = store.redis.call("GET", store.prefix + digest).decode()
    mine = "attacker-chosen-cookie-value-9876543210"
    mine_digest = hashlib.sha256(mine.encode()).hexdigest()
    store.redis.call("SET", store.prefix + mine_digest, record, "PX", "600000")
    thief = TestClient(client.app, base_url="http://127.0.0.1", raise_server_exceptions=False)
    try:
        thief.cookies.set(COOKIE, mine)
        assert thief.get(KEYS).status_code == 401
    finally:
        thief.close()
    assert client.get(KEYS).status_code == 200  # the admin's own session is untouched
