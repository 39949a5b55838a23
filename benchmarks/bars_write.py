"""One market-bars batch written to chDB, timed: 3 bar tables x ``rows`` partial rows plus the
positions (the commit point), as a live step of the follower writes them. Alone, and beside a
Python thread spinning (the publishers' GIL pressure: each chDB call takes the GIL back several
times, so the number of calls per write sets its wall time more than the rows do).

``python -m benchmarks.bars_write [rows] [writes]``; run it in an old tree (``git archive``)
and this one alternately and compare the ratios (docs/benchmarks/s15-bars.md).
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import threading
import time
from decimal import Decimal as D
from typing import Any

from adapters.chdb_views import ChdbViewStore
from core.ports.views import Checkpoint, Position, Target
from core.projection import Row
from projections.catalog import MARKET_BARS


def bar_rows(n: int, seq: int) -> list[Row]:
    out = []
    for i in range(n):
        at = 1_767_225_600_000_000 + i * 60_000_000
        out.append(
            {
                "tenant": "acme",
                "instrument": f"I{i % 50}",
                "currency": "EUR",
                "window_start": at,
                "window_end": at + 60_000_000,
                "open": D("1.5"),
                "high": D("2"),
                "low": D("1"),
                "close": D("1.7"),
                "volume": D("10"),
                "notional": D("17"),
                "events": 3,
                "first_at": at,
                "first_pos": seq,
                "last_at": at + 1,
                "last_pos": seq + 2,
                "src_topic": "trades",
                "src_partition": 0,
                "src_first": seq * 100,
                "src_last": seq * 100 + 99,
            }
        )
    return out


def main(argv: list[str]) -> None:
    rows, writes = (int(argv[0]) if argv else 300), (int(argv[1]) if len(argv) > 1 else 40)
    store = ChdbViewStore(tempfile.mkdtemp())
    target, tables = Target("market_bars"), MARKET_BARS.tables
    store.ensure(target, tables)
    calls = [0]
    real = store._insert

    def counted(*a: Any) -> None:
        calls[0] += 1
        real(*a)

    store._insert = counted  # type: ignore[method-assign,assignment]
    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set():
            pass

    seq = 0
    for mode in ("alone", "beside a spinning thread"):
        th = threading.Thread(target=spin) if mode != "alone" else None
        if th:
            th.start()
        walls, cpus = [], []
        for _ in range(writes):
            seq += 1
            data = {t.name: bar_rows(rows, seq) for t in tables[:3]}
            calls[0] = 0
            w, c = time.perf_counter(), time.thread_time()
            store.write(target, tables, data, Checkpoint(seq, {("trades", 0): Position(seq)}))
            walls.append((time.perf_counter() - w) * 1e3)
            cpus.append((time.thread_time() - c) * 1e3)
        if th:
            stop.set()
            th.join()
            stop.clear()
        p95 = sorted(walls)[max(0, int(0.95 * writes) - 1)]
        print(
            f"{mode}: chDB calls per write {calls[0]}, wall p50 {statistics.median(walls):.1f} "
            f"ms p95 {p95:.1f} ms, writer thread CPU p50 {statistics.median(cpus):.2f} ms"
        )
    store.close()


if __name__ == "__main__":
    main(sys.argv[1:])
