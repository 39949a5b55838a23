"""Recorded decisions' store path (issue 13): CPU per decision of encode + append, and the
group-committed rate and latency, on a real hub data folder (SQLite, ``synchronous=FULL``).

1. ``store``: ``LogDecisionSink.prepare`` + ``store`` of ``--batch`` prebuilt decision records
   at a time (what one flusher does per fsync), CPU µs per decision.
2. ``loop``: ``--callers`` event-loop tasks each queue an allowed decision and await its durable
   commit (``DecisionCommitter``, the hub's default 2 flushers, linger 0) for ``--seconds``:
   decisions/s, decisions per CPU-s, p50/p99 ms.

Same-run baseline: run this module from an old tree and this one alternately, e.g.
``PYTHONPATH=/tmp/old .venv/bin/python -m benchmarks.decisions_store`` then without.

Run: ``.venv/bin/python -m benchmarks.decisions_store [--batch 256] [--seconds 4]``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path

from governance.decisions import DecisionCommitter, DecisionRecord, LogDecisionSink, new_decision_id
from hub.bootstrap import bootstrap
from hub.settings import load_settings


def record(i: int) -> DecisionRecord:
    return DecisionRecord(
        new_decision_id(), f"user-{i % 50}", "acme", ("analyst",), "event.read",
        f"topics/payments/{i % 16}", True, "Allowed: analyst may read topic payments.",
        "9" * 64, "a" * 64, time.time_ns() // 1000,
    )  # fmt: skip


def store(sink: LogDecisionSink, batch: int, seconds: float) -> float:
    """CPU µs per decision of prepare + store, batches of ``batch``."""
    records = [record(i) for i in range(batch)]
    n, cpu, stop = 0, time.process_time(), time.perf_counter() + seconds
    while time.perf_counter() < stop:
        sink.store(sink.prepare(records))
        n += batch
    return (time.process_time() - cpu) / n * 1e6


def loop(
    committer: DecisionCommitter, callers: int, seconds: float
) -> tuple[float, float, list[float]]:
    lats: list[float] = []

    async def caller(k: int, stop: float) -> None:
        i = k
        while time.perf_counter() < stop:
            r = record(i)
            t0 = time.perf_counter()
            await committer.enqueue(r, prompt=True).wait_async()
            lats.append((time.perf_counter() - t0) * 1000)
            i += callers

    async def main() -> None:
        stop = time.perf_counter() + seconds
        await asyncio.gather(*(caller(k, stop) for k in range(callers)))

    cpu, started = time.process_time(), time.perf_counter()
    asyncio.run(main())
    return time.perf_counter() - started, time.process_time() - cpu, lats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=256, help="decisions per store")
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--callers", type=int, default=64)
    parser.add_argument("--only", choices=["store", "loop"], default=None)
    args = parser.parse_args()
    tree = os.environ.get("PYTHONPATH") or "this tree"
    with tempfile.TemporaryDirectory() as tmp:
        hub = bootstrap(load_settings(environ={}, data_dir=Path(tmp) / "data"))
        try:
            sink = LogDecisionSink(hub.log, hub.registry, hub.publisher)
            sink.append([record(0)])  # topic and schema exist before timing
            if args.only in (None, "store"):
                us = store(sink, args.batch, args.seconds)
                print(f"[{tree}] store, batches of {args.batch}: {us:.2f} µs CPU/decision "
                      f"({1e6 / us:,.0f} dec/CPU-s)")  # fmt: skip
            if args.only in (None, "loop"):
                committer = DecisionCommitter(sink, linger_ms=0, flushers=2)
                wall, cpu, lats = loop(committer, args.callers, args.seconds)
                committer.close()
                q = statistics.quantiles(lats, n=100)
                st = committer.stats
                print(
                    f"[{tree}] loop, {args.callers} tasks: {len(lats) / wall:,.0f} dec/s, "
                    f"{len(lats) / cpu:,.0f} dec/CPU-s, p50 {q[49]:.2f} ms, p99 {q[98]:.2f} ms, "
                    f"{st.records / max(st.batches, 1):.0f} dec/fsync"
                )
        finally:
            hub.close()
    print(f"load average (1 min): {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
