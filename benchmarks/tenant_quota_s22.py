"""Ingest with the per-tenant limits off and on, beside the tree before them (session 22).

``python -m benchmarks.tenant_quota_s22 OLD_TREE [--lines 2000] [--bodies 15] [--rounds 4]``
runs each (tree, limits) in a fresh child process, alternated in one run (old, new off, new on;
then the order reversed): a hub on a temp folder, topic ``quotes`` (the shipped schema),
``--bodies`` NDJSON bodies of ``--lines`` lines each (one line in ten refused for its ``bid``,
so quarantine bytes are counted too), each through ``ingest_body`` (the columnar path) and, with
``--reference``, the per-record path. "on" sets every ingest limit of ``core.tenant_quota`` so
high that nothing is refused (records and bytes buckets, quarantine quota): the cost measured
is the check and the count. The child reports the CPU seconds (user + system, ``resource``) and
wall seconds of the ingest calls alone (the hub's start is not counted).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, resource, sys, tempfile, time
from pathlib import Path
from hub.api.ingest_batch import ingest_body
from hub.bootstrap import bootstrap
from hub.settings import load_settings
n, bodies = int(sys.argv[1]), int(sys.argv[2])
on, columnar = sys.argv[3] == "on", sys.argv[4] == "1"
env = {"HUB_PROJECTION_AUTOSTART": "false"}
if on:
    env.update({
        "HUB_INGEST_RECORDS_PER_S_PER_TENANT": "1e9",
        "HUB_INGEST_BYTES_PER_S_PER_TENANT": "1e12",
        "HUB_QUARANTINE_MAX_BYTES_PER_TENANT": str(10**12),
    })
line = {"instrument": "A", "venue": "XNAS", "bid": "189.1", "ask": "189.2", "bid_size": "100",
        "ask_size": "100", "currency": "USD", "quoted_at": "2026-12-05T21:00:00Z"}
def body(k):
    return "\n".join(
        json.dumps({**line, "instrument": f"A{k}-{i}", **({"bid": "x"} if i % 10 == 0 else {})})
        for i in range(n)
    ).encode()
data = [body(k) for k in range(bodies)]
with tempfile.TemporaryDirectory() as d:
    hub = bootstrap(load_settings(environ=env, data_dir=Path(d)))
    try:
        ingest_body(hub.ingest, "quotes", body(-1), ndjson=True, source="warm", producer="b",
                    tenant="acme", columnar=columnar)
        r0, w0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        acc = rej = 0
        for b in data:
            res = ingest_body(hub.ingest, "quotes", b, ndjson=True, source="bench",
                              producer="b", tenant="acme", columnar=columnar)
            acc, rej = acc + res.accepted, rej + res.rejected
        w1, r1 = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
    finally:
        hub.close()
cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
print(json.dumps({"cpu_s": round(cpu, 3), "wall_s": round(w1 - w0, 3), "accepted": acc,
                  "rejected": rej}))
"""


def run(tree: Path, n: int, bodies: int, limits: str, columnar: bool) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    with tempfile.TemporaryDirectory() as cwd:
        out = subprocess.run(
            [sys.executable, "-c", CHILD, str(n), str(bodies), limits, "1" if columnar else "0"],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("old", type=Path)
    ap.add_argument("--lines", type=int, default=2000)
    ap.add_argument("--bodies", type=int, default=15)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--reference", action="store_true", help="the per-record path too")
    a = ap.parse_args()
    new = Path(__file__).resolve().parents[1]
    runs = [("old", a.old, "off"), ("new-off", new, "off"), ("new-on", new, "on")]
    paths = [True, False] if a.reference else [True]
    print(f"load {os.getloadavg()[0]:.1f}")
    for columnar in paths:
        cpu: dict[str, list[float]] = {name: [] for name, _, _ in runs}
        for k in range(a.rounds):
            for name, tree, limits in runs if k % 2 == 0 else runs[::-1]:
                r = run(tree, a.lines, a.bodies, limits, columnar)
                cpu[name].append(r["cpu_s"])
                print(f"columnar={columnar} round={k} {name}: {r}", flush=True)
        for name, v in cpu.items():
            print(
                f"columnar={columnar} {name}: cpu_s median {statistics.median(v):.3f} "
                f"range {min(v):.3f}-{max(v):.3f}"
            )
    print(f"load {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
