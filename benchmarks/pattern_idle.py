"""The embedded pattern state with a partition that went quiet: events held and CPU per event,
with the idle-partition rule (``projections.pattern_state``, contract 6) and without it (the
detector before session 8), same stream, same run.

Stream: N payments on partition 0 of 200 accounts, one every 50 ms of event time, a third near
the AML threshold; partition 1 holds ONE payment at the start and then nothing. One pass per
500 records, one second of processing time apart (``hub serve`` polls once a second). Without
the rule partition 1 holds the watermark at its one payment for ever, so nothing settles and
every near payment is kept; with it partition 1 is idle after 10 s of passes. The third run has
no partition 1 at all: what pruning costs when nothing holds the watermark back.

Run: ``.venv/bin/python -m benchmarks.pattern_idle --events 200000``
"""

from __future__ import annotations

import argparse
import json
import os
import time
from decimal import Decimal

import numpy as np

from projections.pattern_state import PatternState, structuring_item
from projections.patterns import Structuring


def run(n: int, idle: bool, quiet: bool = True) -> dict[str, float]:
    """``quiet=False``: no partition 1 at all (what the state costs when nothing holds it)."""
    p = Structuring(count=3, within_ms=600_000, max_delay_ms=60_000)
    rng = np.random.default_rng(5)
    at = np.arange(n, dtype=np.int64) * 50 + 1_000_000
    near = rng.random(n) < 0.33
    accounts = rng.integers(0, 200, n)
    state = PatternState(p)
    p0, p1 = ("payments", 0), ("payments", 1)
    first = np.array([at[0]], np.int64)
    held = [p0, p1] if quiet else [p0]
    state.expect(held, held, 0 if idle else None)
    if quiet:
        state.on_time(*p1, first)
        state.offer([(("t", "B"), structuring_item(int(first[0]), 1, 0, Decimal("9500.00")))])
    peak, rows = 0, 0
    c0 = time.process_time()
    for k, lo in enumerate(range(0, n, 500)):
        now = (k + 1) * 1000
        rows += len(state.expect(held, [p0], now if idle else None))
        sl = slice(lo, lo + 500)
        ok = state.on_time(*p0, at[sl])
        items = [
            (
                ("t", f"A{accounts[lo + i]}"),
                structuring_item(int(at[lo + i]), 0, lo + i, Decimal(9500)),
            )
            for i in np.flatnonzero(ok & near[sl]).tolist()
        ]
        rows += len(state.offer(items)) + len(state.flush())
        peak = max(peak, state.retained())
    cpu = time.process_time() - c0
    return {"peak_events_held": peak, "cpu_s": round(cpu, 3), "events_per_cpu_s": round(n / cpu)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    args = parser.parse_args()
    out = {
        "events": args.events,
        "without_idle_rule": run(args.events, idle=False),
        "with_idle_rule": run(args.events, idle=True),
        "no_quiet_partition": run(args.events, idle=False, quiet=False),
        "load_1min": os.getloadavg()[0],
    }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
