"""Concurrent small batches into one topic, in one process, with an old tree alternating with this
checkout in the same run (docs/benchmarks/s13-groupcommit.md).

Two workloads, each flat out for ``--seconds`` from ``--threads`` threads, SQLite at its default
durability (FULL), no projection runner and no ledger follower (``benchmarks.e2e`` measures
those):

- ``publish``: ``Publisher.publish`` of ``--publish-batch`` trades a call (e2e's 10k/s batch);
- ``ingest``: ``ingest_body`` (the HTTP ingest route's work) of ``--ingest-batch`` trades a body.

Reported per run: events per wall second, events per CPU second of the process (all threads),
ack p50 / p99 per call, and the load average. Each run is a fresh process and data folder.

Run: ``.venv/bin/python -m benchmarks.groupcommit --against /tmp/old [--rounds 2]``
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import json, os, sys, threading, time
from pathlib import Path
from hub.bootstrap import bootstrap
from hub.settings import load_settings
from tests.service.accounts import open_accounts
from benchmarks.e2e_common import ACCOUNTS, trade
from core.events import OutgoingEvent
from hub.api.ingest_batch import ingest_body

kind, data = sys.argv[1], sys.argv[5]
threads, batch, seconds = int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
h = bootstrap(load_settings(environ={}, data_dir=Path(data), projection_autostart=False))
open_accounts(h, [f"ACC-{i}" for i in range(ACCOUNTS)])
lock = threading.Lock()
nxt = [10**7]
lat = []
events = [0]

def one():
    with lock:
        i = nxt[0]
        nxt[0] += batch
    if kind == "publish":
        evs = [OutgoingEvent(value=trade(i + k)) for k in range(batch)]
        t0 = time.perf_counter()
        n = len(h.publisher.publish("trades", evs, "bench"))
    else:
        body = json.dumps({"events": [{"value": trade(i + k)} for k in range(batch)]}).encode()
        t0 = time.perf_counter()
        n = ingest_body(h.ingest, "trades", body, ndjson=False, source="bench",
                        producer="bench", tenant="default").accepted
    t1 = time.perf_counter()
    with lock:
        lat.append(t1 - t0)
        events[0] += n

one()  # set-up
lat.clear(); events[0] = 0
began = time.perf_counter()
c0 = sum(os.times()[:2])

def loop():
    while time.perf_counter() - began < seconds:
        one()

ts = [threading.Thread(target=loop) for _ in range(threads)]
for t in ts: t.start()
for t in ts: t.join()
wall, cpu = time.perf_counter() - began, sum(os.times()[:2]) - c0
lat.sort()
p = lambda q: 1000 * lat[min(len(lat) - 1, int(q * len(lat)))]
print(json.dumps({"events_s": events[0] / wall, "per_cpu_s": events[0] / cpu, "cpu_s_s": cpu / wall,
                  "p50": p(0.5), "p99": p(0.99), "calls": len(lat)}))
h.close()
"""


def run(tree: Path, kind: str, threads: int, batch: int, seconds: float) -> dict[str, float]:
    import json

    with tempfile.TemporaryDirectory(prefix="hub-groupcommit-") as tmp:
        env = {**os.environ, "PYTHONPATH": str(tree)}
        args = [kind, str(threads), str(batch), str(seconds), str(Path(tmp) / "data")]
        out = subprocess.run(
            [sys.executable, "-c", CHILD, *args],
            env=env,
            cwd=tree,
            capture_output=True,
            text=True,
            check=True,
        )
        result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
        return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--against", type=Path, help="an old source tree to alternate with")
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--publish-batch", type=int, default=50)
    ap.add_argument("--ingest-batch", type=int, default=500)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--kinds", default="publish,ingest")
    args = ap.parse_args()
    trees = [("this checkout", ROOT)]
    if args.against:
        trees.insert(0, ("old tree", args.against.resolve()))
    for r in range(args.rounds):
        for kind in args.kinds.split(","):
            batch = args.publish_batch if kind == "publish" else args.ingest_batch
            for name, tree in trees:
                got = run(tree, kind, args.threads, batch, args.seconds)
                load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
                print(
                    f"round {r + 1} {kind} x{batch} {args.threads} threads, {name}: "
                    f"{got['events_s']:,.0f} events/s, {got['per_cpu_s']:,.0f} events/CPU-s "
                    f"({got['cpu_s_s']:.2f} CPU-s/s), ack p50 {got['p50']:.1f} / p99 "
                    f"{got['p99']:.1f} ms, {got['calls']:.0f} calls (load {load})",
                    flush=True,
                )


if __name__ == "__main__":
    main()
