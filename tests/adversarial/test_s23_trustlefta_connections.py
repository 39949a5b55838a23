"""Slowloris connections held without bound (session 23, trust leftovers).

Session 22's exhaustion red team (docs/benchmarks/s22-redteam-exhaust22.md, "Open", low): the
head of each request was bounded (bytes and time) but not the number of connections: 300
connections each holding half a request head were all held by ``hub serve`` (uvicorn's
defaults). Now ``HUB_MAX_CONNECTIONS`` and ``HUB_MAX_CONNECTIONS_PER_CLIENT`` bound them: one past
the client's bound is answered 429 ``too_many_connections_from_client``, one past the server's
bound 503 ``too_many_connections``, both with ``Retry-After`` and closed at once; another
client is still served, and a closed connection gives its place back.
"""

from __future__ import annotations

import contextlib
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.api.headerlimit import client_of, serve_protocol
from hub.bootstrap import Hub, bootstrap
from hub.settings import load_settings
from tests.adversarial._uvicorn import served as serve_raw

ENV = {
    "HUB_PROJECTION_AUTOSTART": "false",
    "HUB_MAX_CONNECTIONS": "8",
    "HUB_MAX_CONNECTIONS_PER_CLIENT": "5",
}


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Hub, int]]:
    """``hub serve``'s server (uvicorn with the protocol ``hub serve`` runs) on a free port."""
    hub = bootstrap(load_settings(environ=ENV, data_dir=tmp_path / "d"))
    try:
        with serve_raw(hub, serve_protocol(hub.settings)) as port:
            yield hub, port
    finally:
        hub.close()


def _connect(port: int, source: str) -> socket.socket:
    s = socket.socket()
    s.settimeout(20)
    s.bind((source, 0))  # any address of 127.0.0.0/8 reaches the loopback server
    s.connect(("127.0.0.1", port))
    return s


def _hold(port: int, source: str) -> socket.socket:
    """A slowloris connection: half a request head, then nothing."""
    s = _connect(port, source)
    s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
    return s


def _get(port: int, source: str) -> bytes:
    """``GET /health`` on a new connection from ``source``; the whole answer."""
    s = _connect(port, source)
    try:
        with contextlib.suppress(OSError):  # a refused connection may be closed already
            s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        out = b""
        while True:
            try:
                got = s.recv(65_536)
            except OSError:
                break
            if not got:
                break
            out += got
        return out
    finally:
        s.close()


def _body(answer: bytes) -> dict[str, str]:
    return json.loads(answer.partition(b"\r\n\r\n")[2])  # type: ignore[no-any-return]


def test_connections_past_the_per_client_and_the_total_bound_are_refused(
    served: tuple[Hub, int],
) -> None:
    _, port = served
    held = [_hold(port, "127.0.0.1") for _ in range(5)]
    try:
        time.sleep(0.3)  # the server has taken them
        got = _get(port, "127.0.0.1")
        assert got.startswith(b"HTTP/1.1 429"), got[:300]
        assert b"retry-after: 1" in got.lower()
        body = _body(got)
        assert body["reason"] == "too_many_connections_from_client"
        assert "HUB_MAX_CONNECTIONS_PER_CLIENT" in body["message"]
        # another client is served while they are held
        assert _get(port, "127.0.0.2").startswith(b"HTTP/1.1 200")
        # 8 held in all: a ninth, from a client holding none, is refused by the total bound
        held += [_hold(port, "127.0.0.3") for _ in range(3)]
        time.sleep(0.3)
        got = _get(port, "127.0.0.4")
        assert got.startswith(b"HTTP/1.1 503"), got[:300]
        assert _body(got)["reason"] == "too_many_connections"
        assert "HUB_MAX_CONNECTIONS" in _body(got)["message"]
    finally:
        for s in held:
            s.close()
    # closed connections give their places back
    deadline = time.monotonic() + 10
    while True:
        got = _get(port, "127.0.0.1")
        if got.startswith(b"HTTP/1.1 200") or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert got.startswith(b"HTTP/1.1 200"), got[:300]
    assert _get(port, "127.0.0.4").startswith(b"HTTP/1.1 200")


def test_a_held_head_still_times_out_under_the_connection_bound(tmp_path: Path) -> None:
    """The head timeout is kept: a slowloris connection is answered 408 and its place freed."""
    env = {**ENV, "HUB_MAX_CONNECTIONS_PER_CLIENT": "1", "HUB_REQUEST_HEAD_TIMEOUT_S": "1"}
    hub = bootstrap(load_settings(environ=env, data_dir=tmp_path / "d"))
    try:
        with serve_raw(hub, serve_protocol(hub.settings)) as port:
            s = _hold(port, "127.0.0.1")
            try:
                time.sleep(0.2)
                assert _get(port, "127.0.0.1").startswith(b"HTTP/1.1 429")
                first = s.recv(65_536)
                assert first.startswith(b"HTTP/1.1 408"), first[:200]
            finally:
                s.close()
            time.sleep(2.5)  # the refused connection's lingering close
            assert _get(port, "127.0.0.1").startswith(b"HTTP/1.1 200")
    finally:
        hub.close()


def test_hub_serve_sets_the_bounds_by_default() -> None:
    settings = load_settings(environ={})
    assert settings.max_connections == 1000
    assert settings.max_connections_per_client == 100
    proto = serve_protocol(settings)
    assert (proto.max_connections, proto.max_connections_per_client) == (1000, 100)


def test_an_ipv6_client_is_counted_by_its_64_network() -> None:
    """One host is usually given a whole IPv6 /64: counted per address, it could open the
    per-client bound again from each of its addresses."""
    a = client_of(("2001:db8:1:2::1", 5000, 0, 0))
    assert a == client_of(("2001:db8:1:2:ffff:1:2:3", 5001, 0, 0)) == "2001:db8:1:2::/64"
    assert a != client_of(("2001:db8:1:3::1", 5000, 0, 0))
    assert client_of(("::ffff:10.0.0.5", 1, 0, 0)) == client_of(("10.0.0.5", 2)) == "10.0.0.5"
    assert client_of(("fe80::1%eth0", 1, 0, 2)) == "fe80::/64"
    assert client_of("") == client_of(None) == "local"
