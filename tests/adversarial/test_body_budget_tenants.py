"""No one tenant, and no unauthenticated client, holds the whole in-flight body budget
(session 16 review, second pass).

``HUB_MAX_REQUEST_BYTES_IN_FLIGHT`` is one budget for the process, counted from a request's
declared ``Content-Length`` until its answer. globex's key (any role: FastAPI reads a body before
the route's authorization) or no key at all (the console's ``POST /ui/login`` form) declared
large bodies and never sent them: every other tenant's ingest was answered 503
``body_budget_full`` for as long as those connections stayed open. Each tenant's bodies, and all
unauthenticated ones, are now held to the budget less one largest body.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hub.api.app import create_app
from hub.bootstrap import Hub, bootstrap
from hub.settings import load_settings
from tests.service.accounts import open_accounts
from tests.service.test_ingest_concurrent import trade

MIB = 1_048_576


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    environ = {
        "HUB_PROJECTION_AUTOSTART": "false",
        "HUB_MAX_REQUEST_BYTES": str(MIB),
        "HUB_MAX_REQUEST_BYTES_IN_FLIGHT": str(2 * MIB),
    }
    h = bootstrap(load_settings(environ=environ, data_dir=tmp_path / "data"))
    open_accounts(h, ["ACC-1"])
    try:
        yield h
    finally:
        h.close()


def _scope(path: str, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"hub"), *headers],
        "client": ("127.0.0.1", 5000),
        "server": ("hub", 80),
    }


async def _call(app: Any, scope: dict[str, Any], body: bytes | None) -> dict[str, Any]:
    """One request; ``body`` None: the client declares its length and never sends a byte."""
    out: dict[str, Any] = {"body": b""}
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if body is None or sent:
            await asyncio.Event().wait()  # a slow client, still connected
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            out["status"] = message["status"]
        elif message["type"] == "http.response.body":
            out["body"] += message.get("body", b"")

    await app(scope, receive, send)
    return out


def _auth(token: str) -> tuple[bytes, bytes]:
    return (b"authorization", b"Basic " + base64.b64encode(token.encode()))


async def _victim_after(app: Any, hogs: list[dict[str, Any]], token: str) -> dict[str, Any]:
    held = [asyncio.create_task(_call(app, s, None)) for s in hogs]
    await asyncio.sleep(0.3)  # the hogs are admitted (or refused) and wait
    body = json.dumps({"events": [trade(1)]}).encode()
    headers = [_auth(token), (b"content-type", b"application/json")]
    headers.append((b"content-length", str(len(body)).encode()))
    answer = await asyncio.wait_for(
        _call(app, _scope("/v1/ingest/trades", headers), body), timeout=30
    )
    refused = [t.result()["status"] for t in held if t.done()]
    for t in held:
        t.cancel()
    answer["hogs_refused"] = refused
    return answer


def _declared(n: int) -> tuple[bytes, bytes]:
    return (b"content-length", str(n).encode())


@pytest.mark.parametrize("who", ["globex-analyst", "no-key"])
def test_one_tenant_or_no_key_cannot_hold_the_whole_budget(hub: Hub, who: str) -> None:
    app = create_app(hub)
    victim = hub.keys.create(["publisher"], principal="apub", tenant="acme").token
    if who == "no-key":
        path, extra = "/ui/login", [(b"content-type", b"application/x-www-form-urlencoded")]
    else:
        token = hub.keys.create(["analyst"], principal="gan", tenant="globex").token
        path, extra = "/v1/keys", [_auth(token), (b"content-type", b"application/json")]
    hogs = [_scope(path, [*extra, _declared(MIB - 100)]) for _ in range(2)]
    answer = asyncio.run(_victim_after(app, hogs, victim))
    assert answer["status"] == 200, answer
    assert json.loads(answer["body"])["accepted"] == 1
    assert answer["hogs_refused"] == [503], answer  # the second hog passed its share


def test_a_tenant_alone_still_gets_its_share(hub: Hub) -> None:
    """The share is the budget less one body: one tenant still has two bodies in flight."""
    app = create_app(hub)
    token = hub.keys.create(["publisher"], principal="apub", tenant="acme").token
    hogs = [
        _scope("/v1/ingest/trades", [_auth(token), _declared(MIB // 2 - 100)]) for _ in range(2)
    ]
    answer = asyncio.run(_victim_after(app, hogs, token))
    assert answer["hogs_refused"] == [], answer
