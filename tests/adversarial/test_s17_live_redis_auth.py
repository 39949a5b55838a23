"""The console's Redis may require a password, and the hub MUST send it.

``HUB_SESSION_REDIS_URL=redis://:PASSWORD@host:6379/0`` (or ``redis://USER:PASSWORD@...`` for a
Redis 6 ACL user) was parsed for its host, port and database only: the password was dropped
without a word, so a Redis with ``requirepass`` answered every command ``NOAUTH`` and the console
could not log anybody in. Operators were left with one way to run the distributed console:
a Redis without a password, writable by anyone who reaches it (the session records were also
trusted as found: ``test_s17_live_redis_session_forgery``). A bad database number raised a bare
``ValueError``. Session 17's live-surface review.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.errors import ConfigError
from hub.console.redis_sessions import RedisSessionStore, Resp

PASSWORD = "s17-Redis-Pa55word"
KEY = b"k" * 32


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def locked_redis(tmp_path: Path) -> Iterator[int]:
    """A Redis of this test's own with ``requirepass`` and an ACL user ``hub``."""
    port = _free_port()
    args = ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", ""]
    args += ["--appendonly", "no", "--dir", str(tmp_path), "--requirepass", PASSWORD]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        admin = Resp(f"redis://:{PASSWORD}@127.0.0.1:{port}/0")
        admin.call("ACL", "SETUSER", "hub", "on", ">hub-user-pw", "~hub:*", "+@all")
        admin.close()
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


def test_a_password_in_the_url_is_sent(locked_redis: int) -> None:
    store = RedisSessionStore(f"redis://:{PASSWORD}@127.0.0.1:{locked_redis}/0", mac_key=KEY)
    token, opened = store.open("key-1", "ann")
    got = store.get(token)
    assert got is not None and got.csrf == opened.csrf
    store.close(token)
    assert store.get(token) is None


def test_an_acl_user_and_password_are_sent(locked_redis: int) -> None:
    store = RedisSessionStore(
        f"redis://hub:hub-user-pw@127.0.0.1:{locked_redis}/0", mac_key=KEY, prefix="hub:s:"
    )
    token, _ = store.open("key-1", "ann")
    assert store.get(token) is not None


def test_a_wrong_password_is_refused_without_echoing_it(locked_redis: int) -> None:
    store = RedisSessionStore(f"redis://:Wr0ngSecret@127.0.0.1:{locked_redis}/0", mac_key=KEY)
    with pytest.raises(ConfigError) as info:
        store.open("key-1", "ann")
    assert "Wr0ngSecret" not in info.value.message
    assert "password" in info.value.message.lower()


def test_a_bad_database_number_is_named() -> None:
    with pytest.raises(ConfigError) as info:
        Resp("redis://127.0.0.1:6379/zero")
    assert "zero" in info.value.message
