"""Verify's replay scan on the Kafka log (``KafkaEventLog.integrity_problems``, step 5 of
``hub ledger verify``): CPU seconds, wall and peak RSS over one partition of N MAC'd records.

Session 24 (kafkareplay24) replaced the scan's dict of every record's MAC by one number per
writer (hub sequences, ``adapters.kafka_log.sequence``). Old against new in the same run: fill
a partition once (the current tree's writer: records with sequences), then scan it alternately
with each tree, every scan a fresh process so its peak RSS is its own::

    export HUB_INFRA_SLOT=.. HUB_INFRA_DIR=..   # a broker (make infra-kafka-up)
    git archive <base> | tar -x -C /tmp/old
    python -m benchmarks.kafka_replay_scan --n 1000000 --old /tmp/old --rounds 3

The old tree's scan ignores the sequence header (it keeps every MAC), so both read the same
records. A baseline of the same run: reading the partition without any check
(``scan_stored``), which both trees share.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import uuid

KEY = bytes(range(32))
BATCH = 10_000


def _log(servers: str, prefix: str) -> object:
    from adapters.kafka_log import KafkaEventLog

    return KafkaEventLog(servers, topic_prefix=prefix, mac_key=KEY, tenant_key=KEY[::-1])


def fill(servers: str, prefix: str, n: int) -> None:
    from core.ports.eventlog import ColumnBatch

    log = _log(servers, prefix)
    log.create_topic("quotes", 1)  # type: ignore[attr-defined]
    value = b"x" * 100
    for start in range(0, n, BATCH):
        m = min(BATCH, n - start)
        batch = ColumnBatch(
            [f"k{start + i}".encode() for i in range(m)],
            [value] * m,
            ("ce_tenant", "ce_id"),
            (b"acme", [f"id-{start + i}".encode() for i in range(m)]),
        )
        log.append_columns("quotes", batch)  # type: ignore[attr-defined]
    log.close()  # type: ignore[attr-defined]


def scan(servers: str, prefix: str, what: str) -> None:
    log = _log(servers, prefix)
    t0, c0 = time.perf_counter(), time.process_time()
    if what == "verify":
        problems = log.integrity_problems()  # type: ignore[attr-defined]
        out = len(problems)
    elif what == "readers":  # what views and the ledger's sync read: MACs checked, copies skipped
        out = sum(1 for _ in log.scan("quotes", 0))  # type: ignore[attr-defined]
    else:
        out = sum(1 for _ in log.scan_stored("quotes", 0))  # type: ignore[attr-defined]
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    log.close()  # type: ignore[attr-defined]
    print(json.dumps({"cpu_s": cpu, "wall_s": wall, "peak_rss_mb": rss, "result": out}))


def _child(tree: str, servers: str, prefix: str, what: str) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": tree}
    run = subprocess.run(
        [sys.executable, "-m", "benchmarks.kafka_replay_scan", "--scan", what, "--prefix", prefix],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    row: dict[str, float] = json.loads(run.stdout.strip().splitlines()[-1])
    row["load1"] = os.getloadavg()[0]
    return row


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--old", help="a checkout of the base tree")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--scan", choices=("verify", "read", "readers"))
    ap.add_argument("--what", default="verify", help="what the rounds run: verify or readers")
    ap.add_argument("--reuse", help="the prefix of a partition filled before")
    ap.add_argument("--prefix")
    ap.add_argument("--servers", default=os.environ.get("HUB_KAFKA_BOOTSTRAP", ""))
    args = ap.parse_args()
    if not args.servers:
        from tests.contract.test_eventlog_kafka import kafka_bootstrap

        args.servers = kafka_bootstrap()
    os.environ["HUB_KAFKA_BOOTSTRAP"] = args.servers
    if args.scan:
        scan(args.servers, args.prefix, args.scan)
        return
    prefix = args.reuse or f"bench{uuid.uuid4().hex[:8]}."
    if not args.reuse:
        t0 = time.perf_counter()
        fill(args.servers, prefix, args.n)
        print(f"filled {args.n} records in {time.perf_counter() - t0:.1f} s ({prefix})", flush=True)
    here = os.getcwd()
    for r in range(args.rounds):
        for name, tree in (("old", args.old), ("new", here)):
            if tree is None:
                continue
            print(
                json.dumps(
                    {"round": r, "tree": name, **_child(tree, args.servers, prefix, args.what)}
                ),
                flush=True,
            )
        print(
            json.dumps(
                {"round": r, "tree": "read only", **_child(here, args.servers, prefix, "read")}
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
