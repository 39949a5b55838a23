"""A bound on the bytes of a request's head (request line and headers), before any route runs.

Uvicorn's httptools protocol accumulates a header value however long it grows: a client with no
key sent one 64 MiB header line to ``GET /health`` and the server held it (+130 MB resident)
and answered 200; a few connections doing so exhaust the host's memory. ``HeadBoundedProtocol``
counts the bytes received while a request's head is being parsed and, past
``HUB_MAX_REQUEST_HEADER_BYTES``, answers **431** ``headers_too_large`` (RFC 6585) in the hub's
error shape and closes the connection, having held at most the bound plus one read.

The head is bounded in time as well (``HUB_REQUEST_HEAD_TIMEOUT_S``, from the request's first
byte to the end of its headers): uvicorn bounds neither (its keep-alive timer stops at the first
byte), so a client sending one header line every few seconds held a connection indefinitely.
Past the bound the answer is **408** ``head_timeout`` and the connection is closed. An idle
keep-alive connection is not timed here (uvicorn's keep-alive timeout closes it).

A response head that announces a body of known length (``Content-Length``, at most
``COALESCE_MAX`` bytes, not to a HEAD request) is written with the body's first piece, in one
write (``HeadWithBody``): uvicorn writes the head as soon as the app sends
``http.response.start``, then the body, two sends to the socket for every answer. On loopback
the first send wakes the client (and on a busy machine is where the server thread is preempted
while it holds the GIL); the second is one more system call. The bytes on the wire are the same.

The number of open connections is bounded too, all together (``HUB_MAX_CONNECTIONS``) and from
one client address (``HUB_MAX_CONNECTIONS_PER_CLIENT``): uvicorn bounds neither (its
``limit_concurrency`` counts requests whose head is complete, so 300 slowloris connections were
all held). A connection past either bound is answered at once, **503** ``too_many_connections``
or **429** ``too_many_connections_from_client``, with ``Retry-After``, and closed; the others are
served as before. An IPv6 client is counted by its /64 network (``client_of``). Behind a reverse
proxy every client has the proxy's address: raise the
per-client bound, or set it to 0 (off), there.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
from typing import Any, ClassVar, cast

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

LINGER_S = 2.0  # how long a refused connection is kept open for its answer to be read
# The largest body whose head waits for it (held heads and joined writes stay small).
COALESCE_MAX = 65_536


class HeadWithBody:
    """The transport one request's cycle writes to: the response head, when it announces a
    body of 1 to ``COALESCE_MAX`` bytes (``Content-Length``; not a HEAD request), is held and
    written with the body's first piece. Everything else is written as it comes. A held head
    is written before the connection is closed (the app failed after its head, or the answer
    closes the connection), so no byte is lost or reordered."""

    __slots__ = ("_cycle", "_head", "_started", "_transport")

    def __init__(self, transport: asyncio.Transport, cycle: Any) -> None:
        self._transport = transport
        self._cycle = cycle
        self._head: bytes | None = None
        self._started = False  # the response head has been seen

    def write(self, data: bytes) -> None:
        head = self._head
        if head is not None:
            self._head = None
            self._transport.write(head + data)
            return
        cycle = self._cycle
        if not self._started and cycle.response_started:
            self._started = True  # this write is the head (written right after it started)
            if (
                cycle.chunked_encoding is False
                and 0 < cycle.expected_content_length <= COALESCE_MAX
                and cycle.scope["method"] != "HEAD"
            ):
                self._head = data
                return
        self._transport.write(data)

    def flush(self) -> None:
        head, self._head = self._head, None
        if head is not None and not self._transport.is_closing():
            self._transport.write(head)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class HeadBoundedProtocol(HttpToolsProtocol):
    """``HttpToolsProtocol`` refusing a request whose head passes ``max_head_bytes``."""

    max_head_bytes = 65_536
    head_timeout_s = 20.0
    max_connections = 0  # 0: no bound
    max_connections_per_client = 0
    # the connections open, all and per client address (one server's event loop: no lock)
    open_total: ClassVar[list[int]] = [0]
    open_by_client: ClassVar[dict[str, int]] = {}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True  # until the first request's headers are complete
        self._head_bytes = 0
        self._refused = False
        self._head_timer: asyncio.TimerHandle | None = None
        self._counted_as: str | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        client = client_of(transport.get_extra_info("peername"))
        total, mine = self.open_total[0], self.open_by_client.get(client, 0)
        if self.max_connections and total >= self.max_connections:
            self._refuse(
                "503 Service Unavailable",
                50301,
                "too_many_connections",
                f"The server holds {total} connections, its bound (HUB_MAX_CONNECTIONS): "
                "connect again shortly.",
                retry_after=1,
            )
            return
        if self.max_connections_per_client and mine >= self.max_connections_per_client:
            self._refuse(
                "429 Too Many Requests",
                42901,
                "too_many_connections_from_client",
                f"Your address {client} holds {mine} connections, the bound for one client "
                "(HUB_MAX_CONNECTIONS_PER_CLIENT): reuse them (keep-alive) or close some.",
                retry_after=1,
            )
            return
        self._counted_as = client
        self.open_total[0] = total + 1
        self.open_by_client[client] = mine + 1

    def data_received(self, data: bytes) -> None:
        if self._refused:  # what still arrives on a refused connection is dropped unread
            return
        if self._in_head:
            room = self.max_head_bytes - self._head_bytes
            if len(data) <= room:
                self._head_bytes += len(data)
            else:
                # Only the head is bounded: a read may hold a small head and the body after it
                # (a loaded server reads late, up to 256 KiB at once). What fits is parsed; if
                # the headers end within it, the rest is the body, parsed as usual.
                super().data_received(data[:room])
                if self._refused or self.transport.is_closing():
                    return
                if self._in_head:
                    self._refuse_head()
                    return
                data = data[room:]
        super().data_received(data)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head, self._head_bytes = True, 0
        self._stop_timer()
        self._head_timer = self.loop.call_later(self.head_timeout_s, self._head_late)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._stop_timer()
        before = self.cycle
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is not None and cycle is not before:  # a request's cycle (not an upgrade)
            cycle.transport = cast(asyncio.Transport, HeadWithBody(self.transport, cycle))

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_timer()
        self._uncount()
        super().connection_lost(exc)

    def handle_websocket_upgrade(self) -> None:
        # the transport passes to another protocol, whose end this one never sees: not counted
        # past here (else each upgrade would hold a place for ever)
        self._uncount()
        super().handle_websocket_upgrade()

    def _uncount(self) -> None:
        client, self._counted_as = self._counted_as, None
        if client is not None:
            self.open_total[0] -= 1
            left = self.open_by_client.get(client, 1) - 1
            if left > 0:
                self.open_by_client[client] = left
            else:
                self.open_by_client.pop(client, None)

    def _stop_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_late(self) -> None:
        self._head_timer = None
        if self._in_head and not self._refused and not self.transport.is_closing():
            self._refuse(
                "408 Request Timeout",
                40801,
                "head_timeout",
                f"The request line and headers took longer than {self.head_timeout_s:g} s "
                "(HUB_REQUEST_HEAD_TIMEOUT_S): send the request's head at once.",
            )

    def _refuse_head(self) -> None:
        self._refuse(
            "431 Request Header Fields Too Large",
            43101,
            "headers_too_large",
            f"The request line and headers passed {self.max_head_bytes} bytes "
            "(HUB_MAX_REQUEST_HEADER_BYTES): send shorter headers.",
        )

    def _refuse(
        self, status: str, code: int, reason: str, message: str, retry_after: int = 0
    ) -> None:
        body = json.dumps({"error_code": code, "reason": reason, "message": message}).encode()
        retry = f"retry-after: {retry_after}\r\n".encode() if retry_after else b""
        self.transport.write(
            b"HTTP/1.1 " + status.encode() + b"\r\n"
            b"content-type: application/json\r\n"
            + retry
            + b"content-length: "
            + str(len(body)).encode()
            + b"\r\n"
            b"connection: close\r\n\r\n" + body
        )
        self._refused = True
        self._stop_timer()
        # A lingering close: closing at once with the client's unread bytes in the socket
        # sends a reset, which can destroy the answer before the client reads it. The answer
        # is followed by our end of the stream, what still arrives is dropped unread (above),
        # and the connection is closed LINGER_S later.
        if self.transport.can_write_eof():
            self.transport.write_eof()
            self.loop.call_later(LINGER_S, self.transport.close)
        else:
            self.transport.close()


def client_of(peer: Any) -> str:
    """The client a connection is counted for: its IPv4 address, the /64 network of an IPv6
    address (one host is usually given a whole /64: counting each address would let it open
    the per-client bound again from each), ``local`` for a Unix socket."""
    if not isinstance(peer, (tuple, list)) or not peer:
        return "local"
    host = str(peer[0]).split("%", 1)[0]  # a scope id (fe80::1%eth0) is no part of it
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def head_bounded(
    max_head_bytes: int,
    head_timeout_s: float = 20.0,
    max_connections: int = 0,
    max_connections_per_client: int = 0,
) -> type[HeadBoundedProtocol]:
    """The protocol class for ``uvicorn.run(http=...)`` with ``max_head_bytes``,
    ``head_timeout_s`` and the connection bounds (0: none), counting its own connections."""
    return type(
        "HeadBounded",
        (HeadBoundedProtocol,),
        {
            "max_head_bytes": max_head_bytes,
            "head_timeout_s": head_timeout_s,
            "max_connections": max_connections,
            "max_connections_per_client": max_connections_per_client,
            "open_total": [0],
            "open_by_client": {},
        },
    )


def serve_protocol(settings: Any) -> type[HeadBoundedProtocol]:
    """The protocol ``hub serve`` runs, with the bounds of ``settings`` (``hub.settings``)."""
    return head_bounded(
        settings.max_request_header_bytes,
        settings.request_head_timeout_s,
        settings.max_connections,
        settings.max_connections_per_client,
    )
