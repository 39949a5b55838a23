"""SQLite statements per ``POST /v1/ingest/trades`` request, by database, thread and kind.

In one process: a hub on a fresh data folder (alert rules and projections off, as the e2e
harness's ``hub serve``), the API app driven by Starlette's ``TestClient``, one request at a
time. Every SQLite connection the hub opens gets a trace callback (``sqlite3.connect`` is
wrapped before the hub is built); after three warm-up requests the statements of ``--requests``
requests of ``--events`` trades each are counted, numbers and literals folded, by
(database file, thread, statement). Sequential requests: the figure is the fixed cost of one
request with nobody to share a commit or a ledger sync with.

Run: ``.venv/bin/python -m benchmarks.http_statements [--events 500] [--requests 20]
[--top 40]``
"""

from __future__ import annotations

import argparse
import base64
import collections
import re
import sqlite3
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

COUNTING = {"on": False}
STATEMENTS: collections.Counter[tuple[str, str]] = collections.Counter()
_connect = sqlite3.connect


def _traced(*args: Any, **kwargs: Any) -> sqlite3.Connection:
    conn: sqlite3.Connection = _connect(*args, **kwargs)
    name = Path(str(args[0] if args else kwargs.get("database"))).name

    def trace(sql: str) -> None:
        if COUNTING["on"]:
            s = re.sub(r"\s+", " ", sql.strip())
            s = re.sub(r"'[^']*'", "'…'", s)
            s = re.sub(r"\b\d+\b", "#", s)
            thread = re.sub(r"[-_ ]?\d+.*$", "", threading.current_thread().name)
            STATEMENTS[(f"{name}:{thread}", s[:100])] += 1

    conn.set_trace_callback(trace)
    return conn


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=500)
    ap.add_argument("--requests", type=int, default=20)
    ap.add_argument("--top", type=int, default=40)
    args = ap.parse_args()
    sqlite3.connect = _traced  # type: ignore[assignment]  # before any hub connection opens

    from fastapi.testclient import TestClient

    from benchmarks.http_ingest import body
    from hub.api.app import create_app
    from hub.bootstrap import bootstrap
    from hub.settings import load_settings
    from tests.service.accounts import open_accounts

    environ = {"HUB_ALERT_INTERVAL_S": "0", "HUB_PROJECTION_AUTOSTART": "false"}
    h = bootstrap(load_settings(environ=environ, data_dir=Path(tempfile.mkdtemp())))
    try:
        open_accounts(h, [f"ACC-{i}" for i in range(500)])
        token = str(h.keys.create(["admin"], principal="bench").token)
        headers = {
            "Authorization": "Basic " + base64.b64encode(token.encode()).decode(),
            "content-type": "application/json",
        }
        n, reqs = args.events, args.requests
        with TestClient(create_app(h)) as c:
            for _ in range(3):
                r = c.post("/v1/ingest/trades", content=body(n, "json"), headers=headers)
                assert r.status_code == 200, r.text[:300]
            bodies = [body(n, "json") for _ in range(reqs)]
            time.sleep(0.5)
            COUNTING["on"] = True
            for b in bodies:
                r = c.post("/v1/ingest/trades", content=b, headers=headers)
                assert r.json()["accepted"] == n, r.text[:300]
            time.sleep(0.2)
            COUNTING["on"] = False
    finally:
        h.close()
    total = sum(STATEMENTS.values())
    print(f"{total / reqs:.1f} SQLite statements per request ({reqs} requests of {n} events)")
    where: collections.Counter[str] = collections.Counter()
    for (db, _), k in STATEMENTS.items():
        where[db] += k
    for db, k in where.most_common():
        print(f"  {k / reqs:6.1f}  {db}")
    for (db, s), k in STATEMENTS.most_common(args.top):
        print(f"{k / reqs:6.2f}  {db:34.34s} {s}")


if __name__ == "__main__":
    main()
