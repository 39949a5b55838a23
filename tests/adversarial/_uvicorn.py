"""A hub's app served by a real uvicorn (the protocol ``hub serve`` sets) on a free port, in a
thread: for tests that speak raw HTTP over a socket (heads, bodies, timeouts)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

from hub.api.app import create_app
from hub.bootstrap import Hub


@contextmanager
def served(hub: Hub, http: Any) -> Iterator[int]:
    """The port of ``hub``'s app served with uvicorn protocol ``http``; stopped after."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(hub), log_level="warning", http=http))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
