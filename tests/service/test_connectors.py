"""Pull connectors: a SQLite database by cursor column and a paginated HTTP API (a real local
server), each stopped midway and restarted: nothing skipped, nothing repeated."""

from __future__ import annotations

import json
import sqlite3
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from core.errors import Retryable
from hub.bootstrap import Hub
from ingest.db import DbConnector, DbSourceConfig
from ingest.httppull import HttpPullConfig, HttpPullConnector
from tests.service.accounts import open_accounts

T = {
    "account_id": "ACC-1",
    "instrument": "AAPL",
    "side": "BUY",
    "quantity": "100",
    "price": "189.5",
    "currency": "USD",
}


@pytest.fixture
def hub(hub: Hub) -> Hub:
    """The shared hub with the accounts these trades name (``trade.account.known``)."""
    open_accounts(hub, ["ACC-1", *(f"ACC-{i}" for i in range(100))])
    return hub


def trade_ids(hub: Hub) -> list[str]:
    out = []
    for p in range(hub.log.topic("trades").partitions):
        out += [r["value"]["trade_id"] for r in hub.reader.read("trades", p, 0, 10_000)]
    return sorted(out)


def make_table(db: Path) -> sqlite3.Connection:
    con = sqlite3.connect(db)
    con.execute(
        "CREATE TABLE trades (trade_id TEXT PRIMARY KEY, account_id TEXT, instrument TEXT, "
        "side TEXT, quantity TEXT, price TEXT, currency TEXT, executed_at TEXT)"
    )
    return con


def test_db_restart_resume_never_skips_or_repeats(hub: Hub, tmp_path: Path) -> None:
    db = tmp_path / "src.sqlite"
    con = make_table(db)

    def insert(start: int, n: int, minute: int) -> None:
        con.executemany(
            "INSERT INTO trades VALUES (?,?,?,?,?,?,?,?)",
            [
                (f"T-{i:03d}", *T.values(), f"2026-11-25T14:{minute:02d}:00Z")
                for i in range(start, start + n)
            ],
        )
        con.commit()

    insert(0, 10, 30)  # ten rows with the SAME cursor value: ties across batch boundaries
    insert(10, 5, 31)
    cfg = dict(
        url=f"sqlite:///{db}",
        table="trades",
        topic="trades",
        cursor="executed_at",
        key="trade_id",
        batch_size=4,
    )
    r1 = DbConnector(hub.ingest, DbSourceConfig(name="src", max_batches=2, **cfg)).run()
    assert r1.accepted == 8
    # "restart": a new connector object, a new pipeline state from the log
    r2 = DbConnector(hub.ingest, DbSourceConfig(name="src", **cfg)).run()
    assert r2.accepted == 7
    insert(15, 3, 32)
    r3 = DbConnector(hub.ingest, DbSourceConfig(name="src", **cfg)).run()
    assert r3.accepted == 3 and r3.duplicates == 0
    assert trade_ids(hub) == [f"T-{i:03d}" for i in range(18)]
    pos = hub.ingest.positions.get("db:src")
    assert pos is not None and pos.records == 18


class Api(BaseHTTPRequestHandler):
    # Shared, test-controlled state of the fake API (class attributes on purpose).
    pages: dict[str, tuple[list[dict], str | None]] = {}  # noqa: RUF012
    fail_once: set[str] = set()  # noqa: RUF012
    hard_fail: set[str] = set()  # noqa: RUF012
    calls: list[str] = []  # noqa: RUF012

    def do_GET(self) -> None:
        cursor = parse_qs(urlparse(self.path).query).get("cursor", ["start"])[0]
        self.calls.append(cursor)
        if cursor in self.hard_fail or cursor in self.fail_once:
            self.fail_once.discard(cursor)
            self.send_response(503)
            self.end_headers()
            return
        data, nxt = self.pages[cursor]
        body = json.dumps({"data": data, "next_cursor": nxt}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def api() -> str:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Api)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/trades"
    server.shutdown()


def test_http_pull_retries_fails_midway_and_resumes(hub: Hub, api: str) -> None:
    def page(n: int) -> list[dict]:
        return [
            {**T, "trade_id": f"H-{n}-{i}", "executed_at": "2026-11-25T14:30:00Z"} for i in range(3)
        ]

    Api.pages = {"start": (page(0), "c1"), "c1": (page(1), "c2"), "c2": (page(2), None)}
    Api.fail_once = {"c1"}  # a transient 503: retried with backoff
    Api.hard_fail = {"c2"}  # down for good: the run fails after its retries
    Api.calls = []
    sleeps: list[float] = []
    cfg = HttpPullConfig(
        name="api",
        url=api,
        topic="trades",
        max_retries=2,
        backoff_s=0.1,
        allow_private_network=True,  # the test API listens on 127.0.0.1
    )
    with pytest.raises(Retryable, match="run the connector again"):
        HttpPullConnector(hub.ingest, cfg, sleep=sleeps.append).run()
    assert sleeps[:1] == [0.1] and sleeps[1:] == [0.1, 0.2]
    assert len(trade_ids(hub)) == 6
    Api.hard_fail = set()
    Api.calls = []
    r = HttpPullConnector(hub.ingest, cfg, sleep=sleeps.append).run()
    assert Api.calls == ["c2"] and r.accepted == 3
    assert trade_ids(hub) == sorted(f"H-{n}-{i}" for n in range(3) for i in range(3))
    # finished: another run fetches nothing
    Api.calls = []
    HttpPullConnector(hub.ingest, cfg).run()
    assert Api.calls == []
