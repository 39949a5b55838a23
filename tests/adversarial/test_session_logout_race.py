"""A console session logged out (or ended by its key's revocation) in one hub process must not
come back because another process was serving a request of that session at the same moment.

The Redis store refreshes a session on every use (read, then write back with a new expiry). A
logout landing between that read and write was undone by the write: the browser page that
polls the data calls every few seconds makes that window an everyday one.
"""

from __future__ import annotations

import uuid
from typing import Any

from hub.console.redis_sessions import RedisSessionStore
from tests.contract.test_session_store import _redis_url


def test_a_request_in_flight_does_not_revive_a_session_closed_meanwhile() -> None:
    url, prefix = _redis_url(), f"hub:test-session:{uuid.uuid4().hex}:"
    one = RedisSessionStore(
        url, prefix=prefix, mac_key=b"k" * 32
    )  # the hub process serving a data call
    two = RedisSessionStore(url, prefix=prefix, mac_key=b"k" * 32)  # the one that serves the logout
    try:
        token, _ = one.open("key-1", "ann")
        real = one.redis.call

        def call(*args: str) -> Any:
            answer = real(*args)
            if args[0] == "GET":  # the logout lands between this read and its write-back
                two.close(token)
            return answer

        one.redis.call = call  # type: ignore[method-assign]
        assert one.get(token) is None  # the request in flight sees the logout too
        one.redis.call = real  # type: ignore[method-assign]
        assert two.get(token) is None
        assert one.get(token) is None
        assert one.session_keys() == []
    finally:
        for key in one.session_keys():
            one.redis.call("DEL", key)
        one.redis.close()
        two.redis.close()
