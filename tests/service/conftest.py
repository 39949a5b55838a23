"""Service-test fixtures: the Schema Registry API served over real HTTP (uvicorn in a thread).

``start_registry(data_dir)`` serves one app on a free 127.0.0.1 port and returns a
``RegistryServer``. Two apps can be served, chosen by ``APP_KIND`` (the environment variable
``REGISTRY_TEST_APP=hub|minimal`` forces one; by default "hub" when it can be imported):

- ``"hub"``: the hub's own ``create_app(bootstrap(...))``, API keys checked by its
  authentication middleware (Confluent clients send them with ``basic.auth.user.info``);
- ``"minimal"``: only the registry router (``hub.api.routers.registry.install``) on
  ``SchemaRegistry(SqliteEventLog(data_dir / "log.sqlite"))``, with a stub middleware that makes
  the HTTP Basic user name the principal's one role (``"analyst:x"`` is an analyst).

Both keep the event log at ``data_dir / "log.sqlite"`` and decide access with the same
role table, so every test runs unchanged on either.
"""

from __future__ import annotations

import base64
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
import uvicorn
from confluent_kafka.schema_registry import SchemaRegistryClient
from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from adapters.sqlite_log import SqliteEventLog
from core.ports.eventlog import EventLog
from core.ports.policy import Principal
from core.roles import RoleTablePolicy
from hub.api.routers.registry import install
from registry.service import SchemaRegistry


def _hub_app_available() -> bool:
    try:
        import hub.api.app
        import hub.bootstrap  # noqa: F401
    except ImportError:
        return False
    return True


APP_KIND = os.environ.get("REGISTRY_TEST_APP") or ("hub" if _hub_app_available() else "minimal")


@dataclass
class RegistryServer:
    url: str
    registry: SchemaRegistry
    log: EventLog
    issue: Callable[[str], str]  # role -> "KEY_ID:SECRET"
    admin: str = ""
    _stop: list[Callable[[], None]] = field(default_factory=list)

    def client(self, token: str | None = None) -> SchemaRegistryClient:
        """A fresh confluent-kafka client (fresh caches) authenticated as ``token``."""
        return SchemaRegistryClient(
            {"url": self.url, "basic.auth.user.info": token or self.admin, "max.retries": 0}
        )

    def http(self, token: str | None = None) -> httpx.Client:
        user, _, secret = (token or self.admin).partition(":")
        return httpx.Client(base_url=self.url, auth=(user, secret), timeout=10.0)

    def stop(self) -> None:
        while self._stop:
            self._stop.pop()()


class _RoleFromBasicUser:
    """Stub authentication for the minimal app: Basic user ``ROLE`` is a principal with ROLE."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            for name, value in scope.get("headers", ()):
                if name == b"authorization" and value.lower().startswith(b"basic "):
                    user = base64.b64decode(value[6:]).decode().partition(":")[0]
                    principal = Principal(f"test-{user}", frozenset({user}))
                    scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)


def _minimal(data_dir: Path) -> tuple[FastAPI, SchemaRegistry, EventLog, Callable[[str], str]]:
    data_dir.mkdir(parents=True, exist_ok=True)
    log = SqliteEventLog(data_dir / "log.sqlite")
    registry = SchemaRegistry(log)
    app = FastAPI()
    app.state.hub = SimpleNamespace(registry=registry, policy=RoleTablePolicy(), log=log)
    install(app)
    app.add_middleware(_RoleFromBasicUser)
    return app, registry, log, lambda role: f"{role}:secret"


def _hub(data_dir: Path) -> tuple[FastAPI, SchemaRegistry, EventLog, Callable[[str], str]]:
    from hub.api.app import create_app
    from hub.bootstrap import bootstrap
    from hub.settings import load_settings

    hub = bootstrap(load_settings(environ={}, data_dir=data_dir))

    def issue(role: str) -> str:
        return hub.keys.create([role], principal=f"test-{role}").token

    return create_app(hub), hub.registry, hub.log, issue


def _serve(app: Any) -> tuple[str, Callable[[], None]]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start serving the registry app")
        time.sleep(0.01)

    def stop() -> None:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()

    return f"http://127.0.0.1:{port}", stop


@pytest.fixture
def start_registry() -> Iterator[Callable[[Path], RegistryServer]]:
    """Start a served registry over ``data_dir``; every server started is stopped at the end."""
    started: list[RegistryServer] = []

    def start(data_dir: Path) -> RegistryServer:
        build = _hub if APP_KIND == "hub" else _minimal
        app, registry, log, issue = build(data_dir)
        url, stop = _serve(app)
        server = RegistryServer(url, registry, log, issue, _stop=[log.close, stop])
        server.admin = issue("admin")
        started.append(server)
        return server

    yield start
    for server in reversed(started):
        server.stop()


@pytest.fixture
def registry_server(
    start_registry: Callable[[Path], RegistryServer], tmp_path: Path
) -> RegistryServer:
    return start_registry(tmp_path / "data")
