"""A/B of the ingest request's fixed cost: its policy decision in its own commit (old) or in the
batch's log transaction (new, session 26), alternated in one run.

Each round runs a child process per tree (``PYTHONPATH`` = the tree): a hub on a fresh data
folder (alert rules and projections off, as the e2e harness's ``hub serve``), the API app
through Starlette's ``TestClient``; three warm-up requests, then ``--requests`` requests of
``--events`` trades one at a time (nobody to share a commit with: the fixed cost at its
plainest), then the same number from ``--threads`` threads at once. Per request: the process's
CPU (every thread: the route's, the decision flusher's, the ledger's), wall time, and the
write transactions (``BEGIN IMMEDIATE``: one commit and fsync each) on the log file.

Run: ``python -m benchmarks.http_decision_commit_ab --old /tmp/old-tree [--rounds 3]``
(make the old tree with ``git archive <base> | tar -x -C /tmp/old-tree``).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
WRITES = {"log": 0, "on": False}
_connect = sqlite3.connect


def _traced(*args: Any, **kwargs: Any) -> sqlite3.Connection:
    conn: sqlite3.Connection = _connect(*args, **kwargs)
    if Path(str(args[0] if args else kwargs.get("database"))).name == "log.sqlite":

        def trace(sql: str) -> None:
            if WRITES["on"] and sql.startswith("BEGIN IMMEDIATE"):
                WRITES["log"] += 1

        conn.set_trace_callback(trace)
    return conn


def child(events: int, requests: int, threads: int) -> dict[str, Any]:
    sqlite3.connect = _traced  # type: ignore[assignment]  # before any hub connection opens

    from fastapi.testclient import TestClient

    from benchmarks.http_ingest import body
    from hub.api.app import create_app
    from hub.bootstrap import bootstrap
    from hub.settings import load_settings
    from tests.service.accounts import open_accounts

    environ = {"HUB_ALERT_INTERVAL_S": "0", "HUB_PROJECTION_AUTOSTART": "false"}
    h = bootstrap(load_settings(environ=environ, data_dir=Path(tempfile.mkdtemp())))
    out: dict[str, Any] = {"load": os.getloadavg()[0]}
    try:
        open_accounts(h, [f"ACC-{i}" for i in range(500)])
        token = str(h.keys.create(["admin"], principal="bench").token)
        headers = {
            "Authorization": "Basic " + base64.b64encode(token.encode()).decode(),
            "content-type": "application/json",
        }
        with TestClient(create_app(h)) as c:
            for _ in range(3):
                r = c.post("/v1/ingest/trades", content=body(events, "json"), headers=headers)
                assert r.status_code == 200, r.text[:300]
            bodies = [body(events, "json") for _ in range(requests)]

            def post(b: bytes) -> None:
                r = c.post("/v1/ingest/trades", content=b, headers=headers)
                assert r.json()["accepted"] == events, r.text[:300]

            for mode in ("sequential", "concurrent"):
                time.sleep(0.3)
                WRITES["log"], WRITES["on"] = 0, True
                cpu0, wall0 = time.process_time(), time.perf_counter()
                if mode == "sequential":
                    for b in bodies:
                        post(b)
                else:
                    fresh = [body(events, "json") for _ in range(requests)]
                    chunks = [fresh[k::threads] for k in range(threads)]
                    cpu0, wall0 = time.process_time(), time.perf_counter()
                    ts = [
                        threading.Thread(target=lambda bs=bs: [post(b) for b in bs])
                        for bs in chunks
                    ]
                    for t in ts:
                        t.start()
                    for t in ts:
                        t.join()
                cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
                WRITES["on"] = False
                out[mode] = {
                    "cpu_ms": 1000 * cpu / requests,
                    "wall_ms": 1000 * wall / requests,
                    "log_writes": WRITES["log"] / requests,
                    "events_per_cpu_s": events * requests / cpu,
                }
    finally:
        h.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--old", help="the old tree (git archive of the base)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--events", type=int, default=500)
    ap.add_argument("--requests", type=int, default=60)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.events, args.requests, args.threads)))
        return
    if not args.old:
        ap.error("--old is required (the tree to compare with)")
    trees = {"old": Path(args.old).resolve(), "new": ROOT}
    for k in range(args.rounds):
        for name in ("old", "new") if k % 2 == 0 else ("new", "old"):
            tree = trees[name]
            cmd = [sys.executable, str(Path(__file__).resolve()), "--child"]
            cmd += ["--events", str(args.events), "--requests", str(args.requests)]
            cmd += ["--threads", str(args.threads)]
            env = {**os.environ, "PYTHONPATH": str(tree)}
            done = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True)
            if done.returncode:
                raise SystemExit(done.stderr[-3000:])
            r = json.loads(done.stdout.strip().splitlines()[-1])
            for mode in ("sequential", "concurrent"):
                m = r[mode]
                print(
                    f"round {k + 1} {name} {mode:10s} load {r['load']:5.1f}: "
                    f"CPU {m['cpu_ms']:6.2f} ms/request, wall {m['wall_ms']:6.2f} ms/request, "
                    f"{m['log_writes']:.2f} log commits/request, "
                    f"{m['events_per_cpu_s'] / 1000:.1f}k events/CPU-s",
                    flush=True,
                )


if __name__ == "__main__":
    main()
