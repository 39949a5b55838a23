"""The console's session store contract (issue 15), on both adapters: in memory (embedded
footprint) and Redis (distributed footprint, ``infra/redis.sh``; skipped loudly locally when it
cannot start, failing under CI=true)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from hub.console.sessions import SessionStore, _digest


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def _redis_url() -> str:
    from tests import infra

    infra.require("redis", "the Redis session store contract")
    ok, out = infra._run("redis", "url", 30)
    assert ok, out
    return out.strip().splitlines()[-1]


@pytest.fixture(params=["memory", "redis"])
def store(request: pytest.FixtureRequest) -> Iterator[tuple[Any, Clock]]:
    clock = Clock()
    if request.param == "memory":
        yield SessionStore(idle_s=60, absolute_s=300, clock=clock), clock
        return
    from hub.console.redis_sessions import RedisSessionStore

    prefix = f"hub:test-session:{uuid.uuid4().hex}:"
    s = RedisSessionStore(
        _redis_url(), idle_s=60, absolute_s=300, clock=clock, prefix=prefix, mac_key=b"k" * 32
    )
    try:
        yield s, clock
    finally:
        for key in s.session_keys():
            s.redis.call("DEL", key)
        s.redis.close()


def test_open_get_close(store: tuple[Any, Clock]) -> None:
    s, _ = store
    token, opened = s.open("key-1", "ann")
    got = s.get(token)
    assert got is not None
    assert (got.key_id, got.owner, got.csrf) == ("key-1", "ann", opened.csrf)
    assert s.get("not-" + token) is None and s.get("") is None
    other, _ = s.open("key-2", "bob")
    assert len(s) == 2
    s.close(token)
    assert s.get(token) is None and s.get(other) is not None and len(s) == 1


def test_idle_expiry_is_pushed_back_by_use_and_absolute_expiry_is_not(
    store: tuple[Any, Clock],
) -> None:
    s, clock = store
    token, _ = s.open("key-1", "ann")
    for _ in range(4):  # used every 50 s: never idle for 60 s
        clock.now += 50
        assert s.get(token) is not None
    clock.now += 59
    assert s.get(token) is not None
    clock.now += 60  # 60 s idle
    assert s.get(token) is None
    token, _ = s.open("key-1", "ann")
    for _ in range(5):  # used every 50 s, but 300 s after login it ends
        clock.now += 50
        assert s.get(token) is not None
    clock.now += 50
    assert s.get(token) is None


def test_the_store_keeps_the_cookies_digest_never_the_cookie(store: tuple[Any, Clock]) -> None:
    s, _ = store
    token, _ = s.open("key-1", "ann")
    if isinstance(s, SessionStore):
        held = list(s._sessions)
    else:
        held = [k.removeprefix(s.prefix) for k in s.session_keys()]
    assert held == [_digest(token)] and token not in "".join(held)
