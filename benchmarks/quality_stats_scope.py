"""The first ``QualityStats.snapshot`` fold, old vs new, alternated in one run (CPU seconds).

    git show 6e230e4:ingest/stats.py > /tmp/stats_old.py
    .venv/bin/python -m benchmarks.quality_stats_scope /tmp/stats_old.py 200000

The old module counts per topic; the new one per tenant and topic (``core.events.tenant_of``
per record). Prints the best of three for each, per record, and the ratio.
"""

from __future__ import annotations

import importlib.util
import sys
import tempfile
import time
from pathlib import Path

from adapters.sqlite_log.log import SqliteEventLog
from core.ports.eventlog import Record
from ingest import stats as new


def main(old_path: str, n: int) -> None:
    spec = importlib.util.spec_from_file_location("stats_old", old_path)
    assert spec is not None and spec.loader is not None
    old = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(old)
    log = SqliteEventLog(Path(tempfile.mkdtemp()) / "log.db", synchronous="OFF")
    log.create_topic("trades", 1, {})
    base = (("ce_id", b"x"), ("ce_type", b"t"), ("ce_source", b"p"))
    recs = [
        Record(b"v" * 100, b"k%d" % (i % 1000), (*base, ("ce_tenant", b"acme" if i % 3 else b"g")))
        for i in range(n)
    ]
    for i in range(0, n, 10_000):
        log.append("trades", recs[i : i + 10_000])
    best: dict[str, float] = {}
    for _ in range(3):
        for name, mod in (("old", old), ("new", new)):
            s = mod.QualityStats(log, None)
            t0 = time.process_time()
            assert s.snapshot()["accepted"] == n
            took = time.process_time() - t0
            best[name] = min(best.get(name, took), took)
    for name, took in best.items():
        print(f"{name}: {took:.3f} s CPU, {took / n * 1e6:.2f} us/record")
    print(f"new/old: {best['new'] / best['old']:.2f}")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 200_000)
