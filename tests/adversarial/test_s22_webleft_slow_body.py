"""A request body sent slowly is refused once it is late (s22 web-left, low).

uvicorn bounds no time to receive a body: a client that declared a chunk of a megabyte and
sent one byte a second held its connection, its task and its share of the in-flight budget for
as long as it liked (a few hundred such connections from no key at all, ``POST /ui/login``).
Now the time spent waiting for a body is bounded as Apache's ``mod_reqtimeout`` does:
``HUB_REQUEST_BODY_TIMEOUT_S`` plus one second per ``HUB_REQUEST_BODY_MIN_RATE`` bytes
received. A late body is answered 408 ``body_timeout`` (the connection closed); a large body
sent at an ordinary speed is unaffected, and a slow server (time between reads) is not charged
to the client.
"""

from __future__ import annotations

import contextlib
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.api.headerlimit import head_bounded
from hub.bootstrap import Hub, bootstrap
from hub.settings import load_settings
from tests.adversarial._api import QUOTE, basic
from tests.adversarial._uvicorn import served as serve_raw

TIMEOUT_S = 1.0


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Hub, int]]:
    """``hub serve``'s server (uvicorn) on a free port, body timeout 1 s at 64 KiB/s."""
    settings = load_settings(
        environ={
            "HUB_PROJECTION_AUTOSTART": "false",
            "HUB_REQUEST_BODY_TIMEOUT_S": str(TIMEOUT_S),
            "HUB_REQUEST_BODY_MIN_RATE": "65536",
        },
        data_dir=tmp_path / "d",
    )
    hub = bootstrap(settings)
    try:
        with serve_raw(hub, head_bounded(settings.max_request_header_bytes)) as port:
            yield hub, port
    finally:
        hub.close()


def _answer(s: socket.socket) -> tuple[int, dict[str, object]]:
    got = b""
    while b"\r\n\r\n" not in got:
        piece = s.recv(65536)
        if not piece:
            break
        got += piece
    head, _, body = got.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        piece = s.recv(65536)
        if not piece:
            break
        body += piece
    return int(head.split()[1]), json.loads(body[:length])


def test_a_chunked_body_trickled_is_answered_408(served: tuple[Hub, int]) -> None:
    hub, port = served
    token = hub.keys.create(["publisher"], principal="pub").token
    auth = basic(token)["Authorization"].encode()
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    try:
        s.sendall(
            b"POST /v1/ingest/quotes HTTP/1.1\r\nHost: x\r\nAuthorization: " + auth + b"\r\n"
            b"Content-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"100000\r\n"  # a chunk of 1 MiB declared, sent one byte at a time
        )
        began = time.monotonic()
        status = None
        s.settimeout(0.2)
        while time.monotonic() - began < 15:
            try:
                s.sendall(b"{")
            except OSError:
                break
            try:
                status, body = _answer(s)
                break
            except TimeoutError:
                continue
        took = time.monotonic() - began
        assert status == 408, status
        assert body["reason"] == "body_timeout", body
        assert "HUB_REQUEST_BODY_TIMEOUT_S" in str(body["message"])
        assert took < 6, took
    finally:
        s.close()


def test_a_large_body_at_an_ordinary_speed_is_accepted(served: tuple[Hub, int]) -> None:
    """Longer than the timeout alone, at four times the minimum rate: accepted in full."""
    hub, port = served
    token = hub.keys.create(["publisher"], principal="pub").token
    line = json.dumps(QUOTE).encode() + b"\n"
    piece = line * (16384 // len(line) + 1)  # about 16 KiB a piece, 16 pieces a second
    pieces = 40  # 2.5 s of sending: past the 1 s timeout alone
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    try:
        s.sendall(
            b"POST /v1/ingest/quotes HTTP/1.1\r\nHost: x\r\nAuthorization: "
            + basic(token)["Authorization"].encode()
            + b"\r\nContent-Type: application/x-ndjson\r\n"
            + b"Content-Length: %d\r\n\r\n" % (len(piece) * pieces)
        )
        for _ in range(pieces):
            s.sendall(piece)
            time.sleep(1 / 16)
        status, body = _answer(s)
        assert status == 200, body
        assert body["accepted"] == pieces * piece.count(b"\n"), body
    finally:
        s.close()


def test_a_head_trickled_is_answered_408_and_closed(tmp_path: Path) -> None:
    """The head (request line and headers) is bounded in time too: uvicorn kept a connection
    that sent one header line every 0.3 s open indefinitely (s22 web-left, low)."""
    from hub.api.headerlimit import head_bounded as bounded

    settings = load_settings(
        environ={"HUB_PROJECTION_AUTOSTART": "false", "HUB_REQUEST_HEAD_TIMEOUT_S": "1"},
        data_dir=tmp_path / "d",
    )
    hub = bootstrap(settings)
    protocol = bounded(settings.max_request_header_bytes, settings.request_head_timeout_s)
    with serve_raw(hub, protocol) as port:
        try:
            _trickle_head(port)
        finally:
            hub.close()


def _trickle_head(port: int) -> None:
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    try:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        began = time.monotonic()
        got = b""
        s.settimeout(0.3)
        while time.monotonic() - began < 10:
            try:
                s.sendall(b"X-A: b\r\n")
            except OSError:  # closed after its answer: read what came before the reset
                with contextlib.suppress(OSError):
                    got += s.recv(65536)
                break
            try:
                piece = s.recv(65536)
            except TimeoutError:
                continue
            if not piece:
                break
            got += piece
        took = time.monotonic() - began
        assert got.startswith(b"HTTP/1.1 408"), got
        assert b"HUB_REQUEST_HEAD_TIMEOUT_S" in got
        assert took < 5, took
        # an ordinary request on the same server is answered
        with socket.create_connection(("127.0.0.1", port), timeout=10) as ok:
            ok.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert ok.recv(65536).startswith(b"HTTP/1.1 200")
    finally:
        s.close()
