"""A response head is written with its body in one write, and the bytes on the wire are uvicorn's.

``hub.api.headerlimit.HeadWithBody`` (s26): uvicorn wrote a response's head when the app sent
``http.response.start`` and its body after, two sends for every answer. Served here by a real
uvicorn server on a socket, once with the hub's protocol and once with uvicorn's own, the same
raw requests get byte-identical answers (the ``date`` header aside); an answer of known length
reaches the socket in one write, and the others (streamed, HEAD, empty, large, an app failing
after its head) as before.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from hub.api.headerlimit import COALESCE_MAX, head_bounded

BIG = b"b" * (COALESCE_MAX + 1)


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path == "/stream":  # no length: chunked, two pieces
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"one", "more_body": True})
        await send({"type": "http.response.body", "body": b"two"})
        return
    body = {"/fixed": b'{"id":1}', "/empty": b"", "/big": BIG, "/fail": b"never"}[path]
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    if path == "/fail":
        raise RuntimeError("the app failed after its head")
    await send({"type": "http.response.body", "body": body})


class _Counted:
    """The connection's real transport, its writes counted (what reaches the socket)."""

    def __init__(self, transport: Any, writes: list[bytes]) -> None:
        self._transport = transport
        self.writes = writes

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))
        self._transport.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def _counting(base: type[HttpToolsProtocol], writes: list[bytes]) -> type[HttpToolsProtocol]:
    class Counting(base):  # type: ignore[misc, valid-type]
        def connection_made(self, transport: Any) -> None:
            super().connection_made(_Counted(transport, writes))

    return Counting


def _serve(protocol: type[HttpToolsProtocol]) -> Iterator[int]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    config = uvicorn.Config(app, log_level="critical", http=protocol, lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        yield listener.getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(10)
        listener.close()


def _exchange(port: int, request: bytes) -> bytes:
    """The whole answer to one request sent with ``Connection: close``."""
    client = socket.create_connection(("127.0.0.1", port), timeout=20)
    try:
        client.sendall(request)
        out = b""
        while got := client.recv(65_536):
            out += got
        return re.sub(rb"date: [^\r]*\r\n", b"date: -\r\n", out)
    finally:
        client.close()


REQUESTS = {
    "fixed": b"GET /fixed HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    "head": b"HEAD /fixed HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    "empty": b"GET /empty HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    "stream": b"GET /stream HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    "big": b"GET /big HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    "fail": b"GET /fail HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
}


@pytest.mark.parametrize("name", sorted(REQUESTS))
def test_the_answer_is_uvicorns_byte_for_byte(name: str) -> None:
    answers = []
    for protocol in (head_bounded(65_536), HttpToolsProtocol):
        for port in _serve(protocol):
            answers.append(_exchange(port, REQUESTS[name]))
    hub, plain = answers
    assert hub == plain
    assert hub.startswith(b"HTTP/1.1 200 OK\r\n")


def test_an_answer_of_known_length_is_one_write_and_the_others_are_not_held() -> None:
    writes: list[bytes] = []
    for port in _serve(_counting(head_bounded(65_536), writes)):
        expected = {"fixed": 1, "stream": 3, "head": 1, "empty": 2, "big": 2, "fail": 1}
        for name, count in expected.items():
            writes.clear()
            answer = _exchange(port, REQUESTS[name])
            assert b"".join(writes) == re.sub(rb"date: -", b"date: " + _date(writes), answer)
            assert len(writes) == count, (name, writes)
        # keep-alive: two answers on one connection, each one write
        client = socket.create_connection(("127.0.0.1", port), timeout=20)
        try:
            writes.clear()
            for _ in range(2):
                client.sendall(b"GET /fixed HTTP/1.1\r\nHost: x\r\n\r\n")
                got = b""
                while not got.endswith(b'{"id":1}'):
                    got += client.recv(65_536)
            assert len(writes) == 2
            assert all(w.endswith(b'\r\n\r\n{"id":1}') for w in writes)
        finally:
            client.close()


def _date(writes: list[bytes]) -> bytes:
    found = re.search(rb"date: ([^\r]*)\r\n", writes[0]) if writes else None
    return found.group(1) if found else b"-"
