"""Ingest batches of one topic in several threads at once (the HTTP ingest routes run in the
thread pool): a natural key that several batches carry is stored once, every answer counts it
once, and every acknowledged record is on the ledger."""

from __future__ import annotations

import base64
import gc
import json
import threading
from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient

from hub.api.app import create_app
from hub.bootstrap import Hub
from ingest.pipeline import gc_paused
from tests.service.accounts import open_accounts

THREADS = 6


def trade(i: int) -> dict[str, Any]:
    return {
        "trade_id": f"T-{i}",
        "account_id": "ACC-1",
        "instrument": "AAPL",
        "side": "BUY",
        "quantity": "100",
        "price": "189.12",
        "currency": "USD",
        "executed_at": "2026-11-25T14:30:00.123456Z",
    }


def body(k: int, shared: int = 40, own: int = 20) -> bytes:
    """``shared`` trades every batch carries (the same ids), then ``own`` of batch ``k``'s."""
    rows = [trade(i) for i in range(shared)]
    rows += [trade(1000 * (k + 1) + i) for i in range(own)]
    return json.dumps({"events": rows}).encode()


def at_once(n: int, fn: Callable[[int], Any]) -> list[Any]:
    """``fn(k)`` for k in range(n), each in its own thread, started together."""
    out: list[Any] = [None] * n
    errors: list[BaseException] = []
    go = threading.Barrier(n)

    def run(k: int) -> None:
        try:
            go.wait()
            out[k] = fn(k)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    return out


def stored_ids(hub: Hub) -> list[str]:
    ids = []
    for part in hub.log.end_offsets("trades"):
        for rec in hub.log.scan("trades", part):
            ids.append(hub.reader.decode(rec)["value"]["trade_id"])
    return ids


def test_concurrent_http_batches_are_deduplicated_and_covered(hub: Hub) -> None:
    open_accounts(hub, ["ACC-1"])
    token = hub.keys.create(["admin"], principal="root").token
    auth = {
        "Authorization": "Basic " + base64.b64encode(token.encode()).decode(),
        "Content-Type": "application/json",
    }
    with TestClient(create_app(hub)) as client:

        def post(k: int) -> dict[str, Any]:
            r = client.post("/v1/ingest/trades", content=body(k), headers=auth)
            assert r.status_code == 200, r.text
            out: dict[str, Any] = r.json()
            return out

        answers = at_once(THREADS, post)
    assert sum(a["accepted"] for a in answers) == 40 + THREADS * 20
    assert sum(a["duplicates"] for a in answers) == (THREADS - 1) * 40
    assert all(a["ledger"]["covered"] for a in answers), [a["ledger"] for a in answers]
    ids = stored_ids(hub)
    assert len(ids) == len(set(ids)) == 40 + THREADS * 20


def test_gc_pause_nests_across_threads() -> None:
    was = gc.isenabled()
    gc.enable()
    try:
        entered, leave = threading.Barrier(2), threading.Event()

        def hold() -> None:
            with gc_paused():
                entered.wait()
                leave.wait(10)

        t = threading.Thread(target=hold)
        t.start()
        with gc_paused():
            entered.wait()
        assert not gc.isenabled()  # the other batch is still inside: still paused
        leave.set()
        t.join(10)
        assert gc.isenabled()  # the last one out enables it again
    finally:
        if not was:
            gc.disable()
