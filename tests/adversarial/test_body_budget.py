"""Request bodies held at once are bounded (``HUB_MAX_REQUEST_BYTES_IN_FLIGHT``).

Finding (medium, session 12's "left"): every request body could be ``HUB_MAX_REQUEST_BYTES``
(32 MiB), and nothing bounded how many were held at once: HTTP ingest runs in the thread pool
(40 threads) and requests waiting for a thread had read their bodies already, so N clients made
the hub hold N x 32 MiB. The fix (``hub.api.bodylimit.BodyBudget``): a request whose body would
pass the budget is answered 503 ``body_budget_full`` with ``Retry-After`` before any of its body
is read; what was admitted completes, and a refused request sent again later is accepted.

The measure is the bytes of bodies the app has received and not yet answered (peak over the run),
through the real app, with requests held open at their last piece.
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
from tests.service.test_ingest_concurrent import stored_ids, trade

MIB = 1_048_576
PIECE = 64 * 1024
N = 4500  # trades per body: about 0.8 MiB
BUDGET = 2 * MIB  # HUB_MAX_REQUEST_BYTES_IN_FLIGHT: two bodies fit, a third does not


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    environ = {
        "HUB_PROJECTION_AUTOSTART": "false",
        "HUB_MAX_REQUEST_BYTES": str(MIB),
        "HUB_MAX_REQUEST_BYTES_IN_FLIGHT": str(BUDGET),
    }
    hub = bootstrap(load_settings(environ=environ, data_dir=tmp_path / "data"))
    open_accounts(hub, ["ACC-1"])
    try:
        yield hub
    finally:
        hub.close()


def _body(k: int, n: int = N) -> bytes:
    """About 0.8 MiB of distinct trades (batch ``k``)."""
    body = json.dumps({"events": [trade(100_000 * (k + 1) + i) for i in range(n)]}).encode()
    assert 0.7 * MIB < len(body) < MIB
    return body


class Held:
    """The bodies the app has received and not answered: now and at the peak."""

    def __init__(self) -> None:
        self.now = 0
        self.peak = 0
        self.waiting = 0  # requests held at their last piece

    def add(self, n: int) -> None:
        self.now += n
        self.peak = max(self.peak, self.now)


async def _post(app: Any, token: str, body: bytes, gate: asyncio.Event, held: Held) -> dict:
    """POST ``body`` to /v1/ingest/trades as raw ASGI, in 64 KiB pieces; the last piece waits
    for ``gate``. Returns status, headers, the answer and the bytes the app read."""
    pieces = [body[i : i + PIECE] for i in range(0, len(body), PIECE)]
    read = 0
    out: dict[str, Any] = {"headers": {}, "body": b""}

    async def receive() -> dict:
        nonlocal read
        if read < len(pieces):
            if read == len(pieces) - 1:
                held.waiting += 1
                await gate.wait()
            piece = pieces[read]
            read += 1
            held.add(len(piece))
            return {"type": "http.request", "body": piece, "more_body": read < len(pieces)}
        await asyncio.Event().wait()  # the client stays connected
        raise AssertionError("unreachable")

    async def send(message: dict) -> None:
        if message["type"] == "http.response.start":
            out["status"] = message["status"]
            out["headers"] = {k.decode(): v.decode() for k, v in message["headers"]}
        elif message["type"] == "http.response.body":
            out["body"] += message.get("body", b"")

    auth = base64.b64encode(token.encode())
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/ingest/trades",
        "raw_path": b"/v1/ingest/trades",
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"host", b"hub"),
            (b"authorization", b"Basic " + auth),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 5000),
        "server": ("hub", 80),
    }
    await app(scope, receive, send)
    held.add(-sum(len(p) for p in pieces[:read]))
    out["read"] = read
    return out


def _tenants(hub: Hub, n: int) -> list[str]:
    """Publisher keys of ``n`` tenants: one tenant alone holds at most the budget less one body
    (``test_body_budget_tenants.py``), so these tests of the process's budget spread over
    tenants."""
    return [
        hub.keys.create(["publisher"], principal=f"p{k}", tenant=f"t{k}").token for k in range(n)
    ]


async def _run(app: Any, tokens: list[str], bodies: list[bytes], held: Held) -> list[dict]:
    gate = asyncio.Event()
    tasks = [
        asyncio.create_task(_post(app, t, b, gate, held))
        for t, b in zip(tokens, bodies, strict=True)
    ]
    for _ in range(3000):  # until every request is either answered or waits at its last piece
        await asyncio.sleep(0.01)
        if sum(t.done() for t in tasks) + held.waiting >= len(bodies):
            break
    gate.set()
    return list(await asyncio.gather(*tasks))


def test_bodies_past_the_in_flight_budget_are_refused_before_they_are_read(hub: Hub) -> None:
    app = create_app(hub)
    tokens = _tenants(hub, 6)
    bodies = [_body(k) for k in range(6)]
    held = Held()
    answers = asyncio.run(_run(app, tokens, bodies, held))

    assert held.peak <= BUDGET, held.peak
    admitted = [k for k, a in enumerate(answers) if a["status"] == 200]
    refused = [k for k, a in enumerate(answers) if a["status"] == 503]
    assert len(admitted) == 2 and len(refused) == 4, [a["status"] for a in answers]
    for k in refused:
        a = answers[k]
        assert a["read"] == 0  # refused before any of its body was read
        assert a["headers"]["retry-after"] == "1"
        assert json.loads(a["body"])["reason"] == "body_budget_full"
    for k in admitted:
        assert json.loads(answers[k]["body"])["accepted"] == N
    assert hub.metrics.http_bodies_refused._value.get() == 4
    assert hub.metrics.http_body_bytes_in_flight._value.get() == 0

    # Nothing admitted was lost, and the refused requests go through when sent again.
    again = asyncio.run(
        _run(app, [tokens[k] for k in refused[:2]], [bodies[k] for k in refused[:2]], Held())
    )
    assert [a["status"] for a in again] == [200, 200]
    assert len(set(stored_ids(hub))) == len(stored_ids(hub)) == 4 * N


def test_a_chunked_body_is_counted_as_it_arrives(hub: Hub) -> None:
    """Without Content-Length the pieces are counted as they come: a chunked body that would
    pass the budget beside two held ones is cut with 503 and Retry-After."""
    app = create_app(hub)
    tokens = _tenants(hub, 3)
    held = Held()

    async def run() -> list[dict]:
        gate = asyncio.Event()
        first = [asyncio.create_task(_post(app, tokens[k], _body(k), gate, held)) for k in range(2)]
        while held.waiting < 2:
            await asyncio.sleep(0.01)
        chunked = asyncio.create_task(_chunked(app, tokens[2], _body(9), gate, held))
        answer = await asyncio.wait_for(chunked, 10)
        gate.set()
        return [*(await asyncio.gather(*first)), answer]

    answers = asyncio.run(run())
    assert [a["status"] for a in answers] == [200, 200, 503]
    assert answers[2]["headers"]["retry-after"] == "1"
    assert held.peak <= BUDGET + PIECE


async def _chunked(app: Any, token: str, body: bytes, gate: asyncio.Event, held: Held) -> dict:
    """``_post`` without a Content-Length header (a chunked request)."""
    real = app

    async def without_length(scope: dict, receive: Any, send: Any) -> None:
        scope["headers"] = [h for h in scope["headers"] if h[0] != b"content-length"]
        await real(scope, receive, send)

    return await _post(without_length, token, body, gate, held)
