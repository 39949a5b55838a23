"""Huge request headers from a client with no key (session 22, red team: exhaustion).

``hub serve`` ran uvicorn's httptools protocol, which accumulates a header value however long it
grows: one 64 MiB header line on ``GET /health`` was held whole (+130 MB resident) and answered
200, so a few connections exhaust the host. Now the head (request line and headers) is bounded
by ``HUB_MAX_REQUEST_HEADER_BYTES`` (64 KiB): past it the answer is 431 ``headers_too_large``
and the connection is closed; ordinary requests on the same server are unaffected.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.api.headerlimit import head_bounded
from hub.bootstrap import Hub
from tests.adversarial._api import quiet_hub
from tests.adversarial._uvicorn import served as serve_raw


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Hub, int]]:
    """``hub serve``'s server (uvicorn, the head bound as ``hub serve`` sets it) on a free port."""
    for hub in quiet_hub(tmp_path / "d"):
        with serve_raw(hub, head_bounded(hub.settings.max_request_header_bytes)) as port:
            yield hub, port


def _send_head(port: int, header_bytes: int) -> bytes:
    """``GET /health`` with one ``X-Big`` header of ``header_bytes``; what comes back."""
    s = socket.create_connection(("127.0.0.1", port), timeout=20)
    try:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ")
        sent = 0
        try:
            while sent < header_bytes:
                n = min(65_536, header_bytes - sent)
                s.sendall(b"a" * n)
                sent += n
            s.sendall(b"\r\n\r\n")
        except OSError:  # the server closed the connection: read what it answered
            pass
        out = b""
        while True:
            try:
                got = s.recv(65_536)
            except OSError:
                break
            if not got:
                break
            out += got
            if b"\r\n\r\n" in out and b"content-length" in out.lower():
                head, _, body = out.partition(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                if len(body) >= length:
                    break
        return out
    finally:
        s.close()


def test_a_request_head_past_the_bound_is_refused_431_and_others_are_served(
    served: tuple[Hub, int],
) -> None:
    hub, port = served
    assert hub.settings.max_request_header_bytes == 65_536
    got = _send_head(port, 16 * 1_048_576)
    assert got.startswith(b"HTTP/1.1 431"), got[:200]
    body = json.loads(got.partition(b"\r\n\r\n")[2])
    assert body["reason"] == "headers_too_large"
    assert "HUB_MAX_REQUEST_HEADER_BYTES" in body["message"]
    # a header under the bound, and an ordinary request, still answer
    assert _send_head(port, 32_768).startswith(b"HTTP/1.1 200")
    assert _send_head(port, 0).startswith(b"HTTP/1.1 200")
