"""A hub on a temporary data folder, its ASGI app in-process, and one API key per role.

Keys are issued through ``hub.keys.create`` (the operator's path), so the fixtures do not depend
on the HTTP key-issuance rules.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from core.roles import ROLES
from hub.api.app import create_app
from hub.bootstrap import Hub, bootstrap
from hub.settings import Settings, load_settings

QUOTE = {
    "instrument": "AAPL",
    "venue": "XNAS",
    "bid": "189.1",
    "ask": "189.2",
    "bid_size": "100",
    "ask_size": "100",
    "currency": "USD",
    "quoted_at": "2026-12-05T21:00:00Z",
}
"""One valid event of the hub's ``quotes`` topic."""


def basic(token: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(token.encode()).decode()}


@dataclass
class Api:
    hub: Hub
    client: TestClient
    tokens: dict[str, str]  # role -> "KEY_ID:SECRET"

    def as_role(self, role: str) -> dict[str, str]:
        return basic(self.tokens[role])

    @property
    def admin(self) -> dict[str, str]:
        return self.as_role("admin")

    def topic(self, name: str, schema: Mapping[str, Any]) -> None:
        """Create ``name`` (one partition) and register its ``-value`` schema, as admin."""
        c, admin = self.client, self.admin
        assert c.post("/v1/topics", json={"name": name, "partitions": 1}, headers=admin).is_success
        body = {"schema": json.dumps(schema)}
        assert c.post(f"/subjects/{name}-value/versions", json=body, headers=admin).is_success


def register_payment_model(hub: Hub, seed: int = 0) -> int:
    """Register a small payment_risk model as ``alice`` (an ml_engineer); returns its version."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from core.ports.policy import Principal
    from domain.features import PAYMENT_RISK
    from hub.ml_setup import ml_of

    x = np.random.default_rng(seed).normal(size=(40, len(PAYMENT_RISK.names)))
    model = LogisticRegression().fit(x, (x[:, 0] > 0).astype(int))
    mv = ml_of(hub).models.register(
        Principal("alice", frozenset({"ml_engineer"})),
        "payment_risk",
        model,
        family="sklearn.LogisticRegression",
        features=list(PAYMENT_RISK.names),
        threshold=0.5,
        manifest={"view": "payment_risk"},
        metrics={},
        reference={},
    )
    return mv.version


class JsonAnswer(BaseHTTPRequestHandler):
    """A handler for ``serve_local`` that answers with ``answer`` and logs nothing."""

    def answer(self, body: bytes, *headers: tuple[str, str]) -> None:
        """Send ``body`` as a 200 JSON answer with its length and ``headers``."""
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def serve_local(handler: type[BaseHTTPRequestHandler]) -> Iterator[int]:
    """Serve ``handler`` on 127.0.0.1 in a thread; yields the port, shuts the server down after."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()


def serve_hub(hub: Hub) -> Iterator[Api]:
    """``hub``'s app in-process with one admin key (principal ``root``); closes both after."""
    client = TestClient(create_app(hub), raise_server_exceptions=False)
    try:
        yield Api(hub, client, {"admin": hub.keys.create(["admin"], principal="root").token})
    finally:
        client.close()
        hub.close()


def acme_case(api: Api) -> tuple[str, str, str]:
    """acme's compliance officer ann opens a case; the case id and the tokens of acme's and of
    globex's (gus) compliance officers."""
    acme = api.hub.keys.create(["compliance_officer"], principal="ann", tenant="acme").token
    globex = api.hub.keys.create(["compliance_officer"], principal="gus", tenant="globex").token
    r = api.client.post(
        "/v1/cases",
        json={"reason": "SAR 17: structuring by ACC-1", "subjects": ["ACC-1"]},
        headers=basic(acme),
    )
    assert r.status_code == 201, r.text
    assert r.json()["tenant"] == "acme"
    return r.json()["case_id"], acme, globex


def quiet_settings(data_dir: Path) -> Settings:
    """Settings of a hub whose projection runners do not start by themselves (the test drives
    them, or reads nothing they write)."""
    return load_settings(environ={"HUB_PROJECTION_AUTOSTART": "false"}, data_dir=data_dir)


def quiet_hub(data_dir: Path) -> Iterator[Hub]:
    """A hub on ``quiet_settings``, closed after (``yield from`` it in a ``hub`` fixture)."""
    h = bootstrap(quiet_settings(data_dir))
    try:
        yield h
    finally:
        h.close()


@contextmanager
def quiet_api(data_dir: Path) -> Iterator[tuple[Hub, TestClient]]:
    """A hub on ``quiet_settings`` and its app in-process (server errors answered as 500s);
    both closed after."""
    hub = bootstrap(quiet_settings(data_dir))
    try:
        with TestClient(create_app(hub), raise_server_exceptions=False) as c:
            yield hub, c
    finally:
        hub.close()


def issue_key(hub: Hub, role: str, owner: str, tenant: str = "default") -> str:
    """A key for ``owner`` with one role in ``tenant``, issued the operator's way."""
    return hub.keys.create([role], principal=owner, tenant=tenant).token


def start_api(data_dir: Path) -> tuple[Hub, TestClient]:
    hub = bootstrap(quiet_settings(data_dir))
    client = TestClient(create_app(hub), raise_server_exceptions=False)
    return hub, client


def _serve(data_dir: Path) -> Iterator[Api]:
    hub, client = start_api(data_dir)
    tokens = {role: hub.keys.create([role], principal=f"p-{role}").token for role in ROLES}
    try:
        yield Api(hub, client, tokens)
    finally:
        client.close()
        hub.close()


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    """A fresh hub per test."""
    yield from _serve(tmp_path / "data")


@pytest.fixture(scope="module")
def shared_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """One hub for a module whose tests change nothing that another test reads."""
    yield from _serve(tmp_path_factory.mktemp("hub") / "data")


@pytest.fixture
def client(hub: Hub) -> Iterator[TestClient]:
    """The API of the test's ``hub`` (tests/conftest.py), from 127.0.0.1; a module that needs
    another client (e.g. server errors as answers) defines its own ``client``."""
    with TestClient(create_app(hub), base_url="http://127.0.0.1") as c:
        yield c
